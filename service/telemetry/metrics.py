"""The sessions' Prometheus metrics (DESIGN.md "Prometheus names"), fed from events.

`SessionMetrics` owns its own `CollectorRegistry` (never the process-wide one, so several
apps and tests never collide) and is updated by `listener(session_id, event_type, data)`,
the orchestrator's listener signature, from the events the sessions report: nothing is
recomputed when Prometheus scrapes. Every series carries `session_id`; a gauge appears for
a session once it has a value (no Elo estimate before the first evaluation), the counters
of a session start at 0 when its first event arrives. `forget(session_id)` drops every
series of a session (its deletion); `attach(orchestrator)` registers the listener and
wraps the orchestrator's `delete` so that a deleted session is forgotten.

What each metric measures:

- `games_total{result}`: self-play games finished, by result (white_win, black_win, draw).
- `session_duration_seconds`: time the session has spent `running` (pauses excluded) as
  seen by this process; refreshed at each of the session's events (stats arrive every
  few seconds while it plays). A session restored after a restart (it sends no `running`
  state) is counted from its first event here.
- `games_per_minute`: self-play games counted here over that running time.
- `white_win_rate`, `draw_rate`: shares of those games (self-play: not a strength measure).
- `elo_estimate`: the fitted rating of the newest evaluated checkpoint (`gen<N>` of the
  rating list refitted after each evaluation match); never a self-play figure.
- `elo_estimate_low`, `elo_estimate_high`: that rating's 95% interval (an addition to
  DESIGN.md's names, for the Grafana band).
- `elo_delta_per_10_games`: slope of the rating per 10 self-play games over the evaluated
  checkpoints (`stats.analyzer.elo_delta_per_10_games` over (games at the checkpoint,
  rating, low, high)); appears once two checkpoints of distinct game counts are rated.
- `training_loss{head}`: policy, value and total loss of the latest learning phase.
- `positions_learned_total`: positions the learner has consumed (learning.step deltas).
- `buffer_size`: positions in the replay buffer (worker stats and learning steps).
- `simulations_per_second`: MCTS simulations per second of the worker (worker stats).
- `move_time_seconds` (histogram): a game's mean time per move, its duration / its plies,
  observed once per finished game. Self-play keeps many games in flight and batches their
  network calls, so this is the wall time a game waited per ply, not one search's latency.
- `game_duration_seconds` (histogram): wall time of each self-play game.
- `selfplay_actors{state}`: the session's self-play actors by state (starting, running,
  paused), from the worker stats; with SELFPLAY_ACTORS=1 the one is the learner's own.
- `generation_lag` (histogram): per finished game, the learner's newest generation minus the
  generation that started the game (a checkpoint's index: the one saved, or the one training).
- `learner_steps_per_second`: training steps per second of wall time (worker stats).
- `samples_per_position`: training samples drawn per new self-play position so far in this
  run of the session (TRAIN_SAMPLES_PER_POSITION is what the learner aims at).
- `alerts_total{alert, severity}`: alerts raised (`alert.raised` events: elo_regression,
  loss_spike, memory_growth, timeout_rate; warning or critical). Every (alert, severity)
  pair of a session starts at 0 with its first event, so `increase()` sees the first one.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import RestrictedRegistry

from ..event_types import LIVE_STATS, EventType
from ..lifecycle import FINAL, ActorState, State
from ..stats.alerts import ALERT_NAMES, CRITICAL, WARNING
from ..stats.analyzer import elo_delta_per_10_games

PREFIX = "mcts_continuous_play_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format every registry here is rendered in."""

RESULTS = {"1-0": "white_win", "0-1": "black_win", "1/2-1/2": "draw"}
HEADS = {"policy": "policy_loss", "value": "value_loss", "total": "total_loss"}
SEVERITIES = (WARNING, CRITICAL)
ALERT_LABELS = tuple((alert, severity) for alert in ALERT_NAMES for severity in SEVERITIES)
"""Every (alert, severity) series of `alerts_total` a session has."""

MOVE_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds per move: a tiny net on a few simulations takes milliseconds, a large one seconds."""
GAME_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Seconds per game: from CI's tiny games to long games of a large net."""
GENERATION_LAG_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
"""Generations between the one that started a game and the newest when it arrived."""

_GENERATION = re.compile(r"gen(\d+)")
_ACTIVITY = frozenset(
    {
        EventType.GAME_FINISHED,
        EventType.LEARNING_STEP,
        EventType.CHECKPOINT_SAVED,
        EventType.EVALUATION_FINISHED,
        EventType.METRICS_SNAPSHOT,
        LIVE_STATS,
    }
)


