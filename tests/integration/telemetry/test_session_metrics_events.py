"""SessionMetrics fed realistic event sequences (the orchestrator's listener calls): exact
values per series, gauges absent until they have a value, and `forget`."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.events import game_finished

from service.event_types import EventType
from service.stats.analyzer import elo_delta_per_10_games
from service.telemetry import SessionMetrics

pytestmark = pytest.mark.integration

P = "mcts_continuous_play_"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock) -> SessionMetrics:
    return SessionMetrics(clock=clock)


def value(metrics: SessionMetrics, name: str, session_id: str = "s1", **labels: str) -> float | None:
    return metrics.registry.get_sample_value(P + name, {"session_id": session_id, **labels})


def rating(value: float, half_width: float) -> dict:
    return {"rating": value, "low": value - half_width, "high": value + half_width}


def evaluation(generation: int, ratings: dict, opponent: str = "random") -> dict:
    mine = ratings[f"gen{generation}"]
    return {
        "checkpoint_id": generation + 1,
        "generation": generation,
        "opponent": opponent,
        "wins": 1,
        "draws": 0,
        "losses": 1,
        "pentanomial": [0, 0, 1, 0, 0],
        "adjudicated": 0,
        "elo": mine["rating"],
        "elo_low": mine["low"],
        "elo_high": mine["high"],
        "sprt": None,
        "ratings": ratings,
    }


def sessions_in(text: str) -> set[str]:
    return {s.labels.get("session_id") for f in text_string_to_metric_families(text) for s in f.samples}


def test_games_by_result_rates_and_histograms(metrics, clock):
    feed = metrics.listener
    feed("s1", EventType.SESSION_STATE, {"state": "pending"})
    assert value(metrics, "games_total", result="white_win") == 0.0  # counters start at 0
    assert value(metrics, "session_duration_seconds") is None  # it has not run yet
    clock.now = 10.0
    feed("s1", EventType.SESSION_STATE, {"state": "running", "started_at": "2026-01-01T00:00:00+00:00"})
    for number, (result, plies, seconds) in enumerate(
        [("1-0", 40, 8.0), ("0-1", 20, 1.0), ("1/2-1/2", 150, 30.0), ("1-0", 10, 0.05)], start=1
    ):
        clock.now = 10.0 + 15.0 * number
        feed("s1", EventType.GAME_FINISHED, game_finished(number, result, plies, seconds))

    assert value(metrics, "games_total", result="white_win") == 2
    assert value(metrics, "games_total", result="black_win") == 1
    assert value(metrics, "games_total", result="draw") == 1
    assert value(metrics, "white_win_rate") == 0.5
    assert value(metrics, "draw_rate") == 0.25
    assert value(metrics, "session_duration_seconds") == 60.0
    assert value(metrics, "games_per_minute") == 4.0

    assert value(metrics, "game_duration_seconds_count") == 4
    assert value(metrics, "game_duration_seconds_sum") == pytest.approx(39.05)
    assert value(metrics, "game_duration_seconds_bucket", le="1.0") == 2
    assert value(metrics, "game_duration_seconds_bucket", le="10.0") == 3
    assert value(metrics, "game_duration_seconds_bucket", le="+Inf") == 4
    # move time: each game's duration / plies, once per game: 0.2, 0.05, 0.2, 0.005
    assert value(metrics, "move_time_seconds_count") == 4
    assert value(metrics, "move_time_seconds_sum") == pytest.approx(0.455)
    assert value(metrics, "move_time_seconds_bucket", le="0.005") == 1
    assert value(metrics, "move_time_seconds_bucket", le="0.05") == 2
    assert value(metrics, "move_time_seconds_bucket", le="0.25") == 4


def test_duration_excludes_pauses_and_stops_at_the_end(metrics, clock):
    feed = metrics.listener
    feed("s1", EventType.SESSION_STATE, {"state": "running"})
    clock.now = 30.0
    feed("s1", EventType.SESSION_STATE, {"state": "paused"})
    clock.now = 100.0
    feed("s1", "stats", {"simulations_per_second": 0.0, "buffer_size": 10})  # paused: the clock stands
    assert value(metrics, "session_duration_seconds") == 30.0
    clock.now = 200.0
    feed("s1", EventType.SESSION_STATE, {"state": "running"})
    clock.now = 210.0
    feed("s1", "stats", {"simulations_per_second": 50.0, "buffer_size": 10})
    assert value(metrics, "session_duration_seconds") == 40.0
    clock.now = 220.0
    feed("s1", EventType.SESSION_STATE, {"state": "completed", "stop_reason": "max_games"})
    clock.now = 300.0
    feed("s1", EventType.METRICS_SNAPSHOT, {"simulations_per_second": 50.0, "buffer_size": 10})
    assert value(metrics, "session_duration_seconds") == 50.0


def test_a_restored_session_is_timed_from_its_first_event(metrics, clock):
    """After a restart a running session is relaunched without a `running` state event."""
    clock.now = 5.0
    metrics.listener("s1", EventType.GAME_FINISHED, game_finished(1, "0-1", 30, 3.0))
    clock.now = 65.0
    metrics.listener("s1", "stats", {"simulations_per_second": 120.5, "buffer_size": 30})
    assert value(metrics, "session_duration_seconds") == 60.0
    assert value(metrics, "games_per_minute") == 1.0
    assert value(metrics, "simulations_per_second") == 120.5


def test_losses_positions_buffer_and_throughput(metrics):
    feed = metrics.listener
    feed("s1", EventType.SESSION_STATE, {"state": "running"})
    for name in ("training_loss", "buffer_size", "simulations_per_second"):
        assert value(metrics, name, head="total") is None and value(metrics, name) is None
    assert value(metrics, "positions_learned_total") == 0.0
    feed("s1", "stats", {"simulations_per_second": 812.0, "buffer_size": 90, "rss_mb": 300.0})
    step = {
        "games": 10,
        "step": 4,
        "steps": 4,
        "grad_norm": 1.0,
        "lr": 1e-3,
        "policy_entropy": 3.1,
        "samples": 400,
        "seconds": 0.5,
    }
    feed(
        "s1",
        EventType.LEARNING_STEP,
        step | {"policy_loss": 4.5, "value_loss": 1.0, "total_loss": 5.5, "buffer_size": 100, "positions_learned": 100},
    )
    feed(
        "s1",
        EventType.LEARNING_STEP,
        step
        | {"policy_loss": 4.0, "value_loss": 0.75, "total_loss": 4.75, "buffer_size": 250, "positions_learned": 250},
    )
    assert value(metrics, "training_loss", head="policy") == 4.0
    assert value(metrics, "training_loss", head="value") == 0.75
    assert value(metrics, "training_loss", head="total") == 4.75
    assert value(metrics, "positions_learned_total") == 250  # the deltas 100 + 150
    assert value(metrics, "buffer_size") == 250
    assert value(metrics, "simulations_per_second") == 812.0


def test_elo_only_from_evaluations_and_its_slope(metrics):
    feed = metrics.listener
    feed("s1", EventType.SESSION_STATE, {"state": "running"})
    feed("s1", EventType.CHECKPOINT_SAVED, {"checkpoint_id": 1, "generation": 0, "games": 0, "sha256": "0" * 64})
    for number in range(1, 11):
        feed("s1", EventType.GAME_FINISHED, game_finished(number, "1-0", 20, 1.0))
    assert value(metrics, "elo_estimate") is None  # self-play never makes a rating
    assert value(metrics, "elo_delta_per_10_games") is None
    assert P + "elo_estimate{" not in metrics.exposition().decode()

    feed("s1", EventType.CHECKPOINT_SAVED, {"checkpoint_id": 2, "generation": 1, "games": 10, "sha256": "1" * 64})
    first = {"gen0": rating(1500, 0), "gen1": rating(1580, 60), "random": rating(1200, 90)}
    feed("s1", EventType.EVALUATION_FINISHED, evaluation(1, first))
    assert value(metrics, "elo_estimate") == 1580
    assert value(metrics, "elo_delta_per_10_games") == pytest.approx(80.0)  # two points: (0, 1500), (10, 1580)

    feed("s1", EventType.CHECKPOINT_SAVED, {"checkpoint_id": 3, "generation": 2, "games": 20, "sha256": "2" * 64})
    second = {"gen0": rating(1500, 0), "gen1": rating(1590, 50), "gen2": rating(1650, 70), "random": rating(1210, 80)}
    feed("s1", EventType.EVALUATION_FINISHED, evaluation(2, second))
    feed("s1", EventType.EVALUATION_FINISHED, evaluation(2, second | {"gen2": rating(1640, 60)}, opponent="gen1"))
    assert value(metrics, "elo_estimate") == 1640  # the newest checkpoint, from the last refit
    assert (value(metrics, "elo_estimate_low"), value(metrics, "elo_estimate_high")) == (1580, 1700)
    expected = elo_delta_per_10_games([(0, 1500, 1500, 1500), (10, 1590, 1540, 1640), (20, 1640, 1580, 1700)])
    assert value(metrics, "elo_delta_per_10_games") == pytest.approx(expected[0]) and expected[0] > 0


def test_a_falling_rating_gives_a_negative_slope(metrics):
    feed = metrics.listener
    feed("s1", EventType.CHECKPOINT_SAVED, {"checkpoint_id": 1, "generation": 0, "games": 0, "sha256": "0" * 64})
    feed("s1", EventType.CHECKPOINT_SAVED, {"checkpoint_id": 2, "generation": 1, "games": 10, "sha256": "1" * 64})
    feed("s1", EventType.EVALUATION_FINISHED, evaluation(1, {"gen0": rating(1500, 0), "gen1": rating(1400, 50)}))
    assert value(metrics, "elo_estimate") == 1400
    assert value(metrics, "elo_delta_per_10_games") == pytest.approx(-100.0)


def test_forget_drops_every_series_of_the_session(metrics):
    for sid in ("s1", "s2"):
        feed = metrics.listener
        feed(sid, EventType.SESSION_STATE, {"state": "running"})
        feed(sid, EventType.CHECKPOINT_SAVED, {"checkpoint_id": 1, "generation": 0, "games": 0, "sha256": "0" * 64})
        feed(sid, EventType.GAME_FINISHED, game_finished(1, "1/2-1/2", 12, 0.6))
        feed(sid, EventType.CHECKPOINT_SAVED, {"checkpoint_id": 2, "generation": 1, "games": 1, "sha256": "1" * 64})
        feed(
            sid,
            EventType.LEARNING_STEP,
            {"policy_loss": 1.0, "value_loss": 1.0, "total_loss": 2.0, "buffer_size": 12, "positions_learned": 12},
        )
        feed(sid, EventType.EVALUATION_FINISHED, evaluation(1, {"gen0": rating(1500, 0), "gen1": rating(1510, 40)}))
        feed(sid, "stats", {"simulations_per_second": 10.0, "buffer_size": 12})
    assert sessions_in(metrics.exposition().decode()) == {"s1", "s2"}
    metrics.forget("s1")
    text = metrics.exposition().decode()
    assert sessions_in(text) == {"s2"}
    assert "s1" not in text
    assert value(metrics, "games_total", "s2", result="draw") == 1
    # a new session reusing nothing of the forgotten one
    metrics.listener("s1", EventType.SESSION_STATE, {"state": "pending"})
    assert value(metrics, "games_total", result="draw") == 0.0


def test_attach_forgets_after_a_successful_delete(metrics):
    class Orchestrator:
        def __init__(self) -> None:
            self.listeners = []
            self.deleted = []

        async def delete(self, session_id: str) -> None:
            if session_id == "busy":
                raise RuntimeError("active")
            self.deleted.append(session_id)

    orchestrator = Orchestrator()
    metrics.attach(orchestrator)
    assert orchestrator.listeners == [metrics.listener]
    for sid in ("s1", "busy"):
        metrics.listener(sid, EventType.GAME_FINISHED, game_finished(1, "1-0", 10, 1.0))
    asyncio.run(orchestrator.delete("s1"))
    with pytest.raises(RuntimeError):
        asyncio.run(orchestrator.delete("busy"))
    assert orchestrator.deleted == ["s1"]
    assert sessions_in(metrics.exposition().decode()) == {"busy"}


def test_the_exposition_passes_promtool(metrics):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make promtool` (Debian's prometheus package provides it)"
    metrics.listener("s1", EventType.SESSION_STATE, {"state": "running"})
    metrics.listener("s1", EventType.GAME_FINISHED, game_finished(1, "1-0", 10, 1.0))
    metrics.listener(
        "s1",
        EventType.LEARNING_STEP,
        {"policy_loss": 1.0, "value_loss": 1.0, "total_loss": 2.0, "positions_learned": 10, "buffer_size": 10},
    )
    text = metrics.exposition()
    assert b"_created" not in text  # no extra gauge families beyond DESIGN.md's names
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()
