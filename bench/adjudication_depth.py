"""Which EVAL_ADJUDICATION_DEPTH: Stockfish's verdict at the cap (EVAL_ADJUDICATION_CP) at
each depth against its verdict at a deep reference depth, and the time per position, as
one JSON object.

Positions: each opening of the evaluation suite followed by 6 to 25 plies of
material-greedy play (balanced and lopsided ones), the kind an evaluation game reaches.

    python bench/adjudication_depth.py [--positions 40] [--depths 6,8,10,12,14] [--reference 18]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.engine.openings import opening_board, suite  # noqa: E402
from service.engine.players import GreedyPlayer, play_game  # noqa: E402
from service.engine.yardstick import StockfishAdjudicator  # noqa: E402


def positions(count: int) -> list:
    boards = []
    for i, name in enumerate(suite(count)):
        board = opening_board(name)
        game = play_game(GreedyPlayer(i), GreedyPlayer(i + 100), board=board, max_plies=6 + i % 20, adjudication="none")
        for move in game.moves:
            board.push(move)
        if not board.is_game_over():
            boards.append(board)
    return boards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=40)
    parser.add_argument("--depths", default="6,8,10,12,14")
    parser.add_argument("--reference", type=int, default=18)
    parser.add_argument("--cp", type=int, default=300)
    args = parser.parse_args()
    boards = positions(args.positions)
    reference = StockfishAdjudicator(args.cp, args.reference)
    try:
        truth = [reference(b) for b in boards]
    finally:
        reference.close()
    out: dict = {"positions": len(boards), "cp": args.cp, "reference_depth": args.reference, "depths": {}}
    for depth in (int(d) for d in args.depths.split(",")):
        adjudicator = StockfishAdjudicator(args.cp, depth)
        try:
            adjudicator(boards[0])  # the process's start is not a position's cost
            t = time.perf_counter()
            verdicts = [adjudicator(b) for b in boards]
            seconds = time.perf_counter() - t
        finally:
            adjudicator.close()
        out["depths"][depth] = {
            "ms_per_position": round(1000 * seconds / len(boards), 1),
            "agree_with_reference": sum(v == r for v, r in zip(verdicts, truth)),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
