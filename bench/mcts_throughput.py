"""Simulations/s of batched self-play in the session's mix, against the network's own limit.

By default self-play runs the session's real mix: the settings of a session of `--preset`
(from the environment / `.env`, then `--set NAME=VALUE`), so SELFPLAY_SIMULATIONS full
searches on FULL_SEARCH_PROB of the moves and FAST_SIMULATIONS fast ones on the rest (the
playout cap), SELFPLAY_PARALLEL_GAMES games in flight, the opening book, the temperature
schedule. `--full-only` gives every move the full search (FULL_SEARCH_PROB=1).

In one run, at the same torch threads, it measures:
- the network's own positions/s at batch = games in flight (the limit on this machine)
  and at batch 1, through the evaluator a session uses (INFERENCE_BACKEND, `auto` resolved;
  its `backend` is reported; `--set INFERENCE_BACKEND=torch` for the plain snapshot);
- self-play: simulations/s and network positions/s (the positions it sent to the network:
  a simulation ending on a terminal position sends none, a fresh tree's root is a position
  and no simulation), the mean batch, and the wall time spent outside the network's calls
  per simulation (`search_overhead_us_per_sim`, measured, not derived);
- `ratio_to_net`: self-play's network positions/s over the network's own at that batch;
- a naive search (one game, one network call per simulation, the same tree code).

`--steps N` measures N self-play steps instead of `--seconds`: with one seed, two versions
of the search that play the same games do the same work, so their times compare directly.
`--against DIR` runs this bench on the project checkout at DIR and on this one, alternating
`--rounds` times (one subprocess each; the machine's load drifts), and prints both medians
and their ratios. It prints one JSON object; `--profile` adds pyinstrument's view of the
self-play loop on stderr.

    python bench/mcts_throughput.py --preset small --threads 2
    python bench/mcts_throughput.py --preset tiny --steps 600 --against /tmp/base --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _shared

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="CHESS_PRESET (default small)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--games", type=int, default=None, help="games in flight (default SELFPLAY_PARALLEL_GAMES)")
    parser.add_argument("--full-only", action="store_true", help="every move a full search (FULL_SEARCH_PROB=1)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NAME=VALUE", help="override a session setting"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warmup-steps", type=int, default=100, help="steps before measuring (fills the trees)")
    parser.add_argument("--seconds", type=float, default=20.0, help="self-play measuring time")
    parser.add_argument("--steps", type=int, default=0, help="measure this many steps instead of --seconds")
    parser.add_argument("--net-seconds", type=float, default=5.0, help="network-only measuring time (0: skip)")
    parser.add_argument("--naive-seconds", type=float, default=10.0, help="naive search measuring time (0: skip)")
    parser.add_argument("--against", type=Path, default=None, help="also run on the checkout at DIR, alternating")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --against (default 3)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    if args.games is not None and args.games < 1:
        _shared.fail("mcts_throughput.py", f"--games {args.games}: expected at least 1")
    if args.steps < 0 or args.seconds <= 0 or args.rounds < 1:
        _shared.fail("mcts_throughput.py", "--steps must be >= 0, --seconds > 0 and --rounds >= 1")
    if args.against is not None and not (args.against / "service" / "engine" / "mcts.py").is_file():
        _shared.fail("mcts_throughput.py", f"--against {args.against}: no service/engine/mcts.py there")
    return args


class TimedEvaluator:
    """The session's evaluator, counting the positions it evaluates and the time inside its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.backend = getattr(inner, "backend", type(inner).__name__)
        self.seconds = self.cpu_seconds = 0.0
        self.positions = 0
        self.calls = 0

    def evaluate(self, planes):
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.inner.evaluate(planes)
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.process_time() - c0
        self.positions += planes.shape[0]
        self.calls += 1
        return out


