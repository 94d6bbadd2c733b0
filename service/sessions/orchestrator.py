"""The orchestrator: one asyncio task per active session, the only writer of the database.

Each running session holds a worker from the pool; its task sends the worker commands
and stores what the worker reports (games, checkpoints, learning steps, stats) through
one writer task, so every write happens in order and in its own transaction with the
event that announces it. Engine work never runs here: the loop only awaits messages.

Every stored event goes out only after its transaction commits: to the listeners
(`listeners`: telemetry, progress bars, sinks) and to the live feed's bus (`bus`, an
`events.EventBus`) in the WebSocket form `EventRow.to_message()`; a rolled-back write
announces nothing. The worker's `game.move` reports go to the bus alone (neither stored
nor numbered). Alerts (`stats.alerts.AlertTracker`, the ALERT_* settings) are checked on
each learning step (loss spike), evaluation (Elo drawdown from the best checkpoint) and
stats report (memory growth); each newly raised one is stored as an `alert.raised` event.

Sessions beyond MAX_CONCURRENT_SESSIONS wait as `pending` (first come, first served).
After a crash or a restart, sessions left `running` are restarted from their last
checkpoint and stored games (the replay buffer is rebuilt from them; new games are
numbered from the highest stored + 1), sessions left `paused` stay paused until resumed,
and sessions caught `stopping` are closed as `stopped`.

A worker that dies under a session (its process killed, its Ray actor lost) is handled the
same way without a service restart: the pool replaces it, and the session's task restarts
the session on a fresh worker from its last checkpoint and stored games; it stays in its
state, and a `session.state` event with `restarted: true` and the reason records it. Games
in flight at the death are dropped, never half-stored. A session whose worker dies more
than WORKER_MAX_RESTARTS times within WORKER_RESTART_WINDOW_S ends `failed`, with the
reason in its `session.state` event and its `failure_reason`.

One process runs a session at a time, through a lease in its row (`lease`,
`storage.repositories.claim_lease`): a session's task claims it before it takes a worker,
the heartbeat renews it every HEARTBEAT_S, each game and checkpoint write renews it (and
stores nothing if another process holds it now), and the task gives it back when it ends.
Another live process is refused (`SessionOwned`, HTTP 409, CLI exit 2); a crashed owner's
lease is taken over once it has expired (LEASE_S), or at once when its process is known to
be gone, by the recovery that runs at start and with every heartbeat.

A worker goes back to the pool only once it has reported its session loop over (`idle`);
one that may still be playing (an error in the session's task) is killed and replaced, and
a report tagged with another session's id is dropped and logged (`_pump`).

When the database goes away (`storage.database.is_connection_error`), the writer holds the
write it was doing and every later one, in order, retrying with backoff until it is back:
sessions play on, their finished games waiting in memory (`database_ok` is False and
/readyz answers 503 meanwhile); a retried write that had in fact committed is recognised
and not stored twice. Past DB_OUTAGE_LIMIT_S the running sessions are stopped, and each
ends `failed` with the reason once the database is back, every game it finished stored
once. See `_perform`.

Over 500 lines: the writer, the leases and the session tasks share the staged events and
the outage state; the writer is to move to a module of its own with the restructure of
issue #22 (each role its own room).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..config import SessionConfig, Settings, stored_session_config
from ..stats.alerts import Alert, AlertThresholds, AlertTracker, elo_drop
from ..stats.ratings import player, rating_list
from ..storage import codec
from ..storage import repositories as repo
from ..storage.database import DatabaseUnavailable, is_connection_error
from ..storage.models import EventRow
from . import lease
from .events import EventBus
from .lifecycle import ACTIONS, ACTIVE, FINAL, IllegalTransition, SessionNotFound, SessionOwned, State, sources
from .pool import Pool
from .worker import WorkerSpec

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called with (session_id, event type, data) after each stored event has been committed
(telemetry, progress bars), and with type "stats" for the worker's live-only stats."""

FINAL_REASONS = {"max_games": State.COMPLETED, "duration": State.COMPLETED, "stopped": State.STOPPED}
LOSS_WINDOW = 10
"""Learning steps whose mean total loss a new loss is compared with (ALERT_LOSS_SPIKE_FACTOR)."""
WORKER_MAX_RESTARTS = 3
"""Restarts of a session whose worker died, allowed within WORKER_RESTART_WINDOW_S; one more
death in that window ends the session `failed` (its worker keeps dying: out of memory, a
node that keeps going away). Deaths further apart never add up: a long session may lose a
worker now and then."""
WORKER_RESTART_WINDOW_S = 600.0
"""Seconds over which a session's worker deaths are counted (WORKER_MAX_RESTARTS)."""


DB_OUTAGE_LIMIT_S = 120.0
"""How long the database may stay unreachable while sessions go on playing (their finished
games held in memory, in order); past it, running sessions are stopped and end `failed`."""
DB_RETRY_INITIAL_S = 0.1
"""First wait before retrying a write that found the database unreachable; doubles per try..."""
DB_RETRY_MAX_S = 2.0
"""...up to this (so a database back is noticed within about 2 s)."""
DB_CLOSE_GRACE_S = 10.0
"""At shutdown during an outage, how long held writes may still wait before they are given up."""


@contextmanager
def suppress_lost_race() -> Iterator[None]:
    """Around a state change that may lose to another process (its lease, its state)."""
    try:
        yield
    except (repo.LeaseHeld, repo.StateConflict) as exc:
        log.info("left as it is: %s", exc)


_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"(),:;/]+/)+([^\s'\"(),:;/]*)")


