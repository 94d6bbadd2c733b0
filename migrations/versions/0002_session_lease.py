"""A session's lease: which process runs it, until when (issue #21: one owner per session).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

`owner` names the process that runs the session (host, pid and a token of its
orchestrator), `heartbeat_at` when it last said so, `lease_expires_at` until when its claim
holds without another heartbeat. All three are NULL while nothing runs the session.
Adding nullable columns needs no batch copy on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("owner", sa.String(255), nullable=True))
    op.add_column("sessions", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sessions", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
