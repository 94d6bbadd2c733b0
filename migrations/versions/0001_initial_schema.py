"""Initial schema: sessions, checkpoints, games, events, metric_snapshots, evaluations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

sessions.init_checkpoint_id and checkpoints.session_id reference each other. PostgreSQL
gets that foreign key by ALTER TABLE once both tables exist; SQLite cannot add a constraint
to an existing table but accepts a reference to a table not created yet, so there it is
declared inline. Explicit names are final (`op.f`): the metadata's naming convention
must not apply to them twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
STATES = ("pending", "running", "paused", "stopping", "completed", "stopped", "failed")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _session_id() -> list:
    return [sa.Column("session_id", sa.String(32), nullable=False)]


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["session_id"], ["sessions.id"], name=op.f(f"fk_{table}_session_id_sessions"), ondelete="CASCADE"
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    init_fk_name = op.f("fk_sessions_init_checkpoint_id_checkpoints")
    init_fk = sa.ForeignKeyConstraint(
        ["init_checkpoint_id"], ["checkpoints.id"], name=init_fk_name, ondelete="SET NULL"
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("init_checkpoint_id", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("stop_reason", sa.String(64), nullable=True),
        sa.Column("games_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_seq", sa.Integer(), server_default="0", nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("started_at", True),
        _ts("finished_at", True),
        sa.CheckConstraint("state IN ('" + "', '".join(STATES) + "')", name=op.f("ck_sessions_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        *([init_fk] if sqlite else []),
    )
    op.create_index("ix_sessions_created_at_id", "sessions", ["created_at", "id"])
    op.create_index("ix_sessions_seed", "sessions", ["seed"])

    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        *_session_id(),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("games", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("state_file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        _session_fk("checkpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        sa.UniqueConstraint("session_id", "generation", name=op.f("uq_checkpoints_session_id_generation")),
    )
    if not sqlite:
        op.create_foreign_key(
            init_fk_name, "sessions", "checkpoints", ["init_checkpoint_id"], ["id"], ondelete="SET NULL"
        )

    op.create_table(
        "games",
        sa.Column("id", sa.Integer(), nullable=False),
        *_session_id(),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("moves", sa.Text(), nullable=False),
        sa.Column("pgn", sa.Text(), nullable=False),
        sa.Column("result", sa.String(8), nullable=False),
        sa.Column("termination", sa.String(32), nullable=False),
        sa.Column("adjudicated", sa.Boolean(), nullable=False),
        sa.Column("plies", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=False),
        sa.Column("policy", sa.LargeBinary(), nullable=False),
        sa.Column("root_values", sa.LargeBinary(), nullable=False),
        sa.Column("full_search", sa.LargeBinary(), nullable=False),
        sa.Column("simulations", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("material", sa.Integer(), server_default="0", nullable=False),
        sa.Column("false_resign", sa.Boolean(), nullable=True),
        _ts("created_at"),
        _session_fk("games"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_games")),
        sa.UniqueConstraint("session_id", "number", name=op.f("uq_games_session_id_number")),
    )

    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        *_session_id(),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("opponent", sa.String(64), nullable=False),
        sa.Column("games", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("draws", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("pentanomial", JSON, nullable=True),
        sa.Column("elo", sa.Double(), nullable=True),
        sa.Column("elo_low", sa.Double(), nullable=True),
        sa.Column("elo_high", sa.Double(), nullable=True),
        sa.Column("sprt", JSON, nullable=True),
        _ts("created_at"),
        _session_fk("evaluations"),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["checkpoints.id"],
            name=op.f("fk_evaluations_checkpoint_id_checkpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    op.create_index("ix_evaluations_session_id", "evaluations", ["session_id"])
    op.create_index("ix_evaluations_checkpoint_id", "evaluations", ["checkpoint_id"])

    op.create_table(
        "metric_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        *_session_id(),
        _ts("ts"),
        sa.Column("data", JSON, nullable=False),
        _session_fk("metric_snapshots"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_snapshots")),
    )
    op.create_index("ix_metric_snapshots_session_id_ts", "metric_snapshots", ["session_id", "ts"])

    op.create_table(
        "events",
        *_session_id(),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        _ts("ts"),
        sa.Column("data", JSON, nullable=False),
        _session_fk("events"),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_events")),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_sessions_init_checkpoint_id_checkpoints"), "sessions", type_="foreignkey")
    for table in ("events", "metric_snapshots", "evaluations", "games", "checkpoints", "sessions"):
        op.drop_table(table)  # their indexes go with them