def net_rates(evaluator: Any, games: int, seconds: float) -> tuple[float | None, float | None]:
    """The network's own positions/s at batch `games` and at batch 1, on positions from
    random openings (None: not measured)."""
    if seconds <= 0:
        return None, None
    import chess

    from service.engine import encoding

    rng = random.Random(0)
    boards = []
    for _ in range(games):
        b = chess.Board()
        for _ in range(rng.randrange(0, 40)):
            moves = list(b.legal_moves)
            if not moves:
                break
            b.push(rng.choice(moves))
        boards.append(b)
    planes = encoding.encode_boards(boards)

    def rate(x, limit: float) -> float:
        for _ in range(3):
            evaluator.evaluate(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < limit:
            evaluator.evaluate(x)
            n += x.shape[0]
        return n / (time.perf_counter() - t0)

    return rate(planes, seconds), rate(planes[:1], seconds / 2)


def session_evaluator(config: Any, net: Any) -> Any:
    """The evaluator a session of `config` plays with: INFERENCE_BACKEND, `auto` resolved as
    the learner resolves it (probed at the self-play batch, not cached here); plain torch on a
    checkout from before the backends (`--against` an older one)."""
    import torch

    from service.engine import network

    try:
        from service.engine import inference
    except ImportError:
        return network.Evaluator(net)
    threads = torch.get_num_threads()
    choice = inference.choose(
        config.inference_backend, config.chess_preset, batch=config.selfplay_parallel_games, threads=threads
    )
    return inference.make(net, choice.backend)


def selfplay_run(sp: Any, evaluator: TimedEvaluator, args: argparse.Namespace) -> dict[str, float]:
    """Self-play's steps, measured: after `--warmup-steps`, `--steps` steps or `--seconds`."""
    for _ in range(args.warmup_steps):  # fill the trees past the first roots
        sp.step()
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    gc.disable()  # as the session's self-play loop does
    sims0, steps, finished = sp.simulations, 0, 0
    evaluator.seconds = evaluator.cpu_seconds = evaluator.positions = evaluator.calls = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while (steps < args.steps) if args.steps else (time.perf_counter() - t0 < args.seconds):
        finished += len(sp.step())
        steps += 1
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    gc.enable()
    if args.profile:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
    return {
        "steps": steps,
        "finished": finished,
        "wall": wall,
        "cpu": cpu,
        "sims": sp.simulations - sims0,
        "positions": evaluator.positions,
        "net_s": evaluator.seconds,
        "net_cpu": evaluator.cpu_seconds,
        "calls": evaluator.calls,
    }


def naive_rate(cfg: Any, evaluator: Any, seconds: float) -> float | None:
    """Simulations/s of one game alone: one network call per simulation, the same tree code."""
    if seconds <= 0:
        return None
    from service.engine.selfplay import SelfPlay

    sp = SelfPlay(dataclasses.replace(cfg, parallel_games=1), evaluator, seed=2)
    gc.disable()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sp.step()
    rate = sp.simulations / (time.perf_counter() - t0)
    gc.enable()
    return rate


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """This checkout's figures (whatever `service` is on sys.path).

    Not split: the mixes are measured in one sequence on the same nets, so their figures compare."""
    overrides: dict[str, Any] = {"chess_preset": args.preset}
    if args.full_only:
        overrides["full_search_prob"] = 1.0
    if args.games is not None:
        overrides["selfplay_parallel_games"] = args.games
    _, config = _shared.session_config("mcts_throughput.py", args.sets, **overrides)

    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    from service.engine import network, schedules
    from service.engine.selfplay import SelfPlay
    from service.sessions.worker import selfplay_config

    cfg = selfplay_config(config)
    evaluator = TimedEvaluator(session_evaluator(config, network.build_network(config.chess_preset, seed=config.seed)))
    net_batch, net_one = net_rates(evaluator.inner, cfg.parallel_games, args.net_seconds)

    def temperature_for(n: int) -> float:
        return schedules.temperature(
            config.temperature_schedule,
            n,
            config.initial_temperature,
            config.final_temperature,
            config.temperature_decay_games,
        )

    run = selfplay_run(SelfPlay(cfg, evaluator, seed=args.seed, temperature_for=temperature_for), evaluator, args)
    naive = naive_rate(cfg, evaluator.inner, args.naive_seconds)
    wall, sims, positions, net_s = run["wall"], max(run["sims"], 1), run["positions"], run["net_s"]
    return {
        "bench": "mcts_throughput",
        "preset": config.chess_preset,
        "backend": evaluator.backend,
        "mix": "full-only" if args.full_only else "session",
        "algorithm": config.search,
        "threads": args.threads,
        "games_in_flight": cfg.parallel_games,
        "simulations_full": cfg.simulations,
        "simulations_fast": cfg.fast_simulations,
        "full_search_prob": cfg.full_search_prob,
        "steps": run["steps"],
        "seconds": round(wall, 3),
        "simulations": run["sims"],
        "games_finished": run["finished"],
        "net_positions_per_s_at_batch": None if net_batch is None else round(net_batch, 1),
        "net_positions_per_s_batch1": None if net_one is None else round(net_one, 1),
        "selfplay_simulations_per_s": round(run["sims"] / wall, 1),
        "selfplay_net_positions_per_s": round(positions / wall, 1),
        "selfplay_mean_batch": round(positions / max(run["calls"], 1), 2),
        "net_positions_per_simulation": round(positions / sims, 4),
        "network_share_of_wall_time": round(net_s / wall, 4),
        "network_us_per_sim": round(1e6 * net_s / sims, 2),
        "search_overhead_us_per_sim": round(1e6 * (wall - net_s) / sims, 2),
        # CPU time (all threads) outside the network's calls: steadier than wall time on a
        # shared machine, and the same figure on an idle one with --threads 1.
        "search_overhead_cpu_us_per_sim": round(1e6 * (run["cpu"] - run["net_cpu"]) / sims, 2),
        "cpu_seconds": round(run["cpu"], 3),
        "ratio_to_net": None if net_batch is None else round(positions / wall / net_batch, 3),
        "naive_simulations_per_s": None if naive is None else round(naive, 1),
        "speedup_over_naive": None if naive is None else round(run["sims"] / wall / naive, 2),
        "machine": _shared.machine(),
    }


COMPARED = (
    "selfplay_simulations_per_s",
    "selfplay_net_positions_per_s",
    "search_overhead_us_per_sim",
    "search_overhead_cpu_us_per_sim",
    "cpu_seconds",
    "network_us_per_sim",
    "net_positions_per_s_at_batch",
    "ratio_to_net",
    "seconds",
)


def run_child(src: Path, argv: list[str]) -> dict[str, Any]:
    """This bench, run on the checkout at `src` in a subprocess; its JSON."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--naive-seconds", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"bench/mcts_throughput.py: the run on {src} failed (exit {done.returncode})")
    return json.loads(done.stdout)


def against(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Alternating runs of this checkout and `--against`'s: medians and this/that ratios."""
    child_argv = []
    skip = False
    for item in argv:  # drop --against/--rounds (and their values) from the children's arguments
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name in ("--against", "--rounds"):
            skip = "=" not in item
            continue
        child_argv.append(item)
    runs: dict[str, list[dict[str, Any]]] = {"this": [], "against": []}
    for r in range(args.rounds):
        for name, src in (("this", ROOT), ("against", args.against.resolve())):
            runs[name].append(run_child(src, child_argv))
            row = runs[name][-1]
            print(
                f"round {r + 1} {name}: {row['selfplay_simulations_per_s']} sims/s, "
                f"{row['search_overhead_us_per_sim']} us/sim overhead ({row['search_overhead_cpu_us_per_sim']} CPU)",
                file=sys.stderr,
                flush=True,
            )

    def median(name: str, key: str) -> float | None:
        values = [row[key] for row in runs[name] if row.get(key) is not None]
        return statistics.median(values) if values else None

    medians = {name: {key: median(name, key) for key in COMPARED} for name in runs}
    ratios = {
        key: round(medians["this"][key] / medians["against"][key], 3)
        for key in COMPARED
        if medians["this"][key] is not None and medians["against"][key]
    }
    first = runs["this"][0]
    return {
        "bench": "mcts_throughput",
        "compare": {"this": str(ROOT), "against": str(args.against.resolve()), "rounds": args.rounds},
        "preset": first["preset"],
        "backend": first["backend"],
        "mix": first["mix"],
        "steps": first["steps"],
        "same_work": all(a["simulations"] == b["simulations"] for a, b in zip(runs["this"], runs["against"])),
        "median": medians,
        "ratio_this_over_against": ratios,
        "runs": runs,
    }


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    out = against(args, argv) if args.against is not None else measure(args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
