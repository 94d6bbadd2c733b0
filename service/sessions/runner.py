"""The runner: one asyncio task per active session, running it on a worker from the pool.

A session's task claims the session's lease, builds what its worker needs from the stored
state (`_spec`: config, last checkpoint, stored games for the replay buffer, the next game
number), takes a worker, marks the session running and hands each of the worker's reports to
the recorder until the worker reports its session loop over (`idle`). A worker goes back to
the pool only then; one that may still be playing (an error in the session's task) is killed
and replaced, and a report tagged with another session's id is dropped and logged (`_pump`).

A worker that dies under a session (its process killed, its Ray actor lost) does not end the
session: the pool replaces it, and the task restarts the session on a fresh worker from its
last checkpoint and stored games (as after a service restart); it stays in its state, and a
`session.state` event with `restarted: true` and the reason records it. Games in flight at
the death are dropped, never half-stored. A session whose worker dies more than
WORKER_MAX_RESTARTS times within WORKER_RESTART_WINDOW_S ends `failed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..config import Settings, stored_session_config
from ..event_types import EventType
from ..lifecycle import FINAL, State
from ..storage import repositories as repo
from .errors import SessionNotFound, SessionOwned
from .fleet import fleet_layout
from .lease import Leases
from .pool import Pool
from .protocol import CommandKind, MessageKind
from .recorder import Recorder
from .worker import WorkerSpec
from .writer import Outage, rfc3339, utcnow

log = logging.getLogger(__name__)

WORKER_MAX_RESTARTS = 3
"""Restarts of a session whose worker died, allowed within WORKER_RESTART_WINDOW_S; one more
death in that window ends the session `failed` (its worker keeps dying: out of memory, a
node that keeps going away). Deaths further apart never add up: a long session may lose a
worker now and then."""
WORKER_RESTART_WINDOW_S = 600.0
"""Seconds over which a session's worker deaths are counted (WORKER_MAX_RESTARTS)."""


async def stored_state(sessionmaker, session_id: str) -> str:
    """The session's state as stored now; SessionNotFound if there is no such session."""
    async with sessionmaker() as db:
        row = await repo.get_session(db, session_id)
    if row is None:
        raise SessionNotFound("session", session_id)
    return row.state


