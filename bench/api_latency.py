"""API latency under load while sessions play, and what the service costs in games/min.

Starts `continuous-play serve` as a subprocess (a free loopback port, a temporary SQLite
database, checkpoint and report folders, no settings from the environment or `.env`
except those given here), creates TWO sessions (MAX_GAMES=0, a long duration), one
after the other, so both workers of the default pool are busy, waits until both run and
their workers report stats, then for `--seconds` runs `--clients` concurrent httpx clients, each looping over
`GET /v1/sessions/{id}` and `GET /v1/sessions/{id}/games?limit=50` for both sessions, as
fast as answers come. Prints ONE JSON object on stdout:

- `latency_ms`: per route p50 / p90 / p99 / max / mean in milliseconds, requests, and
  the error count (an answer other than 200, or a transport error), requests/s overall;
- `sessions`: per session, games/min over the measuring window (the `games_done`
  delta read from the API; noisy when few games end in the window: a worker plays
  SELFPLAY_PARALLEL_GAMES games at once, which tend to end together) and the
  simulations/s its worker reported during the window (`mean` of the reports seen in
  the answers; smooth: the better throughput figure for short windows);
- `startup`: seconds from launching the server to `/healthz` and to `/readyz` answering
  200 (uvicorn only listens once the lifespan has warmed the pool, so the two are close),
  and when each worker process appeared; `pool_spawn`: after the server has stopped,
  the same process pool is started in this process and each worker's time to its
  "ready" message is measured (they start together, as in the server);
- `memory_mb`: RSS and USS (memory unique to the process) of the server and of each
  worker process (children of the server, found with psutil), idle after start-up and
  at the end of the window, while the sessions play.

`--headless-compare` adds the issue's comparison (the service should cost < 10% of
games/min). Two sessions in the service share the cores (TORCH_THREADS = cores / 2
each), so comparing their games/min with one headless session would compare 1 thread
with 2. Instead, with the same preset, settings and TORCH_THREADS (`--threads`, default
all cores), for the same `--seconds`:

- `service_one_session`: a fresh server with MAX_CONCURRENT_SESSIONS=1 runs ONE session
  with SESSION_DURATION_MIN = seconds / 60 to its end while one client polls
  `GET /v1/sessions/{id}` once a second (a dashboard's load, not the latency load);
- `headless`: `continuous-play run` with the same settings.

Both are measured the same way, from their stored session: games over the session's
elapsed time (started_at to finished_at: what `run`'s report.json calls
throughput.games_per_minute) and the simulations/s of the worker's stats reports (one
every 2 s; METRICS_EXPORT_INTERVAL=1 in every phase stores each of them): their mean,
and `steady`, the mean without the first report (which covers the warm-up).
`comparison` gives the ratios service / headless and the service's cost in percent
(games/min and steady simulations/s); `--repeats N` runs N such pairs, alternating
which goes first, and gives the medians (the machine's speed drifts between runs).

Figures move from machine to machine and the load generator shares the CPU with the
server: compare runs made on one machine. Progress goes to stderr.

    python bench/api_latency.py                                  # small preset, 60 s, 8 clients
    python bench/api_latency.py --preset tiny --seconds 20 --headless-compare
    python bench/api_latency.py --seconds 300 --headless-compare --repeats 2
    python bench/api_latency.py --set SELFPLAY_PARALLEL_GAMES=16 --seconds 300

Over 500 lines: one bench script with its server, clients and each phase's measurement;
split, the figures of one run would be read across files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import _shared
import httpx
import psutil

from service.lifecycle import FINAL, State

CONSOLE_SCRIPT = Path(sys.executable).with_name("continuous-play")
ROUTES = ("GET /v1/sessions/{id}", "GET /v1/sessions/{id}/games?limit=50")
METRICS_EXPORT_INTERVAL = 1  # <= the worker's 2 s stats period: every stats report is stored
FEW_GAMES = 20  # below this, games/min over the window is too noisy to compare


def log(message: str) -> None:
    print(f"[api_latency] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    _shared.fail("api_latency.py", message)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="CHESS_PRESET (default small)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring time (default 60)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="TORCH_THREADS of the --headless-compare runs (default: all cores)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every phase, e.g. --set SELFPLAY_PARALLEL_GAMES=16",
    )
    parser.add_argument(
        "--headless-compare",
        action="store_true",
        help="also compare one service session with `continuous-play run` (games/min)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="pairs of --headless-compare runs, alternating which goes first (default 1)",
    )
    parser.add_argument("--no-pool-spawn", action="store_true", help="skip the in-process pool spawn timing")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for /readyz")
    args = parser.parse_args()
    if args.seconds <= 0 or min(args.clients, args.threads, args.repeats) < 1:
        fail("--seconds must be > 0, --clients, --threads and --repeats >= 1")
    if not CONSOLE_SCRIPT.exists():
        fail(f"console script missing at {CONSOLE_SCRIPT}: install the project (make install)")
    return args


def settings_names() -> set[str]:
    from service.config import Settings

    return set(Settings.model_fields)


def extra_settings(sets: list[str]) -> dict[str, str]:
    names = settings_names()
    out = {}
    for item in sets:
        name, sep, value = item.partition("=")
        if not sep or name.strip().lower() not in names:
            fail(f"--set {item!r}: expected NAME=VALUE with NAME a setting, e.g. SELFPLAY_PARALLEL_GAMES=16")
        out[name.strip().upper()] = value
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(folder: Path, preset: str, extra: dict[str, str]) -> dict[str, str]:
    """os.environ without any of the service's settings, plus this bench's."""
    names = settings_names()
    env = {k: v for k, v in os.environ.items() if k.lower() not in names}
    env.update(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}",
            "CHECKPOINT_DIR": str(folder / "checkpoints"),
            "REPORT_DIR": str(folder / "reports"),
            "CHESS_PRESET": preset,
            "HOST": "127.0.0.1",
            "ENABLE_PROMETHEUS": "false",
            "METRICS_EXPORT_INTERVAL": str(METRICS_EXPORT_INTERVAL),
            "WORKER_BACKEND": "process",
            "NO_COLOR": "1",
            "COLUMNS": "100",
        }
    )
    env.update(extra)
    return env


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"requests": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "requests": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def process_memory(proc: psutil.Process) -> dict[str, Any]:
    try:
        info = proc.memory_full_info()
        return {"pid": proc.pid, "rss_mb": round(info.rss / 2**20, 1), "uss_mb": round(info.uss / 2**20, 1)}
    except psutil.AccessDenied:
        return {"pid": proc.pid, "rss_mb": round(proc.memory_info().rss / 2**20, 1), "uss_mb": None}
    except psutil.NoSuchProcess:
        return {"pid": proc.pid, "gone": True}


def is_worker(proc: psutil.Process) -> bool:
    """A spawned pool worker (not multiprocessing's resource tracker)."""
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "multiprocessing" in cmdline and "resource_tracker" not in cmdline


class Server:
    """`continuous-play serve` in a subprocess, its log in `folder/server-<name>.log`."""

    def __init__(self, folder: Path, env: dict[str, str], name: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"server-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.started = 0.0
        self.children_seen: dict[int, float] = {}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "serve"], cwd=self.folder, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def children(self) -> list[psutil.Process]:
        try:
            return self.ps.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        return [c for c in self.children() if is_worker(c)]

    def _note_children(self) -> None:
        now = time.perf_counter() - self.started
        for child in self.workers():
            self.children_seen.setdefault(child.pid, now)

    async def wait_ready(self, client: httpx.AsyncClient, timeout: float) -> dict[str, Any]:
        """Poll /healthz and /readyz until /readyz answers 200; the start-up times."""
        healthz = readyz = None
        deadline = time.perf_counter() + timeout
        while readyz is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"/readyz not 200 after {timeout:.0f} s:\n{self.log_tail()}")
            self._note_children()
            try:
                if healthz is None and (await client.get(self.url + "/healthz", timeout=2)).status_code == 200:
                    healthz = time.perf_counter() - self.started
                if (await client.get(self.url + "/readyz", timeout=2)).status_code == 200:
                    readyz = time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        self._note_children()
        return {
            "healthz_200_s": round(healthz if healthz is not None else readyz, 3),
            "readyz_200_s": round(readyz, 3),
            "worker_processes_appeared_s": sorted(round(t, 3) for t in self.children_seen.values()),
        }

    def memory(self) -> dict[str, Any]:
        return {"server": process_memory(self.ps), "workers": [process_memory(w) for w in self.workers()]}

    def stop(self, timeout: float = 90.0) -> int | None:
        """SIGINT (uvicorn shuts down, the lifespan closes the pool), then SIGKILL if needed."""
        if self.proc is None:
            return None
        kids = self.children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"server {self.proc.pid} did not stop in {timeout:.0f} s: killing it")
                self.proc.kill()
                self.proc.wait(10)
        for kid in kids:  # workers exit with their parent; make sure, by pid
            try:
                kid.wait(10)
            except psutil.TimeoutExpired:
                kid.kill()
            except psutil.NoSuchProcess:
                pass
        self._log.close()
        return self.proc.returncode


