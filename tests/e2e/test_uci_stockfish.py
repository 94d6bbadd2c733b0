"""A short match of the UCI engine (`python -m service.uci`, behind `continuous-play uci`)
against Debian's `stockfish` at a limited strength, both behind `players.UciPlayer` and played
by `players.play_game`: the code path evaluation uses for an external UCI opponent.

Stockfish is part of the project's environment (the Makefile's install step runs
`apt-get install stockfish`): when it is missing this test FAILS, it never skips."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import chess
import chess.engine
import pytest

from service.engine import network
from service.engine.players import UciPlayer, play_game

pytestmark = pytest.mark.e2e

TARGET_ELO = 1320  # the floor of newer Stockfish; Debian's 15.1 accepts 1350 at least
MAX_PLIES = 200


def find_stockfish() -> str:
    found = shutil.which("stockfish")
    if found is None and os.access("/usr/games/stockfish", os.X_OK):
        found = "/usr/games/stockfish"
    if found is None:
        pytest.fail(
            "Debian's stockfish is not installed (looked on PATH and in /usr/games): "
            "the Makefile's install step installs it (apt-get install -y stockfish)"
        )
    return found


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("uci-match") / "tiny-gen0.safetensors"
    network.save_weights(network.build_network("tiny", 0), path, generation=0, seed=0)
    return path


def test_short_match_against_limited_stockfish(checkpoint):
    stockfish_path = find_stockfish()
    ours = UciPlayer(
        [sys.executable, "-m", "service.uci", "--checkpoint", str(checkpoint), "--threads", "1"],
        limit=chess.engine.Limit(nodes=16),
        name="continuous-play",
    )
    try:
        stockfish = UciPlayer(
            [stockfish_path],
            options={"UCI_LimitStrength": True, "Threads": 1, "Hash": 16},
            limit=chess.engine.Limit(time=0.02),
            name="stockfish",
        )
    except BaseException:
        ours.close()
        raise
    with ours, stockfish:
        elo = stockfish.engine.options["UCI_Elo"]
        stockfish.engine.configure({"UCI_Elo": max(TARGET_ELO, elo.min)})
        assert ours.engine.id["name"].startswith("continuous-play")
        results = []
        for white, black in ((ours, stockfish), (stockfish, ours)):
            game = play_game(white, black, max_plies=MAX_PLIES, adjudication="material", margin=3)
            board = chess.Board()
            for move in game.moves:
                assert move in board.legal_moves, f"illegal {move} in {board.fen()}"
                board.push(move)
            assert game.result in ("1-0", "0-1", "1/2-1/2")
            if game.termination == "move_cap":
                assert len(game.moves) == MAX_PLIES
            else:
                assert game.termination in (
                    "checkmate",
                    "stalemate",
                    "insufficient_material",
                    "fifty_moves",
                    "threefold_repetition",
                )
                assert board.is_game_over(claim_draw=True)
            results.append((white.name, game.result, game.termination, len(game.moves)))
        print(f"stockfish UCI_Elo {max(TARGET_ELO, elo.min)}: {results}")


def test_evaluation_match_against_stockfish_through_the_arena():
    """What a session's evaluation runs for EVAL_OPPONENTS=uci: the arena's paired openings,
    our net searching, Stockfish found as EVAL_UCI_ENGINE=stockfish (PATH or /usr/games)."""
    from service.engine import arena
    from service.sessions.evaluation import uci_command

    find_stockfish()
    candidate = arena.SearchSide(network.Evaluator(network.build_network("tiny", 0)), simulations=8)
    stockfish = UciPlayer(
        uci_command("stockfish"),
        options={"UCI_LimitStrength": True, "UCI_Elo": 1350},
        limit=chess.engine.Limit(time=0.02),
    )
    with stockfish:
        result = arena.play_match(candidate, stockfish, pairs=1, max_plies=60)
    assert len(result.games) == 2 and sum(result.pentanomial()) == 1
    assert [g.candidate_white for g in result.games] == [True, False]
    for game in result.games:
        board = chess.Board()
        for uci in game.moves:
            assert chess.Move.from_uci(uci) in board.legal_moves
            board.push_uci(uci)
