"""The database writer: one task that runs every write of the orchestrator, in order, each in
its own transaction with the events it stores, and announces those events once committed.

It knows nothing of sessions, workers or alerts: a write is a job `job(db)`; the events a job
stores (`event`) go to the `publish` callback after its commit (a rolled-back job announces
nothing), and an outage that passes its bound is reported to `on_outage_limit`. The recorder
and the orchestrator above it decide what to write.

When the database goes away (`storage.database.is_connection_error`), the writer holds the
write it was doing and every later one, in order, retrying with backoff until it is back:
callers wait (sessions play on, their finished games waiting in their workers' inboxes),
`ok` is False meanwhile, and a retried write that had in fact committed is recognised and
not stored twice. See `_perform`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import DBAPIError

from ..event_types import EventType
from ..storage import repositories as repo
from ..storage.database import DatabaseUnavailable, is_connection_error
from ..storage.models import EventRow

log = logging.getLogger(__name__)

OUTAGE_LIMIT_S = 120.0
"""How long the database may stay unreachable while sessions go on playing (their finished
games held in memory, in order); past it, `on_outage_limit` is told (running sessions are
stopped and end `failed`)."""
RETRY_INITIAL_S = 0.1
"""First wait before retrying a write that found the database unreachable; doubles per try..."""
RETRY_MAX_S = 2.0
"""...up to this (so a database back is noticed within about 2 s)."""
CLOSE_GRACE_S = 10.0
"""At shutdown during an outage, how long held writes may still wait before they are given up."""

Job = Callable[[Any], Awaitable[Any]]
"""A write: called with an open AsyncSession, its transaction committed after it returns."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(ts: datetime) -> str:
    """A UTC time as the live feed writes it (as `EventRow.to_message`)."""
    return ts.isoformat().replace("+00:00", "Z")


@dataclass
class StagedEvent:
    """An event stored by the running write job, announced once its transaction commits."""

    session_id: str
    kind: str
    data: dict[str, Any]
    message: dict[str, Any]


@dataclass
class Outage:
    """The database is unreachable (since `since`, monotonic): writes are held."""

    since: float
    since_wall: datetime
    error: str
    attempts: int = 0
    limit_passed: bool = False
    games_mark: dict[str, int] = field(default_factory=dict)  # games written per session before it


@dataclass
class _WriteJob:
    """A write waiting for (or in) the writer task."""

    job: Job
    future: asyncio.Future


