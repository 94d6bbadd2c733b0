"""How long does an ONNX export stall the API's event loop? A ticker task sleeps 1 ms at a
time on the loop while a `small` checkpoint is exported, (a) the way the API does it
(`export_beside` in a worker thread of the API's process: torch's exporter is Python, and
holds the GIL while it runs) and (b) in a spawned process of its own (the alternative: no
stall, but each export pays a process start and torch's import). Each way runs `--repeats`
times; the figures are the ticker's longest gap and its 99th percentile gap (ms), and the
export's wall time. One JSON object.

    python bench/export_stall.py [--preset small] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _shared  # noqa: E402  (bench/_shared.py)

from service.api.checkpoints import export_beside  # noqa: E402
from service.engine import network  # noqa: E402


async def stalls(export) -> dict[str, float]:
    """The ticker's gaps (ms) while `export()` runs, and the export's wall time (s)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now - last) * 1000)
            last = now

    ticker = asyncio.create_task(tick())
    start = time.perf_counter()
    await export()
    wall = time.perf_counter() - start
    done.set()
    await ticker
    gaps.sort()
    return {"max_gap_ms": gaps[-1], "p99_gap_ms": gaps[int(0.99 * (len(gaps) - 1))], "export_s": wall}


async def in_process(weights: Path, onnx: Path) -> None:
    """`export_beside` in a spawned process started for it and let go after it (not joined on
    the loop: a process that unloads torch takes about a second to exit)."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        await asyncio.wrap_future(pool.submit(export_beside, weights, onnx))
    finally:
        pool.shutdown(wait=False)


async def measure(preset: str, repeats: int) -> dict:
    rows: dict[str, list[dict[str, float]]] = {"process": [], "thread": []}
    with tempfile.TemporaryDirectory(prefix="export-stall-") as folder:
        weights = Path(folder) / "gen-0001.safetensors"
        network.save_weights(network.build_network(preset, 1), weights, generation=1, seed=0)
        for i in range(repeats):
            onnx = Path(folder) / f"process-{i}.onnx"
            rows["process"].append(await stalls(lambda onnx=onnx: in_process(weights, onnx)))
            onnx = Path(folder) / f"thread-{i}.onnx"
            rows["thread"].append(await stalls(lambda onnx=onnx: asyncio.to_thread(export_beside, weights, onnx)))
    return {
        "bench": "export_stall",
        "preset": preset,
        "repeats": repeats,
        "machine": _shared.machine(),
        **{
            way: {key: max(r[key] for r in runs) for key in ("max_gap_ms", "p99_gap_ms")}
            | {"export_s": sorted(r["export_s"] for r in runs)[len(runs) // 2], "runs": runs}
            for way, runs in rows.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 1:
        _shared.fail("export_stall.py", "--repeats must be at least 1")
    print(json.dumps(asyncio.run(measure(args.preset, args.repeats)), indent=1))


if __name__ == "__main__":
    main()
