"""Strength after a fixed budget: one session of `--minutes` (MAX_GAMES=0), then the final
rating list with 95% intervals and the learning curve, as one JSON object.

With `--curve K` (default 3), K earlier checkpoints (evenly spaced by generation) also
play the EVAL_OPPONENTS anchors after the session ends, outside its time and by the same
arena code: a learning curve that costs the session nothing. Evaluations during the
session (every EVAL_INTERVAL_GAMES games) would take their time from its budget, so the
bench runs none unless `--set EVAL_INTERVAL_GAMES=N` asks for them.

After the session (outside its budget too), the newest checkpoint plays matches to the end
(`--to-end-pairs` openings, colours swapped, default 20: 40 games; `0` turns them off) against
the random mover, material-greedy and generation 0, by the same arena code with no
adjudication and a cap of `--to-end-plies` (300) plies after the opening: W/D/L, score, Elo
with its 95% interval (from the game pairs), pentanomial, and how each game ended
(`endings`: checkmate for / against, stalemate, threefold, fifty-move, insufficient
material, cap). With `--ladder K`, generation 0 and K checkpoints evenly spaced up to the
newest play each other to the end the same way (bench/ladder.py: does the rating keep rising
on a yardstick the anchors cannot saturate?). Then it plays `--held-out-games` (64; 0: none)
self-play games by the session's own self-play code, which no learning step sees, and `value_probe.calibration`
checks the final checkpoint's WDL against their results (`value_calibration`).

The session is a normal headless session (same orchestrator, worker and storage as
`continuous-play run`) in a temporary database and folders. Its evaluations (at the end,
after the time stop, and any asked for during it) are what the figures come from: the
newest checkpoint's rating against generation 0 (anchored at ELO_ANCHOR), its score
against the random mover and against material-greedy.

    python bench/strength.py --minutes 20 [--preset small] [--curve K] [--to-end-pairs N]
        [--to-end-plies P] [--ladder K] [--held-out-games G] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _shared  # noqa: E402  (bench/_shared.py)
import ladder  # noqa: E402  (bench/ladder.py)
import value_probe  # noqa: E402  (bench/value_probe.py)
from ladder import search_side, to_end_match  # noqa: E402

from service.config import SettingsError, load_settings, session_config_from  # noqa: E402
from service.engine import arena, players  # noqa: E402
from service.event_types import EventType  # noqa: E402
from service.headless import run_session  # noqa: E402
from service.sessions import evaluation  # noqa: E402
from service.stats.elo import elo_from_wdl  # noqa: E402
from service.stats.ratings import player, rating_list, ratings_out  # noqa: E402
from service.storage import repositories as repo  # noqa: E402
from service.storage.database import create_engine, session_factory  # noqa: E402


async def stored_results(database_url: str, session_id: str) -> tuple[dict, list]:
    """The session's checkpoints (by id) and evaluations, read back from its database."""
    engine = create_engine(database_url)
    async with session_factory(engine)() as db:
        checkpoints = {c.id: c for c in await repo.list_checkpoints(db, session_id)}
        evaluations = await repo.list_evaluations(db, session_id)
    await engine.dispose()
    return checkpoints, evaluations


async def measure(args: argparse.Namespace, folder: Path) -> dict:
    """The session of `--minutes`, then its figures and what `after_session` plays, as JSON."""
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'strength.db'}",
        report_dir=folder / "reports",
        checkpoint_dir=folder / "checkpoints",
        torch_threads=args.threads,
    )
    # Only the end-of-session evaluation (outside the budget) unless `--set EVAL_INTERVAL_GAMES=N`
    # (a `--set` wins over these keywords): a match inside the session takes its time from
    # self-play (two ate half of 20 minutes). The learning curve comes from `--curve`.
    try:
        config = session_config_from(
            settings,
            args.sets,
            chess_preset=args.preset,
            max_games=0,
            session_duration_min=args.minutes,
            eval_interval_games=100_000_000,
        )
    except SettingsError as exc:
        print(f"strength.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    session_id, report = await run_session(
        settings,
        config,
        on_event=lambda kind, data: (
            print(f"{kind}: {json.dumps(data)[:160]}", file=sys.stderr)
            if kind == EventType.EVALUATION_FINISHED
            else None
        ),
    )

    checkpoints, evaluations = await stored_results(settings.database_url, session_id)
    ratings = rating_list(
        [(e, checkpoints[e.checkpoint_id].generation, None) for e in evaluations], settings.elo_anchor
    )
    newest = max((checkpoints[e.checkpoint_id].generation for e in evaluations), default=None)
    by_generation = {c.generation: c for c in checkpoints.values()}
    after = after_session(args, by_generation, config, settings.checkpoint_dir, newest)
    return {
        "bench": "strength",
        "preset": args.preset,
        "minutes": args.minutes,
        "threads": args.threads,
        "session_id": session_id,
        "games": report["scorecard"]["games"],
        "games_per_minute": report["throughput"]["games_per_minute"],
        "training_steps": report["losses"].get("steps"),
        "final": final_figures(evaluations, checkpoints, ratings, newest, settings.elo_anchor),
        "rating_list": ratings_out(ratings, evaluations[-1].yardstick if evaluations else None),
        "learning_curve": [curve_row(e, checkpoints[e.checkpoint_id]) for e in evaluations],
        "learning_curve_after": offline_curve(args.curve, checkpoints, config, settings.checkpoint_dir, newest),
        "losses": {k: report["losses"].get(k) for k in ("policy_loss", "value_loss", "total_loss")},
        **after,
        "scorecard": report["scorecard"],
        "config": report["manifest"]["config"],
    }


