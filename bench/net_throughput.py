"""Positions/s of a preset's network at batch 1..256: every inference backend side by side.

What it measures: the wall time of `evaluate` (numpy planes in, numpy logits, value and WDL
probabilities out, i.e. everything the search pays per batched network call) on random 0/1
planes, for:
- `eager`: the training net as it is (BatchNorm layers, contiguous layout);
- `folded`: BatchNorm folded into the convolutions (`network.Evaluator(optimize=False)`);
- `optimized`: folded and channels-last: the `torch` backend, the default before backends;
- `optimize_for_inference`: a frozen TorchScript module, for reference only (it leaks
  ~5 MB per rebuild, see network.Evaluator, so the worker does not use it);
- every other backend of `engine/inference.py` that runs here (`torch-bf16`, `onnxruntime`);
- `onnxruntime-int8`, for reference only: ONNX Runtime's static QDQ int8 quantization
  (per-channel weights, activations calibrated on 512 positions of seeded random games); it is
  not a backend, for its parity fails (`parity` below; README "Inference backends").
Each figure is the median over a few timed repetitions after warm-up, the variants
interleaved; read the ratios, since absolute speeds move from machine to machine (and a
shared machine's load moves them within a run). Threads are fixed before any torch work
(default 2, as the self-play worker runs). Also printed: each backend's refresh time (what
a learning phase costs it), and its parity with `eager` on 1,000 positions of seeded random
games (largest logit and WDL difference, share of the same best legal move) on the preset's
generation 0, an untrained net (tests/unit/test_inference.py checks parity on a trained-ish one).
Prints one JSON object.

    python bench/net_throughput.py [--preset small] [--threads 2] [--device cpu] [--no-int8]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FIGURE_BATCH = "64"  # the figure: the best backend against `optimized` at batch 64


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=0.25, help="target time of one timed repetition")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-int8", action="store_true", help="leave out the int8 reference column")
    return p.parse_args()


def _positions(n: int, seed: int):
    """`n` boards with legal moves from seeded random games: the parity test's positions
    (tests/support/positions.py, seed 7) and the int8 calibration set (seed 99)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.positions import random_positions

    return [b for b in random_positions(n + n // 5, seed=seed) if any(b.generate_legal_moves())][:n]


class _Int8:
    """ONNX Runtime on the statically quantized (QDQ, int8) graph of a net: reference only."""

    backend = "onnxruntime-int8"

    def __init__(self, net, threads: int, calibration) -> None:
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from service.engine.onnx_export import onnx_bytes

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{"planes": calibration[i : i + 64]} for i in range(0, len(calibration), 64)])

            def get_next(self):
                return next(self.batches, None)

        with tempfile.TemporaryDirectory() as tmp:
            plain, pre, quantized = (Path(tmp) / name for name in ("net.onnx", "pre.onnx", "int8.onnx"))
            plain.write_bytes(onnx_bytes(net))
            quant_pre_process(str(plain), str(pre))
            t0 = time.perf_counter()
            quantize_static(
                str(pre),
                str(quantized),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
            self.quantize_s = time.perf_counter() - t0
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])

    def evaluate(self, planes):
        logits, wdl, value = self.session.run(None, {"planes": planes})
        return logits, value, wdl


def _refresh_ms(evaluator, times: int = 7) -> dict[str, float]:
    """Milliseconds of `evaluator.refresh()` (it re-takes every weight, changed or not): the
    least of `times` (what it costs; a loaded machine only adds to it) and the median."""
    samples = []
    for _ in range(times):
        t0 = time.perf_counter()
        evaluator.refresh()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"min": round(min(samples), 2), "median": round(statistics.median(samples), 2)}


def main() -> None:
    """Arguments, then every backend at every batch size, one JSON object. Not split: one table's
    loop over backends and batches."""
    args = _args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from service.engine import inference
    from service.engine.encoding import NUM_PLANES, encode_boards, legal_mask
    from service.engine.network import Evaluator, build_network, parameter_count

    net = build_network(args.preset, seed=0).to(args.device)
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
    backends = [b for b in inference.available(args.device) if b is not inference.InferenceBackend.TORCH]
    unavailable = {
        b.value: inference.unavailable(b, args.device)
        for b in inference.BACKENDS
        if b not in backends and b is not inference.InferenceBackend.TORCH
    }
    refresh_ms: dict[str, object] = {"optimized": _refresh_ms(evaluators["optimized"])}
    for backend in backends:
        t0 = time.perf_counter()
        evaluators[backend.value] = inference.make(net, backend, args.device, args.threads)
        build_s = time.perf_counter() - t0
        refresh_ms[backend.value] = _refresh_ms(evaluators[backend.value])
        if backend is inference.InferenceBackend.ONNXRUNTIME:
            refresh_ms["onnxruntime_first_build_s_incl_export"] = round(build_s, 2)

    boards = _positions(1_000, seed=7)
    parity_planes, legal = encode_boards(boards), legal_mask(boards)
    int8_quantize_s = None
    if args.device == "cpu" and not args.no_int8:
        int8 = _Int8(net, args.threads, encode_boards(_positions(512, seed=99)))
        evaluators["onnxruntime-int8"], int8_quantize_s = int8, round(int8.quantize_s, 2)

    def best(logits):
        return np.where(legal, logits, -np.inf).argmax(axis=1)

    reference = evaluators["eager"].evaluate(parity_planes)
    parity = {}
    for name, ev in evaluators.items():
        if name != "eager":
            logits, _, wdl = ev.evaluate(parity_planes)
            parity[name] = {
                "max_abs_logit": float(np.abs(logits - reference[0]).max()),
                "max_abs_wdl": float(np.abs(wdl - reference[2]).max()),
                "same_best_legal_move": float((best(logits) == best(reference[0])).mean()),
            }

    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {name: {} for name in evaluators}
    for batch in BATCHES:
        planes = (rng.random((batch, NUM_PLANES, 8, 8)) < 0.2).astype(np.float32)
        calls = {}
        for name, ev in evaluators.items():
            for _ in range(3):  # warm-up (TorchScript's profiling runs included)
                ev.evaluate(planes)
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

    candidates = ["optimized", *(b.value for b in backends)]  # what INFERENCE_BACKEND can run
    best_at = {b: max(candidates, key=lambda name: results[name][b]) for b in results["eager"]}
    speedup = {b: round(results[best_at[b]][b] / results["optimized"][b], 3) for b in results["eager"]}
    report = {
        "bench": "net_throughput",
        "preset": args.preset,
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "cpu": inference.cpu_model(),
        "parameters": parameter_count(net),
        "positions_per_s": results,
        "backends": {"optimized": "torch", **{b.value: b.value for b in backends}},
        "unavailable": unavailable,
        "best_backend": best_at,
        "speedup_best_vs_optimized": speedup,
        "figure": {
            "batch": int(FIGURE_BATCH),
            "best": best_at[FIGURE_BATCH],
            "speedup_vs_optimized": speedup[FIGURE_BATCH],
            "target": 1.3,
        },
        "speedup_optimized_vs_eager": {
            b: round(results["optimized"][b] / results["eager"][b], 3) for b in results["eager"]
        },
        "refresh_ms": refresh_ms,
        "int8_quantize_s": int8_quantize_s,
        "parity_vs_eager_1000_positions": parity,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
