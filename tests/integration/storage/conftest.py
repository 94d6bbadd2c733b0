"""Helpers of the storage tests: worker-style game messages without playing a game."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import chess
import chess.pgn
import numpy as np
import pytest

from service.storage.codec import legal_moves_by_ply

# Short legal games (UCI), cycled through by `make_game`.
OPENINGS = [
    "e2e4 e7e5 g1f3 b8c6 f1b5 a7a6",
    "d2d4 d7d5 c2c4 e7e6 b1c3 g8f6 c1g5",
    "f2f3 e7e5 g2g4 d8h4",
    "c2c4 e7e5 b1c3 g8f6 g2g3",
]


def game_message(
    number: int, moves: str | None = None, result: str = "1/2-1/2", termination: str = "move_cap"
) -> dict[str, Any]:
    """A message shaped like `service.sessions.worker.game_message` for a fixed legal game:
    uniform policies over each position's legal moves, every other ply a full search."""
    uci = (moves or OPENINGS[number % len(OPENINGS)]).split()
    legal = legal_moves_by_ply(uci)[: len(uci)]
    game = chess.pgn.Game()
    game.headers["Round"] = str(number)
    game.headers["Result"] = result
    game.add_line(chess.Move.from_uci(m) for m in uci)
    out = io.StringIO()
    print(game, file=out, end="\n\n")
    return {
        "number": number,
        "moves": uci,
        "result": result,
        "termination": termination,
        "adjudicated": termination == "move_cap",
        "plies": len(uci),
        "temperature": 1.0,
        "policies": [np.full(len(m), 1 / len(m), dtype=np.float16) for m in legal],
        "root_values": [0.125 * ((-1) ** i) for i in range(len(uci))],
        "full_search": [i % 2 == 0 for i in range(len(uci))],
        "move_seconds": [0.01] * len(uci),
        "simulations": 8 * len(uci),
        "duration_s": 0.5,
        "material": 0,
        "false_resign": None,
        "pgn": out.getvalue(),
    }


@pytest.fixture
def make_game() -> Callable[..., dict[str, Any]]:
    """`make_game(number, moves=None, ...)`: a worker-style game message."""
    return game_message
