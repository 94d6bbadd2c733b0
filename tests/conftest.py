"""Shared fixtures: the test databases.

Storage and API tests run on SQLite and on PostgreSQL (DESIGN.md "Tests"). A test that
takes `database` (or `engine`, `db_sessions`) runs once per backend:

- `sqlite`: a fresh file under the test's tmp_path;
- `postgresql`: TEST_DATABASE_URL (default the local server, database `test`), isolated
  in a fresh schema per test (random name, made the connections' `search_path` through
  asyncpg `server_settings`: pass `database.engine_kwargs` to every engine you create) and
  dropped with CASCADE afterwards, so the shared database stays empty. A server that does
  not answer FAILS the test, naming the URL and how to start it: it never skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.storage.database import (
    DatabaseError,
    check_connection,
    create_engine,
    safe_url,
    session_factory,
    upgrade_engine,
)

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

# Hypothesis: one profile for every property test (DESIGN.md "Tests": hypothesis runs
# derandomised). `derandomize`: the examples come from a hash of each test, so every run and
# every machine tries the same ones, and a failure reproduces; no example database (nothing
# is replayed from, or written to, .hypothesis/). `deadline=None` and no `too_slow` health
# check: both fail an example by its wall-clock time, which this project never asserts (a
# shared 2-core CI box runs an example at any speed); a runaway example is caught by
# pytest-timeout instead. Tests keep their own `max_examples` where they need another count.
settings.register_profile(
    "continuous-play",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("continuous-play")


@dataclass
class TestDatabase:
    """One test's database: its URL, the engine options that reach it, and the backend name."""

    __test__ = False  # not a test class
    backend: str  # sqlite | postgresql
    url: str
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def create_engine(self, **kwargs: Any) -> AsyncEngine:
        """A new engine on this database (the caller disposes of it)."""
        return create_engine(self.url, **{**self.engine_kwargs, **kwargs})


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[TestDatabase]:
    """An empty database per test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield TestDatabase("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        return
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    admin = create_engine(url, poolclass=pool.NullPool)
    try:
        await check_connection(admin, timeout=5)
        problem = None
    except DatabaseError as exc:
        problem = str(exc)
    if problem is not None:
        await admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable (TEST_DATABASE_URL={safe_url(url)}): {problem}. Start it: "
            "`pg_ctlcluster 15 main start` (or set TEST_DATABASE_URL to a running server).",
            pytrace=False,
        )
    schema = f"test_{uuid.uuid4().hex[:16]}"
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield TestDatabase("postgresql", url, {"connect_args": {"server_settings": {"search_path": schema}}})
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest_asyncio.fixture
async def engine(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    """An engine on `database`, migrated to the newest revision."""
    eng = database.create_engine()
    await upgrade_engine(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def db_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """AsyncSessions on the migrated `engine`."""
    return session_factory(engine)