async def create_session(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> str:
    response = await client.post(url + "/v1/sessions", json=body, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"POST /v1/sessions answered {response.status_code}: {response.text[:500]}")
    return response.json()["id"]


async def get_session(client: httpx.AsyncClient, url: str, session_id: str) -> dict[str, Any]:
    response = await client.get(f"{url}/v1/sessions/{session_id}", timeout=30)
    response.raise_for_status()
    return response.json()


async def wait_running(client: httpx.AsyncClient, url: str, ids: list[str], timeout: float = 300) -> None:
    """Until every session is `running` and its worker has reported stats (it plays)."""
    deadline = time.perf_counter() + timeout
    while True:
        details = [await get_session(client, url, sid) for sid in ids]
        for d in details:
            if d["state"] in FINAL:
                raise RuntimeError(f"session {d['id']} ended early: {d['state']} {d.get('failure_reason')}")
        if all(d["state"] == State.RUNNING and d.get("metrics") for d in details):
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"sessions not running after {timeout:.0f} s: {[d['state'] for d in details]}")
        await asyncio.sleep(0.25)


async def wait_final(
    client: httpx.AsyncClient, url: str, session_id: str, timeout: float, poll_s: float = 1.0
) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while True:
        detail = await get_session(client, url, session_id)
        if detail["state"] in FINAL:
            return detail
        if time.perf_counter() > deadline:
            raise RuntimeError(f"session {session_id} still {detail['state']} after {timeout:.0f} s")
        await asyncio.sleep(poll_s)


