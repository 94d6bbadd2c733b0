"""Short async data-access functions over an `AsyncSession`.

The caller owns the transaction (`async with db.begin(): ...`): these functions add,
flush and query, and never commit, so a finished game and its events go in one
transaction. Lists are keyset-paginated with opaque cursors (base64url JSON); a
malformed cursor raises ValueError. A missing session or a refused state change raise
`NotFound` / `StateConflict` (the API answers 404 / 409).

Over 500 lines: one section per table (sessions and their leases, games, checkpoints,
evaluations, snapshots, events) of functions that are each a single query; splitting it
by table would scatter the one transaction rule and the cursor helpers they share.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable, Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..lifecycle import State
from ..stats.numbers import finite
from . import codec
from .models import (
    CheckpointRow,
    EvaluationRow,
    EventRow,
    GameRow,
    MetricSnapshotRow,
    SessionRow,
    utcnow,
)

_STATES = frozenset(State)  # what a plain string is looked up in: `"x" in State` raises TypeError on 3.11
SETTABLE_SESSION_FIELDS = frozenset(
    {"failure_reason", "stop_reason", "started_at", "finished_at", "games_done", "init_checkpoint_id"}
)
"""Session columns `set_state` may change along with the state."""


class NotFound(LookupError):
    """No row with that id (the API answers 404)."""


class StateConflict(Exception):
    """A state change from a state that does not allow it (the API answers 409)."""

    def __init__(self, session_id: str, state: str, wanted: str) -> None:
        super().__init__(f"session {session_id} is {state}: cannot become {wanted}")
        self.session_id, self.state, self.wanted = session_id, state, wanted


# -- cursors -----------------------------------------------------------------------------


def _encode_cursor(value: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("malformed cursor") from None
    if not isinstance(value, list):
        raise ValueError("malformed cursor")
    return value


def _session_cursor(cursor: str) -> tuple[datetime, str]:
    value = _decode_cursor(cursor)
    try:
        created_s, session_id = value
        created = datetime.fromisoformat(created_s)
    except (TypeError, ValueError):
        raise ValueError("malformed cursor") from None
    if created.tzinfo is None or not (isinstance(session_id, str) and len(session_id) == 32):
        raise ValueError("malformed cursor")
    return created, session_id


def _number_cursor(cursor: str) -> int:
    value = _decode_cursor(cursor)
    if len(value) != 1 or type(value[0]) is not int or value[0] < 0:
        raise ValueError("malformed cursor")
    return value[0]


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


# -- sessions ----------------------------------------------------------------------------


async def create_session(
    db: AsyncSession, config: dict[str, Any], seed: int, init_checkpoint_id: int | None = None
) -> SessionRow:
    """A new `pending` session (config: `SessionConfig.model_dump(mode="json")`)."""
    row = SessionRow(config=config, seed=seed, init_checkpoint_id=init_checkpoint_id, state=State.PENDING.value)
    db.add(row)
    await db.flush()
    return row


async def get_session(db: AsyncSession, session_id: str) -> SessionRow | None:
    """The session, or None."""
    return await db.get(SessionRow, session_id)


_GAMES_DONE = select(SessionRow.games_done).where(SessionRow.id == bindparam("session_id"))


async def session_games_done(db: AsyncSession, session_id: str) -> int | None:
    """The session's `games_done` (a light read: no row object), or None if there is no session."""
    return await db.scalar(_GAMES_DONE, {"session_id": session_id})


_NEWEST_RATED_EVALUATION = (
    select(EvaluationRow.id)
    .join(CheckpointRow, EvaluationRow.checkpoint_id == CheckpointRow.id)
    .where(EvaluationRow.session_id == SessionRow.id, EvaluationRow.elo.is_not(None))
    .order_by(CheckpointRow.generation.desc(), EvaluationRow.id.desc())
    .limit(1)
    .correlate(SessionRow)
    .scalar_subquery()
    .label("newest_rated_evaluation_id")
)
_NEWEST_SNAPSHOT = (
    select(MetricSnapshotRow.id)
    .where(MetricSnapshotRow.session_id == SessionRow.id)
    .order_by(MetricSnapshotRow.ts.desc(), MetricSnapshotRow.id.desc())
    .limit(1)
    .correlate(SessionRow)
    .scalar_subquery()
    .label("newest_snapshot_id")
)
# Statements the read routes run on every request are built once (building `column == value`
# costs as much as running the query through the driver), with bind parameters.
_SESSION_AND_NEWEST = select(SessionRow, _NEWEST_RATED_EVALUATION, _NEWEST_SNAPSHOT).where(
    SessionRow.id == bindparam("session_id")
)


