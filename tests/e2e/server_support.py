"""Helpers of the server e2e tests: `continuous-play serve` as a real subprocess (uvicorn,
a process worker pool, a real database), an HTTP client on it, fresh PostgreSQL databases,
and direct reads of what the server stored.

Every process started here is ended by `Server.stop`/`Server.kill` (SIGTERM, then SIGKILL
as a last resort), and the worker processes it spawned are waited for (they exit on their
own within about a second of their parent's death) and killed by pid if they linger.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import make_url
from support.cli import CONSOLE_SCRIPT, clean_env
from support.tiny import tiny_env
from support.waiting import wait_for_sync

DEFAULT_PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0

# TINY served by one worker process: two games in flight, full searches of 6 simulations,
# metrics every second; evaluation kept minimal (a stopped session may still evaluate its last
# checkpoint)
TINY_ENV = tiny_env(
    SEED=3,
    SELFPLAY_PARALLEL_GAMES=2,
    SELFPLAY_SIMULATIONS=6,
    EVAL_INTERVAL_GAMES=100000,
    METRICS_EXPORT_INTERVAL=1,
    WORKER_BACKEND="process",
    WORKERS=1,
    MAX_CONCURRENT_SESSIONS=1,
)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp_path: Path, database_url: str, port: int, **values: str) -> dict[str, str]:
    """os.environ without any setting of ours (a developer's .env-style exports must not leak
    in), plus the tiny configuration, this test's folders, port and database, and `values`."""
    return clean_env(
        **{
            **TINY_ENV,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATABASE_URL": database_url,
            "CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "REPORT_DIR": str(tmp_path / "reports"),
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            **values,
        }
    )


class Server:
    """One `continuous-play serve` subprocess; start it again after a stop or a kill (same
    database, folders and port). Its output goes to files under tmp_path (one pair per start)."""

    def __init__(self, tmp_path: Path, database_url: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.port = free_port()
        self.env = server_env(tmp_path, database_url, self.port, **env)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.children: list[psutil.Process] = []
        self.starts = 0
        self._out: Any = None
        self._err: Any = None
        self.stderr_path: Path | None = None
        self.stdout_path: Path | None = None

    # -- output ----------------------------------------------------------------------------
    def stderr(self) -> str:
        """What the current (or last) start wrote on stderr."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path and self.stderr_path.exists() else ""

    def output(self, limit: int = 6000) -> str:
        """The tail of stdout and stderr, for failure messages."""
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path and self.stdout_path.exists() else ""
        return f"--- stdout ---\n{out[-limit:]}\n--- stderr ---\n{self.stderr()[-limit:]}"

    # -- start -----------------------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT_S) -> "Server":
        """Start the server and wait until /readyz answers 200 (the worker pool is warm)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.stdout_path = self.tmp_path / f"serve-{self.starts}.stdout"
        self.stderr_path = self.tmp_path / f"serve-{self.starts}.stderr"
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "serve"],
            cwd=self.tmp_path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while True:
                if self.proc.poll() is not None:
                    self._close_files()
                    pytest.fail(
                        f"`continuous-play serve` exited with {self.proc.returncode} before it was "
                        f"ready\n{self.output()}",
                        pytrace=False,
                    )
                try:
                    r = client.get("/readyz")
                    if r.status_code == 200:
                        break
                    last = f"{r.status_code} {r.text[:300]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(
                        f"the server was not ready within {timeout:.0f} s (last /readyz: {last})\n{self.output()}",
                        pytrace=False,
                    )
                time.sleep(0.2)
        self.children = self._children()
        return self

    def _children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        """The server's pool processes (spawned `multiprocessing.spawn` children), alive now."""
        out = []
        for child in self._children():
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    out.append(child)
            except psutil.Error:
                pass
        return out

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    # -- stop ------------------------------------------------------------------------------
    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> tuple[int | None, float]:
        """SIGTERM the server and wait for it; returns (its exit status, seconds it took);
        status None if it did not exit in time (it is then killed)."""
        if not self.running:
            return (self.proc.returncode if self.proc else None), 0.0
        self.children = self._children() or self.children
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.proc.kill()
            self.proc.wait(10)
        took = time.monotonic() - t0
        self._reap_children()
        self._close_files()
        return code, took

    def kill(self) -> list[psutil.Process]:
        """SIGKILL the server (a crash); returns the child processes it had just before."""
        if not self.running:
            return []
        self.children = self._children() or self.children
        children = list(self.children)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._close_files()
        return children

    def stop(self) -> None:
        """Teardown: SIGTERM (SIGKILL as a last resort), then make sure no child lingers."""
        if self.running:
            self.terminate()
        self._reap_children()
        self._close_files()

    def _reap_children(self, timeout: float = 10.0) -> None:
        """Wait for the processes the server spawned; kill (by pid) any still there."""
        if not self.children:
            return
        _, alive = psutil.wait_procs(self.children, timeout=timeout)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self.children = []

    def _close_files(self) -> None:
        for f in (self._out, self._err):
            if f is not None and not f.closed:
                f.close()


