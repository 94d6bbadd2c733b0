"""A session's worker process dies (SIGKILL) mid-session: the real orchestrator with the
real process pool (spawned workers running the engine on the tiny preset) and real
storage (SQLite and PostgreSQL).

- killed once: the pool replaces the worker, the session restarts on the fresh one from its
  last checkpoint and stored games, stays `running`, records the restart as a
  `session.state` event, and completes MAX_GAMES with games 1..N stored exactly once;
- killed every time it restarts: after WORKER_MAX_RESTARTS restarts it ends `failed`, the
  reason in its `session.state` event and its `failure_reason`.
"""

from __future__ import annotations

import os
import signal

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from support.stored import ended, game_numbers, session_row
from support.tiny import tiny_settings
from support.waiting import wait_for

from service.event_types import EventType
from service.sessions import runner as runner_module
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import ProcessPool
from service.storage import models
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]


async def state_events(db_sessions, sid: str) -> list[dict]:
    async with db_sessions() as db:
        return [e.data for e in await repo.events_since(db, sid, 0, 100_000) if e.type == EventType.SESSION_STATE]


def worker_pid(orch: Orchestrator, sid: str, other_than: set[int]) -> int | None:
    """The pid of the worker process now running the session (a new one: not in `other_than`)."""
    worker = orch.runner.workers.get(sid)
    if worker is None or not worker.alive or worker.process.pid in other_than:
        return None
    return worker.process.pid


@pytest_asyncio.fixture
async def orchestrator(db_sessions, tmp_path):
    orch = Orchestrator(tiny_settings(tmp_path), db_sessions, ProcessPool(1, threads=1))
    await orch.start()
    try:
        yield orch
    finally:
        await orch.close()


async def test_a_killed_worker_is_replaced_and_the_session_resumes_without_losing_a_game(
    orchestrator, db_sessions, tmp_path
):
    sid = await orchestrator.create_session(orchestrator.settings.session_config(max_games=12))

    async def some_games():
        return len(await game_numbers(db_sessions, sid)) >= 3

    await wait_for(some_games)
    pid = worker_pid(orchestrator, sid, set())
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # mid-game: three games are always in flight

    async def restarted():
        return worker_pid(orchestrator, sid, {pid})

    fresh = await wait_for(restarted)
    assert fresh != pid
    assert (await session_row(db_sessions, sid)).state == "running"
    await wait_for(lambda: ended(db_sessions, sid))

    row = await session_row(db_sessions, sid)
    assert row.state == "completed", row.failure_reason
    assert row.stop_reason == "max_games" and row.games_done == 12 and row.failure_reason is None
    assert await game_numbers(db_sessions, sid) == list(range(1, 13))
    async with db_sessions() as db:
        count = await db.scalar(
            select(func.count()).select_from(models.GameRow).where(models.GameRow.session_id == sid)
        )
        generations = [c.generation for c in await repo.list_checkpoints(db, sid)]
    assert count == 12
    assert generations == list(range(len(generations)))
    restarts = [e for e in await state_events(db_sessions, sid) if e.get("restarted")]
    assert len(restarts) == 1, restarts
    event = restarts[0]
    assert event["state"] == "running" and event["restarts"] == 1 and event["resumed_from_checkpoint"] is True
    assert "worker process died" in event["reason"] and "SIGKILL" in event["reason"]
    assert 2 <= event["first_game"] <= 13


async def test_a_session_whose_worker_keeps_dying_fails_with_the_reason(orchestrator, db_sessions, monkeypatch):
    monkeypatch.setattr(runner_module, "WORKER_MAX_RESTARTS", 1)
    sid = await orchestrator.create_session(orchestrator.settings.session_config(max_games=0, session_duration_min=30))
    killed: set[int] = set()
    for _ in range(2):  # the first death is restarted, the second ends the session
        pid = await wait_for(lambda: _worker(orchestrator, sid, killed))
        killed.add(pid)
        os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: ended(db_sessions, sid))

    row = await session_row(db_sessions, sid)
    assert row.state == "failed"
    assert "SIGKILL" in row.failure_reason and "died 2 times" in row.failure_reason, row.failure_reason
    events = await state_events(db_sessions, sid)
    assert [e["restarts"] for e in events if e.get("restarted")] == [1]
    assert events[-1]["state"] == "failed" and events[-1]["failure_reason"] == row.failure_reason
    numbers = await game_numbers(db_sessions, sid)
    assert numbers == list(range(1, len(numbers) + 1))


async def _worker(orch, sid, killed):
    return worker_pid(orch, sid, killed)