async def session_and_newest(db: AsyncSession, session_id: str) -> tuple[SessionRow, int | None, int | None] | None:
    """In one query: the session, the id of its newest rated evaluation (the highest-generation
    checkpoint's newest row with an Elo) and the id of its newest metric snapshot (as
    `latest_metric_snapshot`), each None before there is one; None if there is no session."""
    row = (await db.execute(_SESSION_AND_NEWEST, {"session_id": session_id})).first()
    return None if row is None else (row[0], row[1], row[2])


_SESSION_VERSION = select(
    SessionRow.updated_at, SessionRow.games_done, SessionRow.state, _NEWEST_RATED_EVALUATION, _NEWEST_SNAPSHOT
).where(SessionRow.id == bindparam("session_id"))


async def session_version(db: AsyncSession, session_id: str) -> tuple[Any, ...] | None:
    """What a session's view depends on, in one light query (no row object): its
    (updated_at, games_done, state, newest rated evaluation id, newest snapshot id); every
    change of its row goes with a new `updated_at` (`set_state`, `add_game`), games with a new
    `games_done`. None if there is no session."""
    row = (await db.execute(_SESSION_VERSION, {"session_id": session_id})).first()
    return None if row is None else tuple(row)


async def get_metric_snapshot(db: AsyncSession, snapshot_id: int) -> MetricSnapshotRow | None:
    """The snapshot, or None."""
    return await db.get(MetricSnapshotRow, snapshot_id)


