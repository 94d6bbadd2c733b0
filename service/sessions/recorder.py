"""The recorder: a session's worker reports become rows, events, metrics and alerts.

Each report (a game, a checkpoint, an evaluation match, a learning step, stats, a featured
game's move, how the session ended) is stored through the writer in one transaction with
the event that announces it; the announcement (`Announcer`: the listeners, the live feed's
bus) follows the commit. Alerts (`stats.alerts.AlertTracker`, the ALERT_* settings) are
checked on each learning step (loss spike), evaluation (Elo drawdown from the best
checkpoint) and stats report (memory growth); each newly raised one is stored as an
`alert.raised` event. Every state change of a session is stored here too (`set_state`), as
one compare-and-set against `lifecycle.TRANSITIONS`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..event_types import LIVE_STATS, EventType
from ..lifecycle import State, sources
from ..stats.alerts import Alert, AlertThresholds, AlertTracker, elo_drop
from ..stats.ratings import player, rating_list
from ..storage import repositories as repo
from ..storage.database import DatabaseUnavailable
from .events import EventBus
from .lease import Leases
from .protocol import MessageKind
from .writer import StagedEvent, Writer, rfc3339, utcnow

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict[str, Any]], None]
"""Called with (session_id, event type, data) after each stored event has been committed
(telemetry, progress bars), and with type LIVE_STATS ("stats") for the worker's live-only stats."""

FINAL_REASONS = {"max_games": State.COMPLETED, "duration": State.COMPLETED, "stopped": State.STOPPED}
"""The state a session ends in, by the reason its worker gives (`finished`); others: stopped."""
LOSS_WINDOW = 10
"""Learning steps whose mean total loss a new loss is compared with (ALERT_LOSS_SPIKE_FACTOR)."""
_MATCH_FIELDS = ("generation", "opponent", "wins", "draws", "losses", "pentanomial", "adjudicated")
"""A match's fields that `evaluation.finished` carries as the worker reported them."""

_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"(),:;/]+/)+([^\s'\"(),:;/]*)")


def public_reason(text: str) -> str:
    """A failure reason as every caller may read it: server paths cut to their last part
    (`.../gen-0003.safetensors`); the full text goes to the log."""
    return _PATH.sub(lambda m: ".../" + m.group(1), text)


class Announcer:
    """Tells the listeners and the live feed what happened: each committed event (the
    writer's `publish`), and the live-only reports (stats to the listeners, moves to the bus)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.listeners: list[Listener] = []

    def committed(self, event: StagedEvent) -> None:
        self.notify(event.session_id, event.kind, event.data)
        self.bus.publish(event.message)

    def notify(self, session_id: str, kind: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(session_id, kind, data)
            except Exception:  # a listener never breaks a session
                log.exception("event listener failed")


@dataclass
class _SessionAlerts:
    """One session's alert state: what is active, and the recent losses."""

    tracker: AlertTracker
    losses: deque = field(default_factory=lambda: deque(maxlen=LOSS_WINDOW))


@dataclass
class _Reports:
    """What the recorder remembers between one session's worker reports."""

    last_snapshot: float = 0.0
    stored: dict[str, Any] | None = None  # the stats last kept as a snapshot
    latest: dict[str, Any] | None = None


Handler = Callable[[str, dict[str, Any], _Reports], Awaitable[bool]]


