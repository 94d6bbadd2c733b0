"""Fleet scaling: one session with 1, 2, 4, ... self-play actors against the single worker.

Games/min, learner steps/min, samples per position and generation lag of one session with
1, 2, 4, ... self-play actors, against today's single-worker layout.

Each layout runs one session inline (`SessionWorker`, as `bench/session.py` does) for the
same wall time with the same session settings, on a fresh checkpoint folder, one layout
after the other:

- `single`: SELFPLAY_ACTORS=1, self-play interleaved with learning in the learner's process
  (today's single-worker layout): the baseline;
- `fleet-N`: N actor processes (`service/sessions/fleet.py`) beside the learner. The service
  runs a fleet only from 2 actors on; `fleet-1` is asked for here (`WorkerSpec.fleet`), so
  that the learner and one actor in processes of their own can be compared with `single`.
  A fleet's evaluations run in a process of their own, as the service runs them.

Threads per role are the service's (`fleet_layout`, the whole machine for the one session):
an actor takes 1 torch thread, the learner what the actors leave, the one worker of `single`
every core (TORCH_THREADS overrides; `--threads` sets the learner's in every layout).
Periodic evaluations are off (EVAL_INTERVAL_GAMES at its maximum) and the session is stopped
with a `stop` command at the deadline, which skips the final evaluation: the window is
self-play and learning only. Its clock starts with `run` (actor start-up included) and ends
when the stop is read. Prints ONE JSON object on stdout: the machine, the settings, and per
layout games, games/min (over the window and over the second half of the games), learning
steps and steps/min, the learner's share of wall time, samples per position (the final stats
report), generation lag of the games (mean, p50, p90, max), simulations/s (mean of the stats
reports after the first game), and games/min over `single`'s and, for a fleet, the scaling
efficiency: games/min over (N / smallest N) x the smallest fleet's games/min.

Layouts share one machine one after the other: compare them only within one run. Progress
goes to stderr.

    python bench/scaling.py --preset tiny --minutes 1 --actors 1,2
    python bench/scaling.py --preset small --minutes 5 --set SELFPLAY_PARALLEL_GAMES=32
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _shared

if TYPE_CHECKING:
    from service.config import SessionConfig, Settings

SCRIPT = "scaling.py"
DEFAULT_SETS = [
    "SELFPLAY_PARALLEL_GAMES=16",
    "MAX_MOVES_PER_GAME=60",
    "EVAL_INTERVAL_GAMES=100000000",  # no periodic evaluation in the window
]
STOP_MARGIN_S = 300.0
"""The session's own time limit lies this far past the deadline: the `stop` ends it first."""


