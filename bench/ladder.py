"""Does a session's rating keep rising? Its checkpoints play each other to the end.

Anchors saturate: from about 20 minutes on, a `small` session scores ~100% against the random
mover and generation 0 and nothing against Stockfish skill 0, so a rating fitted against them
cannot rise with non-overlapping intervals whatever the session learns. The ladder measures
the session against itself instead, on a yardstick it cannot game (no adjudication, a draw at
`--plies` plies after the opening): generation 0 and `--points` checkpoints evenly spaced by
generation up to the newest (with a 60-minute session and `--points 3`: about 20, 40 and 60
minutes) play each consecutive pair, and the newest plays the first point directly. One
rating list is fitted over all those games (generation 0 at 0), and the rise from the first
point to the newest is fitted again with the first point as the anchor, so its interval is
the difference's own (the gen-0-anchored intervals share the gen0 -> first-point uncertainty).

The matches are played by the arena (the evaluation's code): EVAL_SIMULATIONS of the
session's search per move, paired openings with colours swapped.

    python bench/ladder.py --folder F [--points 3] [--pairs 20] [--plies 300] [--play LATER:EARLIER ...]
    python bench/ladder.py --folder F --against G [--pairs 20] [--plies 300]

`F` is a folder kept by `bench/strength.py --keep F` (its `strength.db` and checkpoints).
`--against G` compares two designs instead: F's newest checkpoint plays G's newest (another
kept run) to the end, the same way, each with its own session's search settings.
`bench/strength.py --ladder K` runs the same ladder at the end of its own session.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _shared  # noqa: E402  (bench/_shared.py)

from service.config import SessionConfig  # noqa: E402
from service.engine import arena, network  # noqa: E402
from service.reports.builder import match_estimate  # noqa: E402
from service.stats.elo import Match, fit_ratings  # noqa: E402

ENDINGS = (
    "checkmate_for",
    "checkmate_against",
    "stalemate",
    "threefold_repetition",
    "fifty_moves",
    "insufficient_material",
    "move_cap",
)
"""How a game played to the end ended, from the candidate's side (`move_cap`: at the cap, a draw)."""


def ending(game: arena.GameOutcome) -> str:
    """The `ENDINGS` name of a finished match game."""
    if game.termination == "checkmate":
        return "checkmate_for" if game.score == 1.0 else "checkmate_against"
    return game.termination


def search_side(path: Path, config: SessionConfig) -> arena.SearchSide:
    """A checkpoint as the worker's evaluation plays it (EVAL_SIMULATIONS, the session's search)."""
    net, _ = network.load_weights(path)
    return arena.SearchSide(
        network.Evaluator(net), config.eval_simulations or config.selfplay_simulations, config.search
    )


def to_end_match(candidate: arena.Side, opponent: arena.Side, *, pairs: int, plies: int, seed: int) -> dict[str, Any]:
    """One match played to the end (no adjudication): W/D/L, score, Elo from the game pairs with
    its 95% interval, pentanomial, how the games ended and their mean length."""
    result = arena.play_match(candidate, opponent, pairs=pairs, max_plies=plies, adjudication="none", seed=seed)
    assert result is not None  # no should_stop: a match always finishes
    penta = result.pentanomial()
    endings = dict.fromkeys(ENDINGS, 0)
    for game in result.games:
        endings[ending(game)] += 1
    estimate = match_estimate(result.wins, result.draws, result.losses, penta)
    return {
        "games": len(result.games),
        "wins": result.wins,
        "draws": result.draws,
        "losses": result.losses,
        "score": (result.wins + result.draws / 2) / len(result.games),
        "elo_diff": None if estimate is None else estimate["elo"],
        "low": None if estimate is None else estimate["low"],
        "high": None if estimate is None else estimate["high"],
        "pentanomial": penta,
        "endings": endings,
        "mean_plies": sum(len(g.moves) for g in result.games) / len(result.games),  # the opening's included
    }


def ladder_points(newest: int, points: int, available: set[int]) -> list[int]:
    """Generation 0 and `points` generations evenly spaced up to `newest` (the last is `newest`),
    each the nearest stored checkpoint at or below its target; duplicates dropped."""
    return sorted({0, *_shared.evenly_spaced(newest, points, available)})


def pairings(points: list[int]) -> list[tuple[int, int]]:
    """(later, earlier) generations: each consecutive pair, then the newest against the first
    point after generation 0 when they are not already a consecutive pair."""
    pairs = list(zip(points[1:], points[:-1]))
    if len(points) >= 4:
        pairs.append((points[-1], points[1]))
    return pairs


