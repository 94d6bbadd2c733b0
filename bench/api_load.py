"""Read-route latency and live-feed health under load while two sessions play, and what
that load costs their self-play (games/min, simulations/s).

Starts `continuous-play serve` as a subprocess (the harness of bench/api_latency.py: a free
loopback port, a temporary SQLite database, the process worker pool, no settings from the
environment or `.env` but those given here; ENABLE_PROMETHEUS stays on, as the service's
default, so the HTTP instrumentation is part of what is measured), creates TWO sessions
(MAX_GAMES=0, a long duration) so both workers of the default pool play, lets them warm up
(`--warmup` s), then measures windows of `--seconds` each, in the order `--order` gives:

- `U` (unloaded): nothing but the sessions runs; the bench only reads `games_done` at the
  window's two ends;
- `L` (loaded): `--clients` HTTP clients and `--subscribers` live-feed subscribers run;
- `S` (saturation, optional): the same clients in a closed loop (each sends its next
  request as soon as the last one answered): the server's throughput limit. By Little's
  law, latency there is clients / throughput, so its percentiles say how fast the server
  drains a queue, not what a client at a normal pace sees; not used in the comparison.

The default order `ULU` puts the loaded window between two unloaded ones, so a drift of the
machine's speed weighs on both sides alike (`ULLU`, `ULULU` also work).

HTTP clients (one asyncio task and one keep-alive connection per client: `RawHttp`, a
minimal HTTP/1.1 client on asyncio streams, because httpx spends more CPU per request than
the optimised server does, on the same cores) cycle through `GET /v1/sessions/{id}` and
`GET /v1/sessions/{id}/games?limit=50` of both sessions, each client at `--rate`
requests/s (default 1: 50 clients send 50 requests/s, more than 50 open dashboards, which
poll every 5 s); a client's start is spread at random over its first period.
Latency runs from the moment a request is sent to its whole body being read; `send_lag_ms`
is how late requests left against their schedule (the load generator's own delay, or an
answer that took longer than the period).

Live-feed subscribers (the `websockets` library with its defaults, permessage-deflate
included, as a browser would) follow `WS /v1/sessions/{id}/live?moves=true`, alternating
sessions; they connect before the loaded window, each replaying the session's stored events
(`since=0`); the window starts `--settle` s after all of them have caught up with the live
tail (`connect_and_replay_s`: how long 49 such connections took, not part of the window).
ONE of them never reads (`slow`, on `WS /v1/live?moves=true`, both sessions' tail): a
socket with a 4 KiB receive buffer whose client stops reading. The
server must drop it without slowing anything else: by its per-subscriber queue overflowing
once the socket buffers are full (4008; WS_QUEUE_SIZE is 100 here, see DEFAULTS) or by
uvicorn's keep-alive ping going unanswered (1011, after about 40 s), whichever comes first.
At the end its buffered messages are drained to find whether and how it was closed (1006:
the server cut the connection before its close frame got through).
`dropped` counts the reading subscribers that were closed or failed during the window
(should be 0); `delivery_ms` is from a game's end in the worker (`ended_at`) to its
`game.finished` arriving at a subscriber.

Everything the load generator does runs in THIS one process (one asyncio loop, uvloop when
installed), on the same cores as the server and its two workers. Each window reports the
CPU (cores in use) of the load generator, the server process and each worker, from
psutil, and the load average at its start and end.

Prints ONE JSON object on stdout; progress goes to stderr. `summary` gives, over the loaded
windows: per-route p50/p90/p99/max/mean latency, errors, dropped subscribers, the slow
subscriber's fate, games/min and simulations/s loaded vs unloaded (mean of the unloaded
windows) with their ratios, and the issue's targets (p99 < 50 ms on both routes;
games/min under load >= 90% of unloaded) as booleans.

Settings default to a session that plays many short games on a CPU (the tiny net, 16
games at a time, 80 plies at most: games/min over a minute is then not dominated by a few
batches ending together); `--preset small --set SELFPLAY_PARALLEL_GAMES=64 ...` measures
the default session instead. Figures move from machine to machine: compare windows of one
run.

    python bench/api_load.py                                  # 50 clients x 1 req/s, 50 subscribers, ULU x 60 s
    python bench/api_load.py --seconds 120 --order ULULU --saturate
    python bench/api_load.py --clients 8 --rate 0              # closed-loop clients in the L window

Over 500 lines: one bench script with its server, load clients, feed subscribers and the
windows they are measured in; split, the figures of one run would be read across files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
import psutil
import websockets

from service.event_types import EventType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _shared  # noqa: E402  (bench/_shared.py)
from api_latency import (  # noqa: E402  (the server harness of the latency bench)
    CONSOLE_SCRIPT,
    Server,
    base_env,
    create_session,
    extra_settings,
    get_session,
    percentiles,
    stop_sessions,
    wait_running,
)

ROUTES = ("GET /v1/sessions/{id}", "GET /v1/sessions/{id}/games?limit=50")
DEFAULTS = {
    "CHESS_PRESET": "tiny",
    "SELFPLAY_PARALLEL_GAMES": "16",
    "MAX_MOVES_PER_GAME": "80",
    "SELFPLAY_SIMULATIONS": "16",
    "FAST_SIMULATIONS": "4",
    "GUMBEL_CONSIDERED": "8",
    "MIN_GAMES_BEFORE_LEARNING": "10",
    "LEARN_EVERY_N_GAMES": "5",
    "LEARNING_BATCH_SIZE": "64",
    "CHECKPOINT_INTERVAL": "50",
    "EVAL_INTERVAL_GAMES": "100000",
    "EVAL_GAMES": "2",
    "EVAL_OPPONENTS": "random",
    "EVAL_SIMULATIONS": "2",
    # A reading subscriber never has more than a few messages queued (~5 arrive per second);
    # the default 1000 would take the never-reading one many minutes to overflow, after the
    # kernel's socket buffers (a few hundred messages) have filled. 100 shows the drop in a window.
    "WS_QUEUE_SIZE": "100",
}
TARGET_P99_MS = 50.0
TARGET_GAMES_RATIO = 0.9
SLOW_RCVBUF = 4096


def log(message: str) -> None:
    print(f"[api_load] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    _shared.fail("api_load.py", message)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="CHESS_PRESET (default tiny)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window (default 60)")
    parser.add_argument("--order", default="ULU", help="windows: U unloaded, L loaded (default ULU)")
    parser.add_argument(
        "--saturate", action="store_true", help="end with an S window: the clients in a closed loop (throughput limit)"
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent HTTP clients (default 50)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="requests/s per client in L windows; 0: closed loop (default 1)"
    )
    parser.add_argument(
        "--subscribers",
        type=int,
        default=50,
        help="live-feed subscribers in L windows, one of them never reading (default 50)",
    )
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of play before the first window")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds between connecting the subscribers and the loaded window"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting, e.g. --set WS_QUEUE_SIZE=200",
    )
    parser.add_argument("--no-prometheus", action="store_true", help="ENABLE_PROMETHEUS=false")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="write every request of the L/S windows (sent at, route, ms) to this JSON file",
    )
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for /readyz")
    args = parser.parse_args()
    args.order = args.order.upper() + ("S" if args.saturate else "")
    if not args.order or set(args.order) - set("ULS"):
        fail("--order: letters U (unloaded), L (loaded), S (saturation), e.g. ULU")
    if args.seconds <= 0 or args.clients < 0 or args.subscribers < 0 or args.rate < 0:
        fail("--seconds must be > 0; --clients, --subscribers and --rate >= 0")
    if not CONSOLE_SCRIPT.exists():
        fail(f"console script missing at {CONSOLE_SCRIPT}: install the project (make install)")
    return args


def rounded(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in stats.items()}


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# -- CPU accounting -----------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of this process, the server and each worker between two readings."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.me = psutil.Process()

    def read(self) -> dict[str, float]:
        out = {"load_generator": self._cpu(self.me), "server": self._cpu(self.server.ps)}
        for worker in self.server.workers():
            out[f"worker-{worker.pid}"] = self._cpu(worker)
        return out

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            return times.user + times.system
        except psutil.NoSuchProcess:
            return float("nan")

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        """Cores each process kept busy on average (CPU seconds / wall seconds)."""
        out = {name: round((after[name] - before[name]) / seconds, 3) for name in after if name in before}
        workers = [v for k, v in out.items() if k.startswith("worker-")]
        out["workers_total"] = round(sum(workers), 3)
        return out


# -- HTTP clients -------------------------------------------------------------------------


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: GET only, bodies by
    Content-Length or chunked. The load generator shares the cores with what it measures;
    httpx costs ~1-2 ms of CPU per request here, this ~0.1 ms."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, timeout: float = 30.0) -> tuple[int, int]:
        """(status, body bytes); raises OSError / asyncio.TimeoutError / ValueError on failure
        (the connection is then dropped and the next call opens a new one)."""
        try:
            return await asyncio.wait_for(self._get(path), timeout)
        except BaseException:
            await self.close()
            raise

    async def _get(self, path: str) -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: application/json\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            size = int(headers["content-length"])
            await self.reader.readexactly(size)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            size = 0
            while True:
                chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(chunk + 2)
                size += chunk
                if chunk == 0:
                    break
        else:
            raise ValueError("response without Content-Length or chunked encoding")
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, size

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


class HttpLoad:
    """`clients` tasks cycling through the read routes of the sessions, paced or closed-loop."""

    def __init__(self, url: str, ids: list[str], clients: int, rate: float) -> None:
        self.url, self.ids, self.clients, self.rate = url, ids, clients, rate
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.latencies: dict[str, list[float]] = {r: [] for r in ROUTES}
        self.errors: dict[str, int] = {r: 0 for r in ROUTES}
        self.error_kinds: Counter[str] = Counter()
        self.lags: list[float] = []
        self.bytes: dict[str, list[int]] = {r: [] for r in ROUTES}
        self.trace: list[tuple[float, str, float]] = []  # (wall time sent, route, ms)

    def plan(self, index: int) -> list[tuple[str, str]]:
        out = []
        order = self.ids[index % len(self.ids) :] + self.ids[: index % len(self.ids)]
        for sid in order:
            out.append((ROUTES[0], f"/v1/sessions/{sid}"))
            out.append((ROUTES[1], f"/v1/sessions/{sid}/games?limit=50"))
        return out

    async def run(self, seconds: float) -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(self._client(i, started, deadline) for i in range(self.clients)))
        return time.perf_counter() - started

    async def _client(self, index: int, started: float, deadline: float) -> None:
        plan = self.plan(index)
        period = 1.0 / self.rate if self.rate > 0 else 0.0
        client = RawHttp(self.host, self.port)
        due = started + random.random() * period
        i = 0
        try:
            while True:
                if period:
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    self.lags.append(max(0.0, time.perf_counter() - due) * 1000)
                if time.perf_counter() >= deadline:
                    return
                route, path = plan[i % len(plan)]
                i += 1
                await self._one(client, route, path)
                due += period
        finally:
            await client.close()

    async def _one(self, client: RawHttp, route: str, path: str) -> None:
        t = time.perf_counter()
        try:
            status, size = await client.get(path)
            kind = None if status == 200 else f"HTTP {status}"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            kind, size = type(exc).__name__, 0
        elapsed_ms = (time.perf_counter() - t) * 1000
        self.latencies[route].append(elapsed_ms)
        self.trace.append((time.time() - elapsed_ms / 1000, route, elapsed_ms))
        if kind is not None:
            self.errors[route] += 1
            self.error_kinds[kind] += 1
        else:
            self.bytes[route].append(size)

    def result(self, elapsed: float) -> dict[str, Any]:
        total = sum(len(v) for v in self.latencies.values())
        return {
            "clients": self.clients,
            "rate_per_client": self.rate if self.rate > 0 else "closed loop",
            "offered_per_second": round(self.clients * self.rate, 1) if self.rate > 0 else None,
            "requests": total,
            "requests_per_second": round(total / elapsed, 1) if elapsed else None,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.error_kinds),
            "routes": {
                r: {
                    **rounded(percentiles(self.latencies[r])),
                    "errors": self.errors[r],
                    "mean_bytes": round(statistics.fmean(self.bytes[r])) if self.bytes[r] else None,
                }
                for r in ROUTES
            },
            "send_lag_ms": rounded(percentiles(self.lags)) if self.lags else None,
        }


# -- live-feed subscribers ------------------------------------------------------------------


class Subscriber:
    """Follows a session's feed (with moves); counts what arrives inside the window."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.window: tuple[float, float] = (float("inf"), float("inf"))
        self.messages = 0
        self.delivery: list[float] = []
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self.error: str | None = None
        self.connected = asyncio.Event()
        self.caught_up = asyncio.Event()  # the replay of stored events is over: live messages arrive
        self.replayed = 0

    async def run(self) -> None:
        try:
            async with websockets.connect(self.url, max_size=2**24, open_timeout=60) as ws:
                since = time.time()
                self.connected.set()
                async for raw in ws:
                    arrived = time.time()
                    if not self.caught_up.is_set():
                        if parse_ts(json.loads(raw)["ts"]) < since:
                            self.replayed += 1
                            continue
                        self.caught_up.set()
                    if not self.window[0] <= arrived <= self.window[1]:
                        continue
                    self.messages += 1
                    message = json.loads(raw)
                    if message["type"] == EventType.GAME_FINISHED and message["data"].get("ended_at"):
                        self.delivery.append((arrived - message["data"]["ended_at"]) * 1000)
        except websockets.ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
            self.closed_at = time.time()
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.closed_at = time.time()
        finally:
            self.connected.set()
            self.caught_up.set()


