"""GET /metrics after a tiny real session (the real orchestrator, an inline worker pool,
SQLite): every name of DESIGN.md "Prometheus names" for the session, the instrumentator's
HTTP metrics, a promtool-valid exposition, its auth, and a deleted session's series gone."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.tiny import TINY, app_settings
from support.waiting import wait_for_session

from service.app import create_app
from service.config import Settings
from service.event_types import EventType
from service.sessions.pool import InlinePool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]

KEY = "metrics-test-key-0123456789"

# DESIGN.md "Prometheus names", as written there.
DESIGN_NAMES = [
    "mcts_continuous_play_games_total",
    "mcts_continuous_play_session_duration_seconds",
    "mcts_continuous_play_elo_estimate",
    "mcts_continuous_play_elo_delta_per_10_games",
    "mcts_continuous_play_training_loss",
    "mcts_continuous_play_positions_learned_total",
    "mcts_continuous_play_buffer_size",
    "mcts_continuous_play_games_per_minute",
    "mcts_continuous_play_white_win_rate",
    "mcts_continuous_play_draw_rate",
    "mcts_continuous_play_move_time_seconds",
    "mcts_continuous_play_game_duration_seconds",
    "mcts_continuous_play_simulations_per_second",
]
HISTOGRAMS = {"mcts_continuous_play_move_time_seconds", "mcts_continuous_play_game_duration_seconds"}
HTTP_NAMES = [
    "http_requests_total",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "http_request_duration_seconds",
    "http_request_duration_highr_seconds",
]

# TINY for 4 games of <= 16 plies, two in flight, evaluated every 2 games
SESSION = {
    **TINY,
    "seed": 5,
    "max_games": 4,
    "max_moves_per_game": 16,
    "selfplay_parallel_games": 2,
    "gumbel_considered": 2,
    "eval_interval_games": 2,
}


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return app_settings(tmp_path, **{"max_concurrent_sessions": 1, **overrides})


class IdleOrchestrator:
    """Stand-in for auth checks: no sessions, no worker."""

    def __init__(self, settings, sessionmaker, pool) -> None:
        self.listeners = []
        self.ready = True

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


@asynccontextmanager
async def client_for(
    tmp_path: Path, orchestrator_factory: Any = IdleOrchestrator, pool: Any = None, **overrides: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings_for(tmp_path, **overrides), pool=pool, orchestrator_factory=orchestrator_factory)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            yield app, client


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def series_of(text: str, session_id: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "session_id"))): s.value
        for s in samples(text)
        if s.labels.get("session_id") == session_id
    }


def promtool_check(text: bytes) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make promtool` (Debian's prometheus package provides it)"
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert proc.returncode == 0, "promtool check metrics rejected /metrics:\n" + (proc.stdout + proc.stderr).decode()


async def test_metrics_of_a_real_session(tmp_path):
    async with client_for(tmp_path, orchestrator_factory=None, pool=InlinePool(1, 1), metrics_export_interval=0.01) as (
        app,
        client,
    ):
        events: list[tuple[str, str, dict]] = []
        app.state.orchestrator.listeners.append(lambda sid, kind, data: events.append((sid, kind, data)))
        r = await client.post("/v1/sessions", json=SESSION)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        body = await wait_for_session(client, sid, lambda b: b["state"] in ("completed", "failed"), timeout=240)
        assert body["state"] == "completed", body

        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.text
        mine = series_of(text, sid)
        names = {name for name, _ in mine}
        for name in DESIGN_NAMES:
            wanted = {name + "_bucket", name + "_count", name + "_sum"} if name in HISTOGRAMS else {name}
            assert wanted <= names, f"{name} has no series for the session in /metrics"
        assert not [n for n in names if n.endswith("_created")]
        present = {s.name for s in samples(text)}
        for name in HTTP_NAMES:
            assert any(n.startswith(name) for n in present), f"instrumentator metric {name} missing"
        assert any(
            s.name == "http_requests_total" and s.labels.get("handler") == "/v1/sessions/{session_id}"
            for s in samples(text)
        )
        promtool_check(r.content)

        # the values are the session's own: compare with the events it reported
        mine_events = [(kind, data) for s, kind, data in events if s == sid]
        games = [d for k, d in mine_events if k == EventType.GAME_FINISHED]
        assert len(games) == 4
        by_result = {"white_win": "1-0", "black_win": "0-1", "draw": "1/2-1/2"}
        for label, result in by_result.items():
            count = sum(g["result"] == result for g in games)
            assert mine[("mcts_continuous_play_games_total", (("result", label),))] == count
        assert mine[("mcts_continuous_play_white_win_rate", ())] == sum(g["result"] == "1-0" for g in games) / 4
        assert mine[("mcts_continuous_play_draw_rate", ())] == sum(g["result"] == "1/2-1/2" for g in games) / 4
        assert mine[("mcts_continuous_play_game_duration_seconds_count", ())] == 4
        assert mine[("mcts_continuous_play_game_duration_seconds_sum", ())] == pytest.approx(
            sum(g["duration_s"] for g in games)
        )
        assert mine[("mcts_continuous_play_move_time_seconds_count", ())] == 4
        steps = [d for k, d in mine_events if k == EventType.LEARNING_STEP]
        assert steps, "the session never learned"
        assert mine[("mcts_continuous_play_positions_learned_total", ())] == steps[-1]["positions_learned"]
        for head in ("policy", "value", "total"):
            assert mine[("mcts_continuous_play_training_loss", (("head", head),))] == steps[-1][f"{head}_loss"]
        evaluations = [d for k, d in mine_events if k == EventType.EVALUATION_FINISHED]
        newest = max(e["generation"] for e in evaluations)
        assert newest >= 2
        assert mine[("mcts_continuous_play_elo_estimate", ())] == evaluations[-1]["ratings"][f"gen{newest}"]["rating"]
        assert mine[("mcts_continuous_play_session_duration_seconds", ())] > 0
        assert mine[("mcts_continuous_play_games_per_minute", ())] > 0

        # a deleted session's series disappear; the families stay
        assert (await client.delete(f"/v1/sessions/{sid}")).status_code == 204
        text = (await client.get("/metrics")).text
        assert series_of(text, sid) == {}
        assert sid not in text
        assert "# TYPE mcts_continuous_play_games_total counter" in text
        promtool_check(text.encode())


async def test_metrics_need_a_key_unless_public(tmp_path):
    async with client_for(tmp_path, api_keys=["other-key", KEY]) as (_, client):
        r = await client.get("/metrics")
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        r = await client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and "# TYPE mcts_continuous_play_games_total counter" in r.text
    async with client_for(tmp_path, api_keys=[KEY], metrics_public=True) as (_, client):
        r = await client.get("/metrics")
        assert r.status_code == 200 and "http_requests_total" in r.text


async def test_no_metrics_route_when_prometheus_is_off(tmp_path):
    async with client_for(tmp_path, enable_prometheus=False) as (app, client):
        assert (await client.get("/metrics")).status_code == 404
        assert app.state.session_metrics is None
