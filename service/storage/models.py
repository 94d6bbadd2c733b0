"""The tables, as typed SQLAlchemy 2 declarative models (`Base.metadata` is Alembic's target).

Every row of a session lives in a table with `session_id ... ON DELETE CASCADE`, and the
session's ORM collections cascade deletes too (write-only collections with
`passive_deletes=True`: the database does the work, nothing is loaded). Timestamps are
timezone-aware UTC datetimes on both SQLite and PostgreSQL (`UTCDateTime`). JSON columns
are JSON on SQLite and JSONB on PostgreSQL (`JSONType`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, WriteOnlyMapped, mapped_column, relationship

from ..lifecycle import ACTIVE, State
from . import codec

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""A JSON column: JSON on SQLite, JSONB on PostgreSQL."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names are fixed, so migrations (SQLite batch mode included) can name them."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def new_session_id() -> str:
    """A new session id: 32 hex digits of a uuid4."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so the value is stored as
    naive UTC and UTC is attached on the way out. Naive datetimes are refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use a timezone-aware one (UTC)")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach or convert to UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table; its metadata is Alembic's `target_metadata`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


def _session_fk() -> Any:
    return ForeignKey("sessions.id", ondelete="CASCADE")


def _children(target: str) -> Any:
    return relationship(target, cascade="all, delete-orphan", passive_deletes=True)


class SessionRow(Base):
    """A self-play and learning session; `last_seq` numbers its events (see `add_event`)."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("state IN ('" + "', '".join(State) + "')", name="state"),
        Index("ix_sessions_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_session_id)
    state: Mapped[str] = mapped_column(String(16), default=State.PENDING.value)
    config: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(BigInteger, index=True)
    init_checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL", use_alter=True)
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    games_done: Mapped[int] = mapped_column(default=0, server_default="0")
    last_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(255))
    """The process that runs the session (see `repositories.claim_lease`); None while nothing does."""
    heartbeat_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]

    games: WriteOnlyMapped[GameRow] = _children("GameRow")
    checkpoints: WriteOnlyMapped[CheckpointRow] = relationship(
        "CheckpointRow", cascade="all, delete-orphan", passive_deletes=True, foreign_keys="CheckpointRow.session_id"
    )
    evaluations: WriteOnlyMapped[EvaluationRow] = _children("EvaluationRow")
    metric_snapshots: WriteOnlyMapped[MetricSnapshotRow] = _children("MetricSnapshotRow")
    events: WriteOnlyMapped[EventRow] = _children("EventRow")

    @property
    def active(self) -> bool:
        """Whether the session is not over (pending, running, paused or stopping)."""
        return self.state in ACTIVE


class GameRow(Base):
    """A finished self-play game with its compact per-ply search targets (see `codec`)."""

    __tablename__ = "games"
    __table_args__ = (UniqueConstraint("session_id", "number"),)  # also the session_id index

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(_session_fk())
    number: Mapped[int]
    moves: Mapped[str] = mapped_column(Text)
    pgn: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(8))
    termination: Mapped[str] = mapped_column(String(32))
    adjudicated: Mapped[bool]
    plies: Mapped[int]
    temperature: Mapped[float]
    policy: Mapped[bytes] = mapped_column(LargeBinary)
    root_values: Mapped[bytes] = mapped_column(LargeBinary)
    full_search: Mapped[bytes] = mapped_column(LargeBinary)
    simulations: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float]
    material: Mapped[int] = mapped_column(default=0, server_default="0")
    false_resign: Mapped[bool | None]
    generation: Mapped[int] = mapped_column(default=0, server_default="0")  # the network that started it
    actor: Mapped[int] = mapped_column(default=0, server_default="0")  # the self-play actor that played it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def move_list(self) -> list[str]:
        """The moves in UCI."""
        return self.moves.split()

    def policies(self) -> list[np.ndarray]:
        """Per searched position, float16 probabilities over its legal moves (generation order)."""
        return codec.decode_policies(self.policy)

    def values(self) -> list[float]:
        """Per searched position, the search's root value (side to move's view)."""
        return codec.decode_values(self.root_values)

    def full_search_flags(self) -> list[bool]:
        """Per searched position, whether it got the full search (a policy target)."""
        return codec.decode_flags(self.full_search, len(self.root_values) // 2)


class CheckpointRow(Base):
    """A saved network (safetensors) and its training state file, by generation."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("session_id", "generation"),)  # also the session_id index

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(_session_fk())
    generation: Mapped[int]
    games: Mapped[int]
    file_name: Mapped[str] = mapped_column(String(255))
    state_file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def weights_path(self, checkpoint_dir: Path | str) -> Path:
        """The weights file under CHECKPOINT_DIR (`file_name` is relative to it)."""
        return Path(checkpoint_dir) / self.file_name

    def state_path(self, checkpoint_dir: Path | str) -> Path:
        """The training-state file under CHECKPOINT_DIR."""
        return Path(checkpoint_dir) / self.state_file_name


class EvaluationRow(Base):
    """One evaluation match of a checkpoint against an opponent, with its statistics."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(_session_fk(), index=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True)
    opponent: Mapped[str] = mapped_column(String(64))
    games: Mapped[int]
    wins: Mapped[int]
    draws: Mapped[int]
    losses: Mapped[int]
    pentanomial: Mapped[list[Any] | None]
    elo: Mapped[float | None]
    elo_low: Mapped[float | None]
    elo_high: Mapped[float | None]
    sprt: Mapped[dict[str, Any] | None]
    yardstick: Mapped[str | None] = mapped_column(String(64))
    """The rules the match was played under (`engine.yardstick.Yardstick`, e.g. cap150/material3):
    rating lists never mix two."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MetricSnapshotRow(Base):
    """A periodic snapshot of a session's metrics (free-form JSON)."""

    __tablename__ = "metric_snapshots"
    __table_args__ = (Index("ix_metric_snapshots_session_id_ts", "session_id", "ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(_session_fk())
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]]


class EventRow(Base):
    """A stored live event; `seq` grows by one per session with no gap (see `add_event`)."""

    __tablename__ = "events"

    session_id: Mapped[str] = mapped_column(_session_fk(), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]]

    def to_message(self) -> dict[str, Any]:
        """The WebSocket message (DESIGN.md "Live events"): seq, session_id, type, ts (RFC 3339), data."""
        return {
            "seq": self.seq,
            "session_id": self.session_id,
            "type": self.type,
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }
