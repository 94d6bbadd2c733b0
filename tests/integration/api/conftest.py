"""Fixtures of the API tests: the app (fake orchestrator) over `database` from
tests/conftest.py (SQLite and PostgreSQL), its lifespan running, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from api_support import API_KEY, Api, running_api


@pytest_asyncio.fixture(loop_scope="function")
async def api(database, tmp_path) -> AsyncIterator[Api]:
    """The app with API keys off and the fake orchestrator."""
    async with running_api(database, tmp_path) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def keyed_api(database, tmp_path) -> AsyncIterator[Api]:
    """The app with API_KEYS set (two keys; API_KEY is the second)."""
    async with running_api(database, tmp_path, api_keys=["another-key", API_KEY]) as running:
        yield running
