"""How closely the UCI engine keeps to its time: the figures tests/functional/test_uci.py
used to assert as wall-clock bounds (a test now checks only that a timed search ends by its
deadline and an infinite one by `stop`; how long that takes is measured here).

The engine (`python -m service.uci`, the code behind `continuous-play uci`) runs as a
subprocess driven by python-chess, on generation 0 of `--preset` (default tiny) with one
thread. Prints ONE JSON object on stdout:

- `movetime[i]`: for `go movetime M` (each of `--movetimes`, ms), over `--repeats` searches
  from the start position: the wall time from sending `go` to receiving `bestmove` as the
  client sees it (`wall_ms`: min/median/max), the engine's own reported search time
  (`engine_ms`, median) and the overshoot `wall_ms - M` (median, max), and the nodes searched;
- `clock`: the same for `go wtime 3000 btime 3000 winc 100 binc 100` (the time manager's
  budget: 3000/30 + 0.8 * 100 - MoveOverhead ms), with that budget;
- `stop_ms`: from `stop` to `bestmove` during `go infinite` (min/median/max).

Figures depend on the machine and its load: compare runs on one machine.

    python bench/uci_time.py
    python bench/uci_time.py --preset small --movetimes 100,1000 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import chess
import chess.engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.uci.protocol import DEFAULT_MOVE_OVERHEAD_MS, GoParams  # noqa: E402
from service.uci.search import time_budget  # noqa: E402


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 1), "median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def timed_play(engine: chess.engine.SimpleEngine, limit: chess.engine.Limit) -> tuple[float, dict]:
    board = chess.Board()
    start = time.perf_counter()
    result = engine.play(board, limit, info=chess.engine.INFO_ALL, game=object())
    return (time.perf_counter() - start) * 1000, result.info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=("tiny", "small", "medium", "large"))
    parser.add_argument("--movetimes", default="100,300,1000", help="ms, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    command = [sys.executable, "-m", "service.uci", "--preset", args.preset, "--threads", "1"]
    engine = chess.engine.SimpleEngine.popen_uci(command, cwd=ROOT, timeout=120)
    try:
        engine.play(chess.Board(), chess.engine.Limit(nodes=16))  # warm: the network is loaded
        out: dict = {"preset": args.preset, "repeats": args.repeats, "movetime": []}
        for movetime in (int(m) for m in args.movetimes.split(",")):
            runs = [timed_play(engine, chess.engine.Limit(time=movetime / 1000)) for _ in range(args.repeats)]
            walls = [w for w, _ in runs]
            out["movetime"].append(
                {
                    "movetime_ms": movetime,
                    "wall_ms": spread(walls),
                    "engine_ms": round(statistics.median(i["time"] * 1000 for _, i in runs), 1),
                    "overshoot_ms": {
                        "median": round(statistics.median(walls) - movetime, 1),
                        "max": round(max(walls) - movetime, 1),
                    },
                    "nodes": spread([i["nodes"] for _, i in runs]),
                }
            )
        clock = chess.engine.Limit(white_clock=3, black_clock=3, white_inc=0.1, black_inc=0.1)
        budget = 1000 * time_budget(
            GoParams(wtime=3000, btime=3000, winc=100, binc=100), chess.WHITE, DEFAULT_MOVE_OVERHEAD_MS / 1000
        )
        runs = [timed_play(engine, clock) for _ in range(args.repeats)]
        out["clock"] = {
            "budget_ms": round(budget, 1),
            "wall_ms": spread([w for w, _ in runs]),
            "overshoot_ms": round(statistics.median(w for w, _ in runs) - budget, 1),
        }
        stops = []
        for _ in range(args.repeats):
            with engine.analysis(chess.Board(), game=object()) as analysis:
                for info in analysis:
                    if "pv" in info:  # it is searching
                        break
                start = time.perf_counter()
                analysis.stop()
                analysis.wait()
                stops.append((time.perf_counter() - start) * 1000)
        out["stop_ms"] = spread(stops)
    finally:
        engine.quit()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
