"""Ratings never mix yardsticks (issue #24 item 3), on SQLite and PostgreSQL: a session's
evaluation page and GET /v1/ratings fit one list per yardstick, newest first, and name the
yardstick of every rating and every match."""

from __future__ import annotations

import pytest
from api_support import seed_checkpoint, seed_session

from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

OLD, NEW = "cap150/material3", "cap150/stockfish300cp@d10"


async def evaluate(api, session_id: str, checkpoint_id: int, opponent: str, wdl: tuple[int, int, int], yardstick: str):
    async with api.sessionmaker() as db, db.begin():
        wins, draws, losses = wdl
        await repo.add_evaluation(
            db, session_id, checkpoint_id, opponent, wins=wins, draws=draws, losses=losses, yardstick=yardstick
        )


def by_yardstick(rows: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        out.setdefault(row["yardstick"], {})[row["player"]] = row["rating"]
    return out


async def test_session_and_seed_ratings_are_one_list_per_yardstick(api):
    session_id = await seed_session(api, games=0, state="completed", seed=3)
    await seed_checkpoint(api, session_id, 0)
    gen1 = await seed_checkpoint(api, session_id, 1, games=100)
    gen2 = await seed_checkpoint(api, session_id, 2, games=200)
    # material adjudication flatters gen1 against random; under Stockfish's gen2 only draws it
    await evaluate(api, session_id, gen1, "gen0", (8, 1, 1), OLD)
    await evaluate(api, session_id, gen1, "random", (10, 0, 0), OLD)
    await evaluate(api, session_id, gen2, "gen0", (6, 2, 2), NEW)
    await evaluate(api, session_id, gen2, "random", (5, 0, 5), NEW)
    await evaluate(api, session_id, gen2, "stockfish-s0-d1", (0, 0, 10), NEW)

    page = (await api.client.get(f"/v1/sessions/{session_id}/evaluations")).json()
    assert [(e["opponent"], e["yardstick"]) for e in page["items"]] == [
        ("gen0", OLD),
        ("random", OLD),
        ("gen0", NEW),
        ("random", NEW),
        ("stockfish-s0-d1", NEW),
    ]
    assert [r["yardstick"] for r in page["ratings"]] == [NEW] * 4 + [OLD] * 3  # the newest yardstick first
    lists = by_yardstick(page["ratings"])
    assert set(lists[NEW]) == {"gen0", "gen2", "random", "stockfish-s0-d1"}
    assert set(lists[OLD]) == {"gen0", "gen1", "random"}
    assert lists[NEW]["gen0"] == pytest.approx(1500.0) and lists[OLD]["gen0"] == pytest.approx(1500.0)
    assert lists[NEW]["random"] > lists[OLD]["random"]  # each list fitted over its own matches only

    ratings = (await api.client.get("/v1/ratings", params={"seed": 3})).json()
    assert ratings["seed"] == 3 and ratings["anchor"] == "gen0"
    seed_lists = by_yardstick(ratings["ratings"])
    assert set(seed_lists[NEW]) == {"gen0", f"{session_id}/gen2", "random", "stockfish-s0-d1"}
    assert set(seed_lists[OLD]) == {"gen0", f"{session_id}/gen1", "random"}
    assert seed_lists[NEW]["random"] == pytest.approx(lists[NEW]["random"])


async def test_the_report_shows_each_ratings_yardstick_and_charts_the_current_one(api):
    session_id = await seed_session(api, games=0, state="completed", seed=4)
    await seed_checkpoint(api, session_id, 0)
    gen1 = await seed_checkpoint(api, session_id, 1, games=100)
    gen2 = await seed_checkpoint(api, session_id, 2, games=200)
    await evaluate(api, session_id, gen1, "gen0", (8, 1, 1), OLD)
    await evaluate(api, session_id, gen1, "random", (10, 0, 0), OLD)
    await evaluate(api, session_id, gen2, "gen0", (6, 2, 2), NEW)
    await evaluate(api, session_id, gen2, "stockfish-s0-d1", (0, 1, 9), NEW)

    report = (await api.client.get(f"/v1/sessions/{session_id}/report.json")).json()
    assert [(r["yardstick"], r["player"]) for r in report["rating_list"]][:3] == [
        (NEW, "stockfish-s0-d1"),
        (NEW, "gen2"),
        (NEW, "gen0"),
    ]
    assert {(r["yardstick"], r["player"]) for r in report["rating_list"][3:]} == {
        (OLD, "gen1"),
        (OLD, "gen0"),
        (OLD, "random"),
    }
    assert [e["yardstick"] for e in report["evaluations"]] == [OLD, OLD, NEW, NEW]
    new = {r["player"]: r["rating"] for r in report["rating_list"] if r["yardstick"] == NEW}
    assert report["elo"]["yardstick"] == NEW and report["elo"]["rating"] == pytest.approx(new["gen2"])
    # the charts draw the current yardstick's list only: gen1 was rated under the old one
    assert [p["generation"] for p in report["series"]["elo"]] == [0, 2]
    assert {a["player"] for a in report["series"]["anchors"]} == {"stockfish-s0-d1"}

    page = (await api.client.get(f"/v1/sessions/{session_id}/report.html")).text
    assert "Yardstick" in page and f"<code>{NEW}</code>" in page and f"<code>{OLD}</code>" in page