class SlowSubscriber:
    """Connects with a small receive buffer and never reads until `drain` is called."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws = None
        self.error: str | None = None
        self.drained_messages = 0
        self.close_code: int | None = None

    async def connect(self, host: str, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        # no keep-alive pings from this side and a 1-message queue: reading stops at once
        self.ws = await websockets.connect(
            self.url, sock=sock, max_size=2**24, max_queue=1, ping_interval=None, open_timeout=60
        )

    async def drain(self, timeout: float = 10.0) -> None:
        """Read what is buffered until the connection ends or nothing comes for 2 s."""
        if self.ws is None:
            return
        deadline = time.perf_counter() + timeout
        try:
            while time.perf_counter() < deadline:
                await asyncio.wait_for(self.ws.recv(), 2.0)
                self.drained_messages += 1
        except asyncio.TimeoutError:
            pass  # still open: the server did not drop it
        except websockets.ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
        finally:
            await self.ws.close()


# -- the bench --------------------------------------------------------------------------------


async def games_done(client: httpx.AsyncClient, url: str, ids: list[str]) -> dict[str, int]:
    return {sid: (await get_session(client, url, sid))["games_done"] for sid in ids}


async def window(
    kind: str, args: argparse.Namespace, server: Server, client: httpx.AsyncClient, ids: list[str], meter: CpuMeter
) -> dict[str, Any]:
    """One measured window; its games, CPU and (loaded) HTTP and feed figures.

    Not split: one window's steps (start, load, sample, stop) share a dozen local figures."""
    subscribers: list[Subscriber] = []
    tasks: list[asyncio.Task] = []
    slow = None
    if kind == "L" and args.subscribers:
        ws_base = server.url.replace("http://", "ws://")
        urls = [f"{ws_base}/v1/sessions/{ids[i % len(ids)]}/live?moves=true" for i in range(args.subscribers)]
        slow = SlowSubscriber(f"{ws_base}/v1/live?moves=true")  # both sessions: it fills up twice as fast
        try:
            await slow.connect("127.0.0.1", server.port)
        except (OSError, websockets.InvalidHandshake) as exc:
            slow.error = f"{type(exc).__name__}: {exc}"
        subscribers = [Subscriber(u) for u in urls[1:]]
        t_connect = time.perf_counter()
        tasks = [asyncio.create_task(s.run()) for s in subscribers]
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in subscribers)), 120)
        # each replays the stored events first (since=0): wait until all are live, then settle
        await asyncio.wait_for(asyncio.gather(*(s.caught_up.wait() for s in subscribers)), 300)
        replay_s = time.perf_counter() - t_connect
        log(
            f"{len(subscribers) + 1} subscribers connected and replayed in {replay_s:.1f} s; settling {args.settle:g} s"
        )
        await asyncio.sleep(args.settle)
    load = (
        HttpLoad(server.url, ids, args.clients, 0.0 if kind == "S" else args.rate)
        if kind in "LS" and args.clients
        else None
    )
    log(f"window {kind}: {args.seconds:g} s")
    before = await games_done(client, server.url, ids)
    load_start = os.getloadavg()[0]
    cpu0 = meter.read()
    w0 = time.time()
    for s in subscribers:
        s.window = (w0, w0 + args.seconds)
    t0 = time.perf_counter()
    elapsed = await load.run(args.seconds) if load else None
    remaining = args.seconds - (time.perf_counter() - t0)
    if remaining > 0:
        await asyncio.sleep(remaining)
    seconds = time.perf_counter() - t0
    w1 = time.time()
    cpu1 = meter.read()
    load_end = os.getloadavg()[0]
    after = await games_done(client, server.url, ids)
    out: dict[str, Any] = {
        "kind": {"U": "unloaded", "L": "loaded", "S": "saturation"}[kind],
        "start": w0,
        "end": w1,
        "seconds": round(seconds, 3),
        "loadavg_1min": {"start": round(load_start, 2), "end": round(load_end, 2)},
        "games": {sid: after[sid] - before[sid] for sid in ids},
        "games_per_minute": round(sum(after[s] - before[s] for s in ids) / (seconds / 60), 2),
        "cpu_cores": CpuMeter.cores(cpu0, cpu1, seconds),
    }
    if load is not None:
        out["http"] = load.result(elapsed)
        if args.trace is not None:
            traces = json.loads(args.trace.read_text()) if args.trace.exists() else []
            traces.append({"kind": kind, "requests": load.trace})
            args.trace.write_text(json.dumps(traces))
    if kind == "L" and args.subscribers:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if slow is not None:
            await slow.drain()
        delivery = [x for s in subscribers for x in s.delivery]
        dropped = [s for s in subscribers if s.closed_at is not None and s.closed_at <= w1 + 1]
        out["live"] = {
            "subscribers": len(subscribers) + (slow is not None),
            "reading": len(subscribers),
            "connect_and_replay_s": round(replay_s, 2),
            "replayed_events_per_subscriber": round(statistics.fmean(s.replayed for s in subscribers), 1)
            if subscribers
            else None,
            "messages_per_subscriber_per_second": round(statistics.fmean(s.messages for s in subscribers) / seconds, 2)
            if subscribers
            else None,
            "delivery_ms": rounded(percentiles(delivery)),
            "dropped": len(dropped),
            "dropped_codes": sorted({s.close_code or s.error for s in dropped}, key=str),
            "slow_subscriber": {
                "close_code": slow.close_code,
                "drained_messages": slow.drained_messages,
                "error": slow.error,
                "dropped": slow.close_code is not None,
            }
            if slow is not None
            else None,
        }
    return out