async def load(url: str, ids: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """`clients` loops over the two routes of every session for `seconds`."""
    latencies: dict[str, list[float]] = {route: [] for route in ROUTES}
    errors: dict[str, int] = {route: 0 for route in ROUTES}
    error_kinds: dict[str, int] = {}
    sims: dict[str, dict[str, float]] = {sid: {} for sid in ids}  # session -> {stats time: sims/s}
    deadline = time.perf_counter() + seconds

    async def one(client: httpx.AsyncClient, route: str, path: str, sid: str) -> None:
        t = time.perf_counter()
        try:
            response = await client.get(url + path, timeout=30)
            ok = response.status_code == 200
            kind = None if ok else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            response, ok, kind = None, False, type(exc).__name__
        elapsed_ms = (time.perf_counter() - t) * 1000
        latencies[route].append(elapsed_ms)
        if not ok:
            errors[route] += 1
            error_kinds[kind] = error_kinds.get(kind, 0) + 1
        elif route == ROUTES[0]:
            metrics = response.json().get("metrics") or {}
            if "simulations_per_second" in metrics:
                sims[sid][metrics.get("at") or str(len(sims[sid]))] = metrics["simulations_per_second"]

    async def client_loop(index: int) -> None:
        async with httpx.AsyncClient() as client:
            order = ids[index % len(ids) :] + ids[: index % len(ids)]  # clients start on different sessions
            while time.perf_counter() < deadline:
                for sid in order:
                    await one(client, ROUTES[0], f"/v1/sessions/{sid}", sid)
                    await one(client, ROUTES[1], f"/v1/sessions/{sid}/games?limit=50", sid)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    total = sum(len(v) for v in latencies.values())
    return {
        "elapsed_s": round(elapsed, 3),
        "requests_per_second": round(total / elapsed, 1),
        "errors": sum(errors.values()),
        "error_kinds": error_kinds,
        "routes": {
            route: {
                **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in percentiles(latencies[route]).items()},
                "errors": errors[route],
            }
            for route in ROUTES
        },
        "sims": {sid: list(values.values()) for sid, values in sims.items()},
    }


