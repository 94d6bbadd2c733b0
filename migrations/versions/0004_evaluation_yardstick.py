"""Each evaluation records its yardstick: the rules its match was played under (issue #24:
ratings made under different rules are never mixed in one list).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-12

Evaluations stored before were all played 150 plies after the opening and adjudicated on
material with a 3-pawn margin: they get that yardstick, `cap150/material3` (the name
`service.engine.yardstick.Yardstick` gives those rules; written out here, as a migration
must not change when the code does). Nullable, and no server default: a row's yardstick is
what its evaluation says, never a guess made by the database.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_YARDSTICK = "cap150/material3"


def upgrade() -> None:
    op.add_column("evaluations", sa.Column("yardstick", sa.String(length=64), nullable=True))
    evaluations = sa.table("evaluations", sa.column("yardstick", sa.String(length=64)))
    op.execute(evaluations.update().values(yardstick=LEGACY_YARDSTICK))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("yardstick")