@dataclass
class _Session:
    """What the metrics of one session are derived from."""

    state: str | None = None  # the last state seen; None: not seen (a restored session)
    running_since: float | None = None  # clock value when it (last) started running
    run_s: float = 0.0  # running time accumulated before running_since
    results: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS.values(), 0))
    positions_learned: float = 0.0  # the last cumulative value seen
    games_at: dict[int, int] = field(default_factory=dict)  # generation -> self-play games at its checkpoint
    alert_labels: set[tuple[str, str]] = field(default_factory=lambda: set(ALERT_LABELS))
    newest_evaluated: int = -1

    @property
    def games(self) -> int:
        return sum(self.results.values())

    def running_s(self, now: float) -> float:
        return self.run_s + (now - self.running_since if self.running_since is not None else 0.0)


class SessionMetrics:
    """The sessions' collectors on a registry of their own; feed them with `listener`."""

    def __init__(self, registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.monotonic):
        """Not split: one registration per metric of DESIGN.md's list, a flat table."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        sid = ["session_id"]

        def gauge(name: str, doc: str, labels: list[str] = sid) -> Gauge:
            return Gauge(PREFIX + name, doc, labels, registry=self.registry)

        self.games = Counter(
            PREFIX + "games_total", "Self-play games finished, by result.", sid + ["result"], registry=self.registry
        )
        self.session_duration = gauge(
            "session_duration_seconds", "Time the session has spent running, pauses excluded."
        )
        self.elo_estimate = gauge(
            "elo_estimate", "Fitted rating of the newest evaluated checkpoint (evaluation matches)."
        )
        self.elo_low = gauge("elo_estimate_low", "Lower bound of elo_estimate's 95% interval.")
        self.elo_high = gauge("elo_estimate_high", "Upper bound of elo_estimate's 95% interval.")
        self.elo_delta = gauge(
            "elo_delta_per_10_games",
            "Slope of the evaluated checkpoints' rating per 10 self-play games (weighted fit).",
        )
        self.training_loss = gauge("training_loss", "Loss of the latest learning phase, by head.", sid + ["head"])
        self.positions_learned = Counter(
            PREFIX + "positions_learned_total", "Self-play positions consumed by learning.", sid, registry=self.registry
        )
        self.buffer_size = gauge("buffer_size", "Positions in the replay buffer.")
        self.games_per_minute = gauge("games_per_minute", "Self-play games per minute of running time.")
        self.white_win_rate = gauge("white_win_rate", "Share of self-play games won by white.")
        self.draw_rate = gauge("draw_rate", "Share of self-play games drawn.")
        self.move_time = Histogram(
            PREFIX + "move_time_seconds",
            "Mean wall time per move of each self-play game (duration / plies).",
            sid,
            buckets=MOVE_TIME_BUCKETS,
            registry=self.registry,
        )
        self.game_duration = Histogram(
            PREFIX + "game_duration_seconds",
            "Wall time of each self-play game.",
            sid,
            buckets=GAME_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.simulations_per_second = gauge(
            "simulations_per_second", "MCTS simulations per second of the session's actors."
        )
        self.selfplay_actors = gauge("selfplay_actors", "Self-play actors of the session, by state.", sid + ["state"])
        self.generation_lag = Histogram(
            PREFIX + "generation_lag",
            "Newest generation minus the generation that started each finished game.",
            sid,
            buckets=GENERATION_LAG_BUCKETS,
            registry=self.registry,
        )
        self.learner_steps_per_second = gauge("learner_steps_per_second", "Training steps per second of the learner.")
        self.samples_per_position = gauge(
            "samples_per_position", "Training samples drawn per new self-play position (the actual ratio)."
        )
        self.alerts = Counter(
            PREFIX + "alerts_total",
            "Alerts raised (alert.raised events), by alert and severity.",
            sid + ["alert", "severity"],
            registry=self.registry,
        )

    # -- wiring --------------------------------------------------------------------------
    def attach(self, orchestrator: Any) -> None:
        """Listen to `orchestrator`'s events and forget a session after its `delete` succeeds."""
        listeners = getattr(orchestrator, "listeners", None)
        if listeners is not None:
            listeners.append(self.listener)
        delete = getattr(orchestrator, "delete", None)
        if delete is None:
            return

        async def delete_and_forget(session_id: str, *args: Any, **kwargs: Any) -> Any:
            result = await delete(session_id, *args, **kwargs)
            self.forget(session_id)
            return result

        orchestrator.delete = delete_and_forget

    # -- updates -------------------------------------------------------------------------
    def listener(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Update the session's series from one event (the orchestrator's listener signature)."""
        now = self._clock()
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session()
            for result in RESULTS.values():
                self.games.labels(session_id, result)  # counters start at 0
            self.positions_learned.labels(session_id)
            for alert, severity in ALERT_LABELS:
                self.alerts.labels(session_id, alert, severity)
        if event_type == EventType.SESSION_STATE:
            self._on_state(session, data.get("state"), now)
        elif event_type in _ACTIVITY and session.state is None:
            session.state, session.running_since = State.RUNNING, now  # restored: no `running` event
        handler = self._HANDLERS.get(event_type)
        if handler is not None:
            handler(self, session_id, session, data)
        self._refresh_time(session_id, session, now)

    def _on_state(self, session: _Session, state: str | None, now: float) -> None:
        if state == State.RUNNING:
            if session.running_since is None:
                session.running_since = now
        elif state == State.PAUSED or state in FINAL:
            if session.running_since is not None:
                session.run_s += now - session.running_since
                session.running_since = None
        session.state = state

    def _refresh_time(self, session_id: str, session: _Session, now: float) -> None:
        if session.running_since is None and session.run_s == 0.0:
            return  # never ran: no duration yet
        running_s = session.running_s(now)
        self.session_duration.labels(session_id).set(running_s)
        if session.games and running_s > 0:
            self.games_per_minute.labels(session_id).set(session.games / (running_s / 60.0))

    def _on_game(self, session_id: str, session: _Session, data: dict[str, Any]) -> None:
        result = RESULTS.get(data.get("result", ""))
        if result is None:
            return  # an unfinished game ("*") is no result
        session.results[result] += 1
        self.games.labels(session_id, result).inc()
        games = session.games
        self.white_win_rate.labels(session_id).set(session.results["white_win"] / games)
        self.draw_rate.labels(session_id).set(session.results["draw"] / games)
        duration = data.get("duration_s")
        if isinstance(duration, (int, float)) and duration >= 0:
            self.game_duration.labels(session_id).observe(duration)
            plies = data.get("plies") or 0
            if plies > 0:
                self.move_time.labels(session_id).observe(duration / plies)
        lag = data.get("generation_lag")
        if isinstance(lag, (int, float)) and lag >= 0:
            self.generation_lag.labels(session_id).observe(lag)

    def _on_learning(self, session_id: str, session: _Session, data: dict[str, Any]) -> None:
        for head, key in HEADS.items():
            if data.get(key) is not None:
                self.training_loss.labels(session_id, head).set(data[key])
        learned = data.get("positions_learned")
        if learned is not None:
            if learned > session.positions_learned:  # cumulative in the worker: add the growth
                self.positions_learned.labels(session_id).inc(learned - session.positions_learned)
            session.positions_learned = max(session.positions_learned, learned)
        self._on_stats(session_id, session, {"buffer_size": data.get("buffer_size")})

    def _on_stats(self, session_id: str, session: _Session, data: dict[str, Any]) -> None:
        if data.get("buffer_size") is not None:
            self.buffer_size.labels(session_id).set(data["buffer_size"])
        if data.get("simulations_per_second") is not None:
            self.simulations_per_second.labels(session_id).set(data["simulations_per_second"])
        for key, gauge in (
            ("learner_steps_per_second", self.learner_steps_per_second),
            ("samples_per_position", self.samples_per_position),
        ):
            if isinstance(data.get(key), (int, float)):
                gauge.labels(session_id).set(data[key])
        actors = data.get("actors")
        if isinstance(actors, list):
            counts = dict.fromkeys(ActorState, 0)
            for actor in actors:
                if isinstance(actor, dict) and actor.get("state") in counts:
                    counts[ActorState(actor["state"])] += 1
            for state, count in counts.items():
                self.selfplay_actors.labels(session_id, state).set(count)

    def _on_checkpoint(self, session_id: str, session: _Session, data: dict[str, Any]) -> None:
        if data.get("generation") is not None and data.get("games") is not None:
            session.games_at[int(data["generation"])] = int(data["games"])

    def _on_evaluation(self, session_id: str, session: _Session, data: dict[str, Any]) -> None:
        generation = data.get("generation")
        if generation is None:
            return
        ratings = data.get("ratings") or {}
        session.newest_evaluated = max(session.newest_evaluated, int(generation))
        newest = ratings.get(f"gen{session.newest_evaluated}")
        if newest is None and int(generation) == session.newest_evaluated and data.get("elo") is not None:
            newest = {"rating": data["elo"], "low": data.get("elo_low"), "high": data.get("elo_high")}
        if newest is not None:
            self.elo_estimate.labels(session_id).set(newest["rating"])
            for gauge, bound in ((self.elo_low, newest.get("low")), (self.elo_high, newest.get("high"))):
                if bound is not None:
                    gauge.labels(session_id).set(bound)
        points = []
        for name, rating in ratings.items():
            match = _GENERATION.fullmatch(name)
            if match and int(match.group(1)) in session.games_at:
                points.append((session.games_at[int(match.group(1))], rating["rating"], rating["low"], rating["high"]))
        try:
            fit = elo_delta_per_10_games(sorted(points))
        except ValueError:  # a malformed point: keep the last slope
            return
        if fit is not None:
            self.elo_delta.labels(session_id).set(fit[0])

    def _on_alert(self, session_id: str, session: _Session, data: dict[str, Any]) -> None:
        alert, severity = data.get("name"), data.get("severity")
        if isinstance(alert, str) and isinstance(severity, str) and alert and severity:
            self.alerts.labels(session_id, alert, severity).inc()
            session.alert_labels.add((alert, severity))

    _HANDLERS = {
        EventType.ALERT_RAISED: _on_alert,
        EventType.GAME_FINISHED: _on_game,
        EventType.LEARNING_STEP: _on_learning,
        LIVE_STATS: _on_stats,
        EventType.METRICS_SNAPSHOT: _on_stats,
        EventType.CHECKPOINT_SAVED: _on_checkpoint,
        EventType.EVALUATION_FINISHED: _on_evaluation,
    }

    # -- deletion ------------------------------------------------------------------------
    def forget(self, session_id: str) -> None:
        """Drop every series of `session_id` (it was deleted)."""
        session = self._sessions.pop(session_id, None)
        alert_labels = session.alert_labels if session is not None else set(ALERT_LABELS)
        extra: dict[Any, list[tuple[str, ...]]] = {
            self.games: [(v,) for v in RESULTS.values()],
            self.training_loss: [(h,) for h in HEADS],
            self.selfplay_actors: [(state,) for state in ActorState],
            self.alerts: sorted(alert_labels),
        }
        for metric in (
            self.games,
            self.session_duration,
            self.elo_estimate,
            self.elo_low,
            self.elo_high,
            self.elo_delta,
            self.training_loss,
            self.positions_learned,
            self.buffer_size,
            self.games_per_minute,
            self.white_win_rate,
            self.draw_rate,
            self.move_time,
            self.game_duration,
            self.simulations_per_second,
            self.selfplay_actors,
            self.generation_lag,
            self.learner_steps_per_second,
            self.samples_per_position,
            self.alerts,
        ):
            for values in extra.get(metric, [()]):
                labels = (session_id, *values)
                try:
                    metric.remove(*labels)
                except KeyError:  # older prometheus_client: an absent series raises
                    pass

    def exposition(self) -> bytes:
        """This registry in the Prometheus text format."""
        return exposition(self.registry)


METRIC_NAMES = tuple(
    PREFIX + name
    for name in (
        "games_total",
        "session_duration_seconds",
        "elo_estimate",
        "elo_estimate_low",
        "elo_estimate_high",
        "elo_delta_per_10_games",
        "training_loss",
        "positions_learned_total",
        "buffer_size",
        "games_per_minute",
        "white_win_rate",
        "draw_rate",
        "move_time_seconds",
        "game_duration_seconds",
        "simulations_per_second",
        "selfplay_actors",
        "generation_lag",
        "learner_steps_per_second",
        "samples_per_position",
        "alerts_total",
    )
)
"""DESIGN.md's names (and alerts_total), as they appear in the text exposition."""