def curve_row(e, checkpoint) -> dict:
    """One evaluation the session played itself, as a learning-curve row."""
    return {
        "generation": checkpoint.generation,
        "games": checkpoint.games,
        "opponent": e.opponent,
        "wins": e.wins,
        "draws": e.draws,
        "losses": e.losses,
        "score": (e.wins + e.draws / 2) / max(e.games, 1),
        "pentanomial": e.pentanomial,
        "rating_after": e.elo,
        "yardstick": e.yardstick,
        "low": e.elo_low,
        "high": e.elo_high,
        "sprt": (e.sprt or {}).get("state"),
    }


def final_figures(evaluations, checkpoints: dict, ratings: dict, newest: int | None, anchor: float) -> dict:
    """The newest evaluated checkpoint's rating against generation 0 and its score against each
    opponent, from the session's own end-of-session evaluation."""
    if newest is None:
        return {}
    mine = ratings.get(player(newest))
    final: dict = {
        "generation": newest,
        "elo_vs_gen0": None if mine is None else mine.rating - anchor,
        "low": None if mine is None else mine.low - anchor,
        "high": None if mine is None else mine.high - anchor,
    }
    for e in evaluations:
        if checkpoints[e.checkpoint_id].generation == newest:
            final[f"score_vs_{e.opponent}"] = (e.wins + e.draws / 2) / max(e.games, 1)
    return final


def after_session(
    args: argparse.Namespace, by_generation: dict, config, checkpoint_dir: Path, newest: int | None
) -> dict:
    """What is measured after the session, outside its budget: the value probe of generation 0
    and the newest, matches played to the end, the ladder, and the held-out calibration."""
    out: dict = {"value_probe": {}, "value_calibration": None, "played_to_end": {}, "ladder": {}}
    if newest is None:
        return out
    boards = value_probe.positions()  # does the value head count material? (bench/value_probe.py)
    for generation in sorted({0, newest}):
        path = by_generation[generation].weights_path(checkpoint_dir)
        out["value_probe"][f"gen{generation}"] = {
            k: v for k, v in value_probe.probe(path, boards).items() if k != "checkpoint"
        }
    out["played_to_end"] = played_to_end(args, by_generation, config, checkpoint_dir, newest)
    if args.ladder > 0:  # does the rating keep rising? (bench/ladder.py)
        weights = {g: c.weights_path(checkpoint_dir) for g, c in by_generation.items()}
        out["ladder"] = ladder.ladder(
            weights, config, points=args.ladder, pairs=args.to_end_pairs or 20, plies=args.to_end_plies
        )
    if args.held_out_games > 0:  # does the predicted WDL match results? (value_probe.calibration)
        final_path = by_generation[newest].weights_path(checkpoint_dir)
        held = value_probe.play_held_out(final_path, config, args.held_out_games, by_generation[newest].games + 1)
        out["value_calibration"] = {
            "generation": newest,
            "source": "self-play games of the final checkpoint after the session, never trained on",
            **value_probe.calibration(final_path, [(r.pgn(), r.result) for r in held], [r.termination for r in held]),
        }
    return out