class Runner:
    """Runs sessions on workers: one task per session (`tasks`), its worker (`workers`)."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker,
        pool: Pool,
        recorder: Recorder,
        leases: Leases,
        *,
        on_end: Callable[[], Awaitable[None]],
    ) -> None:
        """`on_end` is awaited after each session's task is over (a slot is free)."""
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.pool = pool
        self.recorder = recorder
        self.leases = leases
        self.on_end = on_end
        self.tasks: dict[str, asyncio.Task] = {}
        self.workers: dict[str, Any] = {}
        self.closing = False

    def launch(self, session_id: str) -> None:
        """Start the session's task."""
        self.tasks[session_id] = asyncio.create_task(self._run(session_id), name=f"session-{session_id}")

    def command(self, session_id: str, command: CommandKind) -> bool:
        """Send a user action to the session's worker, if it has one; False if not.

        Called after the action's state is stored, never before: a worker that starts
        meanwhile either is found here or reads the stored state when it starts
        (`_attempt`), so no action falls between the two."""
        worker = self.workers.get(session_id)
        if worker is None:
            return False
        worker.send(command, session_id)
        return True

    async def close(self, timeout: float) -> None:
        """Shut down: every worker checkpoints and leaves its session resumable; waits up to
        `timeout` for the tasks, then cancels those left."""
        self.closing = True
        for session_id, worker in self.workers.items():
            worker.send(CommandKind.SHUTDOWN, session_id)
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=timeout)
        for task in self.tasks.values():
            task.cancel()

    def stop_for_outage(self, outage: Outage, limit_s: float) -> None:
        """The database stayed unreachable past its bound: stop every running session's
        worker (no more games to hold); each ends `failed` with this reason once the
        database is back (`Recorder.set_state`)."""
        reason = (
            f"database unreachable for more than {limit_s:g} s "
            f"(since {rfc3339(outage.since_wall)}; the driver's error is in the service log)"
        )
        stopped = []
        for session_id, worker in list(self.workers.items()):
            if self.recorder.stopped_for_outage(session_id, reason, outage.games_mark.get(session_id, 0)):
                worker.send(CommandKind.STOP, session_id)
                stopped.append(session_id)
        log.error(
            "%s: stopping sessions %s; what they finished is held until the database is back",
            reason,
            ", ".join(stopped) or "(none running)",
        )

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
                if died is None or self.closing:  # ended, or the service is going down: resumable
                    return
                reason = str(died.get("reason") or f"worker died ({died})")
                now = time.monotonic()
                deaths.append(now)
                while now - deaths[0] > WORKER_RESTART_WINDOW_S:
                    deaths.popleft()
                state = await stored_state(self.sessionmaker, session_id)
                if state == State.STOPPING.value:  # it was stopping: its last checkpoint stands
                    log.warning("session %s: %s while stopping; closing it as stopped", session_id, reason)
                    await self.recorder.set_state(
                        session_id, State.STOPPED, stop_reason="stopped", finished_at=utcnow()
                    )
                    return
                if state not in (State.RUNNING.value, State.PAUSED.value):  # it had ended already
                    return
                if len(deaths) > WORKER_MAX_RESTARTS:
                    await self.recorder.fail(
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
            await self.recorder.fail(
                session_id,
                f"internal error while running the session ({type(exc).__name__}); the service log has the details",
            )
        finally:
            self.workers.pop(session_id, None)
            self.tasks.pop(session_id, None)
            self.recorder.end(session_id)
            await self.leases.release(session_id)
            await self.on_end()

    async def _attempt(self, session_id: str, restart: dict[str, Any] | None) -> dict[str, Any] | None:
        """Run the session on one worker from its stored state until the worker is done with
        it; returns the worker's death report if it died under the session, else None.
        `restart` (reason, count) is recorded as a `session.state` event once the session
        is on its new worker."""
        worker = None
        loop_ended = False  # whether the worker reported its session loop over (`idle`)
        try:
            try:
                await self.leases.claim(session_id, "run")
            except SessionOwned as exc:  # another process took it first
                log.warning("session %s not run here: %s", session_id, exc)
                return None
            spec, state = await self._spec(session_id)
            if State(state) in FINAL:  # stopped before it got a worker
                return None
            worker = await self.pool.acquire()
            self.workers[session_id] = worker
            worker.send(CommandKind.RUN, session_id, spec)
            if self.closing:  # the service went down while we waited for a worker
                worker.send(CommandKind.SHUTDOWN, session_id)
            # The state as stored now, after any action taken while we waited: a `pending`
            # session becomes `running` in the same write that checks it, so a stop stored
            # just before is seen here and one stored after finds the worker (`command`).
            try:
                await self.recorder.set_state(
                    session_id, State.RUNNING, from_states=(State.PENDING,), started_at=utcnow()
                )
                state = State.RUNNING.value
            except repo.StateConflict as exc:
                state = exc.state
            if state == State.PAUSED.value:
                worker.send(CommandKind.PAUSE, session_id)
            elif state != State.RUNNING.value:  # stopping, or already ended
                worker.send(CommandKind.STOP, session_id)
            if restart is not None:
                await self.recorder.writer.add_event(
                    session_id,
                    EventType.SESSION_STATE,
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
            self.workers.pop(session_id, None)
            if worker is not None and loop_ended:
                await self.pool.release(worker)  # a dead worker is replaced by a fresh one
            elif worker is not None:  # it may still be playing this session: never hand it on
                log.warning(
                    "session %s: its worker %s did not report its loop over; replacing it", session_id, worker.name
                )
                await self.pool.replace(worker)

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
                    replay.append(
                        {
                            "moves": game.move_list(),
                            "policies": game.policies(),
                            "full_search": game.full_search_flags(),
                            "root_values": game.values(),
                            "result": game.result,
                        }
                    )
                replay.reverse()  # oldest first: the buffer keeps the newest
        checkpoint_dir = Path(self.settings.checkpoint_dir)
        config = stored_session_config(row.config)
        layout = fleet_layout(self.settings, config)
        spec = WorkerSpec(
            session_id=session_id,
            config=config,
            checkpoint_dir=checkpoint_dir / session_id,
            torch_threads=layout.learner_threads,
            actors=layout.actors,
            actor_threads=layout.actor_threads,
            separate_evaluator=layout.separate_evaluator,
            backend=self.settings.worker_backend,
            first_game=first_game,
            resume_state=checkpoint_dir / last.state_file_name if last is not None else None,
            init_weights=checkpoint_dir / init.file_name if init is not None and last is None else None,
            replay_games=replay,
        )
        return spec, row.state

    async def _pump(self, session_id: str, worker) -> dict[str, Any] | None:
        """Hand the worker's reports to the recorder until its session loop has ended
        (`idle`), or until it died. Returns the worker's death report when it died under the
        session, else None. A report about another session (a stale loop's) is dropped and
        logged."""
        self.recorder.begin(session_id)
        while True:
            message = await worker.receive()
            if message.kind == MessageKind.DIED:
                return None if self.closing else message.data
            if message.session_id != session_id:
                log.warning(
                    "dropped a %r message of worker %s for session %s: that worker runs session %s",
                    message.kind,
                    worker.name,
                    message.session_id,
                    session_id,
                )
                continue
            if await self.recorder.record(session_id, message.kind, message.data):
                return None
