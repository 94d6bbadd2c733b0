"""The lifecycle routes over the real orchestrator and an inline worker pool (a tiny
network playing short games in a thread of this process)."""

from __future__ import annotations

import asyncio
import io
import time

import chess.pgn
import pytest
from api_support import count_rows, running_api

from service.sessions.pool import InlinePool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]

TINY = dict(
    eval_games=2, eval_opponents=["random"], eval_simulations=2,
    chess_preset="tiny", seed=3, max_games=10_000, selfplay_parallel_games=2, max_moves_per_game=16,
    selfplay_simulations=4, fast_simulations=2, gumbel_considered=2, min_games_before_learning=1000,
    checkpoint_interval=1000, torch_threads=1, eval_interval_games=10_000,
)


async def wait_for(api, session_id: str, predicate, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await api.client.get(f"/v1/sessions/{session_id}")).json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, f"timed out; last: {body['state']} {body['games_done']}"
        await asyncio.sleep(0.1)


async def test_lifecycle_on_the_real_orchestrator(database, tmp_path):
    async with running_api(database, tmp_path, orchestrator_factory=None, pool=InlinePool(1, 1),
                           max_concurrent_sessions=1, metrics_export_interval=0.01) as api:
        assert (await api.client.get("/readyz")).status_code == 200
        r = await api.client.post("/v1/sessions", json=TINY)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        base = f"/v1/sessions/{sid}"
        await wait_for(api, sid, lambda b: b["state"] == "running" and b["games_done"] >= 1)

        # a second session waits for the only slot; stopping it ends it at once
        second = (await api.client.post("/v1/sessions", json=TINY)).json()["id"]
        assert (await api.client.get(f"/v1/sessions/{second}")).json()["state"] == "pending"
        assert (await api.client.post(f"/v1/sessions/{second}/pause")).status_code == 409
        r = await api.client.post(f"/v1/sessions/{second}/stop")
        assert r.status_code == 202 and r.json()["state"] == "stopped"
        assert (await api.client.delete(f"/v1/sessions/{second}")).status_code == 204

        r = await api.client.post(f"{base}/pause")
        assert r.status_code == 202 and r.json()["state"] == "paused"
        body = (await api.client.post(f"{base}/pause")).json()
        assert body["status"] == 409 and body["state"] == "paused"
        assert (await api.client.delete(base)).status_code == 409
        r = await api.client.post(f"{base}/resume")
        assert r.status_code == 202 and r.json()["state"] == "running"

        r = await api.client.post(f"{base}/stop")
        assert r.status_code == 202 and r.json()["state"] in ("stopping", "stopped")
        final = await wait_for(api, sid, lambda b: b["state"] == "stopped")
        assert final["finished_at"] and final["scorecard"]["games"] == final["games_done"] >= 1
        assert (await api.client.post(f"{base}/resume")).status_code == 409

        games = (await api.client.get(f"{base}/games", params={"limit": 500})).json()["items"]
        assert [g["number"] for g in games] == list(range(1, final["games_done"] + 1))
        pgn = (await api.client.get(f"{base}/games.pgn")).text
        stream, parsed = io.StringIO(pgn), 0
        while (game := chess.pgn.read_game(stream)) is not None:
            assert not game.errors
            parsed += 1
        assert parsed == final["games_done"]

        assert (await api.client.delete(base)).status_code == 204
        assert (await api.client.get(base)).status_code == 404
        assert (await count_rows(api))["games"] == 0
