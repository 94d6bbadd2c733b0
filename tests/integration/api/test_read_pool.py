"""The read pool and the writer's connection are apart (issue #21, item 1).

Every connection of the API's read pool is taken (as slow readers took them before the
fix); a request then answers 503 problem+json with Retry-After once its checkout times
out, and the orchestrator's writer still stores at once, on its own connection. Real app,
real orchestrator, SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from api_support import running_api, seed_session

from service import app as app_module
from service.sessions.pool import InlinePool
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_a_full_read_pool_answers_503_and_never_holds_the_writer(database, tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "READ_POOL_TIMEOUT_S", 0.2)
    async with running_api(database, tmp_path, orchestrator_factory=None, pool=InlinePool(1, 1)) as api:
        sid = await seed_session(api, games=1)
        engine = api.sessionmaker.kw["bind"]
        async with AsyncExitStack() as held:
            for _ in range(engine.pool.size() + engine.pool._max_overflow):
                await held.enter_async_context(engine.connect())  # every read connection, held
            r = await api.client.get(f"/v1/sessions/{sid}")
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers["retry-after"] == "5"
            assert r.json()["type"].endswith("database-unavailable") and "busy" in r.json()["detail"]
            message = await api.app.state.orchestrator.add_event(sid, "session.note", {"while": "pool full"})
            assert message["seq"] >= 1  # stored and committed by the writer meanwhile
        async with api.sessionmaker() as db:
            stored = await repo.events_since(db, sid, 0, 100)
        assert [(e.seq, e.type) for e in stored if e.type == "session.note"] == [(message["seq"], "session.note")]
