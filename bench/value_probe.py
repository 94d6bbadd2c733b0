"""Does a checkpoint's value head know material yet? Its value on fixed positions, by the
material balance of the side to move, and whether it sees a piece left hanging.

Beating the material-greedy anchor needs a value that counts material (bench/search_ceiling.py:
the search with a value that knows material scores 77.5% against greedy at 32 simulations);
this probe says how far a learned value head is from that. Positions come from seeded
random-mover games (so every material balance occurs), the same set for every checkpoint:

- `material_correlation`: Pearson correlation of the value (side to move's view) with the
  material balance (P1 N3 B3 R5 Q9), over positions with at least one side up material;
- `value_by_balance`: mean value per balance bucket (<= -5, -4..-2, -1..+1, +2..+4, >= +5);
- `hanging`: positions where the side to move can capture an undefended piece of value
  >= 3; the value there minus the value of the same position with that capture played
  and the turn handed back; `gap` (after - before) near 0 means the head already credits
  the free piece, a gap as large as the capture's own worth means it only counts material.

    python bench/value_probe.py CHECKPOINT [CHECKPOINT ...]   # one JSON object
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import chess
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.engine import network  # noqa: E402
from service.engine.encoding import encode_boards  # noqa: E402
from service.engine.mcts import repetitions  # noqa: E402
from service.engine.players import material_gain  # noqa: E402
from service.engine.selfplay import material_balance  # noqa: E402

BUCKETS = ((-99, -5), (-4, -2), (-1, 1), (2, 4), (5, 99))


def positions(games: int = 120, seed: int = 0) -> list[chess.Board]:
    """Positions from seeded random games, every 4th ply from ply 8 on."""
    rng = random.Random(seed)
    out = []
    for _ in range(games):
        board = chess.Board()
        while not board.is_game_over() and board.ply() < 160:
            board.push(rng.choice(list(board.legal_moves)))
            if board.ply() >= 8 and board.ply() % 4 == 0 and not board.is_game_over():
                out.append(board.copy())
    return out


def _free_capture(board: chess.Board) -> chess.Move | None:
    """A capture of an undefended piece worth >= 3 that does not leave the king in check."""
    for move in board.legal_moves:
        if material_gain(board, move) >= 3 and not board.is_attacked_by(not board.turn, move.to_square):
            return move
    return None


def values(evaluator: network.Evaluator, boards: list[chess.Board]) -> np.ndarray:
    planes = encode_boards(boards, [repetitions(b) for b in boards])
    out = []
    for i in range(0, len(planes), 256):
        out.append(evaluator.evaluate(planes[i : i + 256])[1])
    return np.concatenate(out)


def probe(path: str | Path, boards: list[chess.Board] | None = None) -> dict:
    """The figures of the module docstring for one weights file."""
    boards = boards if boards is not None else positions()
    net, header = network.load_weights(path)
    evaluator = network.Evaluator(net)
    value = values(evaluator, boards)
    balance = np.array([material_balance(b) * (1 if b.turn else -1) for b in boards], dtype=np.float64)
    uneven = balance != 0
    corr = float(np.corrcoef(value[uneven], balance[uneven])[0, 1]) if uneven.sum() > 2 else None
    by_balance = {}
    for low, high in BUCKETS:
        mask = (balance >= low) & (balance <= high)
        key = f"<={high:+d}" if low < -50 else f">={low:+d}" if high > 50 else f"{low:+d}..{high:+d}"
        by_balance[key] = {
            "positions": int(mask.sum()),
            "mean_value": round(float(value[mask].mean()), 3) if mask.any() else None,
        }
    before, after = [], []
    for board in boards:
        move = _free_capture(board)
        if move is None:
            continue
        taken = board.copy()
        taken.push(move)
        taken.turn = board.turn  # same side to move, the piece now in hand
        taken.ep_square = None
        if taken.is_valid():
            before.append(board)
            after.append(taken)
    hanging = None
    if before:
        v_before, v_after = values(evaluator, before), values(evaluator, after)
        hanging = {
            "positions": len(before),
            "mean_value_before": round(float(v_before.mean()), 3),
            "mean_value_after_capture": round(float(v_after.mean()), 3),
            "gap": round(float((v_after - v_before).mean()), 3),
        }
    return {
        "checkpoint": str(path),
        "generation": header.get("generation"),
        "positions": len(boards),
        "material_correlation": None if corr is None else round(corr, 3),
        "value_by_balance": by_balance,
        "hanging": hanging,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()
    boards = positions()
    print(json.dumps({"bench": "value_probe", "probes": [probe(p, boards) for p in args.checkpoints]}, indent=1))


if __name__ == "__main__":
    main()
