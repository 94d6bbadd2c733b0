"""Positions/s of a preset's network at batch 1..256: the Evaluator against plain eager torch.

What it measures: the wall time of `Evaluator.evaluate` (numpy planes in, numpy logits,
value and WDL probabilities out, i.e. everything the search pays per batched network call)
on random 0/1 planes, for:
- `eager`: the training net as it is (BatchNorm layers, contiguous layout);
- `folded`: BatchNorm folded into the convolutions (`optimize=False`);
- `optimized`: folded and channels-last (`optimize=True`, the default on CPU);
- `optimize_for_inference`: a frozen TorchScript module, for reference only (it leaks
  ~5 MB per rebuild, see network.Evaluator, so the worker does not use it).
Each figure is the median over a few timed repetitions after warm-up, the variants
interleaved; read the ratios, since absolute speeds move from machine to machine.
Threads are fixed before any torch work (default 2, as the self-play worker runs).
Prints one JSON object.

    python bench/net_throughput.py [--preset small] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=0.25, help="target time of one timed repetition")
    p.add_argument("--repeats", type=int, default=5)
    return p.parse_args()


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from service.engine.encoding import NUM_PLANES
    from service.engine.network import Evaluator, build_network, parameter_count

    net = build_network(args.preset, seed=0)
    evaluators = {
        "eager": Evaluator(net, args.device, optimize=False),
        "folded": Evaluator(net, args.device, optimize=False),
        "optimized": Evaluator(net, args.device, optimize=True),
    }
    evaluators["eager"]._model = copy.deepcopy(net).eval().to(args.device)
    if args.device == "cpu":
        frozen = Evaluator(net, args.device, optimize=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            frozen._model = torch.jit.optimize_for_inference(torch.jit.script(copy.deepcopy(net).eval()))
        evaluators["optimize_for_inference"] = frozen

    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {name: {} for name in evaluators}
    max_abs_diff: dict[str, float] = {}
    for batch in BATCHES:
        planes = (rng.random((batch, NUM_PLANES, 8, 8)) < 0.2).astype(np.float32)
        reference = evaluators["eager"].evaluate(planes)[0]
        calls = {}
        for name, ev in evaluators.items():
            for _ in range(3):  # warm-up (TorchScript's profiling runs included)
                out = ev.evaluate(planes)
            if name != "eager":
                diff = float(np.abs(out[0] - reference).max())
                max_abs_diff[name] = max(max_abs_diff.get(name, 0.0), diff)
            t0 = time.perf_counter()
            ev.evaluate(planes)
            calls[name] = max(1, int(args.seconds / max(time.perf_counter() - t0, 1e-6)))
        rates: dict[str, list[float]] = {name: [] for name in evaluators}
        for _ in range(args.repeats):  # variants interleaved, so drift hits them alike
            for name, ev in evaluators.items():
                t0 = time.perf_counter()
                for _ in range(calls[name]):
                    ev.evaluate(planes)
                rates[name].append(batch * calls[name] / (time.perf_counter() - t0))
        for name in evaluators:
            results[name][str(batch)] = round(statistics.median(rates[name]), 1)

    report = {
        "bench": "net_throughput",
        "preset": args.preset,
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "parameters": parameter_count(net),
        "positions_per_s": results,
        "optimized_backend": evaluators["optimized"].backend,
        "speedup_optimized_vs_eager": {
            b: round(results["optimized"][b] / results["eager"][b], 3) for b in results["eager"]
        },
        "max_abs_logit_diff_vs_eager": max_abs_diff,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
