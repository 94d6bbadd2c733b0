"""`repositories.newest_games` (the replay buffer rebuilt after a restart), on SQLite and
PostgreSQL: it stops at the positions the buffer holds (every searched ply of a game goes
into the buffer, policy target or not), so a session played with FULL_SEARCH_PROB=0 does
not load every stored game (issue 21, item 6)."""

from __future__ import annotations

import pytest

from service.config import SessionConfig
from service.engine.selfplay import replay_samples
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_games_without_full_search_plies_are_bounded_by_positions(db_sessions, make_game):
    async with db_sessions() as db, db.begin():
        sid = (await repo.create_session(db, SessionConfig().model_dump(mode="json"), seed=0)).id
        messages = {}
        for number in range(1, 41):
            message = make_game(number)
            message["full_search"] = [False] * message["plies"]
            messages[number] = message
            await repo.add_game(db, sid, message)

    def positions(number: int) -> int:  # what the game gives the replay buffer
        m = messages[number]
        return len(replay_samples(m["moves"], m["policies"], m["full_search"], m["result"], 0, 3, 0.0))

    async with db_sessions() as db:
        for limit in (1, 7, 30, 100):
            rows = await repo.newest_games(db, sid, limit, batch=3)
            numbers = [r.number for r in rows]
            assert numbers == list(range(40, 40 - len(numbers), -1))  # newest first, no gap
            held = [positions(n) for n in numbers]
            assert sum(held) >= limit  # the buffer fills ...
            assert sum(held[:-1]) < limit  # ... and no game beyond the one that fills it is read
        everything = await repo.newest_games(db, sid, 10**6)
        assert [r.number for r in everything] == list(range(40, 0, -1))
        assert await repo.newest_games(db, sid, 0) == []
