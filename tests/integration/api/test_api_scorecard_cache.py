"""The read-side caches of the session routes (service/api/caches.py), on SQLite and
PostgreSQL: the scorecard summed incrementally, the games-list pages and the session's Elo
always answer what a fresh computation from the database answers."""

from __future__ import annotations

import asyncio

import pytest
from api_support import game_message, seed_checkpoint, seed_session
from sqlalchemy import select, update

from service.api import caches
from service.storage import models
from service.storage import repositories as repo
from service.storage.queries import game_sums

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def add_games(api, session_id: str, numbers) -> None:
    async with api.sessionmaker() as db, db.begin():
        for number in numbers:
            await repo.add_game(db, session_id, game_message(number, plies=4 + number % 7))


async def fresh_card(api, session_id: str) -> dict:
    async with api.sessionmaker() as db:
        return caches.scorecard_of(await game_sums(db, session_id)).model_dump()


async def newest_rated(db, session_id: str) -> tuple[models.EvaluationRow, int]:
    """From scratch: the session's newest rated evaluation (highest generation, then newest
    row) with its generation."""
    query = (
        select(models.EvaluationRow, models.CheckpointRow.generation)
        .join(models.CheckpointRow, models.EvaluationRow.checkpoint_id == models.CheckpointRow.id)
        .where(models.EvaluationRow.session_id == session_id, models.EvaluationRow.elo.is_not(None))
        .order_by(models.CheckpointRow.generation.desc(), models.EvaluationRow.id.desc())
        .limit(1)
    )
    row = (await db.execute(query)).one()
    return row[0], row[1]


def cache(api) -> caches.ScorecardCache:
    return caches.ScorecardCache.for_app(api.app)


async def test_scorecard_is_summed_incrementally_and_only_when_games_change(api):
    session_id = await seed_session(api, games=5, state="running")
    url = f"/v1/sessions/{session_id}"
    first = (await api.client.get(url)).json()["scorecard"]
    assert first == await fresh_card(api, session_id) and first["games"] == 5
    runs = cache(api).queries
    for route in (url, url + "/scorecard", url):  # no new game: no scorecard query
        r = await api.client.get(route)
        assert r.status_code == 200
    assert cache(api).queries == runs

    await add_games(api, session_id, [6, 7, 8, 9])
    card = (await api.client.get(url + "/scorecard")).json()
    assert card == await fresh_card(api, session_id) and card["games"] == 9
    assert cache(api).queries == runs + 1  # one query, for the four new games only
    detail = (await api.client.get(url)).json()
    assert detail["scorecard"] == card and detail["games_done"] == 9

    other = await seed_session(api, games=2, state="running")  # sessions are kept apart
    assert (await api.client.get(f"/v1/sessions/{other}")).json()["scorecard"] == await fresh_card(api, other)
    assert (await api.client.get(url)).json()["scorecard"] == card


async def test_concurrent_readers_never_count_a_game_twice(api):
    session_id = await seed_session(api, games=3, state="running")
    url = f"/v1/sessions/{session_id}/scorecard"
    await api.client.get(url)
    for batch in ([4, 5], [6], [7, 8, 9, 10]):
        await add_games(api, session_id, batch)
        cards = await asyncio.gather(*(api.client.get(url) for _ in range(12)))
        truth = await fresh_card(api, session_id)
        assert all(c.json() == truth for c in cards)


async def test_a_game_stored_out_of_id_order_is_not_missed(api):
    """Sums go by game id; a game committed with an id below the last one summed (some
    other writer) leaves games_done ahead of the sums, and the card is summed from scratch."""
    session_id = await seed_session(api, games=0, state="running")

    async def put(number: int, game_id: int) -> None:
        async with api.sessionmaker() as db, db.begin():
            row = repo.game_row(session_id, game_message(number, plies=3 + number))
            row.id = game_id
            db.add(row)
            await db.flush()
            await db.execute(
                update(models.SessionRow)
                .where(models.SessionRow.id == session_id)
                .values(games_done=models.SessionRow.games_done + 1)
            )

    await put(1, 100)
    await put(2, 110)
    url = f"/v1/sessions/{session_id}/scorecard"
    assert (await api.client.get(url)).json()["games"] == 2
    await put(3, 105)  # below the last id summed
    card = (await api.client.get(url)).json()
    assert card == await fresh_card(api, session_id) and card["games"] == 3


async def test_games_pages_follow_every_stored_game(api):
    """Games are numbered when they start and stored when they end: a game can land inside
    a page already served; the next answer has it."""
    session_id = await seed_session(api, games=0, state="running")
    await add_games(api, session_id, [1, 2, 4, 5])
    url = f"/v1/sessions/{session_id}/games"
    page = (await api.client.get(url, params={"limit": 3})).json()
    assert [g["number"] for g in page["items"]] == [1, 2, 4] and page["next_cursor"]
    again = await api.client.get(url, params={"limit": 3})
    assert again.json() == page and again.headers["content-type"] == "application/json"
    await add_games(api, session_id, [3])
    page = (await api.client.get(url, params={"limit": 3})).json()
    assert [g["number"] for g in page["items"]] == [1, 2, 3]
    rest = (await api.client.get(url, params={"limit": 3, "cursor": page["next_cursor"]})).json()
    assert [g["number"] for g in rest["items"]] == [4, 5] and rest["next_cursor"] is None
    # each item is the game's own JSON, without the PGN or the search targets
    one = (await api.client.get(f"/v1/games/{rest['items'][0]['id']}")).json()
    assert one == rest["items"][0] and "pgn" not in one and "policy" not in one

    assert (await api.client.post(f"/v1/sessions/{session_id}/stop")).status_code == 202
    assert (await api.client.delete(f"/v1/sessions/{session_id}")).status_code == 204
    assert (await api.client.get(url, params={"limit": 3})).status_code == 404
    assert (await api.client.get(f"/v1/sessions/{session_id}/scorecard")).status_code == 404


