"""Each game records the network generation that started it and the actor that played it
(issue #23: a session's games come from a fleet of self-play actors).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Games stored before were played by one worker: actor 0, and generation 0 (what played them is
not known any more; a server default, so SQLite adds the columns without a batch copy).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("games", sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("games", sa.Column("actor", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("games") as batch:
        batch.drop_column("actor")
        batch.drop_column("generation")
