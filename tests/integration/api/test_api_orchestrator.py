"""The lifecycle routes over the real orchestrator and an inline worker pool (a tiny
network playing short games in a thread of this process)."""

from __future__ import annotations

import io

import chess.pgn
import pytest
from api_support import count_rows, running_api
from support.tiny import TINY
from support.waiting import wait_for_session

from service.sessions.pool import InlinePool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]

# TINY with games of <= 16 plies, two in flight, and no learning and no checkpoint but
# generation 0 before the stop (MAX_GAMES out of reach: the test stops it)
SESSION = {
    **TINY,
    "seed": 3,
    "max_games": 10_000,
    "selfplay_parallel_games": 2,
    "max_moves_per_game": 16,
    "gumbel_considered": 2,
    "min_games_before_learning": 1000,
    "checkpoint_interval": 1000,
}


async def test_lifecycle_on_the_real_orchestrator(database, tmp_path):
    async with running_api(
        database,
        tmp_path,
        orchestrator_factory=None,
        pool=InlinePool(1, 1),
        max_concurrent_sessions=1,
        metrics_export_interval=0.01,
    ) as api:
        assert (await api.client.get("/readyz")).status_code == 200
        r = await api.client.post("/v1/sessions", json=SESSION)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        base = f"/v1/sessions/{sid}"
        await wait_for_session(api.client, sid, lambda b: b["state"] == "running" and b["games_done"] >= 1)

        # a second session waits for the only slot; stopping it ends it at once
        second = (await api.client.post("/v1/sessions", json=SESSION)).json()["id"]
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
        final = await wait_for_session(api.client, sid, lambda b: b["state"] == "stopped")
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


EVALUATED = {
    **SESSION,
    "max_games": 4,
    "eval_interval_games": 2,
    "eval_games": 4,
    "eval_opponents": ["gen0", "random", "greedy"],
    "eval_simulations": 4,
    "min_games_before_learning": 2,
    "checkpoint_interval": 2,
}


async def test_evaluations_ratings_and_elo_through_the_api(database, tmp_path):
    """Every EVAL_INTERVAL_GAMES and at the end the newest checkpoint plays each anchor over
    paired openings; the session's rating list anchors gen0 at ELO_ANCHOR."""
    async with running_api(
        database,
        tmp_path,
        orchestrator_factory=None,
        pool=InlinePool(1, 1),
        max_concurrent_sessions=1,
        elo_anchor=1500.0,
    ) as api:
        sid = (await api.client.post("/v1/sessions", json=EVALUATED)).json()["id"]
        body = await wait_for_session(api.client, sid, lambda b: b["state"] in ("completed", "failed"), timeout=100)
        assert body["state"] == "completed", body
        evals = (await api.client.get(f"/v1/sessions/{sid}/evaluations")).json()
        rows = evals["items"]
        # checkpoints every 2 games: gen 1 after game 2, gen 2 after game 4; each plays gen0, random,
        # greedy, and gen 2 also its predecessor (gen 1) for its SPRT verdict
        assert [(r["generation"], r["opponent"]) for r in rows] == [
            (1, "gen0"),
            (1, "random"),
            (1, "greedy"),
            (2, "gen0"),
            (2, "random"),
            (2, "greedy"),
            (2, "gen1"),
        ]
        for r in rows:
            assert r["yardstick"] == "cap150/stockfish300cp@d10"  # EVAL_ADJUDICATION=auto, stockfish installed
            assert r["wins"] + r["draws"] + r["losses"] == r["games"] == 4
            assert sum(r["pentanomial"]) == 2
            assert r["elo_low"] <= r["elo"] <= r["elo_high"]
        assert rows[0]["sprt"]["state"] in ("accepted", "rejected", "continue")  # gen 1 against gen 0
        assert rows[-1]["sprt"]["against_generation"] == 1
        ratings = {r["player"]: r for r in evals["ratings"]}
        assert ratings["gen0"]["rating"] == 1500.0
        assert {r["yardstick"] for r in evals["ratings"]} == {"cap150/stockfish300cp@d10"}
        assert {"gen1", "gen2", "random", "greedy"} <= set(ratings)
        assert body["elo"] is not None and body["elo"]["rating"] == pytest.approx(ratings["gen2"]["rating"])
        across = (await api.client.get("/v1/ratings", params={"seed": EVALUATED["seed"]})).json()
        assert across["anchor"] == "gen0" and across["anchor_rating"] == 1500.0
        assert {f"{sid}/gen2", "gen0", "random"} <= {r["player"] for r in across["ratings"]}
        assert (await api.client.get("/v1/ratings", params={"seed": -1})).status_code == 422


@pytest.mark.parametrize("state", ["running", "paused"])
async def test_actions_on_a_session_another_process_runs_answer_409(database, tmp_path, state):
    """Item 4 of issue #21: a second `serve` on the same database may not drive a session that a
    live process owns (its lease); the answer says who owns it, and nothing changes."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from service.storage import repositories as repo
    from service.storage.models import SessionRow

    async with running_api(database, tmp_path, orchestrator_factory=None, pool=InlinePool(1, 1)) as api:
        async with api.sessionmaker() as db:
            sid = (await repo.create_session(db, api.settings.session_config(**SESSION).model_dump(mode="json"), 3)).id
            await repo.set_state(db, sid, state)
            until = datetime.now(timezone.utc) + timedelta(hours=1)
            await db.execute(
                update(SessionRow)
                .where(SessionRow.id == sid)
                .values(owner="other-host.example:77:0123456789ab", lease_expires_at=until)
            )
            await db.commit()
        for action in ("pause", "resume", "stop"):
            r = await api.client.post(f"/v1/sessions/{sid}/{action}")
            assert r.status_code == 409, (action, r.text)
            problem = r.json()
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "run by another process" in problem["detail"] and "other-host.example" in problem["detail"]
            assert problem["state"] == state
        assert (await api.client.get(f"/v1/sessions/{sid}")).json()["state"] == state
