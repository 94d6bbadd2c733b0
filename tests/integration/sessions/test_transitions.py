"""Lifecycle actions cannot race the session's own end (issue #21, item 3).

Every state change is a compare-and-set through the one transition table
(`service.lifecycle.TRANSITIONS`), done in the writer: a user action that loses
a race with the worker's own report answers IllegalTransition (HTTP 409) naming the state
that won, and a final state never changes. The interleavings are forced: the test holds the
writer so that the session's end and the user's action are both queued, in a chosen order,
before either is stored. The worker is scripted (it reports what the test tells it); the
orchestrator and the database (SQLite and PostgreSQL) are real.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from scripted_workers import ScriptedPool, until
from support.tiny import folder_settings

from service.event_types import EventType
from service.lifecycle import TRANSITIONS, State
from service.sessions.errors import IllegalTransition
from service.sessions.orchestrator import Orchestrator
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


@pytest_asyncio.fixture
async def scripted(db_sessions, tmp_path):
    """A started orchestrator over one scripted worker (closed after the test), and its pool."""
    pool = ScriptedPool(1)
    orch = Orchestrator(folder_settings(tmp_path), db_sessions, pool)
    await orch.start()
    try:
        yield orch, pool
    finally:
        await orch.close()


async def states(db_sessions, sid: str) -> list[str]:
    async with db_sessions() as db:
        return [e.data["state"] for e in await repo.events_since(db, sid, 0, 1000) if e.type == EventType.SESSION_STATE]


async def stored_state(db_sessions, sid: str) -> str:
    async with db_sessions() as db:
        return (await repo.get_session(db, sid)).state


async def running_session(orch: Orchestrator, pool: ScriptedPool) -> str:
    sid = await orch.create_session(orch.settings.session_config(max_games=5))
    worker = pool.spawned[0]
    await worker.wait_for_command("run")
    await until(lambda: orch.writer.pending == 0 and sid in orch.runner.workers)
    return sid


class HeldWriter:
    """Holds the orchestrator's writer (a write job that waits) until released."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.busy, self.free = asyncio.Event(), asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "HeldWriter":
        async def hold(db):
            self.busy.set()
            await self.free.wait()

        self.task = asyncio.create_task(self.orch.writer.write(hold))
        await self.busy.wait()
        return self

    async def queued(self, n: int) -> None:
        await until(lambda: self.orch.writer.pending >= n)

    async def __aexit__(self, *exc) -> None:
        self.free.set()
        await self.task


@pytest.mark.parametrize("action", ["stop", "pause"])
async def test_an_action_queued_after_the_sessions_own_end_loses_with_409(db_sessions, scripted, action):
    orch, pool = scripted
    sid = await running_session(orch, pool)
    worker = pool.spawned[0]
    async with HeldWriter(orch) as writer:
        worker.report("finished", sid, {"reason": "max_games"})  # the session ends by itself...
        await writer.queued(1)
        acting = asyncio.create_task(getattr(orch, action)(sid))  # ...while the user acts
        await writer.queued(2)
    with pytest.raises(IllegalTransition) as lost:
        await acting
    assert lost.value.state == "completed" and lost.value.action == action
    worker.report("idle", sid)
    await until(lambda: sid not in orch.runner.tasks)
    assert await stored_state(db_sessions, sid) == "completed"
    assert (await states(db_sessions, sid))[-1] == "completed"


async def test_a_stop_queued_before_the_sessions_own_end_wins_and_the_session_still_ends(db_sessions, scripted):
    orch, pool = scripted
    sid = await running_session(orch, pool)
    worker = pool.spawned[0]
    async with HeldWriter(orch) as writer:
        stopping = asyncio.create_task(orch.stop(sid))
        await writer.queued(1)
        worker.report("finished", sid, {"reason": "max_games"})
        await writer.queued(2)
    await stopping
    worker.report("idle", sid)
    await until(lambda: sid not in orch.runner.tasks)
    assert await states(db_sessions, sid) == ["pending", "running", "stopping", "completed"]


async def test_a_pause_and_a_stop_racing_each_other_leave_one_consistent_state(db_sessions, scripted):
    """Both read `running`; the second to be stored must be checked against the first."""
    orch, pool = scripted
    sid = await running_session(orch, pool)
    worker = pool.spawned[0]
    async with HeldWriter(orch) as writer:
        stopping = asyncio.create_task(orch.stop(sid))
        await writer.queued(1)
        pausing = asyncio.create_task(orch.pause(sid))
        await writer.queued(2)
    await stopping
    with pytest.raises(IllegalTransition) as lost:
        await pausing
    assert lost.value.state == "stopping"
    assert await stored_state(db_sessions, sid) == "stopping"
    assert "pause" not in worker.kinds()
    worker.report("finished", sid, {"reason": "stopped"})
    worker.report("idle", sid)
    await until(lambda: sid not in orch.runner.tasks)
    assert await states(db_sessions, sid) == ["pending", "running", "stopping", "stopped"]


async def test_every_stored_state_change_follows_the_transition_table(db_sessions, scripted):
    """A report that would move a final session elsewhere is refused, not stored."""
    orch, pool = scripted
    sid = await running_session(orch, pool)
    worker = pool.spawned[0]
    worker.report("finished", sid, {"reason": "max_games"})
    worker.report("idle", sid)
    await until(lambda: sid not in orch.runner.tasks)
    with pytest.raises(repo.StateConflict):
        await orch.recorder.set_state(sid, State.RUNNING)
    with pytest.raises(IllegalTransition):
        await orch.resume(sid)
    assert await stored_state(db_sessions, sid) == "completed"
    seen = await states(db_sessions, sid)
    for before, after in zip(seen, seen[1:]):
        assert State(after) in TRANSITIONS[State(before)], (before, after)
