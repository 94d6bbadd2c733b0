"""The orchestrator: one asyncio task per active session, the only writer of the database.

Each running session holds a worker from the pool; its task sends the worker commands
and stores what the worker reports (games, checkpoints, learning steps, stats) through
one writer task, so every write happens in order and in its own transaction with the
event that announces it. Engine work never runs here: the loop only awaits messages.

Sessions beyond MAX_CONCURRENT_SESSIONS wait as `pending` (first come, first served).
After a crash or a restart, sessions left `running` are restarted from their last
checkpoint and stored games (the replay buffer is rebuilt from them; new games are
numbered from the highest stored + 1), sessions left `paused` stay paused until resumed,
and sessions caught `stopping` are closed as `stopped`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import SessionConfig, Settings
from ..storage import codec
from ..storage import repositories as repo
from .lifecycle import ACTIVE, IllegalTransition, SessionNotFound, State, action_target
from .pool import Pool
from .ratings import player, rating_list
from .worker import WorkerSpec

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called with (session_id, event type, data) after each stored event (progress bars, the live feed)."""

FINAL_REASONS = {"max_games": State.COMPLETED, "duration": State.COMPLETED, "stopped": State.STOPPED}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Orchestrator:
    """Runs sessions on a worker pool and records them; the API and `run` both drive it."""

    def __init__(self, settings: Settings, sessionmaker, pool: Pool, *, recover: bool = True) -> None:
        self.settings = settings
        self.recover = recover
        self.sessionmaker = sessionmaker
        self.pool = pool
        self.listeners: list[Listener] = []
        self._writes: asyncio.Queue | None = None
        self._writer: asyncio.Task | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._workers: dict[str, Any] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._started = False
        self._closing = False
        self._schedule_lock = asyncio.Lock()

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

    @property
    def ready(self) -> bool:
        """Started, with a warm pool."""
        return self._started and not self._closing and self.pool.ready

    async def close(self, timeout: float = 60.0) -> None:
        """Shut down: running sessions checkpoint and stay resumable (state unchanged)."""
        self._closing = True
        for worker in self._workers.values():
            worker.send("shutdown")
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)
        for task in self._tasks.values():
            task.cancel()
        await self.pool.close()
        if self._writer is not None:
            await self._writes.put(None)
            await self._writer

    # -- the single writer ---------------------------------------------------------------
    async def write(self, job: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `job(db)` in its own transaction on the writer task; returns its result."""
        future = asyncio.get_running_loop().create_future()
        await self._writes.put((job, future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            item = await self._writes.get()
            if item is None:
                return
            job, future = item
            try:
                async with self.sessionmaker() as db, db.begin():
                    result = await job(db)
            except Exception as exc:  # the caller decides; the writer goes on
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def _event(self, db, session_id: str, kind: str, data: dict[str, Any]) -> None:
        await repo.add_event(db, session_id, kind, data)
        self._after_commit(session_id, kind, data)

    def _after_commit(self, session_id: str, kind: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(session_id, kind, data)
            except Exception:  # a listener never breaks a session
                log.exception("event listener failed")

    async def _set_state(self, session_id: str, state: State, **fields: Any) -> None:
        async def job(db):
            await repo.set_state(db, session_id, state.value, **fields)
            await self._event(db, session_id, "session.state", {"state": state.value, **{
                k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}})
        await self.write(job)

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

    async def pause(self, session_id: str) -> None:
        """Hold a running session between two search steps."""
        action_target(session_id, await self._current_state(session_id), "pause")
        worker = self._workers.get(session_id)
        if worker is not None:
            worker.send("pause")
        await self._set_state(session_id, State.PAUSED)

    async def resume(self, session_id: str) -> None:
        """Continue a paused session (restarting its worker if the service restarted meanwhile)."""
        action_target(session_id, await self._current_state(session_id), "resume")
        worker = self._workers.get(session_id)
        await self._set_state(session_id, State.RUNNING)
        if worker is not None:
            worker.send("resume")
        elif session_id not in self._tasks:
            self._launch(session_id)

    async def continue_session(self, session_id: str) -> None:
        """Start a stored session that has no worker here: a paused one is resumed, one left
        `running` or `pending` (an interrupted headless run) restarts from its last checkpoint."""
        state = await self._current_state(session_id)
        if state == State.PAUSED.value:
            await self.resume(session_id)
        elif state in (State.RUNNING.value, State.PENDING.value):
            if session_id not in self._tasks:
                self._launch(session_id)
        else:
            raise IllegalTransition(session_id, state, "resume")

    async def stop(self, session_id: str) -> None:
        """End a session: it checkpoints and becomes `stopped` (a pending one at once)."""
        state = await self._current_state(session_id)
        action_target(session_id, state, "stop")
        worker = self._workers.get(session_id)
        if worker is None and session_id not in self._tasks:
            await self._set_state(session_id, State.STOPPED, stop_reason="stopped", finished_at=utcnow())
            return
        await self._set_state(session_id, State.STOPPING)
        if worker is not None:
            worker.send("stop")

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

    def live(self, session_id: str) -> dict[str, Any] | None:
        """The worker's latest stats (simulations/s, buffer, memory...), or None."""
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
            # a session just launched is still pending until its task marks it running
            for row in [r for r in pending if r.id not in self._tasks][:free]:
                self._launch(row.id)

    def _launch(self, session_id: str) -> None:
        task = asyncio.create_task(self._run(session_id), name=f"session-{session_id}")
        self._tasks[session_id] = task

    async def _recover(self) -> None:
        async with self.sessionmaker() as db:
            running = await repo.sessions_in_state(db, State.RUNNING.value)
            stopping = await repo.sessions_in_state(db, State.STOPPING.value)
        for row in stopping:
            await self._set_state(row.id, State.STOPPED, stop_reason="stopped", finished_at=utcnow())
        for row in running:
            if len(self._tasks) < self.settings.max_concurrent_sessions:
                log.info("restoring session %s from its last checkpoint", row.id)
                self._launch(row.id)
            else:
                await self._set_state(row.id, State.PENDING)

    # -- one session ---------------------------------------------------------------------
    async def _spec(self, session_id: str) -> tuple[WorkerSpec, str]:
        """What the worker needs to start or resume this session, and its state."""
        async with self.sessionmaker() as db:
            row = await repo.get_session(db, session_id)
            last = await repo.latest_checkpoint(db, session_id)
            init = await repo.get_checkpoint(db, row.init_checkpoint_id) if row.init_checkpoint_id else None
            first_game = await repo.max_game_number(db, session_id) + 1
            replay = []
            if last is not None:
                for game in await repo.newest_games(db, session_id, row.config["replay_buffer_positions"]):
                    moves = game.moves.split() if game.moves else []
                    replay.append({"moves": moves, "policies": codec.decode_policies(game.policy),
                                   "full_search": codec.decode_flags(game.full_search, len(codec.decode_policies(game.policy))),
                                   "result": game.result})
                replay.reverse()  # oldest first: the buffer keeps the newest
        checkpoint_dir = Path(self.settings.checkpoint_dir)
        config = dict(row.config)
        spec = WorkerSpec(
            session_id=session_id, config=config, checkpoint_dir=checkpoint_dir / session_id,
            torch_threads=self.settings.resolved_torch_threads(), first_game=first_game,
            resume_state=checkpoint_dir / last.state_file_name if last is not None else None,
            init_weights=checkpoint_dir / init.file_name if init is not None and last is None else None,
            replay_games=replay,
        )
        return spec, row.state

    async def _run(self, session_id: str) -> None:
        worker = None
        try:
            spec, _ = await self._spec(session_id)
            worker = await self.pool.acquire()
            self._workers[session_id] = worker
            worker.send("run", spec)
            state = await self._current_state(session_id)  # it may have changed while we waited
            if state == State.PENDING.value:
                await self._set_state(session_id, State.RUNNING, started_at=utcnow())
            elif state == State.PAUSED.value:
                worker.send("pause")
            elif state == State.STOPPING.value:
                worker.send("stop")
            await self._pump(session_id, worker)
        except Exception as exc:
            log.exception("session %s failed", session_id)
            await self._fail(session_id, f"{type(exc).__name__}: {exc}")
        finally:
            self._workers.pop(session_id, None)
            self._tasks.pop(session_id, None)
            if worker is not None:
                await self.pool.release(worker)
            await self._schedule()

    async def _fail(self, session_id: str, reason: str) -> None:
        try:
            await self._set_state(session_id, State.FAILED, failure_reason=reason[:2000], finished_at=utcnow())
        except Exception:
            log.exception("could not record the failure of session %s", session_id)

    async def _store_evaluation(self, db, session_id: str, data: dict[str, Any]) -> None:
        """Store a match, refit the session's rating list, and give the match's row the
        candidate's fitted rating with its 95% interval."""
        by_generation = {c.generation: c for c in await repo.list_checkpoints(db, session_id)}
        checkpoint = by_generation[data["generation"]]
        row = await repo.add_evaluation(db, session_id, checkpoint.id, data["opponent"], wins=data["wins"],
                                        draws=data["draws"], losses=data["losses"],
                                        pentanomial=data["pentanomial"], sprt=data.get("sprt"))
        generation_of = {c.id: c.generation for c in by_generation.values()}
        stored = await repo.list_evaluations(db, session_id)
        ratings = rating_list([(e, generation_of[e.checkpoint_id], None) for e in stored],
                              self.settings.elo_anchor)
        mine = ratings.get(player(data["generation"]))
        if mine is not None:
            row.elo, row.elo_low, row.elo_high = mine.rating, mine.low, mine.high
            await db.flush()
        await self._event(db, session_id, "evaluation.finished", {
            "checkpoint_id": checkpoint.id, "generation": data["generation"], "opponent": data["opponent"],
            "wins": data["wins"], "draws": data["draws"], "losses": data["losses"],
            "pentanomial": data["pentanomial"], "adjudicated": data["adjudicated"],
            "elo": row.elo, "elo_low": row.elo_low, "elo_high": row.elo_high, "sprt": data.get("sprt"),
            "ratings": {name: {"rating": r.rating, "low": r.low, "high": r.high} for name, r in ratings.items()}})

    async def _snapshot(self, session_id: str, data: dict[str, Any]) -> None:
        async def job(db):
            await repo.add_metric_snapshot(db, session_id, data)
            await self._event(db, session_id, "metrics.snapshot", data)
        await self.write(job)

    async def _pump(self, session_id: str, worker) -> None:
        """Store the worker's reports until its session ends."""
        checkpoint_dir = Path(self.settings.checkpoint_dir)
        last_snapshot = 0.0
        stored: dict[str, Any] | None = None  # the stats last kept as a snapshot
        latest: dict[str, Any] | None = None
        while True:
            kind, data = await worker.receive()
            if kind == "game":
                async def job(db, data=data):
                    game = await repo.add_game(db, session_id, data)
                    await self._event(db, session_id, "game.finished", {
                        "game_id": game.id, "number": data["number"], "result": data["result"],
                        "termination": data["termination"], "adjudicated": data["adjudicated"],
                        "plies": data["plies"], "duration_s": data["duration_s"],
                        "simulations": data["simulations"], "moves": data["moves"], "pgn": data["pgn"]})
                await self.write(job)
            elif kind == "checkpoint":
                async def job(db, data=data):
                    row = await repo.add_checkpoint(db, session_id, data, checkpoint_dir)
                    await self._event(db, session_id, "checkpoint.saved", {
                        "checkpoint_id": row.id, "generation": data["generation"], "games": data["games"],
                        "sha256": data["sha256"]})
                await self.write(job)
            elif kind == "evaluation":
                await self.write(lambda db, data=data: self._store_evaluation(db, session_id, data))
            elif kind == "learning":
                async def job(db, data=data):
                    await self._event(db, session_id, "learning.step", data)
                await self.write(job)
            elif kind == "stats":
                self._live[session_id] = data | {"at": utcnow().isoformat()}
                self._after_commit(session_id, "stats", data)  # live only (progress bars); stored below
                now = time.monotonic()
                if now - last_snapshot >= self.settings.metrics_export_interval:
                    last_snapshot, stored = now, data
                    await self._snapshot(session_id, data)
                latest = data
            elif kind == "finished":
                if latest is not None and latest is not stored:  # the worker's last stats: always kept
                    await self._snapshot(session_id, latest)
                reason = data["reason"]
                if reason == "shutdown":
                    return  # the service is going down: the session stays resumable
                await self._set_state(session_id, FINAL_REASONS.get(reason, State.STOPPED), stop_reason=reason,
                                      finished_at=utcnow())
            elif kind == "failed":
                await self._fail(session_id, data["error"])
            elif kind == "died":
                if self._closing:
                    return
                await self._fail(session_id, f"worker process died (exit code {data.get('exitcode')})")
                return
            elif kind == "idle":
                return
