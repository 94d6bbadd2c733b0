"""What the search can do with a value that knows material: the ceiling learning aims at.

A stand-in evaluator (uniform priors, value = tanh(material balance / 5) from the side to
move) drives the same batched Gumbel/PUCT search as evaluation, against the
material-greedy anchor over the paired opening suite. If this search cannot beat greedy,
no amount of learning at that budget will; if it can, a session that loses to greedy is
limited by what its value head has learned. Prints one JSON object per budget.

With `--checkpoint FILE` the learned network plays instead of the stand-in: how a session's
checkpoint scores against greedy at other search budgets than evaluation's (simulations,
considered moves, PUCT), to tell a search limit from a learning one; `--heads policy`
(or `value`) takes only that head from the checkpoint and the other from the stand-in, to
tell which head is short.

    python bench/search_ceiling.py [--pairs 10] [--budget 32:8 --budget 32:16 ...] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.engine import arena, network, players  # noqa: E402
from service.engine.encoding import POLICY_SIZE  # noqa: E402

PIECE_VALUES = np.array([1, 3, 3, 5, 9, 0], dtype=np.float32)


class MaterialEvaluator:
    """Uniform priors; value = tanh(material balance / 5) for the side to move (planes 0-5 ours, 6-11 theirs)."""

    def evaluate(self, planes: np.ndarray):
        n = planes.shape[0]
        counts = planes[:, :12].reshape(n, 12, 64).sum(-1)
        v = np.tanh((counts[:, :6] @ PIECE_VALUES - counts[:, 6:] @ PIECE_VALUES) / 5.0).astype(np.float32)
        wdl = np.stack([np.clip(v, 0, 1), 1 - np.abs(v), np.clip(-v, 0, 1)], 1).astype(np.float32)
        return np.zeros((n, POLICY_SIZE), np.float32), v, wdl


class MixedEvaluator:
    """One head from the learned net, the other from the material stand-in."""

    def __init__(self, learned, heads: str) -> None:
        self.learned, self.heads, self.material = learned, heads, MaterialEvaluator()

    def evaluate(self, planes: np.ndarray):
        logits, value, wdl = self.learned.evaluate(planes)
        uniform, material_value, material_wdl = self.material.evaluate(planes)
        if self.heads == "policy":
            return logits, material_value, material_wdl
        return uniform, value, wdl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument(
        "--budget",
        action="append",
        metavar="SIMS:CONSIDERED",
        help="simulations:gumbel_considered (repeatable; default 32:8 and 32:16)",
    )
    parser.add_argument("--algorithm", default="gumbel", choices=["gumbel", "puct"])
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint's weights file: the learned net plays")
    parser.add_argument(
        "--heads",
        default="both",
        choices=["both", "policy", "value"],
        help="with --checkpoint: which of its heads play (the other is the stand-in's)",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.checkpoint is None:
        evaluator = MaterialEvaluator()
    else:
        import torch

        torch.set_num_threads(args.threads)
        evaluator = network.Evaluator(network.load_weights(args.checkpoint)[0])
        if args.heads != "both":
            evaluator = MixedEvaluator(evaluator, args.heads)
    for budget in args.budget or ["32:8", "32:16"]:
        sims, considered = (int(x) for x in budget.split(":"))
        t = time.perf_counter()
        side = arena.SearchSide(evaluator, sims, args.algorithm, gumbel_considered=considered)
        result = arena.play_match(side, players.GreedyPlayer(0), pairs=args.pairs)
        games = len(result.games)
        print(
            json.dumps(
                {
                    "evaluator": str(args.checkpoint or "material"),
                    "heads": args.heads,
                    "algorithm": args.algorithm,
                    "simulations": sims,
                    "gumbel_considered": considered,
                    "games": games,
                    "wins": result.wins,
                    "draws": result.draws,
                    "losses": result.losses,
                    "score": (result.wins + 0.5 * result.draws) / games,
                    "seconds": round(time.perf_counter() - t, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
