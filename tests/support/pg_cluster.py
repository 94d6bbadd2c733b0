"""A private PostgreSQL cluster that a test can stop and start again (database faults).

`PgCluster` runs Debian's PostgreSQL binaries (`initdb`, `pg_ctl`, under
/usr/lib/postgresql/<version>/bin, or PG_BINDIR) on a data folder of its own, listening on a
free loopback port, with its Unix socket in the same folder and `fsync` off (a test
cluster: nothing in it has to survive a power cut; commits stay synchronous). `stop()`
(`pg_ctl stop -m immediate` by default: the server vanishes as in a crash, open
connections are cut) and `start()` again keep the data, so a test can take the database
away in the middle of a session.

PostgreSQL refuses to run as root: when the tests run as root (CI does), the binaries run as
the `postgres` OS user through `runuser`, in a folder under the system temp dir that this
module creates and gives to that user (pytest's tmp_path is private to root). Missing
binaries FAIL the test (`pytest.fail`, naming what to install), never skip it.

    with PgCluster.create() as cluster:      # initdb + start, database `test`
        url = cluster.url                    # postgresql+asyncpg://postgres@127.0.0.1:PORT/test
        cluster.stop(); cluster.start()
        other = cluster.new_database()       # the same server, a fresh database (other.url)
"""

from __future__ import annotations

import copy
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

PG_USER = "postgres"
DATABASE = "test"


def find_bindir() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: PG_BINDIR, else the newest Debian
    /usr/lib/postgresql/<version>/bin, else wherever `pg_ctl` is on PATH."""
    candidates = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgCluster:
    """One private cluster; `create()` makes and starts it, `destroy()` stops it and removes
    its folder (also on `with` exit)."""

    def __init__(self, bindir: Path, root: Path, port: int, as_user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port
        self.as_user = as_user
        self.database = DATABASE
        self.url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{port}/{DATABASE}"

    # -- making one ------------------------------------------------------------------------
    @classmethod
    def create(cls, timeout: float = 60.0) -> "PgCluster":
        bindir = find_bindir()
        if bindir is None:
            pytest.fail(
                "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
                "/usr/lib/postgresql/*/bin, PG_BINDIR or PATH: install Debian's `postgresql` "
                "package (apt-get install postgresql) to run the database-fault tests",
                pytrace=False,
            )
        as_user = None
        root = Path(tempfile.mkdtemp(prefix="pgfault-"))
        if os.geteuid() == 0:  # postgres refuses root: run its binaries as the postgres user
            try:
                user = pwd.getpwnam(PG_USER)
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                pytest.fail(
                    "tests run as root and there is no `postgres` OS user to run the private "
                    "PostgreSQL cluster as (Debian's postgresql package creates it)",
                    pytrace=False,
                )
            if shutil.which("runuser") is None:
                shutil.rmtree(root, ignore_errors=True)
                pytest.fail(
                    "tests run as root and `runuser` (util-linux) is missing: cannot start "
                    "PostgreSQL as the postgres user",
                    pytrace=False,
                )
            os.chown(root, user.pw_uid, user.pw_gid)
            as_user = PG_USER
        os.chmod(root, 0o700)
        cluster = cls(bindir, root, free_port(), as_user)
        try:
            cluster._run(
                [
                    "initdb",
                    "-D",
                    str(cluster.data),
                    "-U",
                    PG_USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ],
                timeout,
            )
            cluster.start(timeout)
            cluster.new_database(DATABASE)
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def new_database(self, name: str | None = None) -> "PgCluster":
        """Create a database on this (running) server; returns a view of the same cluster
        whose `url` points at it (stopping or starting either view acts on the one server)."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, name])
        view = copy.copy(self)
        view.database = name
        view.url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/{name}"
        return view

    def _command(self, args: list[str]) -> list[str]:
        binary = str(self.bindir / args[0])
        if self.as_user is None:
            return [binary, *args[1:]]
        return ["runuser", "-u", self.as_user, "--", binary, *args[1:]]

    def _run(self, args: list[str], timeout: float = 60.0) -> str:
        proc = subprocess.run(
            self._command(args),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(args)}` failed ({proc.returncode}): {proc.stdout[-2000:]}"
                f"{proc.stderr[-2000:]}\n--- server log ---\n{self.server_log()}"
            )
        return proc.stdout

    def server_log(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    # -- start and stop --------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Start the server (same data, same port) and wait until it accepts connections."""
        # fsync off: a killed server loses nothing the OS has (only an OS crash would); commits
        # stay synchronous, or `stop -m immediate` would lose acknowledged transactions.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                options,
                "start",
            ],
            timeout + 10,
        )

    def stop(self, mode: str = "immediate", timeout: float = 60.0) -> None:
        """Stop the server: `immediate` (default; like a crash: connections cut, no
        checkpoint), `fast` (connections ended cleanly) or `smart`."""
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop"], timeout + 10)

    @property
    def running(self) -> bool:
        proc = subprocess.run(
            self._command(["pg_ctl", "-D", str(self.data), "status"]),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.returncode == 0

    def wait_refusing(self, timeout: float = 10.0) -> None:
        """Wait until the port refuses connections (the server is really gone)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"port {self.port} still accepts connections after {timeout} s")

    def destroy(self) -> None:
        """Stop the server if it runs and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate", timeout=30)
        except Exception:  # noqa: BLE001 - teardown goes on; the folder goes anyway
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
