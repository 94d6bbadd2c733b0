"""The orchestrator: the facade the API and headless `run` drive. It takes the user's actions
(create, pause, resume, stop, delete), schedules pending sessions on free slots, and recovers
sessions that a process left behind; the work is done by the parts below it, a one-way chain:

    Orchestrator (this module)  user actions, scheduling, recovery, the lease heartbeat
      -> Runner (runner.py)     one task per active session on a worker; restarts
        -> Recorder (recorder.py)  worker reports -> rows, events, metrics, alerts; state changes
          -> Writer (writer.py)    the only database writer: in order, exactly once, outages

Engine work never runs here: the event loop only awaits messages. Every stored event goes
out only after its transaction commits, to the listeners (`listeners`: telemetry, progress
bars, sinks) and to the live feed's bus (`bus`); see `writer` for how writes survive an
outage and `runner` for how a session survives its worker.

Sessions beyond MAX_CONCURRENT_SESSIONS wait as `pending` (first come, first served).
After a crash or a restart, sessions left `running` are restarted from their last
checkpoint and stored games (the replay buffer is rebuilt from them; new games are
numbered from the highest stored + 1), sessions left `paused` stay paused until resumed,
and sessions caught `stopping` are closed as `stopped`.

One process runs a session at a time, through a lease in its row (`lease.Leases`): a
session's task claims it before it takes a worker, the heartbeat renews it every
`heartbeat_s`, each game and checkpoint write takes it again (storing nothing if another
process holds it now), and the task gives it back when it ends. Another live process is
refused (`SessionOwned`, HTTP 409, CLI exit 2); a crashed owner's lease is taken over once it
has expired, or at once when its process is known to be gone, by the recovery that runs at
start and with every heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import SessionConfig, Settings
from ..event_types import EventType
from ..lifecycle import ACTIONS, ACTIVE, State
from ..storage import repositories as repo
from ..storage.database import DatabaseUnavailable
from . import lease
from .errors import IllegalTransition, SessionNotFound
from .events import EventBus
from .lease import Leases, owned
from .pool import Pool
from .protocol import CommandKind, MessageKind
from .recorder import Announcer, Listener, Recorder
from .runner import Runner, stored_state
from .writer import Outage, Writer, utcnow

log = logging.getLogger(__name__)


@contextmanager
def suppress_lost_race() -> Iterator[None]:
    """Around a state change that may lose to another process (its lease, its state)."""
    try:
        yield
    except (repo.LeaseHeld, repo.StateConflict) as exc:
        log.info("left as it is: %s", exc)


class Orchestrator:
    """Runs sessions on a worker pool and records them; the API and `run` both drive it."""

    def __init__(
        self, settings: Settings, sessionmaker, pool: Pool, *, recover: bool = True, writer_sessionmaker=None
    ) -> None:
        """`sessionmaker` serves the orchestrator's own reads; `writer_sessionmaker` (default:
        the same) the writer's transactions: the service gives it an engine of its own, one
        connection no request can take (`runtime.started`)."""
        self.settings = settings
        self.recover = recover
        self.sessionmaker = sessionmaker
        self.pool = pool
        self.bus = EventBus(settings.ws_queue_size)
        self.announcer = Announcer(self.bus)
        self.writer = Writer(
            writer_sessionmaker if writer_sessionmaker is not None else sessionmaker,
            publish=self.announcer.committed,
            on_outage_limit=self._outage_limit_passed,
        )
        self.leases = Leases(self.writer)
        self.recorder = Recorder(settings, self.writer, self.announcer, self.leases)
        self.runner = Runner(settings, sessionmaker, pool, self.recorder, self.leases, on_end=self._schedule)
        self.heartbeat_s = lease.HEARTBEAT_S  # an attribute so tests can shorten it
        self._heartbeat: asyncio.Task | None = None
        self._started = False
        self._closing = False
        self._schedule_lock = asyncio.Lock()

    @property
    def listeners(self) -> list[Listener]:
        """Called after each stored event has been committed (see `recorder.Listener`)."""
        return self.announcer.listeners

    # -- lifecycle of the orchestrator itself ------------------------------------------
    async def start(self) -> None:
        """Start the writer, warm the pool, restore interrupted sessions, start pending ones."""
        self.writer.start()
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
        self.writer.closing()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.runner.close(timeout)
        await self.pool.close()
        await self.writer.close()
        self.leases.close()  # a lease left behind (a write given up) is stale from now on
        self.bus.close()  # live feeds end (1001) after the last events went out

    @property
    def database_ok(self) -> bool:
        """False while the writer cannot reach the database (its writes are held, in order)."""
        return self.writer.ok

    @property
    def database_outage(self) -> dict[str, Any] | None:
        """While the database is unreachable: the outage as `Writer.outage` describes it."""
        return self.writer.outage

    def _outage_limit_passed(self, outage: Outage) -> None:
        self.runner.stop_for_outage(outage, self.writer.outage_limit_s)

    async def add_event(self, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Store one event for a session in its own transaction and announce it after the
        commit (listeners, live feed); returns its message (`seq`, `ts`...). NotFound for an
        unknown session."""
        return await self.writer.add_event(session_id, kind, data)

    async def record(self, session_id: str, kind: MessageKind, data: dict[str, Any]) -> bool:
        """Store (and announce) one report of a session's worker (`Recorder.record`): public so
        that reports from elsewhere (tests, another backend) go through the same path."""
        return await self.recorder.record(session_id, kind, data)

    def live(self, session_id: str) -> dict[str, Any] | None:
        """The worker's latest stats, or None (`Recorder.live`)."""
        return self.recorder.live(session_id)

    # -- leases ----------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        """Every `heartbeat_s`: renew the leases this orchestrator holds and (with `recover`)
        take over the running sessions whose owner is gone (its lease expired, or stale)."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.leases.renew()
                if self.recover:
                    await self._recover()
            except Exception:  # the next beat tries again
                log.exception("lease heartbeat failed")

    # -- user actions --------------------------------------------------------------------
    async def create_session(self, config: SessionConfig, init_checkpoint_id: int | None = None) -> str:
        """Store a new session (pending) and start it when a slot is free."""

        async def job(db):
            if init_checkpoint_id is not None and await repo.get_checkpoint(db, init_checkpoint_id) is None:
                raise SessionNotFound("checkpoint", init_checkpoint_id)
            row = await repo.create_session(db, config.model_dump(mode="json"), config.seed, init_checkpoint_id)
            await self.writer.event(db, row.id, EventType.SESSION_STATE, {"state": State.PENDING.value})
            return row.id

        session_id = await self.writer.write(job)
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
            await self.recorder.set_state(session_id, target, from_states=ACTIONS[action][0], **fields)
        except repo.StateConflict as exc:
            raise IllegalTransition(session_id, exc.state, action) from None
        except repo.LeaseHeld as exc:
            raise owned(exc, action) from None
        except repo.NotFound:
            raise SessionNotFound("session", session_id) from None

    async def pause(self, session_id: str) -> None:
        """Hold a running session between two search steps."""
        await self._act(session_id, "pause", State.PAUSED)
        self.runner.command(session_id, CommandKind.PAUSE)

    async def resume(self, session_id: str) -> None:
        """Continue a paused session (restarting its worker if the service restarted meanwhile)."""
        await self._act(session_id, "resume", State.RUNNING)
        if not self.runner.command(session_id, CommandKind.RESUME) and session_id not in self.runner.tasks:
            self.runner.launch(session_id)

    async def continue_session(self, session_id: str) -> None:
        """Start a stored session that has no worker here: a paused one is resumed, one left
        `running` or `pending` (an interrupted headless run) restarts from its last checkpoint.
        SessionOwned while another live process runs it (`serve` beside `run --resume`)."""
        state = await stored_state(self.sessionmaker, session_id)
        if State(state) in ACTIVE and state != State.STOPPING.value and session_id not in self.runner.tasks:
            await self.leases.claim(session_id, "resume")
        if state == State.PAUSED.value:
            await self.resume(session_id)
        elif state in (State.RUNNING.value, State.PENDING.value):
            if session_id not in self.runner.tasks:
                self.runner.launch(session_id)
        else:
            raise IllegalTransition(session_id, state, "resume")

    async def stop(self, session_id: str) -> None:
        """End a session: it checkpoints and becomes `stopped` (a pending one at once)."""
        if session_id not in self.runner.tasks:  # nothing runs it here
            await self._act(session_id, "stop", State.STOPPED, stop_reason="stopped", finished_at=utcnow())
            return
        await self._act(session_id, "stop", State.STOPPING)
        self.runner.command(session_id, CommandKind.STOP)

    async def delete(self, session_id: str) -> None:
        """Remove a session that is not active, with its games, events and checkpoint files."""
        state = await stored_state(self.sessionmaker, session_id)
        if State(state) in ACTIVE:
            raise IllegalTransition(session_id, state, "delete")

        async def job(db):
            await repo.delete_session(db, session_id)

        await self.writer.write(job)
        shutil.rmtree(Path(self.settings.checkpoint_dir) / session_id, ignore_errors=True)
        self.recorder.forget(session_id)

    # -- scheduling ----------------------------------------------------------------------
    async def _schedule(self) -> None:
        """Start pending sessions, oldest first, while slots are free."""
        if not self._started or self._closing:
            return
        async with self._schedule_lock:
            free = self.settings.max_concurrent_sessions - len(self.runner.tasks)
            if free <= 0:
                return
            async with self.sessionmaker() as db:
                pending = await repo.sessions_in_state(db, State.PENDING.value, limit=free + len(self.runner.tasks))
            # a session just launched is still pending until its task marks it running; one
            # another process has claimed is its to start
            now = utcnow()
            for row in [r for r in pending if r.id not in self.runner.tasks and self.leases.free(r, now)][:free]:
                self.runner.launch(row.id)

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
            return row.id not in self.runner.tasks and self.leases.free(row, now)

        try:
            for row in filter(orphaned, stopping):
                with suppress_lost_race():
                    await self.recorder.set_state(row.id, State.STOPPED, stop_reason="stopped", finished_at=utcnow())
            for row in filter(orphaned, running):
                if len(self.runner.tasks) < self.settings.max_concurrent_sessions:
                    log.info("restoring session %s from its last checkpoint", row.id)
                    self.runner.launch(row.id)
                else:
                    with suppress_lost_race():
                        await self.recorder.set_state(row.id, State.PENDING)
        except DatabaseUnavailable:  # shutting down during an outage: they stay as they are
            return
