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
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import SessionConfig, Settings
from ..stats.alerts import Alert, AlertThresholds, AlertTracker, elo_drop
from ..storage import codec
from ..storage import repositories as repo
from .events import EventBus
from .lifecycle import ACTIVE, IllegalTransition, SessionNotFound, State, action_target
from .pool import Pool
from .ratings import player, rating_list
from .worker import WorkerSpec

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called with (session_id, event type, data) after each stored event has been committed
(telemetry, progress bars), and with type "stats" for the worker's live-only stats."""

FINAL_REASONS = {"max_games": State.COMPLETED, "duration": State.COMPLETED, "stopped": State.STOPPED}
LOSS_WINDOW = 10
"""Learning steps whose mean total loss a new loss is compared with (ALERT_LOSS_SPIKE_FACTOR)."""


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

    def __init__(self, settings: Settings, sessionmaker, pool: Pool, *, recover: bool = True) -> None:
        self.settings = settings
        self.recover = recover
        self.sessionmaker = sessionmaker
        self.pool = pool
        self.listeners: list[Listener] = []
        self.bus = EventBus(settings.ws_queue_size)
        self.thresholds = AlertThresholds(
            elo_regression=settings.alert_elo_regression, loss_spike_factor=settings.alert_loss_spike_factor,
            memory_growth_mb=settings.alert_memory_growth_mb, timeout_rate=settings.alert_timeout_rate)
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
        self.bus.close()  # live feeds end (1001) after the last events went out

    # -- the single writer ---------------------------------------------------------------
    async def write(self, job: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `job(db)` in its own transaction on the writer task; returns its result.
        The events it stores (`_event`) are announced after the commit, before this returns."""
        future = asyncio.get_running_loop().create_future()
        await self._writes.put((job, future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            item = await self._writes.get()
            if item is None:
                return
            job, future = item
            staged: list[_Staged] = []
            self._staged = staged
            try:
                async with self.sessionmaker() as db, db.begin():
                    result = await job(db)
            except Exception as exc:  # the caller decides; the writer goes on; nothing is announced
                self._staged = None
                if not future.done():
                    future.set_exception(exc)
            else:
                self._staged = None
                for event in staged:  # committed: now the listeners and the live feed hear of it
                    self._notify(event.session_id, event.kind, event.data)
                    self.bus.publish(event.message)
                if not future.done():
                    future.set_result(result)

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

    async def _raise_alerts(self, db, session_id: str, alerts: list[Alert], trigger: str,
                            context: dict[str, Any]) -> None:
        """Store each alert as an `alert.raised` event: the alert (name, severity, message,
        value, threshold), what triggered it and the session's context (games, step...)."""
        for alert in alerts:
            await self._event(db, session_id, "alert.raised",
                              {**alert.to_dict(), "trigger": trigger,
                               **{k: v for k, v in context.items() if v is not None}})

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
        self._alerts.pop(session_id, None)
        self._reports.pop(session_id, None)

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
            self._reports.pop(session_id, None)
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
        # Elo regression: the newest evaluated checkpoint's rating against the best so far
        rated = [ratings[player(g)].rating for g in sorted(by_generation)
                 if g <= data["generation"] and player(g) in ratings]
        drop = elo_drop(rated) if mine is not None else None
        alerts = self._alert_state(session_id).tracker.check(elo_delta=drop) if drop is not None else []
        await self._event(db, session_id, "evaluation.finished", {
            "checkpoint_id": checkpoint.id, "generation": data["generation"], "opponent": data["opponent"],
            "wins": data["wins"], "draws": data["draws"], "losses": data["losses"],
            "pentanomial": data["pentanomial"], "adjudicated": data["adjudicated"],
            "elo": row.elo, "elo_low": row.elo_low, "elo_high": row.elo_high, "sprt": data.get("sprt"),
            "ratings": {name: {"rating": r.rating, "low": r.low, "high": r.high} for name, r in ratings.items()}})
        await self._raise_alerts(db, session_id, alerts, "evaluation.finished", {
            "games": data.get("games_played"), "generation": data["generation"], "opponent": data["opponent"],
            "elo": row.elo})

    async def _snapshot(self, session_id: str, data: dict[str, Any]) -> None:
        async def job(db):
            await repo.add_metric_snapshot(db, session_id, data)
            await self._event(db, session_id, "metrics.snapshot", data)
        await self.write(job)

    async def _pump(self, session_id: str, worker) -> None:
        """Store the worker's reports until its session ends."""
        self._reports[session_id] = _Reports()
        while True:
            kind, data = await worker.receive()
            if await self.record(session_id, kind, data):
                return

    async def record(self, session_id: str, kind: str, data: dict[str, Any]) -> bool:
        """Store (and announce) one report of a session's worker: a game, a checkpoint, an
        evaluation match, a learning step, stats, a featured game's move, or how the session
        ended. True when the session's reports are over (its worker is done with it).

        The session's task calls it for each message of its worker; it is public so that
        reports from elsewhere (tests, another backend) go through the same path."""
        reports = self._reports.setdefault(session_id, _Reports())
        if kind == "game":
            async def job(db):
                game = await repo.add_game(db, session_id, data)
                await self._event(db, session_id, "game.finished", {
                    "game_id": game.id, "number": data["number"], "result": data["result"],
                    "termination": data["termination"], "adjudicated": data["adjudicated"],
                    "plies": data["plies"], "duration_s": data["duration_s"],
                    "simulations": data["simulations"], "moves": data["moves"], "pgn": data["pgn"],
                    "ended_at": data.get("ended_at")})
            await self.write(job)
        elif kind == "move":  # live only: neither stored nor numbered
            self.bus.publish({"session_id": session_id, "type": "game.move", "ts": rfc3339(utcnow()),
                              "data": data})
        elif kind == "checkpoint":
            checkpoint_dir = Path(self.settings.checkpoint_dir)

            async def job(db):
                row = await repo.add_checkpoint(db, session_id, data, checkpoint_dir)
                await self._event(db, session_id, "checkpoint.saved", {
                    "checkpoint_id": row.id, "generation": data["generation"], "games": data["games"],
                    "sha256": data["sha256"]})
            await self.write(job)
        elif kind == "evaluation":
            await self.write(lambda db: self._store_evaluation(db, session_id, data))
        elif kind == "learning":
            alerts = self._check_loss(session_id, data.get("total_loss"))

            async def job(db):
                await self._event(db, session_id, "learning.step", data)
                await self._raise_alerts(db, session_id, alerts, "learning.step", {
                    "games": data.get("games"), "step": data.get("step")})
            await self.write(job)
        elif kind == "stats":
            self._live[session_id] = data | {"at": utcnow().isoformat()}
            self._notify(session_id, "stats", data)  # live only (progress bars); stored below
            growth = data.get("rss_growth_mb")
            if isinstance(growth, (int, float)):
                alerts = self._alert_state(session_id).tracker.check(memory_growth_mb=float(growth))
                if alerts:
                    await self.write(lambda db: self._raise_alerts(db, session_id, alerts, "stats", {
                        "rss_mb": data.get("rss_mb")}))
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
                return True  # the service is going down: the session stays resumable
            await self._set_state(session_id, FINAL_REASONS.get(reason, State.STOPPED), stop_reason=reason,
                                  finished_at=utcnow())
        elif kind == "failed":
            await self._fail(session_id, data["error"])
        elif kind == "died":
            if self._closing:
                return True
            await self._fail(session_id, f"worker process died (exit code {data.get('exitcode')})")
            return True
        elif kind == "idle":
            return True
        return False