class WithoutCreated:
    """A collector showing `registry` without the `<name>_created` samples of counters and
    histograms: the 0.0.4 text format would expose each as an extra gauge family, outside
    DESIGN.md's names, and Prometheus has no use for them there."""

    def __init__(self, registry: CollectorRegistry | RestrictedRegistry) -> None:
        self.registry = registry

    def collect(self):
        for family in self.registry.collect():
            if family.type in ("counter", "histogram", "summary", "gaugehistogram"):
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family

    def restricted_registry(self, names):
        """`?name[]=...` of the headless metrics server: only those families."""
        assert isinstance(self.registry, CollectorRegistry)  # a restricted one is not restricted again
        return WithoutCreated(self.registry.restricted_registry(names))


def exposition(*registries: CollectorRegistry) -> bytes:
    """The registries as one Prometheus text exposition (0.0.4; their names must not clash)."""
    return b"".join(generate_latest(WithoutCreated(registry)) for registry in registries)


def serve(port: int, registry: CollectorRegistry, host: str = "127.0.0.1") -> Callable[[], None] | None:
    """Serve `registry` on http://host:port/ in a thread; returns a function that stops it.
    A port that cannot be bound is one warning line on stderr and None, never an error."""
    try:
        server, thread = start_http_server(port, addr=host, registry=WithoutCreated(registry))
    except OSError as exc:
        print(f"warning: metrics not served: cannot listen on {host}:{port} ({exc.strerror or exc})", file=sys.stderr)
        return None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
