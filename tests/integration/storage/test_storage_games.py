"""Games: compact storage, UNIQUE(session_id, number), pagination, PGN streaming, resume helpers."""

from __future__ import annotations

import io

import chess.pgn
import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from service.config import SessionConfig
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _session(db_sessions) -> str:
    async with db_sessions() as db, db.begin():
        return (await repo.create_session(db, SessionConfig().model_dump(mode="json"), seed=0)).id


async def test_game_round_trip_and_games_done(db_sessions, make_game):
    sid = await _session(db_sessions)
    message = make_game(1, result="0-1", termination="checkmate", moves="f2f3 e7e5 g2g4 d8h4")
    async with db_sessions() as db, db.begin():
        game_id = (await repo.add_game(db, sid, message)).id
    async with db_sessions() as db:
        game = await repo.get_game(db, game_id)
        assert (game.session_id, game.number, game.result, game.termination) == (sid, 1, "0-1", "checkmate")
        assert game.move_list() == message["moves"] and game.moves == "f2f3 e7e5 g2g4 d8h4"
        assert (game.plies, game.adjudicated, game.simulations, game.false_resign) == (4, False, 32, None)
        assert game.pgn == message["pgn"] and game.created_at.tzinfo is not None
        assert [p.tolist() for p in game.policies()] == [p.tolist() for p in message["policies"]]
        assert game.values() == message["root_values"]
        assert game.full_search_flags() == message["full_search"]
        assert len(game.policy) == sum(1 + 2 * len(p) for p in message["policies"])
        assert (await repo.get_session(db, sid)).games_done == 1
        assert await repo.get_game(db, 10**6) is None


async def test_a_duplicate_game_number_is_refused(db_sessions, make_game):
    sid = await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        await repo.add_game(db, sid, make_game(1))
    async with db_sessions() as db:
        with pytest.raises(IntegrityError):
            async with db.begin():
                await repo.add_game(db, sid, make_game(1))
    other = await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        await repo.add_game(db, other, make_game(1))  # the same number in another session is fine
    async with db_sessions() as db:
        assert (await repo.get_session(db, sid)).games_done == 1  # the refused game rolled back its count


async def test_list_games_paginates_in_number_order(db_sessions, make_game):
    sid = await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        for number in (4, 2, 7, 1, 3, 6, 5):
            await repo.add_game(db, sid, make_game(number))
    numbers, cursor, pages = [], None, 0
    async with db_sessions() as db:
        while True:
            rows, cursor = await repo.list_games(db, sid, limit=3, cursor=cursor)
            numbers += [r.number for r in rows]
            pages += 1
            if cursor is None:
                break
        assert numbers == [1, 2, 3, 4, 5, 6, 7] and pages == 3
        assert await repo.max_game_number(db, sid) == 7
        assert await repo.max_game_number(db, "0" * 32) == 0
        assert await repo.list_games(db, "0" * 32) == ([], None)


async def test_pgn_stream_parses_in_order(db_sessions, make_game):
    sid = await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        for number in (3, 1, 2):
            await repo.add_game(db, sid, make_game(number))
    async with db_sessions() as db:
        text = "".join([pgn async for pgn in repo.games_pgn(db, sid, batch=2)])
    stream = io.StringIO(text)
    games = []
    while (game := chess.pgn.read_game(stream)) is not None:
        assert not game.errors
        games.append(game)
    assert [g.headers["Round"] for g in games] == ["1", "2", "3"]
    assert [[m.uci() for m in g.mainline_moves()] for g in games] == [make_game(n)["moves"] for n in (1, 2, 3)]


async def test_newest_games_hold_enough_positions(db_sessions, make_game):
    sid = await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        for number in range(1, 9):
            await repo.add_game(db, sid, make_game(number))
    positions = {n: len(make_game(n)["root_values"]) for n in range(1, 9)}  # every searched ply
    async with db_sessions() as db:
        rows = await repo.newest_games(db, sid, limit_positions=positions[8] + positions[7] + 1, batch=2)
        assert [r.number for r in rows] == [8, 7, 6]
        assert [r.number for r in await repo.newest_games(db, sid, limit_positions=10**6)] == list(range(8, 0, -1))
        assert await repo.newest_games(db, sid, limit_positions=0) == []
        first = rows[0]
        assert np.allclose(np.concatenate(first.policies()), np.concatenate(make_game(8)["policies"]))
