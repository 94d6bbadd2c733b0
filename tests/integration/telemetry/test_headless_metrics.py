"""`continuous-play run` (run_session) serves the session's metrics on PROMETHEUS_PORT while
it runs; a port already taken is one warning line on stderr, not a failure."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.tiny import TINY, app_settings

from service.config import Settings
from service.event_types import EventType
from service.headless import run_session
from service.telemetry import SessionMetrics, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(tmp_path: Path, port: int) -> Settings:
    return app_settings(tmp_path, torch_threads=1, prometheus_port=port)


@pytest.mark.asyncio
async def test_run_serves_its_metrics_while_it_runs(tmp_path):
    port = free_port()
    settings = settings_for(tmp_path, port)
    # TINY but 2 games of <= 12 plies, one at a time, 2 simulations a move, no learning
    config = settings.session_config(
        **{
            **TINY,
            "seed": 1,
            "max_games": 2,
            "max_moves_per_game": 12,
            "selfplay_parallel_games": 1,
            "selfplay_simulations": 2,
            "gumbel_considered": 2,
            "min_games_before_learning": 1000,
        }
    )
    seen: list[str] = []

    def on_event(kind: str, data: dict) -> None:
        if kind == EventType.GAME_FINISHED and not seen:  # the server runs in its own thread
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                seen.append(response.read().decode())

    session_id, _ = await run_session(settings, config, on_event=on_event)
    assert seen, "no game finished"
    games = [
        s
        for family in text_string_to_metric_families(seen[0])
        for s in family.samples
        if s.name == "mcts_continuous_play_games_total" and s.labels["session_id"] == session_id
    ]
    assert sorted(s.labels["result"] for s in games) == ["black_win", "draw", "white_win"]
    assert sum(s.value for s in games) == 1  # served while it ran: after its first game
    assert f'mcts_continuous_play_game_duration_seconds_count{{session_id="{session_id}"}} 1.0' in seen[0]
    assert "_created" not in seen[0]
    with pytest.raises(OSError):  # stopped with the session
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_a_busy_port_is_a_warning(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert serve(port, SessionMetrics().registry) is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning:") and str(port) in lines[0]


def test_serve_publishes_and_stops():
    metrics = SessionMetrics()
    metrics.listener("s1", EventType.GAME_FINISHED, {"result": "0-1", "plies": 10, "duration_s": 1.0})
    port = free_port()
    stop = serve(port, metrics.registry)
    assert stop is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'mcts_continuous_play_games_total{result="black_win",session_id="s1"} 1.0' in text
    finally:
        stop()
