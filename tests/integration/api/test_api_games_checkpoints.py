"""Games (JSON pages, PGN downloads) and checkpoint weight downloads."""

from __future__ import annotations

import io

import chess
import chess.pgn
import pytest
import torch
from api_support import assert_problem, game_message, seed_checkpoint, seed_session

from service.engine import network
from service.storage import models

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def read_games(text: str) -> list[chess.pgn.Game]:
    stream, games = io.StringIO(text), []
    while (game := chess.pgn.read_game(stream)) is not None:
        assert not game.errors, game.errors
        games.append(game)
    return games


async def test_games_pages_and_game_routes(api):
    session_id = await seed_session(api, games=7, seed=3)
    other = await seed_session(api, games=2)
    numbers, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await api.client.get(f"/v1/sessions/{session_id}/games", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        numbers += [g["number"] for g in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and numbers == list(range(1, 8))
    assert_problem(await api.client.get(f"/v1/sessions/{session_id}/games", params={"cursor": "%%%"}), 400)
    assert_problem(await api.client.get(f"/v1/sessions/{session_id}/games", params={"cursor": "Wy0xXQ"}), 400)
    assert_problem(await api.client.get(f"/v1/sessions/{session_id}/games", params={"limit": 0}), 422)

    first = (await api.client.get(f"/v1/sessions/{session_id}/games", params={"limit": 1})).json()["items"][0]
    expected = game_message(1, seed=3)
    assert first["moves"] == expected["moves"] and first["plies"] == len(expected["moves"])
    assert first["result"] == expected["result"] and first["session_id"] == session_id
    assert (await api.client.get(f"/v1/games/{first['id']}")).json() == first

    r = await api.client.get(f"/v1/games/{first['id']}.pgn")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-chess-pgn")
    assert "attachment" in r.headers["content-disposition"]
    (game,) = read_games(r.text)
    assert [m.uci() for m in game.mainline_moves()] == expected["moves"]
    assert game.headers["Result"] == expected["result"]

    r = await api.client.get(f"/v1/sessions/{session_id}/games.pgn")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-chess-pgn")
    assert r.headers["content-disposition"] == f'attachment; filename="{session_id}.pgn"'
    games = read_games(r.text)
    assert [g.headers["Round"] for g in games] == [str(n) for n in range(1, 8)]
    assert [[m.uci() for m in g.mainline_moves()] for g in games] == [
        game_message(n, seed=3)["moves"] for n in range(1, 8)
    ]
    for g in games:  # every move replays legally
        board = g.board()
        for move in g.mainline_moves():
            assert board.is_legal(move)
            board.push(move)
    assert len(read_games((await api.client.get(f"/v1/sessions/{other}/games.pgn")).text)) == 2
    empty = await seed_session(api)
    r = await api.client.get(f"/v1/sessions/{empty}/games.pgn")
    assert r.status_code == 200 and r.text == ""
    assert (await api.client.get(f"/v1/sessions/{empty}/games")).json() == {"items": [], "next_cursor": None}


BAD_GAME_IDS = [
    ("999999", 404),
    ("1", 404),
    (str(2**31 - 1), 404),
    (str(2**31), 404),
    (str(2**63 - 1), 404),
    (str(2**63), 422),
    ("9" * 200, 422),
    ("-3", 422),
    ("0", 422),
    ("abc", 422),
    ("1.5", 422),
]


async def test_unknown_or_bad_game_ids(api):
    for suffix in ["", ".pgn"]:
        for game_id, status in BAD_GAME_IDS:
            body = assert_problem(await api.client.get(f"/v1/games/{game_id}{suffix}"), status)
            if status == 422:
                assert body["errors"][0]["field"] == "game_id"


async def test_weights_download_loads(api):
    session_id = await seed_session(api)
    checkpoint_id = await seed_checkpoint(api, session_id, generation=2, games=20)
    r = await api.client.get(f"/v1/checkpoints/{checkpoint_id}/weights")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert f'filename="{session_id}-gen-0002.safetensors"' in r.headers["content-disposition"]
    path = api.settings.checkpoint_dir / "download.safetensors"
    path.write_bytes(r.content)
    net, header = network.load_weights(path)
    assert header["generation"] == 2 and header["preset"] == "tiny"
    original = network.build_network("tiny", seed=2)
    for name, tensor in original.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor), name
    import hashlib

    assert r.headers["x-checkpoint-sha256"] == hashlib.sha256(r.content).hexdigest()


async def test_weights_unknown_missing_or_outside_checkpoint_dir(api, tmp_path):
    session_id = await seed_session(api)
    for checkpoint_id, status in [("12345", 404), (str(2**63), 422), ("x", 422), ("-1", 422)]:
        assert_problem(await api.client.get(f"/v1/checkpoints/{checkpoint_id}/weights"), status)

    checkpoint_id = await seed_checkpoint(api, session_id, generation=0)
    (api.settings.checkpoint_dir / session_id / "gen-0000.safetensors").unlink()
    assert_problem(await api.client.get(f"/v1/checkpoints/{checkpoint_id}/weights"), 404)

    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"not for download")
    async with api.sessionmaker() as db, db.begin():  # a row naming a path outside CHECKPOINT_DIR
        row = models.CheckpointRow(
            session_id=session_id,
            generation=1,
            games=0,
            file_name="../secret.safetensors",
            state_file_name="x",
            sha256="0" * 64,
        )
        db.add(row)
        await db.flush()
        bad_id = row.id
    r = await api.client.get(f"/v1/checkpoints/{bad_id}/weights")
    assert_problem(r, 404)
    assert b"not for download" not in r.content