async def test_elo_follows_the_newest_rated_evaluation(api):
    session_id = await seed_session(api, games=4, state="running")
    url = f"/v1/sessions/{session_id}"
    assert (await api.client.get(url)).json()["elo"] is None
    gen1 = await seed_checkpoint(api, session_id, generation=1, games=2)
    gen2 = await seed_checkpoint(api, session_id, generation=2, games=4)
    async with api.sessionmaker() as db, db.begin():
        await repo.add_evaluation(
            db, session_id, gen2, "random", wins=2, draws=0, losses=0, elo=1700.0, elo_low=1600.0, elo_high=1800.0
        )
    elo = (await api.client.get(url)).json()["elo"]
    assert (elo["rating"], elo["generation"], elo["checkpoint_id"]) == (1700.0, 2, gen2)
    async with api.sessionmaker() as db, db.begin():  # a later row for an older generation
        await repo.add_evaluation(
            db, session_id, gen1, "greedy", wins=1, draws=0, losses=1, elo=1550.0, elo_low=1450.0, elo_high=1650.0
        )
        await repo.add_evaluation(db, session_id, gen2, "greedy", wins=0, draws=2, losses=0)  # unrated
    assert (await api.client.get(url)).json()["elo"] == elo  # still gen 2's newest rated row
    async with api.sessionmaker() as db, db.begin():
        await repo.add_evaluation(
            db, session_id, gen2, "gen0", wins=3, draws=1, losses=0, elo=1720.0, elo_low=1650.0, elo_high=1790.0
        )
    elo = (await api.client.get(url)).json()["elo"]
    assert (elo["rating"], elo["opponent"]) == (1720.0, "gen0")
    async with api.sessionmaker() as db:
        assert caches.elo_of(*await newest_rated(db, session_id)).model_dump(mode="json") == elo


async def test_metrics_follow_the_newest_snapshot_unless_live(api):
    session_id = await seed_session(api, games=1, state="completed")
    url = f"/v1/sessions/{session_id}"
    assert (await api.client.get(url)).json()["metrics"] is None
    for n in (1, 2, 3):
        async with api.sessionmaker() as db, db.begin():
            await repo.add_metric_snapshot(db, session_id, {"simulations_per_second": float(n)})
        detail = (await api.client.get(url)).json()
        assert detail["metrics"] == {"simulations_per_second": float(n)} and detail["metrics_at"]
        async with api.sessionmaker() as db:
            newest = await repo.latest_metric_snapshot(db, session_id)
        assert detail["metrics_at"].replace("Z", "+00:00") == newest.ts.isoformat()
    api.orchestrator.live_stats[session_id] = {"simulations_per_second": 99.0}
    detail = (await api.client.get(url)).json()
    assert detail["metrics"] == {"simulations_per_second": 99.0} and detail["metrics_at"] is None


async def test_session_view_changes_with_anything_it_shows(api):
    """GET /v1/sessions/{id} answers from a cache keyed by the session's version; every kind
    of change shows at once."""
    session_id = await seed_session(api, games=2, state="running")
    url = f"/v1/sessions/{session_id}"
    first = await api.client.get(url)
    again = await api.client.get(url)
    assert again.content == first.content and again.headers["content-type"] == "application/json"

    assert (await api.client.post(f"{url}/pause")).status_code == 202  # through the API
    assert (await api.client.get(url)).json()["state"] == "paused"
    async with api.sessionmaker() as db, db.begin():  # straight to the database
        await repo.set_state(db, session_id, "running", stop_reason="testing")
    body = (await api.client.get(url)).json()
    assert (body["state"], body["stop_reason"]) == ("running", "testing")
    await add_games(api, session_id, [3])
    body = (await api.client.get(url)).json()
    assert body["games_done"] == 3 and body["scorecard"]["games"] == 3
    api.orchestrator.live_stats[session_id] = {"simulations_per_second": 5.0}
    assert (await api.client.get(url)).json()["metrics"] == {"simulations_per_second": 5.0}
    api.orchestrator.live_stats[session_id] = {"simulations_per_second": 6.0}
    assert (await api.client.get(url)).json()["metrics"] == {"simulations_per_second": 6.0}
    checkpoint_id = await seed_checkpoint(api, session_id, generation=1, games=3)
    async with api.sessionmaker() as db, db.begin():
        await repo.add_evaluation(
            db,
            session_id,
            checkpoint_id,
            "random",
            wins=1,
            draws=0,
            losses=0,
            elo=1600.0,
            elo_low=1500.0,
            elo_high=1700.0,
        )
    assert (await api.client.get(url)).json()["elo"]["rating"] == 1600.0
    del api.orchestrator.live_stats[session_id]
    async with api.sessionmaker() as db, db.begin():
        await repo.add_metric_snapshot(db, session_id, {"games_per_minute": 7.0})
    assert (await api.client.get(url)).json()["metrics"] == {"games_per_minute": 7.0}