async def evaluation_with_generation(db: AsyncSession, evaluation_id: int) -> tuple[EvaluationRow, int] | None:
    """An evaluation and its checkpoint's generation, or None."""
    query = (
        select(EvaluationRow, CheckpointRow.generation)
        .join(CheckpointRow, EvaluationRow.checkpoint_id == CheckpointRow.id)
        .where(EvaluationRow.id == evaluation_id)
    )
    row = (await db.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def require_session(db: AsyncSession, session_id: str) -> SessionRow:
    """The session, or NotFound."""
    row = await db.get(SessionRow, session_id)
    if row is None:
        raise NotFound(f"no session {session_id}")
    return row


async def list_sessions(
    db: AsyncSession, state: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[SessionRow], str | None]:
    """Sessions newest first (by created_at, then id), optionally in one state; returns
    (rows, next_cursor), next_cursor None on the last page."""
    _check_limit(limit)
    if state is not None and state not in _STATES:
        raise ValueError(f"unknown state {state!r}: expected one of {', '.join(State)}")
    query = select(SessionRow).order_by(SessionRow.created_at.desc(), SessionRow.id.desc()).limit(limit + 1)
    if state is not None:
        query = query.where(SessionRow.state == state)
    if cursor is not None:
        created, last_id = _session_cursor(cursor)
        query = query.where(
            or_(SessionRow.created_at < created, and_(SessionRow.created_at == created, SessionRow.id < last_id))
        )
    rows = list((await db.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], _encode_cursor([last.created_at.isoformat(), last.id])


async def sessions_in_state(db: AsyncSession, state: str, limit: int | None = None) -> list[SessionRow]:
    """Sessions in `state`, oldest first (pending sessions start in the order they came)."""
    query = select(SessionRow).where(SessionRow.state == state).order_by(SessionRow.created_at, SessionRow.id)
    if limit is not None:
        query = query.limit(limit)
    return list((await db.scalars(query)).all())


async def set_state(
    db: AsyncSession, session_id: str, state: str, *, from_states: Collection[str] | None = None, **fields: Any
) -> SessionRow:
    """Move a session to `state` and set `fields` (SETTABLE_SESSION_FIELDS), updated_at too.

    With `from_states`, the change happens only from one of them (the row is locked on
    PostgreSQL meanwhile), else StateConflict. NotFound for an unknown session.
    """
    if state not in _STATES:
        raise ValueError(f"unknown state {state!r}")
    unknown = set(fields) - SETTABLE_SESSION_FIELDS
    if unknown:
        raise TypeError(f"set_state cannot set {sorted(unknown)}")
    row = await _locked_session(db, session_id)
    if from_states is not None and row.state not in from_states:
        raise StateConflict(session_id, row.state, state)
    row.state = state
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await db.flush()
    return row


async def delete_session(db: AsyncSession, session_id: str) -> bool:
    """Delete a session and (ON DELETE CASCADE) all its rows; False if there was none.

    Checkpoint files are not touched: the caller removes CHECKPOINT_DIR/<session_id>/.
    """
    row = await db.get(SessionRow, session_id)
    if row is None:
        return False
    await db.delete(row)  # ORM cascade with passive_deletes: the database deletes the children
    await db.flush()
    return True


# -- leases: one owner per session --------------------------------------------------------


class LeaseHeld(Exception):
    """Another live process holds the session's lease (the API answers 409)."""

    def __init__(self, session_id: str, state: str, owner: str, expires_at: datetime | None) -> None:
        until = expires_at.isoformat() if expires_at is not None else "?"
        super().__init__(f"session {session_id} is run by another process ({owner}, lease until {until})")
        self.session_id, self.state, self.owner, self.expires_at = session_id, state, owner, expires_at


def lease_holder(row: SessionRow, owner: str, now: datetime, stale: Callable[[str], bool]) -> str | None:
    """The other live owner of `row`'s lease, or None if the lease is free, expired, stale or ours."""
    if row.owner is None or row.owner == owner or stale(row.owner):
        return None
    if row.lease_expires_at is None or row.lease_expires_at <= now:
        return None
    return row.owner


async def _locked_session(db: AsyncSession, session_id: str) -> SessionRow:
    query = select(SessionRow).where(SessionRow.id == session_id).with_for_update()
    row = (await db.scalars(query.execution_options(populate_existing=True))).one_or_none()
    if row is None:
        raise NotFound(f"no session {session_id}")
    return row


async def check_lease(
    db: AsyncSession, session_id: str, owner: str, now: datetime, stale: Callable[[str], bool] = lambda other: False
) -> SessionRow:
    """The session (row locked on PostgreSQL), unless another live process holds its lease:
    LeaseHeld. `stale(owner)` tells a holder known to be gone (a dead process of this host)."""
    row = await _locked_session(db, session_id)
    holder = lease_holder(row, owner, now, stale)
    if holder is not None:
        raise LeaseHeld(session_id, row.state, holder, row.lease_expires_at)
    return row


async def claim_lease(
    db: AsyncSession,
    session_id: str,
    owner: str,
    now: datetime,
    lease_s: float,
    stale: Callable[[str], bool] = lambda other: False,
) -> SessionRow:
    """Make `owner` the session's owner until `now + lease_s`; LeaseHeld while another live
    process holds it (its lease has not expired and it is not `stale`)."""
    row = await check_lease(db, session_id, owner, now, stale)
    row.owner, row.heartbeat_at, row.lease_expires_at = owner, now, now + timedelta(seconds=lease_s)
    await db.flush()
    return row


async def renew_leases(db: AsyncSession, owner: str, now: datetime, lease_s: float) -> int:
    """Extend every lease `owner` holds (its heartbeat); how many it holds."""
    query = (
        update(SessionRow)
        .where(SessionRow.owner == owner)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    return int(cast(CursorResult[Any], await db.execute(query)).rowcount or 0)


async def release_lease(db: AsyncSession, session_id: str, owner: str) -> None:
    """Give up `owner`'s lease of a session (a no-op if it does not hold it)."""
    query = (
        update(SessionRow)
        .where(SessionRow.id == session_id, SessionRow.owner == owner)
        .values(owner=None, heartbeat_at=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    await db.execute(query)


# -- games -------------------------------------------------------------------------------


def game_row(session_id: str, message: dict[str, Any]) -> GameRow:
    """A GameRow from a worker's game message (`service.sessions.worker.game_message`)."""
    return GameRow(
        session_id=session_id,
        number=message["number"],
        moves=" ".join(message["moves"]),
        pgn=message["pgn"],
        result=message["result"],
        termination=message["termination"],
        adjudicated=bool(message["adjudicated"]),
        plies=message["plies"],
        temperature=float(message["temperature"]),
        policy=codec.encode_policies(message["policies"]),
        root_values=codec.encode_values(message["root_values"]),
        full_search=codec.encode_flags(message["full_search"]),
        simulations=message["simulations"],
        duration_s=float(message["duration_s"]),
        material=message.get("material", 0),
        false_resign=message.get("false_resign"),
        generation=message.get("generation", 0),
        actor=message.get("actor", 0),
    )


async def add_game(db: AsyncSession, session_id: str, message: dict[str, Any]) -> GameRow:
    """Store a finished game (compact blobs) and count it in `sessions.games_done`.

    A second game with the same number raises IntegrityError at the flush.
    """
    row = game_row(session_id, message)
    db.add(row)
    await db.flush()
    await db.execute(
        update(SessionRow)
        .where(SessionRow.id == session_id)
        .values(games_done=SessionRow.games_done + 1, updated_at=utcnow())
    )
    return row


async def get_game(db: AsyncSession, game_id: int) -> GameRow | None:
    """The game, or None."""
    return await db.get(GameRow, game_id)


async def list_games(
    db: AsyncSession, session_id: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[GameRow], str | None]:
    """A session's games by number ascending; returns (rows, next_cursor)."""
    _check_limit(limit)
    query = select(GameRow).where(GameRow.session_id == session_id).order_by(GameRow.number).limit(limit + 1)
    if cursor is not None:
        query = query.where(GameRow.number > _number_cursor(cursor))
    rows = list((await db.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], _encode_cursor([rows[limit - 1].number])


GAME_SUMMARY_COLUMNS = (
    "id",
    "session_id",
    "number",
    "result",
    "termination",
    "adjudicated",
    "plies",
    "moves",
    "temperature",
    "simulations",
    "duration_s",
    "material",
    "false_resign",
    "generation",
    "actor",
    "created_at",
)
"""The columns of a game list's items: everything but the PGN and the search-target blobs."""
_GAME_SUMMARIES = (
    select(*(getattr(GameRow, name) for name in GAME_SUMMARY_COLUMNS))
    .where(GameRow.session_id == bindparam("session_id"))
    .order_by(GameRow.number)
    .limit(bindparam("limit"))
)
_GAME_SUMMARIES_AFTER = _GAME_SUMMARIES.where(GameRow.number > bindparam("after"))


async def list_game_summaries(
    db: AsyncSession, session_id: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[Any], str | None]:
    """As `list_games`, but rows of GAME_SUMMARY_COLUMNS only (named tuples, no ORM objects):
    a page of a list reads neither the PGN nor the policy blobs (kilobytes per game)."""
    _check_limit(limit)
    params: dict[str, Any] = {"session_id": session_id, "limit": limit + 1}
    if cursor is not None:
        params["after"] = _number_cursor(cursor)
    rows = list((await db.execute(_GAME_SUMMARIES if cursor is None else _GAME_SUMMARIES_AFTER, params)).all())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], _encode_cursor([rows[limit - 1].number])


async def games_pgn(db: AsyncSession, session_id: str, batch: int = 200) -> AsyncIterator[str]:
    """Each game's PGN in number order, streamed `batch` rows at a time (one read transaction)."""
    query = (
        select(GameRow.pgn)
        .where(GameRow.session_id == session_id)
        .order_by(GameRow.number)
        .execution_options(yield_per=batch)
    )
    result = await db.stream_scalars(query)
    try:
        async for pgn in result:
            yield pgn
    finally:
        await result.close()


async def game_pgns_after(db: AsyncSession, session_id: str, after: int, limit: int) -> list[tuple[int, str]]:
    """(number, PGN) of the session's next `limit` games numbered above `after`, in order:
    a page of a stream read in short transactions (keyset by number)."""
    query = (
        select(GameRow.number, GameRow.pgn)
        .where(GameRow.session_id == session_id, GameRow.number > after)
        .order_by(GameRow.number)
        .limit(limit)
    )
    return [(number, pgn) for number, pgn in (await db.execute(query)).all()]


async def max_game_number(db: AsyncSession, session_id: str) -> int:
    """The highest stored game number of a session, 0 if none (new games go from it + 1)."""
    query = select(func.coalesce(func.max(GameRow.number), 0)).where(GameRow.session_id == session_id)
    return int(await db.scalar(query) or 0)


async def newest_games(db: AsyncSession, session_id: str, limit_positions: int, batch: int = 100) -> list[GameRow]:
    """Newest games first until they hold `limit_positions` positions, to rebuild the replay
    buffer (of that many positions) after a restart; the game that fills it is the last read.

    A game gives the buffer one position per searched ply (`selfplay.replay_samples`: a
    fast-search ply too, a value target without a policy target), and stores one root value
    (two bytes) per searched ply: that is what is counted. Not its full-search flags: with
    FULL_SEARCH_PROB=0 no ply has one, and every stored game would be read."""
    out: list[GameRow] = []
    positions = 0
    query = (
        select(GameRow)
        .where(GameRow.session_id == session_id)
        .order_by(GameRow.number.desc())
        .execution_options(yield_per=batch)
    )
    result = await db.stream_scalars(query)
    try:
        async for row in result:
            if positions >= limit_positions:
                break
            out.append(row)
            positions += len(row.root_values) // 2
    finally:
        await result.close()
    return out


# -- checkpoints -------------------------------------------------------------------------


def _relative(path: str | Path, checkpoint_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(checkpoint_dir).as_posix()
    except ValueError:
        raise ValueError(f"checkpoint file {path} is not under CHECKPOINT_DIR {checkpoint_dir}") from None


async def add_checkpoint(
    db: AsyncSession, session_id: str, message: dict[str, Any], checkpoint_dir: str | Path
) -> CheckpointRow:
    """Record a worker's checkpoint message (generation, games, path, state_path, sha256);
    file names are stored relative to CHECKPOINT_DIR. UNIQUE(session_id, generation)."""
    root = Path(checkpoint_dir).resolve()
    row = CheckpointRow(
        session_id=session_id,
        generation=message["generation"],
        games=message["games"],
        file_name=_relative(message["path"], root),
        state_file_name=_relative(message["state_path"], root),
        sha256=message["sha256"],
    )
    db.add(row)
    await db.flush()
    return row


async def get_checkpoint(db: AsyncSession, checkpoint_id: int) -> CheckpointRow | None:
    """The checkpoint, or None."""
    return await db.get(CheckpointRow, checkpoint_id)


async def list_checkpoints(db: AsyncSession, session_id: str) -> list[CheckpointRow]:
    """A session's checkpoints by generation."""
    query = select(CheckpointRow).where(CheckpointRow.session_id == session_id).order_by(CheckpointRow.generation)
    return list((await db.scalars(query)).all())


async def latest_checkpoint(db: AsyncSession, session_id: str) -> CheckpointRow | None:
    """A session's highest-generation checkpoint, or None."""
    query = (
        select(CheckpointRow)
        .where(CheckpointRow.session_id == session_id)
        .order_by(CheckpointRow.generation.desc())
        .limit(1)
    )
    return await db.scalar(query)


# -- events ------------------------------------------------------------------------------


async def add_event(db: AsyncSession, session_id: str, type: str, data: dict[str, Any]) -> EventRow:
    """Store an event with seq = the session's last_seq + 1 (NaN and infinities in `data`
    stored as null: `stats.numbers.finite`).

    `UPDATE sessions SET last_seq = last_seq + 1 ... RETURNING last_seq` takes the session
    row's write lock until the transaction ends, so concurrent writers get consecutive seqs
    (no gap, no duplicate: a rolled-back transaction gives its number back).
    """
    bump = (
        update(SessionRow)
        .where(SessionRow.id == session_id)
        .values(last_seq=SessionRow.last_seq + 1)
        .returning(SessionRow.last_seq)
    )
    seq = (await db.execute(bump.execution_options(synchronize_session=False))).scalar_one_or_none()
    if seq is None:
        raise NotFound(f"no session {session_id}")
    row = EventRow(session_id=session_id, seq=seq, type=type, data=finite(data), ts=utcnow())
    db.add(row)
    await db.flush()
    return row


async def events_since(db: AsyncSession, session_id: str, since: int = 0, limit: int = 1000) -> list[EventRow]:
    """A session's events with seq > since, in order, at most `limit`."""
    _check_limit(limit)
    query = (
        select(EventRow)
        .where(EventRow.session_id == session_id, EventRow.seq > since)
        .order_by(EventRow.seq)
        .limit(limit)
    )
    return list((await db.scalars(query)).all())


# -- metrics and evaluations -------------------------------------------------------------


async def add_metric_snapshot(
    db: AsyncSession, session_id: str, data: dict[str, Any], ts: datetime | None = None
) -> MetricSnapshotRow:
    """Store a metrics snapshot (ts: now by default; NaN and infinities stored as null)."""
    row = MetricSnapshotRow(session_id=session_id, data=finite(data), ts=ts or utcnow())
    db.add(row)
    await db.flush()
    return row


async def list_metric_snapshots(
    db: AsyncSession, session_id: str, since: datetime | None = None, limit: int = 1000
) -> list[MetricSnapshotRow]:
    """A session's snapshots in time order (after `since`), the newest `limit` of them."""
    _check_limit(limit)
    query = select(MetricSnapshotRow).where(MetricSnapshotRow.session_id == session_id)
    if since is not None:
        query = query.where(MetricSnapshotRow.ts > since)
    query = query.order_by(MetricSnapshotRow.ts.desc(), MetricSnapshotRow.id.desc()).limit(limit)
    return list(reversed((await db.scalars(query)).all()))


async def latest_metric_snapshot(db: AsyncSession, session_id: str) -> MetricSnapshotRow | None:
    """A session's newest snapshot, or None."""
    rows = await list_metric_snapshots(db, session_id, limit=1)
    return rows[0] if rows else None


async def add_evaluation(
    db: AsyncSession,
    session_id: str,
    checkpoint_id: int,
    opponent: str,
    *,
    wins: int,
    draws: int,
    losses: int,
    pentanomial: list[int] | None = None,
    elo: float | None = None,
    elo_low: float | None = None,
    elo_high: float | None = None,
    sprt: dict[str, Any] | None = None,
    yardstick: str | None = None,
) -> EvaluationRow:
    """Store an evaluation match of a checkpoint against `opponent` (games = W + D + L),
    played under `yardstick` (the evaluation names it; rating lists are fitted per yardstick)."""
    row = EvaluationRow(
        session_id=session_id,
        checkpoint_id=checkpoint_id,
        opponent=opponent,
        games=wins + draws + losses,
        wins=wins,
        draws=draws,
        losses=losses,
        pentanomial=pentanomial,
        elo=elo,
        elo_low=elo_low,
        elo_high=elo_high,
        sprt=sprt,
        yardstick=yardstick,
    )
    db.add(row)
    await db.flush()
    return row


async def list_evaluations(db: AsyncSession, session_id: str) -> list[EvaluationRow]:
    """A session's evaluations in the order they were stored."""
    query = select(EvaluationRow).where(EvaluationRow.session_id == session_id).order_by(EvaluationRow.id)
    return list((await db.scalars(query)).all())


async def evaluations_for_seed(db: AsyncSession, seed: int) -> list[tuple[EvaluationRow, CheckpointRow]]:
    """Every evaluation of the sessions sharing `seed` (one generation 0), with its checkpoint:
    the input of GET /v1/ratings?seed=."""
    query = (
        select(EvaluationRow, CheckpointRow)
        .join(CheckpointRow, EvaluationRow.checkpoint_id == CheckpointRow.id)
        .join(SessionRow, EvaluationRow.session_id == SessionRow.id)
        .where(SessionRow.seed == seed)
        .order_by(EvaluationRow.id)
    )
    return [(e, c) for e, c in (await db.execute(query)).all()]


# -- keys of the API's read caches (service/api/caches.py) ----------------------------------


def game_cursor_number(cursor: str) -> int:
    """The game number a `list_games` cursor stands for (ValueError if malformed): one key
    for a page however its cursor is spelled (JSON whitespace, characters base64 skips)."""
    return _number_cursor(cursor)


_NEWEST_EVALUATION = select(func.max(EvaluationRow.id)).where(EvaluationRow.session_id == bindparam("session_id"))


async def newest_evaluation_id(db: AsyncSession, session_id: str) -> int | None:
    """The id of a session's newest evaluation (None before the first): what its rating list
    depends on. A session's evaluations are only added to while it exists, never changed,
    and a new row's id is above every id the session's rows have."""
    return await db.scalar(_NEWEST_EVALUATION, {"session_id": session_id})


_SEED_EVALUATIONS = (
    select(func.count(EvaluationRow.id), func.max(EvaluationRow.id), func.max(EvaluationRow.created_at))
    .join(SessionRow, EvaluationRow.session_id == SessionRow.id)
    .where(SessionRow.seed == bindparam("seed"))
)


async def seed_evaluations_version(db: AsyncSession, seed: int) -> tuple[Any, ...]:
    """(count, newest id, newest created_at) of the evaluations of the sessions sharing
    `seed`: what GET /v1/ratings?seed= depends on. A deleted session takes its evaluations
    along (the count drops); SQLite hands a deleted newest id out again, so the count and
    the newest id may come back with other rows, but never with the same newest time."""
    return tuple((await db.execute(_SEED_EVALUATIONS, {"seed": seed})).one())
