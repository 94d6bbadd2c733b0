"""Games/min of one session on the `process` backend and on the `ray` backend, same settings.

Each backend gets a pool of one worker (`make_pool`, exactly as the service builds it;
Ray: RAY_ADDRESS, default a local head started here), runs one session of `--minutes`
(MAX_GAMES=0: the duration is the limit) through the pool's worker protocol (a `run`
command in, the worker's messages out; no database), and is closed before the next one
starts. Prints ONE JSON object on stdout:

- per backend: pool start-up seconds (workers spawned and warm; Ray: head started too),
  games, seconds from `run` to the end of self-play (the worker's last stats report; the
  final checkpoint and evaluation after it are not counted), games_per_minute over them and over the second
  half of the games (after the first batch's warm-up), mean simulations/s of the worker's
  stats reports, learning steps;
- ray_over_process: the ratio of each games/min figure (1.0 = the same throughput).

The two runs share one machine one after the other: compare them only within one run of
this script, with the same --threads. Progress goes to stderr.

    python bench/ray_vs_process.py --minutes 2
    python bench/ray_vs_process.py --preset small --minutes 3 --set SELFPLAY_PARALLEL_GAMES=32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.config import SessionConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _shared  # noqa: E402  (bench/_shared.py: this script's folder is first on sys.path)

DEFAULT_SETS = [
    "SELFPLAY_PARALLEL_GAMES=16",
    "MAX_MOVES_PER_GAME=60",
    # the evaluation after the session's time is not measured: keep it short
    "EVAL_GAMES=2",
    "EVAL_OPPONENTS=random",
    "EVAL_SIMULATIONS=2",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="CHESS_PRESET (default tiny)")
    parser.add_argument("--minutes", type=float, default=2.0, help="session length per backend (default 2)")
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="TORCH_THREADS of the worker (default: every core)",
    )
    parser.add_argument("--backends", default="process,ray", help="comma-separated, in run order (default process,ray)")
    parser.add_argument("--ray-address", default=None, help="RAY_ADDRESS (default: the setting, `local`)")
    _shared.add_set_option(parser, defaults=DEFAULT_SETS)
    return parser.parse_args()


async def run_backend(backend: str, config: SessionConfig, threads: int, ray_address: str) -> dict[str, Any]:
    from service.sessions.pool import make_pool
    from service.sessions.protocol import CommandKind, MessageKind
    from service.sessions.worker import WorkerSpec

    t0 = time.perf_counter()
    pool = make_pool(backend, 1, threads, ray_address=ray_address)
    await pool.start()
    start_s = time.perf_counter() - t0
    game_times: list[float] = []
    sims: list[float] = []
    steps = 0
    elapsed = 1e-9
    summary: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
            worker = await pool.acquire()
            spec = WorkerSpec(
                session_id=f"bench-{backend}", config=config, checkpoint_dir=Path(tmp), torch_threads=threads
            )
            t_run = time.perf_counter()
            worker.send(CommandKind.RUN, spec.session_id, spec)
            while True:
                message = await worker.receive()
                kind, data = message.kind, message.data
                if kind == MessageKind.GAME:
                    game_times.append(time.perf_counter() - t_run)
                    if len(game_times) % 25 == 0:
                        print(
                            f"{backend}: {len(game_times)} games in {game_times[-1]:.0f} s", file=sys.stderr, flush=True
                        )
                elif kind == MessageKind.STATS:  # the last one comes as the session's time runs out, before
                    sims.append(data["simulations_per_second"])  # the final checkpoint and evaluation
                    elapsed = time.perf_counter() - t_run
                elif kind == MessageKind.LEARNING:
                    steps = data["step"]
                elif kind == MessageKind.FINISHED:
                    summary = data
                elif kind == MessageKind.IDLE:  # the worker is done with the session: back to the pool
                    break
                elif kind in (MessageKind.FAILED, MessageKind.DIED):
                    raise RuntimeError(f"{backend} worker {kind}: {data}")
            await pool.release(worker)
    finally:
        await pool.close()
    n = len(game_times)
    half = n // 2
    second = None
    if n >= 2 and game_times[-1] > game_times[half - 1]:
        second = (n - half) / ((game_times[-1] - game_times[half - 1]) / 60)
    return {
        "pool_start_s": round(start_s, 2),
        "games": n,
        "elapsed_s": round(elapsed, 2),
        "games_per_minute": round(n / (elapsed / 60), 2),
        "games_per_minute_second_half": None if second is None else round(second, 2),
        "simulations_per_second_mean": round(statistics.fmean(sims), 1) if sims else None,
        "learning_steps": steps,
        "stop_reason": summary.get("reason"),
    }


def main() -> None:
    args = parse_args()
    from service.config import SettingsError, load_settings, session_config_from

    try:
        settings = load_settings()
        config = session_config_from(
            settings,
            [*DEFAULT_SETS, *args.sets],
            chess_preset=args.preset,
            max_games=0,
            session_duration_min=args.minutes,
            torch_threads=args.threads,
        )
    except SettingsError as exc:
        print(f"bench/ray_vs_process.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    ray_address = args.ray_address or settings.ray_address
    results: dict[str, Any] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        print(f"{backend}: starting", file=sys.stderr, flush=True)
        results[backend] = asyncio.run(run_backend(backend, config, args.threads, ray_address))
    out: dict[str, Any] = {
        "benchmark": "ray_vs_process",
        "minutes": args.minutes,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        **results,
    }
    if "ray" in results and "process" in results:
        out["ray_over_process"] = {
            key: round(results["ray"][key] / results["process"][key], 3)
            for key in ("games_per_minute", "games_per_minute_second_half", "simulations_per_second_mean")
            if results["ray"][key] and results["process"][key]
        }
    import torch

    out["torch"] = torch.__version__
    out["settings"] = config.model_dump(mode="json")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