async def stop_sessions(client: httpx.AsyncClient, url: str, ids: list[str]) -> dict[str, str]:
    for sid in ids:
        response = await client.post(f"{url}/v1/sessions/{sid}/stop", timeout=30)
        if response.status_code not in (200, 202, 409):
            log(f"stop {sid}: {response.status_code} {response.text[:200]}")
    out = {}
    for sid in ids:
        try:
            out[sid] = (await wait_final(client, url, sid, timeout=120, poll_s=0.5))["state"]
        except RuntimeError as exc:
            out[sid] = f"not stopped: {exc}"
    return out


def session_figures(
    ids: list[str],
    before: dict[str, int],
    after: dict[str, dict],
    final: dict[str, str],
    sims: dict[str, list],
    window_s: float,
) -> dict[str, dict[str, Any]]:
    """Each session's games and simulations/s in the measured window, and its final state."""
    sessions = {}
    for sid in ids:
        games = after[sid]["games_done"] - before[sid]
        sessions[sid] = {
            "games_in_window": games,
            "games_per_minute": round(games / (window_s / 60), 2),
            "simulations_per_second": sims_summary(sims[sid]),
            "games_done": after[sid]["games_done"],
            "final_state": final[sid],
        }
    return sessions


async def latency_phase(args: argparse.Namespace, folder: Path, extra: dict[str, str]) -> dict[str, Any]:
    """Two running sessions under `--clients` polling clients for `--seconds`: latency, throughput, memory."""
    env = base_env(folder, args.preset, {"MAX_CONCURRENT_SESSIONS": "2", **extra})
    server = Server(folder, env, "latency")
    body = {"max_games": 0, "session_duration_min": 24 * 60, "chess_preset": args.preset}
    server.start()
    try:
        async with httpx.AsyncClient() as client:
            log(f"starting the server on port {server.port}")
            startup = await server.wait_ready(client, args.startup_timeout)
            log(f"ready after {startup['readyz_200_s']} s")
            memory_idle = server.memory()
            # One after the other: created back to back, the orchestrator's `_schedule` could
            # launch the first session twice (it is still `pending` when the second is created).
            ids = []
            for _ in range(2):
                ids.append(await create_session(client, server.url, body))
                await wait_running(client, server.url, ids)
            before = {sid: (await get_session(client, server.url, sid))["games_done"] for sid in ids}
            log(f"sessions {ids} running; measuring for {args.seconds:g} s with {args.clients} clients")
            t0 = time.perf_counter()
            measured = await load(server.url, ids, args.clients, args.seconds)
            window_s = time.perf_counter() - t0
            after = {sid: await get_session(client, server.url, sid) for sid in ids}
            memory_busy = server.memory()
            log("stopping the sessions")
            final = await stop_sessions(client, server.url, ids)
    finally:
        code = server.stop()
    sessions = session_figures(ids, before, after, final, measured.pop("sims"), window_s)
    resolved_threads = int(extra.get("TORCH_THREADS") or max(1, (os.cpu_count() or 1) // 2))
    notes = []
    if any(s["games_in_window"] < FEW_GAMES for s in sessions.values()):
        notes.append(
            f"fewer than {FEW_GAMES} games per session in the window: games_per_minute is noisy "
            "(games of a batch end together); compare simulations_per_second or use longer --seconds"
        )
    return {
        "startup": startup,
        "latency_ms": {k: v for k, v in measured.items()},
        "window_s": round(window_s, 3),
        "sessions": sessions,
        "memory_mb": {"idle": memory_idle, "busy": memory_busy},
        "server_exit_code": code,
        "settings": {
            "MAX_CONCURRENT_SESSIONS": 2,
            "TORCH_THREADS_per_worker": resolved_threads,
            "clients": args.clients,
            **extra,
        },
        "notes": notes,
    }


async def service_one_session(args: argparse.Namespace, folder: Path, extra: dict[str, str]) -> dict[str, Any]:
    """One session in the service, to its end by duration, with dashboard-like polling."""
    env = base_env(
        folder,
        args.preset,
        {"MAX_CONCURRENT_SESSIONS": "1", "WORKERS": "1", "TORCH_THREADS": str(args.threads), **extra},
    )
    server = Server(folder, env, "one-session")
    body = {"max_games": 0, "session_duration_min": args.seconds / 60, "chess_preset": args.preset}
    server.start()
    try:
        async with httpx.AsyncClient() as client:
            log(f"service, one session, {args.threads} threads, {args.seconds:g} s")
            await server.wait_ready(client, args.startup_timeout)
            sid = await create_session(client, server.url, body)
            detail = await wait_final(client, server.url, sid, timeout=args.seconds + 600, poll_s=1.0)
            snapshots = (await client.get(f"{server.url}/v1/sessions/{sid}/metrics?limit=5000", timeout=30)).json()
    finally:
        server.stop()
    sims = stats_series([s["data"] for s in snapshots["items"]])
    elapsed = _elapsed(detail["started_at"], detail["finished_at"])
    return {
        "session_id": sid,
        "state": detail["state"],
        "stop_reason": detail["stop_reason"],
        "games": detail["games_done"],
        "elapsed_s": round(elapsed, 3),
        "games_per_minute": round(detail["games_done"] / (elapsed / 60), 2) if elapsed else None,
        "simulations_per_second": sims_summary(sims),
    }


def _elapsed(started: str | None, finished: str | None) -> float:
    from datetime import datetime

    if not started or not finished:
        return 0.0
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def headless(args: argparse.Namespace, folder: Path, extra: dict[str, str]) -> dict[str, Any]:
    """`continuous-play run` with the same settings; figures from its report.json."""
    folder.mkdir(parents=True, exist_ok=True)
    env = base_env(
        folder,
        args.preset,
        {
            "MAX_GAMES": "0",
            "SESSION_DURATION_MIN": repr(args.seconds / 60),
            "TORCH_THREADS": str(args.threads),
            **extra,
        },
    )
    log(f"headless run, {args.threads} threads, {args.seconds:g} s")
    with (folder / "run.log").open("w") as out:
        proc = subprocess.run(
            [str(CONSOLE_SCRIPT), "run", "--quiet"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=args.seconds + 600,
        )
    reports = list((folder / "reports").glob("*/report.json"))
    if proc.returncode != 0 or len(reports) != 1:
        tail = "\n".join((folder / "run.log").read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"continuous-play run exited {proc.returncode}:\n{tail}")
    report = json.loads(reports[0].read_text())
    throughput = report["throughput"]
    metrics = json.loads((reports[0].parent / "metrics.json").read_text())
    sims = stats_series(metrics["stats"])
    return {
        "session_id": report["session_id"],
        "state": report.get("state"),
        "stop_reason": report["stop_reason"],
        "games": report["scorecard"]["games"],
        "elapsed_s": round(throughput["elapsed_s"], 3),
        "games_per_minute": round(throughput["games_per_minute"], 2),
        "simulations_per_second": sims_summary(sims),
    }


def stats_series(stats: list[dict[str, Any]]) -> list[float]:
    """simulations/s of stored stats snapshots, oldest first, without the repeat of the
    last report that the orchestrator stores once more when the session ends."""
    values = [row["simulations_per_second"] for row in stats if "simulations_per_second" in row]
    if len(values) >= 2 and "at" in stats[-1] and values[-1] == values[-2]:
        values.pop()
    return values


def sims_summary(values: list[float]) -> dict[str, Any]:
    return {
        "mean": round(statistics.fmean(values), 1) if values else None,
        "steady": round(statistics.fmean(values[1:]), 1) if len(values) > 1 else None,
        "reports": len(values),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def pool_spawn(workers: int, threads: int) -> dict[str, Any]:
    """Start the service's process pool here and time each worker's 'ready' message."""
    from service.sessions.pool import ProcessWorker

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        started = [ProcessWorker(f"bench-{i + 1}", loop, threads) for i in range(workers)]

        async def ready(worker) -> float:
            kind, data = await asyncio.wait_for(worker.receive(), 300)
            if kind != "ready":
                raise RuntimeError(f"{worker.name}: {kind} {data}")
            return time.perf_counter() - t0

        try:
            times = await asyncio.gather(*(ready(w) for w in started))
        finally:
            await asyncio.gather(*(asyncio.to_thread(w.close) for w in started))
            # each reader thread reports the dead process to the loop: let it, before the loop closes
            await asyncio.gather(*(asyncio.to_thread(w._reader.join, 5) for w in started))
        return {
            "workers": workers,
            "torch_threads": threads,
            "ready_s": [round(t, 3) for t in times],
            "all_ready_s": round(max(times), 3),
        }

    return asyncio.run(main())


def compare(args: argparse.Namespace, root: Path, extra: dict[str, str]) -> dict[str, Any]:
    """`--repeats` pairs of (one service session, one headless run), in ABBA order so a
    drift of the machine's speed weighs on both sides alike; ratios per pair and medians."""
    pairs = []
    for i in range(args.repeats):
        runs: dict[str, Any] = {}
        for kind in ("service", "headless") if i % 2 == 0 else ("headless", "service"):
            if kind == "service":
                runs[kind] = asyncio.run(service_one_session(args, root / f"service-one-{i}", extra))
            else:
                runs[kind] = headless(args, root / f"headless-{i}", extra)
        service, run = runs["service"], runs["headless"]
        pairs.append(
            {
                "service_one_session": service,
                "headless": run,
                "games_per_minute_ratio": ratio(service["games_per_minute"], run["games_per_minute"]),
                "simulations_per_second_ratio": ratio(
                    service["simulations_per_second"]["steady"], run["simulations_per_second"]["steady"]
                ),
            }
        )

    def median(key: str) -> float | None:
        values = [p[key] for p in pairs if p[key] is not None]
        return round(statistics.median(values), 4) if values else None

    gpm, sps = median("games_per_minute_ratio"), median("simulations_per_second_ratio")
    fewest = min(min(p["service_one_session"]["games"], p["headless"]["games"]) for p in pairs)
    return {
        "what": "one session in `serve` (MAX_CONCURRENT_SESSIONS=1, polled once a second) vs "
        "`continuous-play run`; same preset, settings, TORCH_THREADS and duration; "
        "ratio = service / headless (median over the pairs)",
        "torch_threads": args.threads,
        "pairs": pairs,
        "games_per_minute_ratio": gpm,
        "simulations_per_second_ratio": sps,
        "service_cost_pct_games_per_minute": round((1 - gpm) * 100, 2) if gpm is not None else None,
        "service_cost_pct_simulations_per_second": round((1 - sps) * 100, 2) if sps is not None else None,
        "notes": (
            [
                f"fewer than {FEW_GAMES} games in a run: the games/min ratio is noisy or null; "
                "the simulations/s ratio is the steadier figure (or use longer --seconds)"
            ]
            if fewest < FEW_GAMES
            else []
        ),
    }


def main() -> None:
    args = parse_args()
    extra = extra_settings(args.sets)
    root = Path(tempfile.mkdtemp(prefix="bench-api-latency-"))
    result: dict[str, Any] = {
        "bench": "api_latency",
        "preset": args.preset,
        "seconds": args.seconds,
        "clients": args.clients,
        "cpu_count": os.cpu_count(),
    }
    try:
        result.update(asyncio.run(latency_phase(args, root / "latency", extra)))
        if not args.no_pool_spawn:
            workers = int(extra.get("WORKERS") or 2)
            threads = result["settings"]["TORCH_THREADS_per_worker"]
            log(f"timing a pool of {workers} workers in this process")
            result["pool_spawn"] = pool_spawn(workers, threads)
        if args.headless_compare:
            result["comparison"] = compare(args, root, extra)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log(f"failed: {exc}")
        log(f"logs kept in {root}")
        raise SystemExit(1) from None
    if args.keep:
        result["folder"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
