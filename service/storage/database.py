"""Engines, sessions and migrations.

SQLite (`sqlite+aiosqlite:///path`, the default) gets its folder created, WAL journal mode,
a busy timeout and foreign keys on every connection; PostgreSQL goes through asyncpg
(`postgresql+asyncpg://`). Alembic migrations in the repository's `migrations/` folder are
the only way the schema changes: `upgrade(url)` from synchronous code (the CLI's
`db upgrade`), `await upgrade_engine(engine)` from inside an event loop (the app's lifespan).

`is_connection_error(exc)` tells an unreachable database (worth retrying: the orchestrator's
writer holds its writes until it is back) from every other failure (a bug, a constraint).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
"""The Alembic script folder (`migrations/` at the repository root)."""
SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long an SQLite connection waits for another writer's lock before failing."""


class DatabaseError(RuntimeError):
    """The database cannot be reached or used; the message names the URL (password hidden)."""


class DatabaseUnavailable(DatabaseError):
    """A write given up because the database stayed unreachable (the service is shutting down
    during an outage): nothing of it was stored."""


SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
)
"""SQLite OperationalError messages that say "not now" rather than "wrong": another process
holds the write lock past the busy timeout, the disk is full or failing, the file is gone
for a moment (a remount). Every other SQLite OperationalError (no such table, a syntax
error) is a bug and is never retried."""


_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "ENETUNREACH",
        "ENETDOWN",
        "EHOSTUNREACH",
        "EHOSTDOWN",
        "ETIMEDOUT",
        "EPIPE",
        "ENOTCONN",
    )
    if hasattr(errno, name)
)


def asyncpg_connection_errors() -> tuple[type[Exception], ...]:
    """asyncpg's exception classes that mean the server could not be reached or went away."""
    try:
        from asyncpg import exceptions as pg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (
        pg.PostgresConnectionError,  # SQLSTATE 08xxx: connection failure, rejection...
        pg.ConnectionDoesNotExistError,  # the connection was closed under a query
        pg.OperatorInterventionError,  # 57xxx: admin/crash shutdown, "cannot connect now"
        pg.TooManyConnectionsError,
    )


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached (so the same work may succeed
    once it is back) rather than that the work itself is wrong.

    Yes: network OSErrors (connection refused or reset, no route, DNS; not a file error)
    and timeouts; a pool checkout that timed out (sqlalchemy.exc.TimeoutError: every
    connection of the pool busy); a SQLAlchemy
    DBAPIError whose connection was invalidated (asyncpg: "connection was closed in the
    middle of operation"); asyncpg's connection, shutdown ("terminating connection due to
    administrator command", "the database system is starting up") and too-many-connections
    errors, wrapped or not; SQLite's lock, disk and open errors (SQLITE_TRANSIENT). No:
    everything else (IntegrityError, ProgrammingError, a bug in the caller)."""
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    pg_errors = asyncpg_connection_errors()
    while pending:
        err = pending.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, sa_exc.TimeoutError):  # no pooled connection free in time: "not now"
            return True
        if isinstance(err, sa_exc.DBAPIError):
            if err.connection_invalidated:
                return True
            if isinstance(err, sa_exc.IntegrityError):
                return False
            if isinstance(err, sa_exc.OperationalError) and any(
                text_ in str(err.orig).lower() for text_ in SQLITE_TRANSIENT
            ):
                return True
            pending.append(err.orig)
        elif isinstance(err, (ConnectionError, TimeoutError, socket.gaierror, socket.herror)):
            return True
        elif type(err) is OSError and (err.errno in _NETWORK_ERRNOS or "connect" in str(err).lower()):
            return True  # asyncpg: "Multiple exceptions: [Errno 111] Connect call failed..."
        elif pg_errors and isinstance(err, pg_errors):
            return True
        elif type(err).__module__.startswith("sqlite3") and type(err).__name__ == "OperationalError":
            if any(text_ in str(err).lower() for text_ in SQLITE_TRANSIENT):
                return True
        pending.append(err.__cause__)  # an explicit `raise ... from` only: not what was being handled
    return False


def _parse(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("DATABASE_URL is not a valid SQLAlchemy URL") from None
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(
            f"DATABASE_URL {safe_url(parsed)!r} is not supported: use sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER@HOST:PORT/DB"
        )
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL as text with its password masked (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed data
    cursor.close()


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine for DATABASE_URL (SQLite via aiosqlite or PostgreSQL via asyncpg).

    Extra keyword arguments go to `create_async_engine` (e.g. `connect_args`). Any other
    URL scheme raises ValueError naming DATABASE_URL.
    """
    parsed = _parse(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """AsyncSessions on `engine`; objects stay usable after commit (`expire_on_commit=False`)."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def check_connection(engine: AsyncEngine, timeout: float = 10.0) -> None:
    """Run `SELECT 1`; raise DatabaseError naming the URL (password hidden) if that fails."""
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any driver error means "not reachable"
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        raise DatabaseError(f"cannot connect to the database at {safe_url(engine.url)}: {reason}") from exc


def alembic_config(url: str | URL) -> Config:
    """An Alembic Config for the repository's `migrations/` folder and `url`."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise DatabaseError(
            f"Alembic migrations not found at {MIGRATIONS_DIR}: run from the source tree "
            "(an editable install, or an image that copies migrations/ next to service/)"
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = make_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # configparser interpolation
    return cfg


def upgrade(url: str, revision: str = "head", **engine_kwargs: Any) -> None:
    """Migrate the database at `url` to `revision` (synchronous: not from inside an event loop).

    `engine_kwargs` go to `create_engine` for the migration's engine (e.g. `connect_args`).
    """
    _parse(url)
    cfg = alembic_config(url)
    cfg.attributes["engine_kwargs"] = engine_kwargs
    command.upgrade(cfg, revision)


def _upgrade_on(connection: Connection, revision: str) -> None:
    cfg = alembic_config(connection.engine.url)
    cfg.attributes["connection"] = connection  # env.py migrates on this connection
    command.upgrade(cfg, revision)


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database of `engine` to `revision` on one of its connections (in a loop)."""
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_on, revision)
        await conn.commit()
        if engine.dialect.name == "sqlite":
            # env.py turns foreign keys off for the migration; its own "back on" may have run
            # inside the transaction (a no-op there): this pooled connection must get them back.
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