def fitted(matches: list[dict[str, Any]], anchor: str) -> dict[str, dict[str, float]]:
    """Ratings over the ladder's games with `anchor` at 0 (stats.elo.fit_ratings, Ordo's model)."""
    games = [Match(m["candidate"], m["opponent"], m["wins"], m["draws"], m["losses"]) for m in matches]
    return {
        name: {"rating": r.rating, "low": r.low, "high": r.high, "games": r.games}
        for name, r in fit_ratings(games, anchor=anchor, anchor_rating=0.0).items()
    }


def ladder(
    weights: dict[int, Path],
    config: SessionConfig,
    *,
    points: int,
    pairs: int,
    plies: int,
    only: list[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The ladder over the checkpoints in `weights` (generation -> weights file; 0 and the
    newest included): its matches, the rating list (gen0 at 0) and the rise from the first
    point to the newest with the difference's own interval. `only`: these (later, earlier)
    pairings instead (the points are then the generations they name)."""
    chosen = ladder_points(max(weights), points, set(weights))
    if only:
        chosen = sorted({0, *(g for pairing in only for g in pairing)})
    matches = []
    for later, earlier in only or pairings(chosen):
        row = to_end_match(
            search_side(weights[later], config),
            search_side(weights[earlier], config),
            pairs=pairs,
            plies=plies,
            seed=config.seed + later + earlier,
        )
        matches.append({"candidate": f"gen{later}", "opponent": f"gen{earlier}", **row})
        print(
            f"ladder: gen{later} vs gen{earlier}: {row['wins']}/{row['draws']}/{row['losses']} {row['endings']}",
            file=sys.stderr,
        )
    out: dict[str, Any] = {"points": chosen, "pairs": pairs, "max_plies": plies, "matches": matches}
    linked = any("gen0" in (m["candidate"], m["opponent"]) for m in matches)
    out["ratings"] = fitted(matches, "gen0") if linked else {}
    if len(chosen) >= 3 and linked:
        first, last = f"gen{chosen[1]}", f"gen{chosen[-1]}"
        rise = fitted(matches, first)[last]
        out["rise"] = {"from": first, "to": last, **rise}
        out["intervals_overlap"] = out["ratings"][last]["low"] <= out["ratings"][first]["high"]
    return out


def head_to_head(
    candidate: tuple[Path, SessionConfig], opponent: tuple[Path, SessionConfig], *, pairs: int, plies: int
) -> dict[str, Any]:
    """One run's checkpoint against another run's, played to the end: how two designs (or
    layouts) compare after the same budget, where both beat every anchor."""
    return to_end_match(
        search_side(*candidate), search_side(*opponent), pairs=pairs, plies=plies, seed=candidate[1].seed
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="a folder kept by bench/strength.py --keep")
    parser.add_argument("--points", type=int, default=3, help="checkpoints after generation 0, the newest included")
    parser.add_argument("--pairs", type=int, default=20, help="openings per match (x2 games, colours swapped)")
    parser.add_argument("--plies", type=int, default=300, help="cap after the opening (a draw there)")
    parser.add_argument(
        "--play",
        action="append",
        default=[],
        metavar="LATER:EARLIER",
        help="play only these pairings of generations (repeatable), instead of the ladder's",
    )
    parser.add_argument(
        "--against", type=Path, metavar="G", help="another kept run: the two newest checkpoints play each other"
    )
    args = parser.parse_args()
    for folder in filter(None, (args.folder, args.against)):
        if not (folder / "strength.db").is_file():
            _shared.fail("ladder.py", f"no strength.db in {folder} (keep one with bench/strength.py --keep)")
    if args.points < 1 or args.pairs < 1 or args.plies < 1:
        _shared.fail("ladder.py", "--points, --pairs and --plies must be at least 1")
    try:
        only = [tuple(int(g) for g in text.split(":")) for text in args.play]
    except ValueError:
        _shared.fail("ladder.py", f"--play takes LATER:EARLIER generations, got {args.play}")
    if any(len(pairing) != 2 for pairing in only):
        _shared.fail("ladder.py", f"--play takes LATER:EARLIER generations, got {args.play}")
    weights, config = _shared.kept_session(args.folder)[:2]
    if args.against is not None:
        other, other_config = _shared.kept_session(args.against)[:2]
        row = head_to_head(
            (weights[max(weights)], config), (other[max(other)], other_config), pairs=args.pairs, plies=args.plies
        )
        names = {"candidate": f"{args.folder} gen{max(weights)}", "opponent": f"{args.against} gen{max(other)}"}
        print(json.dumps({"bench": "ladder", "head_to_head": {**names, **row}}, indent=1))
        return
    missing = sorted({g for pairing in only for g in pairing} - set(weights))
    if missing:
        _shared.fail("ladder.py", f"no checkpoint of generation {missing} in {args.folder}")
    result = ladder(weights, config, points=args.points, pairs=args.pairs, plies=args.plies, only=only or None)
    print(json.dumps({"bench": "ladder", "folder": str(args.folder), **result}, indent=1))


if __name__ == "__main__":
    main()