def sims_in(snapshots: list[dict[str, Any]], start: float, end: float) -> float | None:
    values = [
        s["data"]["simulations_per_second"]
        for s in snapshots
        if start <= parse_ts(s["ts"]) <= end and "simulations_per_second" in s["data"]
    ]
    return round(statistics.fmean(values), 1) if values else None


def summarise(phases: list[dict[str, Any]]) -> dict[str, Any]:
    loaded = [p for p in phases if p["kind"] == "loaded"]
    unloaded = [p for p in phases if p["kind"] == "unloaded"]

    def mean(values: list[float | None]) -> float | None:
        values = [v for v in values if v is not None]
        return round(statistics.fmean(values), 2) if values else None

    gpm_u, gpm_l = mean([p["games_per_minute"] for p in unloaded]), mean([p["games_per_minute"] for p in loaded])
    sps_u = mean([p["simulations_per_second_total"] for p in unloaded])
    sps_l = mean([p["simulations_per_second_total"] for p in loaded])
    out: dict[str, Any] = {
        "games_per_minute": {
            "unloaded": gpm_u,
            "loaded": gpm_l,
            "ratio": round(gpm_l / gpm_u, 4) if gpm_u and gpm_l is not None else None,
        },
        "simulations_per_second": {
            "unloaded": sps_u,
            "loaded": sps_l,
            "ratio": round(sps_l / sps_u, 4) if sps_u and sps_l is not None else None,
        },
        "load_generator_cores": mean([p["cpu_cores"]["load_generator"] for p in loaded]),
        "server_cores": {
            "unloaded": mean([p["cpu_cores"]["server"] for p in unloaded]),
            "loaded": mean([p["cpu_cores"]["server"] for p in loaded]),
        },
    }
    if loaded and "http" in loaded[0]:
        routes = {}
        for route in ROUTES:
            # percentiles over every loaded window's requests: rebuild from the windows' figures
            # is not possible, so with several L windows the worst window's p99 is reported
            per = [p["http"]["routes"][route] for p in loaded]
            routes[route] = max(per, key=lambda r: r.get("p99", 0)) if len(per) > 1 else per[0]
        out["latency_ms"] = routes
        out["errors"] = sum(p["http"]["errors"] for p in loaded)
        out["targets"] = {
            "p99_ms_below": TARGET_P99_MS,
            "p99_met": all(r.get("p99", float("inf")) < TARGET_P99_MS for r in routes.values()),
            "games_ratio_at_least": TARGET_GAMES_RATIO,
            "games_ratio_met": (out["games_per_minute"]["ratio"] or 0) >= TARGET_GAMES_RATIO,
        }
    if loaded and "live" in loaded[0]:
        out["dropped_subscribers"] = sum(p["live"]["dropped"] for p in loaded)
        out["slow_subscriber_dropped"] = all((p["live"]["slow_subscriber"] or {}).get("dropped") for p in loaded)
    saturation = [p for p in phases if p["kind"] == "saturation"]
    if saturation:
        out["saturation_requests_per_second"] = saturation[-1]["http"]["requests_per_second"]
    return out