def played_to_end(args: argparse.Namespace, by_generation: dict, config, checkpoint_dir: Path, newest: int) -> dict:
    """The newest checkpoint against random, greedy and generation 0, every game played to its
    end (no adjudication; a draw at `--to-end-plies` plies after the opening), by the arena."""
    if args.to_end_pairs <= 0:
        return {}
    candidate = search_side(by_generation[newest].weights_path(checkpoint_dir), config)
    opponents = {
        "random": lambda: players.RandomPlayer(config.seed),
        "greedy": lambda: players.GreedyPlayer(config.seed),
        "gen0": lambda: search_side(by_generation[0].weights_path(checkpoint_dir), config),
    }
    out: dict = {"generation": newest, "max_plies": args.to_end_plies, "pairs": args.to_end_pairs, "matches": {}}
    for name, opponent in opponents.items():
        row = to_end_match(
            candidate, opponent(), pairs=args.to_end_pairs, plies=args.to_end_plies, seed=config.seed + newest
        )
        out["matches"][name] = row
        wdl = f"{row['wins']}/{row['draws']}/{row['losses']}"
        print(f"to the end: gen{newest} vs {name}: {wdl} {row['endings']}", file=sys.stderr)
    return out


def _anchor(entry: players.Opponent, gen0: arena.SearchSide, seed: int) -> arena.Side:
    """The anchor an EVAL_OPPONENTS entry names (not an external `uci` engine)."""
    if entry.kind is players.OpponentKind.GEN0:
        return gen0
    if entry.kind is players.OpponentKind.RANDOM:
        return players.RandomPlayer(seed)
    if entry.kind is players.OpponentKind.GREEDY:
        return players.GreedyPlayer(seed)
    return players.ladder_player(entry)


def offline_curve(count: int, checkpoints: dict, config, checkpoint_dir: Path, newest: int | None) -> list[dict]:
    """`count` earlier checkpoints, evenly spaced, against the EVAL_OPPONENTS anchors (as the
    worker plays them: same arena rules, simulations and per-generation seed)."""
    if count <= 0 or not newest:
        return []
    by_generation = {c.generation: c for c in checkpoints.values()}
    wanted = sorted({round(newest * (i + 1) / (count + 1)) for i in range(count)} - {0, newest})

    def side(generation: int) -> arena.SearchSide:
        return search_side(by_generation[generation].weights_path(checkpoint_dir), config)

    gen0 = side(0)
    yardstick = evaluation.yardstick_for(config)
    rows = []
    for generation in wanted:
        candidate = side(generation)
        for name in config.eval_opponents:
            entry = players.parse_opponent(name)
            if entry.kind is players.OpponentKind.UCI:
                continue  # an external engine of the user's: not replayed here
            opponent = _anchor(entry, gen0, config.seed)
            try:
                result = evaluation.play_match(
                    candidate, opponent, yardstick, pairs=config.eval_games // 2, seed=config.seed + generation
                )
            finally:
                if not isinstance(opponent, arena.SearchSide):
                    opponent.close()
            assert result is not None  # nothing stops it
            elo = elo_from_wdl(result.wins, result.draws, result.losses)
            rows.append(
                {
                    "generation": generation,
                    "games": by_generation[generation].games,
                    "opponent": name,
                    "wins": result.wins,
                    "draws": result.draws,
                    "losses": result.losses,
                    "score": (result.wins + result.draws / 2) / len(result.games),
                    "elo_diff": elo.elo,
                    "low": elo.low,
                    "high": elo.high,
                    "yardstick": str(yardstick),
                }
            )
            print(f"curve: gen{generation} vs {name}: {result.wins}/{result.draws}/{result.losses}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    _shared.add_set_option(parser)
    parser.add_argument(
        "--curve",
        type=int,
        default=3,
        help="after the session, also evaluate this many earlier checkpoints (learning curve)",
    )
    parser.add_argument(
        "--to-end-pairs",
        type=int,
        default=20,
        help="openings (x2 games) the final checkpoint plays to the end vs random, greedy, gen0 (0: off)",
    )
    parser.add_argument(
        "--to-end-plies", type=int, default=300, help="cap of those games, plies after the opening (a draw there)"
    )
    parser.add_argument(
        "--ladder",
        type=int,
        default=0,
        help="checkpoints (evenly spaced, the newest included) that play each other to the end "
        "after the session, gen 0 first: bench/ladder.py (0: off)",
    )
    parser.add_argument(
        "--held-out-games",
        type=int,
        default=64,
        help="self-play games of the final checkpoint after the session for its value calibration (0: none)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the session's database and checkpoints in this new folder"
    )
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        print(json.dumps(asyncio.run(measure(args, args.keep)), indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="cp-strength-") as folder:
        print(json.dumps(asyncio.run(measure(args, Path(folder))), indent=1))


if __name__ == "__main__":
    main()
