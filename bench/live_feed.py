"""The live feed's cost and speed: events a session produces, how fast a finished game
reaches a subscriber, and what many subscribers cost the session.

For each count in `--subscribers` (default `0,50`), one after the other, with the same
settings: a fresh `continuous-play serve` subprocess (a temporary SQLite database, the
process worker pool, one session at a time; see bench/api_latency.py for the server
harness) runs ONE session for `--seconds` (MAX_GAMES=0, SESSION_DURATION_MIN=seconds/60)
while that many WebSocket clients (the `websockets` library, in this process) follow
`WS /v1/sessions/{id}/live?moves=true` from its creation to its end. Prints ONE JSON
object on stdout:

- `phases[i].games_per_minute`: the session's self-play games over its playing time (from
  its `running` event to its last `game.finished`, from the stored events: the final
  checkpoint and evaluation after the time limit are not counted);
- `phases[i].events_per_second`: stored (numbered) events over the same time, by type;
  `moves_per_second`: `game.move` messages one subscriber received (not stored);
- `phases[i].latency_ms`: from a game's end in the worker (`ended_at`, wall clock, in the
  game.finished data) to its `game.finished` arriving at a subscriber (p50/p90/p99/max
  over every (subscriber, game) pair): worker -> process queue -> database commit ->
  bus -> WebSocket -> client, all on this machine;
- `phases[i].closed_4008`: subscribers closed as too slow (they reconnect with `since`;
  this bench counts them and does not reconnect);
- `simulations_per_second`: the worker's MCTS simulations/s from its stats reports (mean,
  and `steady` without the first report): steadier than games/min over a short run;
- `games_per_minute_ratio`, `simulations_per_second_ratio`: per subscriber count, the
  mean over its phases divided by that of the first phase's count (the cost of the
  subscribers; the clients share this machine's CPU with the server, which is part of
  what is measured). A count may repeat: `--subscribers 0,50,50,0` (ABBA) lets a drift of
  the machine's speed weigh on both sides alike;
- `complete_feeds`: subscribers that received every stored event exactly once, in order.

Figures move from machine to machine, and games/min is noisy over short runs (a worker
plays SELFPLAY_PARALLEL_GAMES games at once, which tend to end together): compare phases
of one run. Progress goes to stderr.

    python bench/live_feed.py                                   # tiny preset, 60 s per phase, 0 and 50 subscribers
    python bench/live_feed.py --seconds 120 --subscribers 0,50,50,0     # ABBA against drift
    python bench/live_feed.py --preset small --set SELFPLAY_PARALLEL_GAMES=16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
import websockets

from service.event_types import EventType
from service.lifecycle import FINAL, State

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _shared  # noqa: E402  (bench/_shared.py)
from api_latency import (  # noqa: E402  (the server harness of the other service bench)
    CONSOLE_SCRIPT,
    Server,
    base_env,
    create_session,
    extra_settings,
    wait_final,
)

# A session that produces many events quickly on a CPU: the tiny net, short games.
DEFAULTS = {
    "SELFPLAY_PARALLEL_GAMES": "16",
    "MAX_MOVES_PER_GAME": "80",
    "SELFPLAY_SIMULATIONS": "16",
    "FAST_SIMULATIONS": "4",
    "GUMBEL_CONSIDERED": "8",
    "MIN_GAMES_BEFORE_LEARNING": "10",
    "LEARN_EVERY_N_GAMES": "5",
    "LEARNING_BATCH_SIZE": "64",
    "CHECKPOINT_INTERVAL": "20",
    "EVAL_INTERVAL_GAMES": "100000",
    "EVAL_GAMES": "2",
    "EVAL_OPPONENTS": "random",
    "EVAL_SIMULATIONS": "2",
}


def log(message: str) -> None:
    print(f"[live_feed] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    _shared.fail("live_feed.py", message)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="CHESS_PRESET (default tiny)")
    parser.add_argument("--seconds", type=float, default=60.0, help="session duration per phase (default 60)")
    parser.add_argument("--subscribers", default="0,50", help="comma-separated subscriber counts (default 0,50)")
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="TORCH_THREADS of the session's worker (default half the cores)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every phase, e.g. --set SELFPLAY_PARALLEL_GAMES=32",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for /readyz")
    args = parser.parse_args()
    try:
        args.counts = [int(x) for x in args.subscribers.split(",") if x.strip()]
    except ValueError:
        fail(f"--subscribers {args.subscribers!r}: expected comma-separated integers, e.g. 0,50")
    if args.seconds <= 0 or args.threads < 1 or not args.counts or min(args.counts) < 0:
        fail("--seconds must be > 0, --threads >= 1, --subscribers non-negative integers")
    if not CONSOLE_SCRIPT.exists():
        fail(f"console script missing at {CONSOLE_SCRIPT}: install the project (make install)")
    return args


def percentiles_ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(v * 1000 for v in values)

    def rank(q: float) -> float:  # nearest rank
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


class Subscriber:
    """One client following a session's feed (with moves) until the session's final state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []  # seconds from a game's end to its game.finished here
        self.types: Counter[str] = Counter()
        self.seqs: list[int] = []
        self.close_code: int | None = None
        self.error: str | None = None

    async def run(self) -> None:
        try:
            async with websockets.connect(self.url, max_size=2**24, open_timeout=60) as ws:
                async for raw in ws:
                    arrived = time.time()
                    message = json.loads(raw)
                    kind = message["type"]
                    self.types[kind] += 1
                    if "seq" in message:
                        self.seqs.append(message["seq"])
                    if kind == EventType.GAME_FINISHED and message["data"].get("ended_at"):
                        self.latencies.append(arrived - message["data"]["ended_at"])
                    if kind == EventType.SESSION_STATE and message["data"]["state"] in FINAL:
                        return
        except websockets.ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
            self.error = f"{type(exc).__name__}: {exc}"


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def stored_events(ws_url: str) -> list[dict[str, Any]]:
    """Every stored event of the (finished) session, replayed by a fresh client."""
    out: list[dict[str, Any]] = []
    async with websockets.connect(ws_url, max_size=2**24, open_timeout=60) as ws:
        async for raw in ws:
            message = json.loads(raw)
            out.append(message)
            if message["type"] == EventType.SESSION_STATE and message["data"]["state"] in FINAL:
                return out
    return out