def default_actors() -> list[int]:
    """1, 2, 4, ... up to the machine's cores (the cores themselves included), 2 at least."""
    cores = max(os.cpu_count() or 1, 2)
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    return [*counts, cores]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="CHESS_PRESET (default tiny)")
    parser.add_argument("--minutes", type=float, default=2.0, help="wall time per layout (default 2)")
    parser.add_argument(
        "--actors",
        default=",".join(map(str, default_actors())),
        help="comma-separated actor counts of the fleet layouts, run after `single` "
        "(default here: %(default)s: 1, 2, 4, ... up to the cores)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the learner (of the one worker in `single`) in every layout "
        "(default: the service's choice: every core in `single`, the cores the actors leave in a fleet)",
    )
    parser.add_argument("--no-single", action="store_true", help="skip the single-worker baseline")
    parser.add_argument("--seed", type=int, default=None, help="SEED (default: the setting)")
    _shared.add_set_option(parser, defaults=DEFAULT_SETS)
    args = parser.parse_args()
    try:
        args.actors = [int(n) for n in args.actors.split(",") if n.strip()]
    except ValueError:
        _shared.fail(SCRIPT, f"--actors {args.actors!r}: expected comma-separated numbers, e.g. 1,2,4")
    if any(n < 1 for n in args.actors):
        _shared.fail(SCRIPT, "--actors: every count must be 1 or more")
    if args.minutes <= 0:
        _shared.fail(SCRIPT, "--minutes must be more than 0")
    return args


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def threads_for(settings: Settings, config: SessionConfig, actors: int | None, learner: int | None) -> tuple[int, int]:
    """Learner and actor torch threads of a layout as the service picks them (`fleet_layout`;
    actors None: `single`), or `learner` threads for the learner. One actor in a process of its
    own is not a service layout: its learner gets what the actor leaves, as a fleet's does."""
    from service.sessions.fleet import fleet_layout

    if learner is not None:
        return learner, 1
    if actors == 1:
        cores = max(1, (os.cpu_count() or 1) // settings.max_concurrent_sessions)
        return config.torch_threads or settings.torch_threads or max(1, cores - 1), 1
    layout = fleet_layout(settings, config.model_copy(update={"selfplay_actors": actors or 1}))
    return layout.learner_threads, layout.actor_threads


def run_layout(
    name: str, settings: Settings, config: SessionConfig, actors: int | None, seconds: float, threads: int | None
) -> dict:
    """One session of `seconds` in layout `name` (actors None: `single`); its figures.

    Not split: start, sample and stop of one session share its handles and figures."""
    from service.sessions.protocol import CommandKind, MessageKind
    from service.sessions.worker import Commands, SessionWorker, WorkerSpec

    learner_threads, actor_threads = threads_for(settings, config, actors, threads)
    lags: list[int] = []
    game_times: list[float] = []
    learning: list[dict[str, Any]] = []
    stats: list[tuple[float, dict[str, Any]]] = []
    summary: dict[str, Any] = {}
    t0 = deadline = stopped = math.inf

    def emit(kind: str, data: dict[str, Any]) -> None:
        nonlocal summary
        now = time.monotonic() - t0
        if kind == MessageKind.GAME:
            game_times.append(now)
            lags.append(data["generation_lag"])
            if len(game_times) % 25 == 0:
                print(
                    f"{name}: {len(game_times)} games  {now:.0f} s  "
                    f"{sum(row['steps'] for row in learning)} steps  lag {data['generation_lag']}",
                    file=sys.stderr,
                    flush=True,
                )
        elif kind == MessageKind.LEARNING:
            learning.append(data)
        elif kind == MessageKind.STATS:
            stats.append((now, data))
        elif kind == MessageKind.FINISHED:
            summary = data

    def command(timeout: float | None) -> CommandKind | None:
        """`stop` once the deadline has passed (a `None` wait sleeps until it)."""
        nonlocal stopped
        now = time.monotonic()
        if now < deadline and timeout is None:
            time.sleep(deadline - now)
            now = time.monotonic()
        if now < deadline:
            return None
        stopped = min(stopped, now)
        return CommandKind.STOP

    with tempfile.TemporaryDirectory(prefix=f"bench-scaling-{name}-") as tmp:
        spec = WorkerSpec(
            session_id=f"bench-{name}",
            config=config,
            checkpoint_dir=Path(tmp),
            torch_threads=learner_threads,
            actors=actors or 1,
            actor_threads=actor_threads,
            duration_s=seconds + STOP_MARGIN_S,
            move_interval_s=None,
            fleet=actors is not None,  # even one actor in a process of its own
            separate_evaluator=actors is not None,  # as the service runs a fleet (not under GATING)
        )
        worker = SessionWorker(spec, emit, commands=Commands(command))
        print(f"{name}: {learner_threads} learner thread(s), {actors or 0} actor process(es)", file=sys.stderr)
        load_before = os.getloadavg()[0]  # other work on the machine skews the figures
        t0 = time.monotonic()
        deadline = t0 + seconds
        worker.run()
        finished_s = time.monotonic() - t0

    elapsed = (stopped if stopped < math.inf else t0 + finished_s) - t0
    minutes = max(elapsed / 60, 1e-9)
    n = len(game_times)
    steps = sum(row["steps"] for row in learning)
    learning_s = sum(row["seconds"] for row in learning)
    first_game = game_times[0] if game_times else None
    warm = [data["simulations_per_second"] for at, data in stats if first_game is not None and at > first_game]
    second_half = _shared.per_minute_second_half(game_times)
    final = stats[-1][1] if stats else {}
    spp = final.get("samples_per_position")
    return {
        "actor_processes": actors or 0,
        "learner_threads": learner_threads,
        "actor_threads": actor_threads if actors else None,
        "elapsed_s": round(elapsed, 2),
        "first_game_s": None if first_game is None else round(first_game, 2),
        "games": n,
        "games_per_minute": round(n / minutes, 2),
        "games_per_minute_second_half": None if second_half is None else round(second_half, 2),
        "learning_phases": len(learning),
        "learner_steps": steps,
        "learner_steps_per_minute": round(steps / minutes, 2),
        "learning_share_of_wall_time": round(learning_s / elapsed, 4) if elapsed > 0 else None,
        "samples_per_position": None if spp is None else round(spp, 3),
        "generation_lag_mean": round(statistics.fmean(lags), 3) if lags else None,
        "generation_lag_p50": percentile(lags, 50),
        "generation_lag_p90": percentile(lags, 90),
        "generation_lag_max": max(lags) if lags else None,
        "simulations_per_second_mean": round(statistics.fmean(warm), 1) if warm else None,
        "stats_reports_after_first_game": len(warm),
        "stop_reason": summary.get("reason"),
        "stop_to_finished_s": round(finished_s - elapsed, 2),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def add_ratios(results: dict[str, dict[str, Any]], fleet_sizes: list[int]) -> None:
    """games/min over `single`'s, and a fleet's scaling efficiency against the smallest fleet."""
    base = results.get("single", {}).get("games_per_minute")
    smallest = min(fleet_sizes) if fleet_sizes else None
    ref = results[f"fleet-{smallest}"]["games_per_minute"] if smallest else None
    for name, row in results.items():
        row["games_per_minute_vs_single"] = round(row["games_per_minute"] / base, 3) if base else None
        n = row["actor_processes"]
        if name.startswith("fleet-") and ref and smallest:
            row["scaling_efficiency"] = round(row["games_per_minute"] / (ref * n / smallest), 3)


def main() -> None:
    args = parse_args()
    from service.config import load_settings

    settings = load_settings().model_copy(update={"max_concurrent_sessions": 1})  # the machine is the session's
    overrides: dict[str, Any] = {"chess_preset": args.preset, "max_games": 0, "session_duration_min": args.minutes}
    if args.seed is not None:
        overrides["seed"] = args.seed
    settings, config = _shared.session_config(SCRIPT, [*DEFAULT_SETS, *args.sets], settings, **overrides)

    import torch

    torch.set_num_interop_threads(1)
    seconds = args.minutes * 60
    layouts: list[tuple[str, int | None]] = [] if args.no_single else [("single", None)]
    fleet_sizes = list(dict.fromkeys(args.actors))
    layouts += [(f"fleet-{n}", n) for n in fleet_sizes]
    results: dict[str, dict[str, Any]] = {}
    for name, actors in layouts:
        results[name] = row = run_layout(name, settings, config, actors, seconds, args.threads)
        print(
            f"{name}: {row['games']} games, {row['games_per_minute']} games/min, "
            f"{row['learner_steps_per_minute']} steps/min, lag mean {row['generation_lag_mean']}",
            file=sys.stderr,
            flush=True,
        )
    add_ratios(results, fleet_sizes)
    out = {
        "benchmark": "scaling",
        "machine": _shared.machine(),
        "minutes_per_layout": args.minutes,
        "threads": args.threads,
        "fleet_1_note": "fleet-1 is asked for by the bench (WorkerSpec.fleet): "
        "the service runs a fleet only from SELFPLAY_ACTORS=2 on",
        "layouts": results,
        "settings": config.model_dump(mode="json"),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