def public_reason(text: str) -> str:
    """A failure reason as every caller may read it: server paths cut to their last part
    (`.../gen-0003.safetensors`); the full text goes to the log."""
    return _PATH.sub(lambda m: ".../" + m.group(1), text)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(ts: datetime) -> str:
    """A UTC time as the live feed writes it (as `EventRow.to_message`)."""
    return ts.isoformat().replace("+00:00", "Z")


@dataclass
class _Staged:
    """An event stored by the running write job, announced once its transaction commits."""

    session_id: str
    kind: str
    data: dict[str, Any]
    message: dict[str, Any]


@dataclass
class _WriteJob:
    """A write waiting for (or in) the writer task."""

    job: Callable[[Any], Awaitable[Any]]
    future: asyncio.Future


@dataclass
class _Outage:
    """The database is unreachable (since `since`, monotonic): writes are held."""

    since: float
    since_wall: datetime
    error: str
    attempts: int = 0
    limit_passed: bool = False
    games_mark: dict[str, int] = field(default_factory=dict)  # games written per session before it


@dataclass
class _SessionAlerts:
    """One session's alert state: what is active, and the recent losses."""

    tracker: AlertTracker
    losses: deque = field(default_factory=lambda: deque(maxlen=LOSS_WINDOW))


@dataclass
class _Reports:
    """What `record` remembers between one session's worker reports."""

    last_snapshot: float = 0.0
    stored: dict[str, Any] | None = None  # the stats last kept as a snapshot
    latest: dict[str, Any] | None = None