def session_rates(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Games/min and events/s over the session's playing time (running -> last game)."""
    start = next(
        (
            parse_ts(e["ts"])
            for e in events
            if e["type"] == EventType.SESSION_STATE and e["data"]["state"] == State.RUNNING
        ),
        None,
    )
    games = [e for e in events if e["type"] == EventType.GAME_FINISHED]
    if start is None or not games:
        return {"games": len(games), "playing_s": None, "games_per_minute": None, "events_per_second": None}
    end = parse_ts(games[-1]["ts"])
    playing = max(end - start, 1e-9)
    window = [e for e in events if start <= parse_ts(e["ts"]) <= end]
    by_type = Counter(e["type"] for e in window)
    return {
        "games": len(games),
        "playing_s": round(playing, 3),
        "games_per_minute": round(len(games) / (playing / 60), 2),
        "events_per_second": {
            "all": round(len(window) / playing, 3),
            **{k: round(v / playing, 3) for k, v in sorted(by_type.items())},
        },
        "event_bytes_mean": round(statistics.fmean(len(json.dumps(e)) for e in window), 1),
    }


def simulations(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The worker's simulations/s from its stored stats snapshots: steadier than games/min
    over a short run. `steady` leaves out the first report (the warm-up)."""
    values = [
        e["data"]["simulations_per_second"]
        for e in events
        if e["type"] == EventType.METRICS_SNAPSHOT and "simulations_per_second" in e["data"]
    ]
    return {
        "mean": round(statistics.fmean(values), 1) if values else None,
        "steady": round(statistics.fmean(values[1:]), 1) if len(values) > 1 else None,
        "reports": len(values),
    }


async def phase(args: argparse.Namespace, folder: Path, subscribers: int, extra: dict[str, str]) -> dict[str, Any]:
    env = base_env(
        folder,
        args.preset,
        {
            "MAX_CONCURRENT_SESSIONS": "1",
            "WORKERS": "1",
            "TORCH_THREADS": str(args.threads),
            "WS_QUEUE_SIZE": "1000",
            **DEFAULTS,
            **extra,
        },
    )
    server = Server(folder, env, f"sub{subscribers}")
    body = {"max_games": 0, "session_duration_min": args.seconds / 60}
    server.start()
    try:
        async with httpx.AsyncClient() as client:
            await server.wait_ready(client, args.startup_timeout)
            ws_base = server.url.replace("http://", "ws://")
            sid = await create_session(client, server.url, body)
            feed = f"{ws_base}/v1/sessions/{sid}/live?moves=true"
            log(f"{subscribers} subscribers, session {sid}, {args.seconds:g} s")
            clients = [Subscriber(feed) for _ in range(subscribers)]
            tasks = [asyncio.create_task(c.run()) for c in clients]
            detail = await wait_final(client, server.url, sid, timeout=args.seconds + 600, poll_s=1.0)
            done, pending = await asyncio.wait(tasks, timeout=60) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            events = await stored_events(f"{ws_base}/v1/sessions/{sid}/live")
            memory = server.memory()
    finally:
        code = server.stop()
    rates = session_rates(events)
    latencies = [x for c in clients for x in c.latencies]
    first = clients[0] if clients else None
    ran_s = (
        (datetime.fromisoformat(detail["finished_at"]) - datetime.fromisoformat(detail["started_at"])).total_seconds()
        if detail.get("started_at") and detail.get("finished_at")
        else None
    )
    result: dict[str, Any] = {
        "subscribers": subscribers,
        "session_id": sid,
        "state": detail["state"],
        **rates,
        "simulations_per_second": simulations(events),
        "stored_events": len(events),
        "latency_ms": percentiles_ms(latencies),
        "closed_4008": sum(c.close_code == 4008 for c in clients),
        "closed_other": sorted({c.close_code for c in clients if c.close_code not in (None, 4008)}),
        "errors": sorted({c.error for c in clients if c.error})[:5],
        "server_rss_mb": memory["server"].get("rss_mb"),
        "server_exit_code": code,
    }
    if first is not None:
        result["moves_per_second"] = round(first.types[EventType.GAME_MOVE] / ran_s, 3) if ran_s else None
        result["complete_feeds"] = sum(c.seqs == list(range(1, len(events) + 1)) for c in clients)
    return result


def main() -> None:
    args = parse_args()
    extra = extra_settings(args.sets)
    root = Path(tempfile.mkdtemp(prefix="bench-live-feed-"))
    out: dict[str, Any] = {
        "bench": "live_feed",
        "preset": args.preset,
        "seconds": args.seconds,
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "settings": {**DEFAULTS, **extra},
        "phases": [],
    }
    try:
        for i, count in enumerate(args.counts):
            out["phases"].append(asyncio.run(phase(args, root / f"phase-{i}-{count}", count, extra)))
    except RuntimeError as exc:
        log(f"failed: {exc}")
        log(f"logs kept in {root}")
        raise SystemExit(1) from None

    def ratios(get) -> dict[str, float | None]:
        """Per subscriber count, the mean over its phases / the mean of the first phase's count."""
        means: dict[int, float | None] = {}
        for count in dict.fromkeys(p["subscribers"] for p in out["phases"]):
            values = [get(p) for p in out["phases"] if p["subscribers"] == count and get(p)]
            means[count] = statistics.fmean(values) if values else None
        base = means[out["phases"][0]["subscribers"]]
        return {str(count): (round(mean / base, 4) if base and mean else None) for count, mean in means.items()}

    out["games_per_minute_ratio"] = ratios(lambda p: p.get("games_per_minute"))
    out["simulations_per_second_ratio"] = ratios(lambda p: p["simulations_per_second"]["steady"])
    if args.keep:
        out["folder"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