async def bench(args: argparse.Namespace, folder: Path, extra: dict[str, str]) -> dict[str, Any]:
    settings = {**DEFAULTS, **({"CHESS_PRESET": args.preset} if args.preset else {}), **extra}
    env = base_env(
        folder,
        settings["CHESS_PRESET"],
        {"MAX_CONCURRENT_SESSIONS": "2", "ENABLE_PROMETHEUS": "false" if args.no_prometheus else "true", **settings},
    )
    server = Server(folder, env, "load")
    body = {"max_games": 0, "session_duration_min": 24 * 60}
    server.start()
    phases: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient() as client:
            log(f"starting the server on port {server.port}")
            await server.wait_ready(client, args.startup_timeout)
            ids: list[str] = []
            for _ in range(2):  # one after the other (see bench/api_latency.py)
                ids.append(await create_session(client, server.url, body))
                await wait_running(client, server.url, ids)
            log(f"sessions {ids} running; warming up {args.warmup:g} s")
            await asyncio.sleep(args.warmup)
            meter = CpuMeter(server)
            for kind in args.order:
                phases.append(await window(kind, args, server, client, ids, meter))
                p = phases[-1]
                log(
                    f"  {p['kind']}: {p['games_per_minute']} games/min, cores {p['cpu_cores']}, "
                    f"load {p['loadavg_1min']}"
                    + (f", p99 {[r.get('p99') for r in p['http']['routes'].values()]} ms" if "http" in p else "")
                )
            snapshots = {
                sid: (await client.get(f"{server.url}/v1/sessions/{sid}/metrics?limit=5000", timeout=60)).json()[
                    "items"
                ]
                for sid in ids
            }
            final = await get_session(client, server.url, ids[0])
            memory = server.memory()
            log("stopping the sessions")
            states = await stop_sessions(client, server.url, ids)
    finally:
        code = server.stop()
    for p in phases:
        per = {sid: sims_in(snapshots[sid], p["start"], p["end"]) for sid in ids}
        p["simulations_per_second"] = per
        p["simulations_per_second_total"] = round(sum(v for v in per.values() if v), 1) if all(per.values()) else None
        p.pop("start"), p.pop("end")
    return {
        "sessions": {sid: {"final_state": states[sid]} for sid in ids},
        "games_stored_session_0": final["games_done"],
        "server_memory_mb_end": memory,
        "server_exit_code": code,
        "settings": {"MAX_CONCURRENT_SESSIONS": 2, "ENABLE_PROMETHEUS": not args.no_prometheus, **settings},
        "phases": phases,
        "summary": summarise(phases),
    }


def main() -> None:
    args = parse_args()
    extra = extra_settings(args.sets)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    root = Path(tempfile.mkdtemp(prefix="bench-api-load-"))
    out: dict[str, Any] = {
        "bench": "api_load",
        "seconds": args.seconds,
        "order": args.order,
        "clients": args.clients,
        "rate_per_client": args.rate,
        "subscribers": args.subscribers,
        "cpu_count": os.cpu_count(),
        "load_generator": {
            "what": "this one process: one asyncio loop; per HTTP client one task and one keep-alive "
            "connection (RawHttp: a minimal HTTP/1.1 client on asyncio streams); websockets "
            "clients; on the same cores as the server and its workers",
            "event_loop": "uvloop" if uvloop else "asyncio",
        },
    }
    try:
        runner = uvloop.run if uvloop else asyncio.run
        out.update(runner(bench(args, root / "load", extra)))
    except (RuntimeError, asyncio.TimeoutError) as exc:
        log(f"failed: {exc!r}")
        log(f"logs kept in {root}")
        raise SystemExit(1) from None
    if args.keep:
        out["folder"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