class Recorder:
    """Stores a session's worker reports and state changes (through the writer)."""

    def __init__(self, settings: Settings, writer: Writer, announcer: Announcer, leases: Leases) -> None:
        self.settings = settings
        self.writer = writer
        self.announcer = announcer
        self.leases = leases
        self.thresholds = AlertThresholds(
            elo_regression=settings.alert_elo_regression,
            loss_spike_factor=settings.alert_loss_spike_factor,
            memory_growth_mb=settings.alert_memory_growth_mb,
            timeout_rate=settings.alert_timeout_rate,
        )
        self._alerts: dict[str, _SessionAlerts] = {}
        self._reports: dict[str, _Reports] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._outage_stopped: dict[str, tuple[str, int]] = {}  # stopped for an outage -> (reason, games mark)
        self._handlers: dict[MessageKind, Handler] = {
            MessageKind.GAME: self._game,
            MessageKind.MOVE: self._move,
            MessageKind.CHECKPOINT: self._checkpoint,
            MessageKind.EVALUATION: self._evaluation,
            MessageKind.LEARNING: self._learning,
            MessageKind.STATS: self._stats,
            MessageKind.FINISHED: self._finished,
            MessageKind.FAILED: self._failed,
            MessageKind.PAUSED: self._paused,
            MessageKind.RESUMED: self._resumed,
            MessageKind.ACTOR_REPLACED: self._actor_replaced,
            MessageKind.IDLE: self._idle,
        }
        """One handler per session message (`protocol.SESSION_MESSAGES`)."""

    def live(self, session_id: str) -> dict[str, Any] | None:
        """The worker's latest stats (simulations/s, buffer, memory...), or None; `paused` is
        True once the worker has acknowledged a pause: it holds, and every game it finished
        before is stored."""
        return self._live.get(session_id)

    def begin(self, session_id: str) -> None:
        """A session's reports start (on a fresh worker): nothing of a previous one is kept."""
        self._reports[session_id] = _Reports()

    def end(self, session_id: str) -> None:
        """A session's task is over here: forget its report state."""
        self._reports.pop(session_id, None)

    def forget(self, session_id: str) -> None:
        """A session was deleted: forget everything about it."""
        self._live.pop(session_id, None)
        self._alerts.pop(session_id, None)
        self._reports.pop(session_id, None)

    # -- state changes ---------------------------------------------------------------------
    def stopped_for_outage(self, session_id: str, reason: str, games_mark: int) -> bool:
        """The session's worker is being stopped because the database stayed unreachable
        past its bound: its stop is stored as `failed` with `reason` (`set_state`). False if
        it was so marked already."""
        if session_id in self._outage_stopped:
            return False
        self._outage_stopped[session_id] = (reason, games_mark)
        return True

    def _outage_failure(self, session_id: str) -> str:
        """The failure reason of a session stopped for an outage (`stopped_for_outage`)."""
        reason, mark = self._outage_stopped[session_id]
        held = self.writer.games_written.get(session_id, 0) - mark
        return (
            f"{reason}: the session was stopped rather than hold its games in memory without bound; "
            f"the {held} game{'s' if held != 1 else ''} it finished after the database went away "
            f"{'were' if held != 1 else 'was'} held and stored once it came back"
        )

    async def set_state(
        self, session_id: str, state: State, *, from_states: Collection[State] | None = None, **fields: Any
    ) -> None:
        """Store a state change and its `session.state` event, as a compare-and-set in the
        writer: only from a state that `lifecycle.TRANSITIONS` lets lead to it (and, with
        `from_states`, only from one of those), checked in the same write, else
        StateConflict naming the state that won. A session stopped because the database
        stayed unreachable past its bound (`stopped_for_outage`) ends `failed` with that
        reason instead of `stopped`. No process changes the state of a session another live
        process runs: LeaseHeld."""
        outage_stopped = state is State.STOPPED and session_id in self._outage_stopped

        async def job(db):
            await self.leases.check(db, session_id)
            target, values = state, fields
            if outage_stopped:
                target = State.FAILED
                values = {
                    "failure_reason": self._outage_failure(session_id)[:2000],
                    "finished_at": fields.get("finished_at") or utcnow(),
                }
            allowed = sources(target) if from_states is None else sources(target) & set(from_states)
            await repo.set_state(db, session_id, target.value, from_states={s.value for s in allowed}, **values)
            await self.writer.event(
                db,
                session_id,
                EventType.SESSION_STATE,
                {
                    "state": target.value,
                    **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()},
                },
            )

        await self.writer.write(job)
        if state in (State.COMPLETED, State.STOPPED, State.FAILED):
            self._outage_stopped.pop(session_id, None)
            self.writer.games_written.pop(session_id, None)

    async def fail(self, session_id: str, reason: str) -> None:
        """End the session `failed` with `reason`, unless it has ended already or another
        process runs it now (logged either way, never raised)."""
        try:
            await self.set_state(session_id, State.FAILED, failure_reason=reason[:2000], finished_at=utcnow())
        except DatabaseUnavailable as exc:  # shutting down during an outage: it stays resumable
            log.error("could not record the failure of session %s (%s): %s", session_id, reason, exc)
        except repo.StateConflict as exc:  # it had ended already: that state stands
            log.warning("session %s: not marked failed (%s): it is %s already", session_id, reason, exc.state)
        except repo.LeaseHeld as exc:  # another process runs it now: its state is that one's to set
            log.warning("session %s: not marked failed (%s): %s", session_id, reason, exc)
        except Exception:
            log.exception("could not record the failure of session %s", session_id)

    # -- worker reports --------------------------------------------------------------------
    @property
    def handled(self) -> frozenset[MessageKind]:
        """The message kinds this recorder stores (a test checks they are SESSION_MESSAGES)."""
        return frozenset(self._handlers)

    async def record(self, session_id: str, kind: MessageKind, data: dict[str, Any]) -> bool:
        """Store (and announce) one report of a session's worker. True when the session's
        reports are over (its worker is done with it: `idle`). A kind with no handler is a
        bug of the worker protocol: ValueError."""
        handler = self._handlers.get(kind)
        if handler is None:
            raise ValueError(f"no handler for worker message kind {kind!r} (session {session_id})")
        reports = self._reports.setdefault(session_id, _Reports())
        return await handler(session_id, data, reports)

    async def _game(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        async def job(db):
            await self.leases.take(db, session_id)
            game = await repo.add_game(db, session_id, data)
            await self.writer.event(
                db,
                session_id,
                EventType.GAME_FINISHED,
                {
                    "game_id": game.id,
                    "number": data["number"],
                    "started": data.get("started", data["number"]),
                    "generation": data.get("generation", 0),
                    "actor": data.get("actor", 0),
                    "generation_lag": data.get("generation_lag", 0),
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

        await self.writer.write(job)
        return False

    async def _move(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        """The featured game's move: live only, neither stored nor numbered."""
        self.announcer.bus.publish(
            {"session_id": session_id, "type": EventType.GAME_MOVE, "ts": rfc3339(utcnow()), "data": data}
        )
        return False

    async def _checkpoint(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        checkpoint_dir = Path(self.settings.checkpoint_dir)

        async def job(db):
            await self.leases.take(db, session_id)
            row = await repo.add_checkpoint(db, session_id, data, checkpoint_dir)
            await self.writer.event(
                db,
                session_id,
                EventType.CHECKPOINT_SAVED,
                {
                    "checkpoint_id": row.id,
                    "generation": data["generation"],
                    "games": data["games"],
                    "sha256": data["sha256"],
                },
            )

        await self.writer.write(job)
        return False

    async def _evaluation(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        await self.writer.write(lambda db: self._store_evaluation(db, session_id, data))
        return False

    async def _store_evaluation(self, db, session_id: str, data: dict[str, Any]) -> None:
        """Store a match, refit the session's rating list (the match's yardstick's), and give
        the match's row the candidate's fitted rating with its 95% interval."""
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
            yardstick=data.get("yardstick"),
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
        await self.writer.event(
            db,
            session_id,
            EventType.EVALUATION_FINISHED,
            {
                "checkpoint_id": checkpoint.id,
                **{k: data[k] for k in _MATCH_FIELDS},
                "elo": row.elo,
                "elo_low": row.elo_low,
                "elo_high": row.elo_high,
                "sprt": data.get("sprt"),
                "yardstick": row.yardstick,
                "ratings": {name: {"rating": r.rating, "low": r.low, "high": r.high} for name, r in ratings.items()},
            },
        )
        await self._raise_alerts(
            db,
            session_id,
            alerts,
            EventType.EVALUATION_FINISHED,
            {
                "games": data.get("games_played"),
                "generation": data["generation"],
                "opponent": data["opponent"],
                "elo": row.elo,
            },
        )

    async def _learning(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        alerts = self._check_loss(session_id, data.get("total_loss"))

        async def job(db):
            await self.writer.event(db, session_id, EventType.LEARNING_STEP, data)
            await self._raise_alerts(
                db, session_id, alerts, EventType.LEARNING_STEP, {"games": data.get("games"), "step": data.get("step")}
            )

        await self.writer.write(job)
        return False

    async def _stats(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        """Live stats: to the listeners at once, kept as a snapshot every
        METRICS_EXPORT_INTERVAL seconds, and checked for memory growth."""
        self._live[session_id] = data | {"at": utcnow().isoformat(), "paused": False}
        self.announcer.notify(session_id, LIVE_STATS, data)
        growth = data.get("rss_growth_mb")
        if isinstance(growth, (int, float)):
            alerts = self._alert_state(session_id).tracker.check(memory_growth_mb=float(growth))
            if alerts:
                await self.writer.write(
                    lambda db: self._raise_alerts(db, session_id, alerts, "stats", {"rss_mb": data.get("rss_mb")})
                )
        now = time.monotonic()
        if now - reports.last_snapshot >= self.settings.metrics_export_interval:
            reports.last_snapshot, reports.stored = now, data
            await self._snapshot(session_id, data)
        reports.latest = data
        return False

    async def _snapshot(self, session_id: str, data: dict[str, Any]) -> None:
        async def job(db):
            await repo.add_metric_snapshot(db, session_id, data)
            await self.writer.event(db, session_id, EventType.METRICS_SNAPSHOT, data)

        await self.writer.write(job)

    async def _finished(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        """The worker's session loop ended (a limit, a stop, the service going down)."""
        if reports.latest is not None and reports.latest is not reports.stored:
            await self._snapshot(session_id, reports.latest)  # the worker's last stats: always kept
        reason = data["reason"]
        if reason == "shutdown":
            return False  # the service is going down: the session stays resumable
        try:
            await self.set_state(
                session_id, FINAL_REASONS.get(reason, State.STOPPED), stop_reason=reason, finished_at=utcnow()
            )
        except repo.StateConflict as exc:  # it had ended already (failed): that state stands
            log.warning("session %s: its worker finished (%s) after it became %s", session_id, reason, exc.state)
        return False

    async def _failed(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        log.error("session %s: its worker failed: %s", session_id, data["error"])
        await self.fail(session_id, public_reason(str(data["error"])))
        return False

    async def _paused(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        """The worker holds between two search steps: every game it finished before is stored."""
        self._mark_paused(session_id, True)
        return False

    async def _resumed(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        self._mark_paused(session_id, False)
        return False

    def _mark_paused(self, session_id: str, paused: bool) -> None:
        live = self._live.get(session_id) or {}
        self._live[session_id] = live | {"paused": paused, "at": utcnow().isoformat()}

    async def _actor_replaced(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        """A self-play actor died while the session runs: a `session.state` event, the state
        unchanged, records it (its games in flight were lost; numbering has no gap)."""
        reason = (
            f"self-play actor {data.get('actor')} died (exit code {data.get('exitcode')}); "
            f"actor {data.get('replacement')} replaced it"
        )
        event = {"state": "", "actor_replaced": True, "reason": reason, **data}

        async def job(db):
            row = await repo.get_session(db, session_id)
            event["state"] = row.state if row is not None else State.RUNNING.value
            await self.writer.event(db, session_id, EventType.SESSION_STATE, event)

        log.warning("session %s: %s", session_id, reason)
        await self.writer.write(job)
        return False

    async def _idle(self, session_id: str, data: dict[str, Any], reports: _Reports) -> bool:
        return True

    # -- alerts ----------------------------------------------------------------------------
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
            await self.writer.event(
                db,
                session_id,
                EventType.ALERT_RAISED,
                {**alert.to_dict(), "trigger": trigger, **{k: v for k, v in context.items() if v is not None}},
            )
