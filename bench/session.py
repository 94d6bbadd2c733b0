"""Games/min, learning steps/min and memory growth over one whole session.

Runs one session inline (the same `SessionWorker` a spawned worker runs: self-play,
learning, checkpoints) in this process, with settings from the environment / `.env`
and then the arguments below, and prints ONE JSON object on stdout:

- games, elapsed_s, games_per_minute over the session and over its second half of games
  (excludes the warm-up: the first games finish only once the batch's games reach their
  end, and TorchScript compiles on the first calls; meaningful only with many more games
  than SELFPLAY_PARALLEL_GAMES, since a batch's games all start together);
- learning phases and steps, learning_steps_per_minute, the share of wall time spent
  learning, and the evaluator's backend;
- simulations/s (mean of the worker's periodic stats reports);
- resident memory (psutil, this process, sampled after every game): at start, at the
  end, the maximum, the growth, and the growth from game `--warmup-games` (100) to the
  end, which excludes the replay buffer's and the allocator's warm-up and shows leaks;
- mean plies per game, W/D/L, adjudicated games, terminations, the stop reason and the
  settings used;
- `cap_share`: the share of games that reached the move cap (termination `move_cap`) per
  bucket of games in number order (the report's `series.cap_share`): it should fall as the
  engine learns to finish won games.

Progress goes to stderr every ~25 games. Figures move from machine to machine: compare
runs made on one machine with the same --threads.

    python bench/session.py --preset small --games 100 --threads 2
    python bench/session.py --preset tiny --games 30 --set SELFPLAY_SIMULATIONS=16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _shared
import psutil


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="CHESS_PRESET (default small)")
    parser.add_argument("--games", type=int, default=100, help="MAX_GAMES (default 100; 0 = only --minutes)")
    parser.add_argument("--minutes", type=float, default=60.0, help="SESSION_DURATION_MIN cap (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="TORCH_THREADS (default 2)")
    parser.add_argument(
        "--warmup-games",
        type=int,
        default=100,
        help="memory growth is also reported from this game to the end (default 100)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="keep the checkpoints here (default: a temporary folder, removed after)",
    )
    _shared.add_set_option(parser)
    parser.add_argument("--progress-every", type=int, default=25, help="games between progress lines on stderr")
    return parser.parse_args()


def session_config(args: argparse.Namespace):
    _, config = _shared.session_config(
        "session.py",
        args.sets,
        chess_preset=args.preset,
        max_games=args.games,
        session_duration_min=args.minutes,
        torch_threads=args.threads,
    )
    return config


def mb(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def main() -> None:
    """Arguments, one session, its figures as one JSON object. Not split: a straight script."""
    args = parse_args()
    process = psutil.Process()
    config = session_config(args)

    import torch

    torch.set_num_threads(config.torch_threads)
    torch.set_num_interop_threads(1)
    from service.reports.builder import cap_share, result_buckets
    from service.sessions.worker import SessionWorker, WorkerSpec

    rss_start = process.memory_info().rss
    games: list[dict[str, Any]] = []
    learning: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    checkpoints = 0
    rss_after_game: list[int] = []
    game_times: list[float] = []
    summary: dict[str, Any] = {}
    t0 = time.perf_counter()

    def emit(kind: str, data: dict[str, Any]) -> None:
        nonlocal checkpoints, summary
        if kind == "game":
            games.append({k: data[k] for k in ("number", "result", "termination", "adjudicated", "plies")})
            game_times.append(time.perf_counter() - t0)
            rss_after_game.append(process.memory_info().rss)
            n = len(games)
            if args.progress_every and n % args.progress_every == 0:
                print(
                    f"{n} games  {game_times[-1]:.0f} s  {n / (game_times[-1] / 60):.1f} games/min  "
                    f"{learning[-1]['step'] if learning else 0} steps  rss {mb(rss_after_game[-1])} MB",
                    file=sys.stderr,
                    flush=True,
                )
        elif kind == "learning":
            learning.append(data)
        elif kind == "stats":
            stats.append(data)
        elif kind == "checkpoint":
            checkpoints += 1
        elif kind == "finished":
            summary = data

    with tempfile.TemporaryDirectory(prefix="bench-session-") as tmp:
        folder = args.checkpoint_dir or Path(tmp)
        spec = WorkerSpec(session_id="bench", config=config, checkpoint_dir=folder, torch_threads=config.torch_threads)
        worker = SessionWorker(spec, emit)
        rss_setup = process.memory_info().rss
        t0 = time.perf_counter()  # the clock starts with the session, after the net is built
        worker.run()
        elapsed = time.perf_counter() - t0
    rss_end = process.memory_info().rss

    n = len(games)
    second_half_gpm = _shared.per_minute_second_half(game_times)  # games half+1..n
    steps = learning[-1]["step"] if learning else 0
    learning_s = sum(row["seconds"] for row in learning)
    minutes = max(elapsed / 60, 1e-9)
    sims = [row["simulations_per_second"] for row in stats]
    samples = [rss_start, rss_setup, *rss_after_game, rss_end]
    warm = args.warmup_games
    results = Counter(g["result"] for g in games)
    out = {
        "benchmark": "session",
        "games": n,
        "stop_reason": summary.get("reason"),
        "elapsed_s": round(elapsed, 2),
        "games_per_minute": round(n / minutes, 2),
        "games_per_minute_second_half": None if second_half_gpm is None else round(second_half_gpm, 2),
        "learning_phases": len(learning),
        "learning_steps": steps,
        "learning_steps_per_minute": round(steps / minutes, 2),
        "learning_seconds": round(learning_s, 2),
        "learning_share_of_wall_time": round(learning_s / elapsed, 4) if elapsed > 0 else None,
        "backend": getattr(getattr(worker, "evaluator", None), "backend", None),
        "positions_learned": summary.get("positions_learned"),
        "buffer_positions": len(worker.buffer),
        "checkpoints": checkpoints,
        "simulations_per_second_mean": round(statistics.fmean(sims), 1) if sims else None,
        "stats_reports": len(stats),
        "rss_start_mb": mb(rss_start),
        "rss_after_setup_mb": mb(rss_setup),
        "rss_end_mb": mb(rss_end),
        "rss_max_mb": mb(max(samples)),
        "rss_growth_mb": mb(rss_end - rss_start),
        "rss_growth_during_session_mb": mb(rss_end - rss_setup),
        "warmup_games": warm,
        f"rss_at_game_{warm}_mb": mb(rss_after_game[warm - 1]) if 0 < warm <= n else None,
        f"rss_growth_after_game_{warm}_mb": mb(rss_end - rss_after_game[warm - 1]) if 0 < warm <= n else None,
        "mean_plies": round(statistics.fmean(g["plies"] for g in games), 1) if games else None,
        "white_wins": results["1-0"],
        "draws": results["1/2-1/2"],
        "black_wins": results["0-1"],
        "adjudicated": sum(g["adjudicated"] for g in games),
        "terminations": dict(sorted(Counter(g["termination"] for g in games).items())),
        "cap_share": cap_share(result_buckets(games)),
        "torch": torch.__version__,
        "cpu_count": psutil.cpu_count(),
        "settings": config.model_dump(mode="json"),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
