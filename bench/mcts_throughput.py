"""Simulations/s of the batched self-play worker against the physical limit.

In one run, at the same batch and torch threads, it measures:
- the network's own positions/s at batch = parallel games (the limit on this machine)
  and at batch 1;
- self-play simulations/s: `SelfPlay` with every move a full search, all games in flight;
- a naive search: one game at a time, one network call per simulation (batch 1).
It prints one JSON object; `--profile` adds pyinstrument's view of the self-play loop on stderr.

    python bench/mcts_throughput.py --preset small --threads 2
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time

import chess
import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--games", type=int, default=64, help="games in flight = network batch")
    parser.add_argument("--simulations", type=int, default=32)
    parser.add_argument("--algorithm", default="gumbel", choices=["gumbel", "puct"])
    parser.add_argument("--seconds", type=float, default=20.0, help="self-play measuring time")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--no-optimize", action="store_true", help="eager network instead of the frozen one")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    from service.engine import encoding, mcts, network
    from service.engine.selfplay import SelfPlay, SelfPlayConfig

    net = network.build_network(args.preset, seed=0)
    evaluator = network.Evaluator(net, optimize=not args.no_optimize)

    # Realistic inputs for the network-only figure: positions from random openings.
    rng = random.Random(0)
    boards = []
    for _ in range(args.games):
        b = chess.Board()
        for _ in range(rng.randrange(0, 40)):
            moves = list(b.legal_moves)
            if not moves:
                break
            b.push(rng.choice(moves))
        boards.append(b)
    planes = encoding.encode_boards(boards)

    def net_rate(x: np.ndarray, seconds: float = 5.0) -> float:
        for _ in range(3):
            evaluator.evaluate(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            evaluator.evaluate(x)
            n += x.shape[0]
        return n / (time.perf_counter() - t0)

    net_batch = net_rate(planes)
    net_one = net_rate(planes[:1], 3.0)

    search = mcts.SearchConfig(algorithm=args.algorithm, simulations=args.simulations)
    cfg = SelfPlayConfig(
        search=search, simulations=args.simulations, full_search_prob=1.0, parallel_games=args.games, max_plies=150
    )

    def selfplay_rate() -> tuple[float, float]:
        sp = SelfPlay(cfg, evaluator, seed=1)
        for _ in range(3 * args.simulations):  # fill the trees past the first roots
            sp.step()
        gc.disable()
        sims0, leaves0, t0 = sp.simulations, sp.leaves, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            sp.step()
        dt = time.perf_counter() - t0
        gc.enable()
        return (sp.simulations - sims0) / dt, (sp.leaves - leaves0) / dt

    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    sims_batched, leaves_batched = selfplay_rate()
    if args.profile:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)

    # Naive: one game, one network call per simulation, same tree code.
    naive_cfg = SelfPlayConfig(
        search=search, simulations=args.simulations, full_search_prob=1.0, parallel_games=1, max_plies=150
    )
    sp = SelfPlay(naive_cfg, evaluator, seed=2)
    gc.disable()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.naive_seconds:
        sp.step()
    naive = sp.simulations / (time.perf_counter() - t0)
    gc.enable()

    print(
        json.dumps(
            {
                "bench": "mcts_throughput",
                "preset": args.preset,
                "algorithm": args.algorithm,
                "threads": args.threads,
                "games_in_flight": args.games,
                "simulations_per_move": args.simulations,
                "optimized_network": not args.no_optimize,
                "net_positions_per_s_at_batch": round(net_batch, 1),
                "net_positions_per_s_batch1": round(net_one, 1),
                "selfplay_simulations_per_s": round(sims_batched, 1),
                "selfplay_leaves_per_s": round(leaves_batched, 1),
                "ratio_to_net": round(sims_batched / net_batch, 3),
                "search_overhead_us_per_sim": round(1e6 / sims_batched - 1e6 / net_batch, 1),
                "naive_simulations_per_s": round(naive, 1),
                "speedup_over_naive": round(sims_batched / naive, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