class Writer:
    """Runs write jobs one at a time on its own task; holds them in order through an outage."""

    def __init__(
        self,
        sessionmaker,
        *,
        publish: Callable[[StagedEvent], None],
        on_outage_limit: Callable[[Outage], None],
    ) -> None:
        """`sessionmaker` opens the writer's transactions (the service gives it an engine of its
        own); `publish` hears of each event once committed; `on_outage_limit` is called once
        per outage, when it passes `outage_limit_s`."""
        self.sessionmaker = sessionmaker
        self.publish = publish
        self.on_outage_limit = on_outage_limit
        # the bounds are attributes so tests can shorten them
        self.outage_limit_s = OUTAGE_LIMIT_S
        self.retry_initial_s = RETRY_INITIAL_S
        self.retry_max_s = RETRY_MAX_S
        self.close_grace_s = CLOSE_GRACE_S
        self.games_written: dict[str, int] = {}
        """Games this writer stored per session (`game.finished` events committed); the
        orchestrator forgets a session once it has ended."""
        self._queue: asyncio.Queue[_WriteJob | None] | None = None
        self._task: asyncio.Task | None = None
        self._staged: list[StagedEvent] | None = None  # events of the write job now running
        self._outage: Outage | None = None
        self._closing = False
        self._closing_seen: float | None = None  # when a held write first saw the shutdown
        self._gave_up = False

    def start(self) -> None:
        """Start the writer task (in a running event loop)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="db-writer")

    def closing(self) -> None:
        """The service is shutting down: during an outage, held writes are given up after
        `close_grace_s` instead of waiting for the database without end."""
        self._closing = True

    async def close(self) -> None:
        """Run the writes already queued, then end the writer task."""
        if self._task is not None:
            assert self._queue is not None  # start() set both
            await self._queue.put(None)
            await self._task

    @property
    def ok(self) -> bool:
        """False while the database is unreachable (writes are held, in order)."""
        return self._outage is None

    @property
    def pending(self) -> int:
        """Writes waiting in the queue (not counting the one running)."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def outage(self) -> dict[str, Any] | None:
        """While the database is unreachable: since when (RFC 3339), for how many seconds,
        the last error, the writes waiting (the one being retried included), the bound
        (`outage_limit_s`) and whether it was passed; None while writes go through."""
        outage = self._outage
        if outage is None:
            return None
        return {
            "since": rfc3339(outage.since_wall),
            "seconds": round(time.monotonic() - outage.since, 1),
            "error": outage.error,
            "held_writes": self.pending + 1,
            "limit_s": self.outage_limit_s,
            "limit_passed": outage.limit_passed,
        }

    async def write(self, job: Job) -> Any:
        """Run `job(db)` in its own transaction on the writer task; returns its result.
        The events it stores (`event`) are announced after the commit, before this returns.

        While the database is unreachable the job waits (see `_perform`): this returns once
        it is stored. A job that fails for any other reason raises here, as does one given
        up at shutdown during an outage (`DatabaseUnavailable`)."""
        future = asyncio.get_running_loop().create_future()
        assert self._queue is not None, "the writer is not started"
        await self._queue.put(_WriteJob(job, future))
        return await future

    async def event(self, db, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Store an event in the running write job's transaction (its seq: the session's
        next); it is announced once that transaction commits. Returns its message."""
        if self._staged is None:
            raise RuntimeError("events are stored only inside a write job")
        row = await repo.add_event(db, session_id, kind, data)
        message = row.to_message()
        self._staged.append(StagedEvent(session_id, kind, data, message))
        return message

    async def add_event(self, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Store one event in its own transaction and announce it after the commit; returns
        its message (`seq`, `ts`...). NotFound for an unknown session."""
        return await self.write(lambda db: self.event(db, session_id, kind, data))

    async def _loop(self) -> None:
        assert self._queue is not None  # start() set it before it started this task
        while True:
            item = await self._queue.get()
            if item is None:
                return
            await self._perform(item)

    async def _perform(self, item: _WriteJob) -> None:
        """Run one write job to its end, retrying it while the database is unreachable.

        Order: the writer is one task, so a job that fails for lack of a database is retried
        (backoff from `retry_initial_s`, doubling up to `retry_max_s`) before any later job
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

        Bound: once an outage has lasted `outage_limit_s`, `on_outage_limit` is told (the
        orchestrator stops the running sessions; their reports stay held and are stored when
        the database is back). If the service shuts down during an outage (`closing`), the
        writer gives up after `close_grace_s`: the waiting writes fail with
        DatabaseUnavailable, nothing of them is claimed stored, and the sessions stay
        resumable from their last stored checkpoint (games not stored are lost as at a
        crash; the log counts the writes given up).

        Any other error (a bug, a constraint) goes to the caller at once; the writer goes on."""
        delay = self.retry_initial_s
        uncertain: tuple[list[StagedEvent], Any] | None = None  # an attempt whose commit may have gone through
        while True:
            staged: list[StagedEvent] = []
            self._staged = staged
            committing = False
            result: Any = None
            try:
                if uncertain is not None and await self._committed(uncertain[0]):
                    staged, result = uncertain
                    log.warning("a write committed although its connection failed: not repeating it")
                else:
                    uncertain = None
                    async with self.sessionmaker() as db:
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
                delay = min(delay * 2, self.retry_max_s)
                continue
            self._staged = None
            self._outage_over()
            for event in staged:  # committed: now the listeners and the live feed hear of it
                if event.kind == EventType.GAME_FINISHED:
                    self.games_written[event.session_id] = self.games_written.get(event.session_id, 0) + 1
                self.publish(event)
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

    async def _committed(self, staged: list[StagedEvent]) -> bool:
        """Whether the attempt that stored `staged` committed (its first event is stored)."""
        first = staged[0].message
        async with self.sessionmaker() as db:
            row = await db.get(EventRow, (first["session_id"], first["seq"]))
            return row is not None and row.type == first["type"] and row.to_message()["ts"] == first["ts"]

    def _outage_failed(self, exc: BaseException) -> None:
        """A write found the database unreachable: start (or go on with) the outage."""
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        now = time.monotonic()
        outage = self._outage
        if outage is None:
            outage = self._outage = Outage(
                since=now, since_wall=utcnow(), error=error, games_mark=dict(self.games_written)
            )
            log.error(
                "database unreachable (%s): holding writes in order and retrying; "
                "sessions go on, stopped if it lasts %g s",
                error,
                self.outage_limit_s,
            )
        outage.error, outage.attempts = error, outage.attempts + 1
        if not outage.limit_passed and now - outage.since >= self.outage_limit_s:
            outage.limit_passed = True
            self.on_outage_limit(outage)

    def _outage_over(self) -> None:
        outage, self._outage = self._outage, None
        if outage is not None:
            log.warning(
                "database reachable again after %.1f s (%d failed attempts); held writes go through",
                time.monotonic() - outage.since,
                outage.attempts,
            )

    def _give_up_now(self) -> bool:
        """During shutdown, give up the held writes once `close_grace_s` has passed."""
        if not self._closing:
            return False
        now = time.monotonic()
        if self._closing_seen is None:
            self._closing_seen = now
        if now - self._closing_seen < self.close_grace_s:
            return False
        self._gave_up = True
        log.error(
            "database still unreachable while shutting down (%s): giving up %d held writes; nothing "
            "of them is stored (sessions resume from their last stored checkpoint)",
            self._outage.error if self._outage else "?",
            self.pending + 1,
        )
        return True
