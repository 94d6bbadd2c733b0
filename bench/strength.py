"""Strength after a fixed budget: one session of `--minutes` (MAX_GAMES=0), then the final
rating list with 95% intervals and the learning curve, as one JSON object.

The session is a normal headless session (same orchestrator, worker and storage as
`continuous-play run`) in a temporary database and folders. Its evaluations (every
EVAL_INTERVAL_GAMES games and at the end, after the time stop) are what the figures come
from: the newest checkpoint's rating against generation 0 (anchored at ELO_ANCHOR), its
score against the random mover and against material-greedy.

    python bench/strength.py --minutes 20 [--preset small] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import SettingsError, load_settings, session_config_from  # noqa: E402
from service.sessions.headless import run_session  # noqa: E402
from service.sessions.ratings import player, rating_list, ratings_out  # noqa: E402
from service.storage import repositories as repo  # noqa: E402
from service.storage.database import create_engine, session_factory  # noqa: E402


async def measure(args: argparse.Namespace, folder: Path) -> dict:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{folder / 'strength.db'}",
                             report_dir=folder / "reports", checkpoint_dir=folder / "checkpoints",
                             torch_threads=args.threads)
    try:
        config = session_config_from(settings, args.sets, chess_preset=args.preset, max_games=0,
                                     session_duration_min=args.minutes)
    except SettingsError as exc:
        print(f"strength.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    session_id, report = await run_session(settings, config, on_event=lambda kind, data: (
        print(f"{kind}: {json.dumps(data)[:160]}", file=sys.stderr) if kind == "evaluation.finished" else None))

    engine = create_engine(settings.database_url)
    async with session_factory(engine)() as db:
        checkpoints = {c.id: c for c in await repo.list_checkpoints(db, session_id)}
        evaluations = await repo.list_evaluations(db, session_id)
    await engine.dispose()
    ratings = rating_list([(e, checkpoints[e.checkpoint_id].generation, None) for e in evaluations],
                          settings.elo_anchor)
    curve = []
    for e in evaluations:
        c = checkpoints[e.checkpoint_id]
        curve.append({"generation": c.generation, "games": c.games, "opponent": e.opponent, "wins": e.wins,
                      "draws": e.draws, "losses": e.losses, "score": (e.wins + e.draws / 2) / max(e.games, 1),
                      "pentanomial": e.pentanomial, "rating_after": e.elo, "low": e.elo_low, "high": e.elo_high,
                      "sprt": (e.sprt or {}).get("state")})
    newest = max((checkpoints[e.checkpoint_id].generation for e in evaluations), default=None)
    final = {}
    if newest is not None:
        mine = ratings.get(player(newest))
        final = {"generation": newest,
                 "elo_vs_gen0": None if mine is None else mine.rating - settings.elo_anchor,
                 "low": None if mine is None else mine.low - settings.elo_anchor,
                 "high": None if mine is None else mine.high - settings.elo_anchor}
        for e in evaluations:
            if checkpoints[e.checkpoint_id].generation == newest:
                final[f"score_vs_{e.opponent}"] = (e.wins + e.draws / 2) / max(e.games, 1)
    return {
        "bench": "strength", "preset": args.preset, "minutes": args.minutes, "threads": args.threads,
        "session_id": session_id, "games": report["scorecard"]["games"],
        "games_per_minute": report["throughput"]["games_per_minute"],
        "training_steps": report["losses"].get("steps"), "final": final,
        "rating_list": ratings_out(ratings), "learning_curve": curve,
        "losses": {k: report["losses"].get(k) for k in ("policy_loss", "value_loss", "total_loss")},
        "config": report["manifest"]["config"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cp-strength-") as folder:
        print(json.dumps(asyncio.run(measure(args, Path(folder))), indent=1))


if __name__ == "__main__":
    main()