@contextmanager
def serving(tmp_path: Path, database_url: str, **env: str) -> Iterator[Server]:
    """A started server, stopped (with its workers) however the test ends."""
    server = Server(tmp_path, database_url, **env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- databases -----------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'service.db'}"


def _asyncpg_args(url: str) -> dict[str, Any]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username,
        "password": u.password,
        "database": u.database,
    }


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the server of TEST_DATABASE_URL (default the local one,
    database `test`), yielded as the server's DATABASE_URL, dropped afterwards (FORCE: a
    killed server may leave connections behind). An unreachable server FAILS the test."""
    import asyncpg

    admin_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_ADMIN_URL)
    name = f"cp_e2e_{uuid.uuid4().hex[:12]}"
    args = _asyncpg_args(admin_url)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(**args, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    safe = make_url(admin_url).render_as_string(hide_password=True)
    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable (TEST_DATABASE_URL={safe}): {type(exc).__name__}: {exc}. "
            "Start it: `pg_ctlcluster 15 main start` (or set TEST_DATABASE_URL to a running server).",
            pytrace=False,
        )
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """DATABASE_URL for a server subprocess: an SQLite file under tmp_path, or a fresh
    PostgreSQL database."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_database() as url:
            yield url


def read_db(url: str, job: Callable[[Any], Awaitable[Any]]) -> Any:
    """`await job(db)` on a fresh engine over `url` (read what a stopped server stored)."""
    from service.storage.database import create_engine, session_factory

    async def main() -> Any:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as db:
                return await job(db)
        finally:
            await engine.dispose()

    return asyncio.run(main())


# -- HTTP helpers --------------------------------------------------------------------------

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict:
    """An RFC 9457 problem with `status`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"], body
    return body


def wait_for(
    client: httpx.Client,
    session_id: str,
    predicate: Callable[[dict], bool],
    what: str,
    server: Server,
    timeout: float = 60.0,
    interval: float = 0.1,
) -> dict:
    """Poll GET /v1/sessions/{id} until `predicate(body)`; fails naming `what` with the last
    body and the server's output (also when the server died meanwhile)."""
    body: dict = {}

    def satisfied() -> dict | None:
        nonlocal body
        r = client.get(f"/v1/sessions/{session_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if predicate(body):
            return body
        if body["state"] == "failed":
            pytest.fail(
                f"session failed while waiting for {what}: {body['failure_reason']}\n{server.output()}", pytrace=False
            )
        if not server.running:
            pytest.fail(f"the server exited while waiting for {what}\n{server.output()}", pytrace=False)
        return None

    return wait_for_sync(
        satisfied,
        timeout=timeout,
        interval=interval,
        what=what,
        detail=lambda: f"state={body['state']} games_done={body['games_done']}\n{server.output()}",
    )


def all_games(client: httpx.Client, session_id: str, limit: int = 5) -> list[dict]:
    """Every game of a session through the paginated list (following next_cursor)."""
    games: list[dict] = []
    cursor = None
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = client.get(f"/v1/sessions/{session_id}/games", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        games.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return games
        assert len(page["items"]) == limit, "a page before the last one is full"
    raise AssertionError("pagination never ended")


def checkpoints(client: httpx.Client, session_id: str) -> list[dict]:
    r = client.get(f"/v1/sessions/{session_id}/checkpoints")
    assert r.status_code == 200, r.text
    return r.json()["items"]