class Orchestrator:
    """Runs sessions on a worker pool and records them; the API and `run` both drive it."""

    def __init__(
        self, settings: Settings, sessionmaker, pool: Pool, *, recover: bool = True, writer_sessionmaker=None
    ) -> None:
        """`sessionmaker` serves the orchestrator's own reads; `writer_sessionmaker` (default:
        the same) the writer's transactions: the service gives it an engine of its own, one
        connection no request can take (`app.create_app`)."""
        self.settings = settings
        self.recover = recover
        self.sessionmaker = sessionmaker
        self.writer_sessionmaker = writer_sessionmaker if writer_sessionmaker is not None else sessionmaker
        self.pool = pool
        self.listeners: list[Listener] = []
        self.bus = EventBus(settings.ws_queue_size)
        self.thresholds = AlertThresholds(
            elo_regression=settings.alert_elo_regression,
            loss_spike_factor=settings.alert_loss_spike_factor,
            memory_growth_mb=settings.alert_memory_growth_mb,
            timeout_rate=settings.alert_timeout_rate,
        )
        self._alerts: dict[str, _SessionAlerts] = {}
        self._reports: dict[str, _Reports] = {}
        self._staged: list[_Staged] | None = None  # events of the write job now running
        self._writes: asyncio.Queue | None = None
        self._writer: asyncio.Task | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._workers: dict[str, Any] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._started = False
        self._closing = False
        self._schedule_lock = asyncio.Lock()
        # database outages (see `_perform`); the bounds are attributes so tests can shorten them
        self.db_outage_limit_s = DB_OUTAGE_LIMIT_S
        self.db_retry_initial_s = DB_RETRY_INITIAL_S
        self.db_retry_max_s = DB_RETRY_MAX_S
        self.db_close_grace_s = DB_CLOSE_GRACE_S
        self._outage: _Outage | None = None
        self._db_failed: dict[str, tuple[str, int]] = {}  # stopped for an outage -> (reason, games mark)
        self._games_written: dict[str, int] = {}  # games this writer stored, per active session
        self._closing_seen: float | None = None
        self._gave_up = False
        # one owner per session across processes (see `lease`); attributes so tests can shorten them
        self.owner = lease.new_owner()
        self.lease_s = lease.LEASE_S
        self.heartbeat_s = lease.HEARTBEAT_S
        self._heartbeat: asyncio.Task | None = None

    # -- lifecycle of the orchestrator itself ------------------------------------------
    async def start(self) -> None:
        """Start the writer, warm the pool, restore interrupted sessions, start pending ones."""
        self._writes = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name="db-writer")
        await self.pool.start()
        self._started = True
        if self.recover:
            await self._recover()
            await self._schedule()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="lease-heartbeat")

    @property
    def ready(self) -> bool:
        """Started, with a warm pool."""
        return self._started and not self._closing and self.pool.ready

    async def close(self, timeout: float = 60.0) -> None:
        """Shut down: running sessions checkpoint and stay resumable (state unchanged)."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for session_id, worker in self._workers.items():
            worker.send("shutdown", session_id)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)
        for task in self._tasks.values():
            task.cancel()
        await self.pool.close()
        if self._writer is not None:
            assert self._writes is not None  # start() set both
            await self._writes.put(None)
            await self._writer
        lease.close_owner(self.owner)  # a lease left behind (a write given up) is stale from now on
        self.bus.close()  # live feeds end (1001) after the last events went out

    # -- the single writer ---------------------------------------------------------------
    @property
    def database_ok(self) -> bool:
        """False while the writer cannot reach the database (its writes are held, in order)."""
        return self._outage is None

    @property
    def database_outage(self) -> dict[str, Any] | None:
        """While the database is unreachable: since when (RFC 3339), for how many seconds,
        the last error, the writes waiting (the one being retried included), the bound
        (`db_outage_limit_s`) and whether it was passed; None while writes go through."""
        outage = self._outage
        if outage is None:
            return None
        return {
            "since": rfc3339(outage.since_wall),
            "seconds": round(time.monotonic() - outage.since, 1),
            "error": outage.error,
            "held_writes": self._writes.qsize() + 1 if self._writes else 1,
            "limit_s": self.db_outage_limit_s,
            "limit_passed": outage.limit_passed,
        }

    async def write(self, job: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `job(db)` in its own transaction on the writer task; returns its result.
        The events it stores (`_event`) are announced after the commit, before this returns.

        While the database is unreachable the job waits (see `_perform`): this returns once
        it is stored. A job that fails for any other reason raises here, as does one given
        up at shutdown during an outage (`DatabaseUnavailable`)."""
        future = asyncio.get_running_loop().create_future()
        assert self._writes is not None, "the orchestrator is not started"
        await self._writes.put(_WriteJob(job, future))
        return await future

    async def _write_loop(self) -> None:
        assert self._writes is not None  # start() set it before it started this task
        while True:
            item = await self._writes.get()
            if item is None:
                return
            await self._perform(item)

    async def _perform(self, item: _WriteJob) -> None:
        """Run one write job to its end, retrying it while the database is unreachable.

        Order: the writer is one task, so a job that fails for lack of a database is retried
        (backoff from DB_RETRY_INITIAL_S, doubling up to DB_RETRY_MAX_S) before any later job
        runs: later writes wait in the queue behind it and nothing is reordered or dropped.
        A job's result (and its events' announcement) reaches its caller only after its
        commit, so a session's task waits for each report to be stored before it takes the
        next from its worker; the worker keeps playing, its reports waiting in order in its
        inbox (memory grows by about a game's few kilobytes per game finished meanwhile,
        bounded by the outage bound below).

        Exactly once: a retried job may have committed already, when the connection died
        between the COMMIT and its answer (an ack lost). Before retrying a job whose commit
        failed that way, the writer looks for the first event that attempt stored: the
        session's event with that seq, type and timestamp (to the microsecond) exists only
        if the commit went through, as the orchestrator is the only writer and seqs are
        consecutive. Found: the job counts as done with the first attempt's result and
        events (announced now), nothing is stored twice (game numbers, event seqs).
        Not found: the attempt was rolled back as a whole and the job runs again. Every
        job of the orchestrator stores at least one event, except deleting a session,
        which is the same when repeated. (A game stored twice would also be refused by
        UNIQUE(session_id, number), and the session would fail rather than hold a copy.)

        Bound: once an outage has lasted `db_outage_limit_s` (DB_OUTAGE_LIMIT_S), the
        workers of the running sessions are told to stop; their reports (games finished
        meanwhile, their last checkpoint) stay held and are stored when the database is
        back, and each such session then ends `failed` with the reason (`_set_state`).
        If the service shuts down during an outage, the writer gives up after
        `db_close_grace_s`: the waiting writes fail with DatabaseUnavailable, nothing of them
        is claimed stored, and the sessions stay resumable from their last stored checkpoint
        (games not stored are lost as at a crash; the log counts the writes given up).

        Any other error (a bug, a constraint) goes to the caller at once; the writer goes on."""
        delay = self.db_retry_initial_s
        uncertain: tuple[list[_Staged], Any] | None = None  # an attempt whose commit may have gone through
        while True:
            staged: list[_Staged] = []
            self._staged = staged
            committing = False
            result: Any = None
            try:
                if uncertain is not None and await self._committed(uncertain[0]):
                    staged, result = uncertain
                    log.warning("a write committed although its connection failed: not repeating it")
                else:
                    uncertain = None
                    async with self.writer_sessionmaker() as db:
                        result = await item.job(db)
                        committing = True
                        await db.commit()
            except Exception as exc:  # nothing is announced for a failed attempt
                self._staged = None
                if not is_connection_error(exc):
                    if isinstance(exc, DBAPIError):  # the database answered: it is reachable
                        self._outage_over()
                    self._resolve(item, exc=exc)  # the caller decides; the writer goes on
                    return
                if committing and staged:
                    uncertain = (staged, result)
                self._outage_failed(exc)
                if self._gave_up or self._give_up_now():
                    assert self._outage is not None  # _outage_failed() set it
                    self._resolve(
                        item,
                        exc=DatabaseUnavailable(
                            f"the database stayed unreachable while the service shut down ({self._outage.error}): "
                            "this write was not stored"
                        ),
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.db_retry_max_s)
                continue
            self._staged = None
            self._outage_over()
            for event in staged:  # committed: now the listeners and the live feed hear of it
                if event.kind == "game.finished":
                    self._games_written[event.session_id] = self._games_written.get(event.session_id, 0) + 1
                self._notify(event.session_id, event.kind, event.data)
                self.bus.publish(event.message)
            self._resolve(item, result=result)
            return

    @staticmethod
    def _resolve(item: _WriteJob, *, result: Any = None, exc: BaseException | None = None) -> None:
        if item.future.done():  # its caller went away (cancelled)
            return
        if exc is not None:
            item.future.set_exception(exc)
        else:
            item.future.set_result(result)

    async def _committed(self, staged: list[_Staged]) -> bool:
        """Whether the attempt that stored `staged` committed (its first event is stored)."""
        first = staged[0].message
        async with self.writer_sessionmaker() as db:
            row = await db.get(EventRow, (first["session_id"], first["seq"]))
            return row is not None and row.type == first["type"] and row.to_message()["ts"] == first["ts"]

    def _outage_failed(self, exc: BaseException) -> None:
        """A write found the database unreachable: start (or go on with) the outage."""
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        now = time.monotonic()
        outage = self._outage
        if outage is None:
            outage = self._outage = _Outage(
                since=now, since_wall=utcnow(), error=error, games_mark=dict(self._games_written)
            )
            log.error(
                "database unreachable (%s): holding writes in order and retrying; "
                "sessions go on, stopped if it lasts %g s",
                error,
                self.db_outage_limit_s,
            )
        outage.error, outage.attempts = error, outage.attempts + 1
        if not outage.limit_passed and now - outage.since >= self.db_outage_limit_s:
            outage.limit_passed = True
            self._stop_sessions_for_outage(outage)

    def _outage_over(self) -> None:
        outage, self._outage = self._outage, None
        if outage is not None:
            log.warning(
                "database reachable again after %.1f s (%d failed attempts); held writes go through",
                time.monotonic() - outage.since,
                outage.attempts,
            )

    def _give_up_now(self) -> bool:
        """During shutdown, give up the held writes once `db_close_grace_s` has passed."""
        if not self._closing:
            return False
        now = time.monotonic()
        if self._closing_seen is None:
            self._closing_seen = now
        if now - self._closing_seen < self.db_close_grace_s:
            return False
        self._gave_up = True
        assert self._writes is not None  # called by the writer (`_perform`)
        log.error(
            "database still unreachable while shutting down (%s): giving up %d held writes; nothing "
            "of them is stored (sessions resume from their last stored checkpoint)",
            self._outage.error if self._outage else "?",
            self._writes.qsize() + 1,
        )
        return True

    def _stop_sessions_for_outage(self, outage: _Outage) -> None:
        """The outage passed its bound: stop every running session's worker (no more games
        to hold); each ends `failed` with this reason once the database is back."""
        reason = (
            f"database unreachable for more than {self.db_outage_limit_s:g} s "
            f"(since {rfc3339(outage.since_wall)}; the driver's error is in the service log)"
        )
        stopped = []
        for session_id, worker in list(self._workers.items()):
            if session_id not in self._db_failed:
                self._db_failed[session_id] = (reason, outage.games_mark.get(session_id, 0))
                worker.send("stop", session_id)
                stopped.append(session_id)
        log.error(
            "%s: stopping sessions %s; what they finished is held until the database is back",
            reason,
            ", ".join(stopped) or "(none running)",
        )

    def _outage_failure(self, session_id: str) -> str:
        """The failure reason of a session stopped for an outage (`_stop_sessions_for_outage`)."""
        reason, mark = self._db_failed[session_id]
        held = self._games_written.get(session_id, 0) - mark
        return (
            f"{reason}: the session was stopped rather than hold its games in memory without bound; "
            f"the {held} game{'s' if held != 1 else ''} it finished after the database went away "
            f"{'were' if held != 1 else 'was'} held and stored once it came back"
        )

    async def _event(self, db, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Store an event in the running write job's transaction (its seq: the session's
        next); it is announced once that transaction commits. Returns its message."""
        if self._staged is None:
            raise RuntimeError("events are stored only inside a write job")
        row = await repo.add_event(db, session_id, kind, data)
        message = row.to_message()
        self._staged.append(_Staged(session_id, kind, data, message))
        return message

    async def add_event(self, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Store one event for a session in its own transaction and announce it after the
        commit (listeners, live feed); returns its message (`seq`, `ts`...). NotFound for an
        unknown session."""
        return await self.write(lambda db: self._event(db, session_id, kind, data))

    def _notify(self, session_id: str, kind: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(session_id, kind, data)
            except Exception:  # a listener never breaks a session
                log.exception("event listener failed")

    # -- leases: one owner per session across processes ---------------------------------
    async def _heartbeat_loop(self) -> None:
        """Every `heartbeat_s`: renew the leases this orchestrator holds and (with `recover`)
        take over the running sessions whose owner is gone (its lease expired, or stale)."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.write(lambda db: repo.renew_leases(db, self.owner, utcnow(), self.lease_s))
                if self.recover:
                    await self._recover()
            except Exception:  # the next beat tries again
                log.exception("lease heartbeat failed")

    async def _take_lease(self, db, session_id: str) -> None:
        """In a write job: make this orchestrator the session's owner for `lease_s`, or
        LeaseHeld (nothing of the job is stored) while another live process holds its lease.
        Every game and checkpoint write takes it again: a process whose lease expired under it
        (stalled, cut off) never writes beside the one that took over."""
        await repo.claim_lease(db, session_id, self.owner, utcnow(), self.lease_s, lease.stale)

    def _lease_free(self, row, now: datetime) -> bool:
        """Whether no other live process holds `row`'s lease (free, expired, stale or ours)."""
        return repo.lease_holder(row, self.owner, now, lease.stale) is None

    async def _claim(self, session_id: str, action: str) -> None:
        """Make this orchestrator the session's owner (renewed by the heartbeat), or
        SessionOwned while another live process holds its lease."""
        try:
            await self.write(lambda db: self._take_lease(db, session_id))
        except repo.LeaseHeld as exc:
            raise self._owned(exc, action) from None
        except repo.NotFound:
            raise SessionNotFound("session", session_id) from None

    @staticmethod
    def _owned(exc: repo.LeaseHeld, action: str) -> SessionOwned:
        until = rfc3339(exc.expires_at) if exc.expires_at is not None else "?"
        return SessionOwned(exc.session_id, exc.state, action, exc.owner, until)

    async def _release(self, session_id: str) -> None:
        """Give up this orchestrator's lease of a session it no longer runs (best effort: a
        lease left behind expires, or is stale once this process or orchestrator is gone)."""
        try:
            await self.write(lambda db: repo.release_lease(db, session_id, self.owner))
        except Exception as exc:
            log.warning(
                "session %s: its lease was not released (%s); it expires in %g s",
                session_id,
                type(exc).__name__,
                self.lease_s,
            )

    # -- alerts --------------------------------------------------------------------------
    def _alert_state(self, session_id: str) -> _SessionAlerts:
        state = self._alerts.get(session_id)
        if state is None:
            state = self._alerts[session_id] = _SessionAlerts(AlertTracker(self.thresholds))
        return state

    def _check_loss(self, session_id: str, loss: Any) -> list[Alert]:
        """Alerts newly raised by a learning step's total loss against the recent ones."""
        if not isinstance(loss, (int, float)):
            return []
        state = self._alert_state(session_id)
        raised = state.tracker.check(loss=float(loss), recent_losses=list(state.losses))
        state.losses.append(float(loss))
        return raised

    async def _raise_alerts(
        self, db, session_id: str, alerts: list[Alert], trigger: str, context: dict[str, Any]
    ) -> None:
        """Store each alert as an `alert.raised` event: the alert (name, severity, message,
        value, threshold), what triggered it and the session's context (games, step...)."""
        for alert in alerts:
            await self._event(
                db,
                session_id,
                "alert.raised",
                {**alert.to_dict(), "trigger": trigger, **{k: v for k, v in context.items() if v is not None}},
            )

    async def _set_state(
        self, session_id: str, state: State, *, from_states: Collection[State] | None = None, **fields: Any
    ) -> None:
        """Store a state change and its `session.state` event, as a compare-and-set in the
        writer: only from a state that `lifecycle.TRANSITIONS` lets lead to it (and, with
        `from_states`, only from one of those), checked in the same write, else
        StateConflict naming the state that won. A session stopped because the database
        stayed unreachable past its bound (`_stop_sessions_for_outage`) ends `failed` with
        that reason instead of `stopped`. No process changes the state of a session another
        live process runs: LeaseHeld (see `_claim`)."""
        outage_stopped = state is State.STOPPED and session_id in self._db_failed

        async def job(db):
            await repo.check_lease(db, session_id, self.owner, utcnow(), lease.stale)
            target, values = state, fields
            if outage_stopped:
                target = State.FAILED
                values = {
                    "failure_reason": self._outage_failure(session_id)[:2000],
                    "finished_at": fields.get("finished_at") or utcnow(),
                }
            allowed = sources(target) if from_states is None else sources(target) & set(from_states)
            await repo.set_state(db, session_id, target.value, from_states={s.value for s in allowed}, **values)
            await self._event(
                db,
                session_id,
                "session.state",
                {
                    "state": target.value,
                    **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()},
                },
            )

        await self.write(job)
        if state in (State.COMPLETED, State.STOPPED, State.FAILED):
            self._db_failed.pop(session_id, None)
            self._games_written.pop(session_id, None)

    # -- user actions --------------------------------------------------------------------
    async def create_session(self, config: SessionConfig, init_checkpoint_id: int | None = None) -> str:
        """Store a new session (pending) and start it when a slot is free."""

        async def job(db):
            if init_checkpoint_id is not None and await repo.get_checkpoint(db, init_checkpoint_id) is None:
                raise SessionNotFound("checkpoint", init_checkpoint_id)
            row = await repo.create_session(db, config.model_dump(mode="json"), config.seed, init_checkpoint_id)
            await self._event(db, row.id, "session.state", {"state": State.PENDING.value})
            return row.id

        session_id = await self.write(job)
        await self._schedule()
        return session_id

    async def _current_state(self, session_id: str) -> str:
        async with self.sessionmaker() as db:
            row = await repo.get_session(db, session_id)
        if row is None:
            raise SessionNotFound("session", session_id)
        return row.state

    async def _act(self, session_id: str, action: str, target: State, **fields: Any) -> None:
        """Store the state a user action leads to, from a state the action is allowed in
        (`lifecycle.ACTIONS`), as one compare-and-set in the writer: an action that loses a
        race (the session ended, another action was stored first) is IllegalTransition
        naming the state that won (HTTP 409); one on a session another live process runs is
        SessionOwned (HTTP 409 too)."""
        try:
            await self._set_state(session_id, target, from_states=ACTIONS[action][0], **fields)
        except repo.StateConflict as exc:
            raise IllegalTransition(session_id, exc.state, action) from None
        except repo.LeaseHeld as exc:
            raise self._owned(exc, action) from None
        except repo.NotFound:
            raise SessionNotFound("session", session_id) from None

    async def pause(self, session_id: str) -> None:
        """Hold a running session between two search steps."""
        await self._act(session_id, "pause", State.PAUSED)
        self._command(session_id, "pause")

    async def resume(self, session_id: str) -> None:
        """Continue a paused session (restarting its worker if the service restarted meanwhile)."""
        await self._act(session_id, "resume", State.RUNNING)
        if not self._command(session_id, "resume") and session_id not in self._tasks:
            self._launch(session_id)

    async def continue_session(self, session_id: str) -> None:
        """Start a stored session that has no worker here: a paused one is resumed, one left
        `running` or `pending` (an interrupted headless run) restarts from its last checkpoint.
        SessionOwned while another live process runs it (`serve` beside `run --resume`)."""
        state = await self._current_state(session_id)
        if State(state) in ACTIVE and state != State.STOPPING.value and session_id not in self._tasks:
            await self._claim(session_id, "resume")
        if state == State.PAUSED.value:
            await self.resume(session_id)
        elif state in (State.RUNNING.value, State.PENDING.value):
            if session_id not in self._tasks:
                self._launch(session_id)
        else:
            raise IllegalTransition(session_id, state, "resume")

    async def stop(self, session_id: str) -> None:
        """End a session: it checkpoints and becomes `stopped` (a pending one at once)."""
        if session_id not in self._tasks:  # nothing runs it here
            await self._act(session_id, "stop", State.STOPPED, stop_reason="stopped", finished_at=utcnow())
            return
        await self._act(session_id, "stop", State.STOPPING)
        self._command(session_id, "stop")

    async def delete(self, session_id: str) -> None:
        """Remove a session that is not active, with its games, events and checkpoint files."""
        state = await self._current_state(session_id)
        if State(state) in ACTIVE:
            raise IllegalTransition(session_id, state, "delete")

        async def job(db):
            await repo.delete_session(db, session_id)

        await self.write(job)
        shutil.rmtree(Path(self.settings.checkpoint_dir) / session_id, ignore_errors=True)
        self._live.pop(session_id, None)
        self._alerts.pop(session_id, None)
        self._reports.pop(session_id, None)

    def _command(self, session_id: str, command: str) -> bool:
        """Send a user action to the session's worker, if it has one; False if not.

        Called after the action's state is stored, never before: a worker that starts
        meanwhile either is found here or reads the stored state when it starts
        (`_attempt`), so no action falls between the two."""
        worker = self._workers.get(session_id)
        if worker is None:
            return False
        worker.send(command, session_id)
        return True

    def live(self, session_id: str) -> dict[str, Any] | None:
        """The worker's latest stats (simulations/s, buffer, memory...), or None; `paused` is
        True once the worker has acknowledged a pause: it holds, and every game it finished
        before is stored."""
        return self._live.get(session_id)

    # -- scheduling ----------------------------------------------------------------------
    async def _schedule(self) -> None:
        """Start pending sessions, oldest first, while slots are free."""
        if not self._started or self._closing:
            return
        async with self._schedule_lock:
            free = self.settings.max_concurrent_sessions - len(self._tasks)
            if free <= 0:
                return
            async with self.sessionmaker() as db:
                pending = await repo.sessions_in_state(db, State.PENDING.value, limit=free + len(self._tasks))
            # a session just launched is still pending until its task marks it running; one
            # another process has claimed is its to start
            now = utcnow()
            for row in [r for r in pending if r.id not in self._tasks and self._lease_free(r, now)][:free]:
                self._launch(row.id)

    def _launch(self, session_id: str) -> None:
        task = asyncio.create_task(self._run(session_id), name=f"session-{session_id}")
        self._tasks[session_id] = task

    async def _recover(self) -> None:
        """Take over the sessions left active by a process that is gone (its lease expired
        or stale; at start-up, after a crash or a restart): `running` ones restart from
        their last checkpoint (or wait as `pending` beyond MAX_CONCURRENT_SESSIONS), and
        `stopping` ones are closed as `stopped`. A session another live process runs is
        left to it."""
        async with self.sessionmaker() as db:
            running = await repo.sessions_in_state(db, State.RUNNING.value)
            stopping = await repo.sessions_in_state(db, State.STOPPING.value)
        now = utcnow()

        def orphaned(row) -> bool:
            return row.id not in self._tasks and self._lease_free(row, now)

        try:
            for row in filter(orphaned, stopping):
                with suppress_lost_race():
                    await self._set_state(row.id, State.STOPPED, stop_reason="stopped", finished_at=utcnow())
            for row in filter(orphaned, running):
                if len(self._tasks) < self.settings.max_concurrent_sessions:
                    log.info("restoring session %s from its last checkpoint", row.id)
                    self._launch(row.id)
                else:
                    with suppress_lost_race():
                        await self._set_state(row.id, State.PENDING)
        except DatabaseUnavailable:  # shutting down during an outage: they stay as they are
            return

    # -- one session ---------------------------------------------------------------------
    async def _spec(self, session_id: str) -> tuple[WorkerSpec, str]:
        """What the worker needs to start or resume this session, and its state."""
        async with self.sessionmaker() as db:
            row = await repo.get_session(db, session_id)
            assert row is not None  # claimed by _run: it exists, and an active session is never deleted
            last = await repo.latest_checkpoint(db, session_id)
            init = await repo.get_checkpoint(db, row.init_checkpoint_id) if row.init_checkpoint_id else None
            first_game = await repo.max_game_number(db, session_id) + 1
            replay = []
            if last is not None:
                for game in await repo.newest_games(db, session_id, row.config["replay_buffer_positions"]):
                    moves = game.moves.split() if game.moves else []
                    replay.append(
                        {
                            "moves": moves,
                            "policies": codec.decode_policies(game.policy),
                            "full_search": codec.decode_flags(
                                game.full_search, len(codec.decode_policies(game.policy))
                            ),
                            "result": game.result,
                        }
                    )
                replay.reverse()  # oldest first: the buffer keeps the newest
        checkpoint_dir = Path(self.settings.checkpoint_dir)
        config = stored_session_config(row.config)
        spec = WorkerSpec(
            session_id=session_id,
            config=config,
            checkpoint_dir=checkpoint_dir / session_id,
            torch_threads=self.settings.resolved_torch_threads(),
            first_game=first_game,
            resume_state=checkpoint_dir / last.state_file_name if last is not None else None,
            init_weights=checkpoint_dir / init.file_name if init is not None and last is None else None,
            replay_games=replay,
        )
        return spec, row.state

    async def _run(self, session_id: str) -> None:
        """The session's task: run it on a worker; when that worker dies under it, restart it
        on a fresh one from its last checkpoint and stored games (as after a crash), unless
        its workers keep dying (WORKER_MAX_RESTARTS within WORKER_RESTART_WINDOW_S)."""
        deaths: deque[float] = deque()
        restart: dict[str, Any] | None = None  # why the next attempt is a restart
        restarts = 0
        try:
            while True:
                died = await self._attempt(session_id, restart)
                if died is None or self._closing:  # ended, or the service is going down: resumable
                    return
                reason = str(died.get("reason") or f"worker died ({died})")
                now = time.monotonic()
                deaths.append(now)
                while now - deaths[0] > WORKER_RESTART_WINDOW_S:
                    deaths.popleft()
                state = await self._current_state(session_id)
                if state == State.STOPPING.value:  # it was stopping: its last checkpoint stands
                    log.warning("session %s: %s while stopping; closing it as stopped", session_id, reason)
                    await self._set_state(session_id, State.STOPPED, stop_reason="stopped", finished_at=utcnow())
                    return
                if state not in (State.RUNNING.value, State.PAUSED.value):  # it had ended already
                    return
                if len(deaths) > WORKER_MAX_RESTARTS:
                    await self._fail(
                        session_id,
                        f"{reason}; its worker died {len(deaths)} times within "
                        f"{WORKER_RESTART_WINDOW_S:g} s (at most {WORKER_MAX_RESTARTS} "
                        "restarts are allowed)",
                    )
                    return
                restarts += 1
                log.warning(
                    "session %s: %s; restarting it on a fresh worker from its last checkpoint (restart %d)",
                    session_id,
                    reason,
                    restarts,
                )
                restart = {"reason": reason, "restarts": restarts}
        except repo.LeaseHeld as exc:  # taken over once its lease had expired
            log.error("session %s: stopped here, another process runs it now (%s)", session_id, exc)
        except Exception as exc:  # the details (driver text, SQL, paths) go to the log only
            log.exception("session %s failed", session_id)
            await self._fail(
                session_id,
                f"internal error while running the session ({type(exc).__name__}); the service log has the details",
            )
        finally:
            self._workers.pop(session_id, None)
            self._tasks.pop(session_id, None)
            self._reports.pop(session_id, None)
            await self._release(session_id)
            await self._schedule()

    async def _attempt(self, session_id: str, restart: dict[str, Any] | None) -> dict[str, Any] | None:
        """Run the session on one worker from its stored state until the worker is done with
        it; returns the worker's death report if it died under the session, else None.
        `restart` (reason, count) is recorded as a `session.state` event once the session
        is on its new worker."""
        worker = None
        loop_ended = False  # whether the worker reported its session loop over (`idle`)
        try:
            try:
                await self._claim(session_id, "run")
            except SessionOwned as exc:  # another process took it first
                log.warning("session %s not run here: %s", session_id, exc)
                return None
            spec, state = await self._spec(session_id)
            if State(state) in FINAL:  # stopped before it got a worker
                return None
            worker = await self.pool.acquire()
            self._workers[session_id] = worker
            worker.send("run", session_id, spec)
            if self._closing:  # the service went down while we waited for a worker
                worker.send("shutdown", session_id)
            # The state as stored now, after any action taken while we waited: a `pending`
            # session becomes `running` in the same write that checks it, so a stop stored
            # just before is seen here and one stored after finds the worker (`_command`).
            try:
                await self._set_state(session_id, State.RUNNING, from_states=(State.PENDING,), started_at=utcnow())
                state = State.RUNNING.value
            except repo.StateConflict as exc:
                state = exc.state
            if state == State.PAUSED.value:
                worker.send("pause", session_id)
            elif state != State.RUNNING.value:  # stopping, or already ended
                worker.send("stop", session_id)
            if restart is not None:
                await self.add_event(
                    session_id,
                    "session.state",
                    {
                        "state": state,
                        "restarted": True,
                        **restart,
                        "first_game": spec.first_game,
                        "resumed_from_checkpoint": spec.resume_state is not None,
                    },
                )
            died = await self._pump(session_id, worker)
            loop_ended = True
            return died
        finally:
            self._workers.pop(session_id, None)
            if worker is not None and loop_ended:
                await self.pool.release(worker)  # a dead worker is replaced by a fresh one
            elif worker is not None:  # it may still be playing this session: never hand it on
                log.warning(
                    "session %s: its worker %s did not report its loop over; replacing it", session_id, worker.name
                )
                await self.pool.replace(worker)

    async def _fail(self, session_id: str, reason: str) -> None:
        try:
            await self._set_state(session_id, State.FAILED, failure_reason=reason[:2000], finished_at=utcnow())
        except DatabaseUnavailable as exc:  # shutting down during an outage: it stays resumable
            log.error("could not record the failure of session %s (%s): %s", session_id, reason, exc)
        except repo.StateConflict as exc:  # it had ended already: that state stands
            log.warning("session %s: not marked failed (%s): it is %s already", session_id, reason, exc.state)
        except repo.LeaseHeld as exc:  # another process runs it now: its state is that one's to set
            log.warning("session %s: not marked failed (%s): %s", session_id, reason, exc)
        except Exception:
            log.exception("could not record the failure of session %s", session_id)

    async def _store_evaluation(self, db, session_id: str, data: dict[str, Any]) -> None:
        """Store a match, refit the session's rating list, and give the match's row the
        candidate's fitted rating with its 95% interval."""
        by_generation = {c.generation: c for c in await repo.list_checkpoints(db, session_id)}
        checkpoint = by_generation[data["generation"]]
        row = await repo.add_evaluation(
            db,
            session_id,
            checkpoint.id,
            data["opponent"],
            wins=data["wins"],
            draws=data["draws"],
            losses=data["losses"],
            pentanomial=data["pentanomial"],
            sprt=data.get("sprt"),
        )
        generation_of = {c.id: c.generation for c in by_generation.values()}
        stored = await repo.list_evaluations(db, session_id)
        ratings = rating_list([(e, generation_of[e.checkpoint_id], None) for e in stored], self.settings.elo_anchor)
        mine = ratings.get(player(data["generation"]))
        if mine is not None:
            row.elo, row.elo_low, row.elo_high = mine.rating, mine.low, mine.high
            await db.flush()
        # Elo regression: the newest evaluated checkpoint's rating against the best so far
        rated = [
            ratings[player(g)].rating for g in sorted(by_generation) if g <= data["generation"] and player(g) in ratings
        ]
        drop = elo_drop(rated) if mine is not None else None
        alerts = self._alert_state(session_id).tracker.check(elo_delta=drop) if drop is not None else []
        await self._event(
            db,
            session_id,
            "evaluation.finished",
            {
                "checkpoint_id": checkpoint.id,
                "generation": data["generation"],
                "opponent": data["opponent"],
                "wins": data["wins"],
                "draws": data["draws"],
                "losses": data["losses"],
                "pentanomial": data["pentanomial"],
                "adjudicated": data["adjudicated"],
                "elo": row.elo,
                "elo_low": row.elo_low,
                "elo_high": row.elo_high,
                "sprt": data.get("sprt"),
                "ratings": {name: {"rating": r.rating, "low": r.low, "high": r.high} for name, r in ratings.items()},
            },
        )
        await self._raise_alerts(
            db,
            session_id,
            alerts,
            "evaluation.finished",
            {
                "games": data.get("games_played"),
                "generation": data["generation"],
                "opponent": data["opponent"],
                "elo": row.elo,
            },
        )

    async def _snapshot(self, session_id: str, data: dict[str, Any]) -> None:
        async def job(db):
            await repo.add_metric_snapshot(db, session_id, data)
            await self._event(db, session_id, "metrics.snapshot", data)

        await self.write(job)

    async def _pump(self, session_id: str, worker) -> dict[str, Any] | None:
        """Store the worker's reports until its session loop has ended (`idle`), or until it
        died. Returns the worker's death report when it died under the session, else None.
        A report about another session (a stale loop's) is dropped and logged."""
        self._reports[session_id] = _Reports()
        while True:
            message = await worker.receive()
            if message.kind == "died":
                return None if self._closing else message.data
            if message.session_id != session_id:
                log.warning(
                    "dropped a %r message of worker %s for session %s: that worker runs session %s",
                    message.kind,
                    worker.name,
                    message.session_id,
                    session_id,
                )
                continue
            if await self.record(session_id, message.kind, message.data):
                return None

    async def record(self, session_id: str, kind: str, data: dict[str, Any]) -> bool:
        """Store (and announce) one report of a session's worker: a game, a checkpoint, an
        evaluation match, a learning step, stats, a featured game's move, or how the session
        ended. True when the session's reports are over (its worker is done with it).

        The session's task calls it for each message of its worker; it is public so that
        reports from elsewhere (tests, another backend) go through the same path."""
        reports = self._reports.setdefault(session_id, _Reports())
        if kind == "game":

            async def job(db):
                await self._take_lease(db, session_id)
                game = await repo.add_game(db, session_id, data)
                await self._event(
                    db,
                    session_id,
                    "game.finished",
                    {
                        "game_id": game.id,
                        "number": data["number"],
                        "started": data.get("started", data["number"]),
                        "result": data["result"],
                        "termination": data["termination"],
                        "adjudicated": data["adjudicated"],
                        "plies": data["plies"],
                        "duration_s": data["duration_s"],
                        "simulations": data["simulations"],
                        "moves": data["moves"],
                        "pgn": data["pgn"],
                        "ended_at": data.get("ended_at"),
                    },
                )

            await self.write(job)
        elif kind == "move":  # live only: neither stored nor numbered
            self.bus.publish({"session_id": session_id, "type": "game.move", "ts": rfc3339(utcnow()), "data": data})
        elif kind == "checkpoint":
            checkpoint_dir = Path(self.settings.checkpoint_dir)

            async def job(db):
                await self._take_lease(db, session_id)
                row = await repo.add_checkpoint(db, session_id, data, checkpoint_dir)
                await self._event(
                    db,
                    session_id,
                    "checkpoint.saved",
                    {
                        "checkpoint_id": row.id,
                        "generation": data["generation"],
                        "games": data["games"],
                        "sha256": data["sha256"],
                    },
                )

            await self.write(job)
        elif kind == "evaluation":
            await self.write(lambda db: self._store_evaluation(db, session_id, data))
        elif kind == "learning":
            alerts = self._check_loss(session_id, data.get("total_loss"))

            async def job(db):
                await self._event(db, session_id, "learning.step", data)
                await self._raise_alerts(
                    db, session_id, alerts, "learning.step", {"games": data.get("games"), "step": data.get("step")}
                )

            await self.write(job)
        elif kind == "stats":
            self._live[session_id] = data | {"at": utcnow().isoformat(), "paused": False}
            self._notify(session_id, "stats", data)  # live only (progress bars); stored below
            growth = data.get("rss_growth_mb")
            if isinstance(growth, (int, float)):
                alerts = self._alert_state(session_id).tracker.check(memory_growth_mb=float(growth))
                if alerts:
                    await self.write(
                        lambda db: self._raise_alerts(db, session_id, alerts, "stats", {"rss_mb": data.get("rss_mb")})
                    )
            now = time.monotonic()
            if now - reports.last_snapshot >= self.settings.metrics_export_interval:
                reports.last_snapshot, reports.stored = now, data
                await self._snapshot(session_id, data)
            reports.latest = data
        elif kind == "finished":
            if reports.latest is not None and reports.latest is not reports.stored:
                await self._snapshot(session_id, reports.latest)  # the worker's last stats: always kept
            reason = data["reason"]
            if reason == "shutdown":
                return False  # the service is going down: the session stays resumable
            try:
                await self._set_state(
                    session_id, FINAL_REASONS.get(reason, State.STOPPED), stop_reason=reason, finished_at=utcnow()
                )
            except repo.StateConflict as exc:  # it had ended already (failed): that state stands
                log.warning("session %s: its worker finished (%s) after it became %s", session_id, reason, exc.state)
        elif kind == "failed":
            log.error("session %s: its worker failed: %s", session_id, data["error"])
            await self._fail(session_id, public_reason(str(data["error"])))
        elif kind in ("paused", "resumed"):  # the worker holds between two search steps, or goes on
            live = self._live.get(session_id) or {}
            self._live[session_id] = live | {"paused": kind == "paused", "at": utcnow().isoformat()}
        elif kind == "idle":
            return True
        return False
