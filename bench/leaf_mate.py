"""The proven-win leaf on and off: one checkpoint, the same opponents and openings, games
played to the end.

A new leaf whose side to move can mate at once is a proven win (`movegen.has_mate_in_one`,
issue #24), so the search refutes a move that allows a mate in one on its first visit. This
bench isolates what that rule does at play time, with the network held fixed: the same
checkpoint plays each opponent twice, once with the rule and once with the leaf check
switched off (the search then learns of such a mate only if it expands the leaf and the
network finds the move), every game played to its end (no adjudication) from the paired
opening suite. What the rule does to training is in the strength runs (docs/strength.md).

    python bench/leaf_mate.py --checkpoint gen-0170.safetensors [--pairs 20] [--opponents greedy,random]

Prints one JSON object: per opponent and per rule, W/D/L, how the games ended, mean plies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _shared  # noqa: E402  (bench/_shared.py)
import strength  # noqa: E402  (bench/strength.py: its to-the-end match helpers)

from service.engine import arena, mcts, players  # noqa: E402

OPPONENTS = {"greedy": players.GreedyPlayer, "random": players.RandomPlayer}


def match(candidate: arena.SearchSide, name: str, pairs: int, max_plies: int, seed: int) -> dict:
    """`pairs` paired openings against the named low anchor, to the end."""
    started = time.perf_counter()
    result = arena.play_match(
        candidate, OPPONENTS[name](seed), pairs=pairs, max_plies=max_plies, adjudication="none", seed=seed
    )
    assert result is not None  # no should_stop: a match always finishes
    endings = {k: 0 for k in strength.ENDINGS}
    for game in result.games:
        endings[strength.ending(game)] += 1
    return {
        "wins": result.wins,
        "draws": result.draws,
        "losses": result.losses,
        "score": (result.wins + result.draws / 2) / len(result.games),
        "pentanomial": result.pentanomial(),
        "endings": endings,
        "mean_plies": sum(len(g.moves) for g in result.games) / len(result.games),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a weights file (.safetensors)")
    parser.add_argument("--pairs", type=int, default=20, help="paired openings per match (default 20)")
    parser.add_argument("--opponents", default="greedy", help="comma-separated: greedy, random (default greedy)")
    parser.add_argument("--max-plies", type=int, default=300, help="a draw this many plies after the opening")
    _shared.add_set_option(parser, "EVAL_SIMULATIONS=64")
    args = parser.parse_args()
    names = [n.strip() for n in args.opponents.split(",") if n.strip()]
    if not names or any(n not in OPPONENTS for n in names):
        _shared.fail("leaf_mate.py", f"--opponents takes {', '.join(OPPONENTS)}, not {args.opponents!r}")
    if not args.checkpoint.is_file():
        _shared.fail("leaf_mate.py", f"--checkpoint {args.checkpoint} is not a file")
    if args.pairs < 1:
        _shared.fail("leaf_mate.py", "--pairs must be at least 1")
    _, config = _shared.session_config("leaf_mate.py", args.sets)
    candidate = strength.search_side(args.checkpoint, config)
    rule = mcts.has_mate_in_one
    out: dict = {
        "bench": "leaf_mate",
        "checkpoint": str(args.checkpoint),
        "simulations": config.eval_simulations or config.selfplay_simulations,
        "pairs": args.pairs,
        "max_plies": args.max_plies,
        "matches": {},
        "machine": _shared.machine(),
    }
    for name in names:
        rows = {}
        for label, check in (("rule", rule), ("no_rule", lambda board: False)):
            mcts.has_mate_in_one = check  # the search's leaf check, as mcts imported it
            try:
                rows[label] = match(candidate, name, args.pairs, args.max_plies, config.seed)
            finally:
                mcts.has_mate_in_one = rule
            row = rows[label]
            print(f"{name} {label}: {row['wins']}/{row['draws']}/{row['losses']}", file=sys.stderr)
        out["matches"][name] = rows
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
