"""The orchestrator with real storage (SQLite and PostgreSQL) and real workers (inline
pool threads running the real engine on the tiny preset): lifecycle, capacity, commands,
recovery after a shutdown, deletion."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from support.stored import ended, game_numbers, state_of
from support.tiny import tiny_settings
from support.waiting import wait_for

from service.event_types import EventType
from service.sessions.errors import IllegalTransition, SessionNotFound
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import InlinePool
from service.storage import models
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def event_seqs(db_sessions, session_id: str) -> list[int]:
    async with db_sessions() as db:
        return [e.seq for e in await repo.events_since(db, session_id, 0, 100000)]


@pytest_asyncio.fixture
async def orchestrator(db_sessions, tmp_path):
    orch = Orchestrator(tiny_settings(tmp_path), db_sessions, InlinePool(1))
    await orch.start()
    yield orch
    await orch.close()


async def test_a_session_runs_to_max_games_and_is_stored(orchestrator, db_sessions, tmp_path):
    cfg = orchestrator.settings.session_config(max_games=5)
    sid = await orchestrator.create_session(cfg)
    await wait_for(lambda: ended(db_sessions, sid))
    assert await state_of(db_sessions, sid) == "completed"
    assert await game_numbers(db_sessions, sid) == [1, 2, 3, 4, 5]
    seqs = await event_seqs(db_sessions, sid)
    assert seqs == list(range(1, len(seqs) + 1))
    async with db_sessions() as db:
        row = await repo.get_session(db, sid)
        assert row.stop_reason == "max_games" and row.games_done == 5 and row.finished_at is not None
        checkpoints = await repo.list_checkpoints(db, sid)
        types = [e.type for e in await repo.events_since(db, sid, 0, 1000)]
    assert [c.generation for c in checkpoints] == list(range(len(checkpoints)))
    assert all((tmp_path / "checkpoints" / c.file_name).is_file() for c in checkpoints)
    assert (
        types.count(EventType.GAME_FINISHED) == 5
        and EventType.LEARNING_STEP in types
        and EventType.CHECKPOINT_SAVED in types
    )
    assert types[0] == EventType.SESSION_STATE and types[-1] == EventType.SESSION_STATE


async def test_sessions_beyond_capacity_wait_as_pending(orchestrator, db_sessions):
    cfg = orchestrator.settings.session_config(max_games=3)
    first = await orchestrator.create_session(cfg)
    second = await orchestrator.create_session(cfg)
    await wait_for(lambda: _is(db_sessions, first, "running"))
    assert await state_of(db_sessions, second) == "pending"
    await wait_for(lambda: ended(db_sessions, second))
    assert await state_of(db_sessions, first) == "completed"
    assert await game_numbers(db_sessions, second) == [1, 2, 3]


async def _report(reports: list[tuple[str, dict]], kind: str) -> tuple[int, dict] | None:
    """(position, data) of the first `kind` report, or None while there is none."""
    return next(((i, data) for i, (k, data) in enumerate(reports) if k == kind), None)


async def _is(db_sessions, sid, state):
    return await state_of(db_sessions, sid) == state


async def test_pause_resume_stop_and_illegal_transitions(orchestrator, db_sessions):
    reports: list[tuple[str, dict]] = []  # the worker's reports, in the order its session's task takes them
    record = orchestrator.recorder.record

    async def heard(session_id, kind, data):
        reports.append((kind, data))
        return await record(session_id, kind, data)

    orchestrator.recorder.record = heard
    cfg = orchestrator.settings.session_config(max_games=0, session_duration_min=30)
    sid = await orchestrator.create_session(cfg)
    await wait_for(lambda: _has_games(db_sessions, sid, 1))
    with pytest.raises(IllegalTransition):
        await orchestrator.resume(sid)
    await orchestrator.pause(sid)
    assert await state_of(db_sessions, sid) == "paused"
    with pytest.raises(IllegalTransition):
        await orchestrator.pause(sid)
    with pytest.raises(IllegalTransition):
        await orchestrator.delete(sid)
    # The worker says when it holds (its "paused" report, after the games it finished before
    # it read the command, each stored before the next report is taken): no waiting on a clock.
    paused_at, paused = await wait_for(lambda: _report(reports, "paused"))
    held = paused["games"]
    assert len(await game_numbers(db_sessions, sid)) == held
    await orchestrator.resume(sid)
    resumed_at, resumed = await wait_for(lambda: _report(reports, "resumed"))
    # held means held: nothing (no game, move or stats) between the two, the same game count
    assert resumed_at == paused_at + 1, reports[paused_at : resumed_at + 1]
    assert resumed["games"] == held, "a paused session went on playing"
    await wait_for(lambda: _has_games(db_sessions, sid, held + 1))
    await orchestrator.stop(sid)
    await wait_for(lambda: _is(db_sessions, sid, "stopped"))
    with pytest.raises(IllegalTransition):
        await orchestrator.stop(sid)
    with pytest.raises(SessionNotFound):
        await orchestrator.pause("0" * 32)
    numbers = await game_numbers(db_sessions, sid)
    assert numbers == list(range(1, len(numbers) + 1))


async def _has_games(db_sessions, sid, n):
    return len(await game_numbers(db_sessions, sid)) >= n


async def test_a_pending_session_can_be_stopped_and_deleted(db_sessions, tmp_path):
    orch = Orchestrator(tiny_settings(tmp_path), db_sessions, InlinePool(1))
    await orch.start()
    try:
        long = await orch.create_session(orch.settings.session_config(max_games=0, session_duration_min=30))
        queued = await orch.create_session(orch.settings.session_config(max_games=2))
        await wait_for(lambda: _is(db_sessions, long, "running"))
        await orch.stop(queued)
        assert await state_of(db_sessions, queued) == "stopped"
        await orch.delete(queued)
        async with db_sessions() as db:
            assert await repo.get_session(db, queued) is None
        await orch.stop(long)
        await wait_for(lambda: _is(db_sessions, long, "stopped"))
        await orch.delete(long)
        assert not (tmp_path / "checkpoints" / long).exists()
        async with db_sessions() as db:
            left = await db.scalar(select(func.count()).select_from(models.GameRow))
        assert left == 0
    finally:
        await orch.close()


async def test_a_restart_resumes_running_sessions_without_losing_or_renumbering_games(db_sessions, tmp_path):
    first = Orchestrator(tiny_settings(tmp_path), db_sessions, InlinePool(1))
    await first.start()
    sid = await first.create_session(first.settings.session_config(max_games=10))
    await wait_for(lambda: _has_games(db_sessions, sid, 3))
    await first.close()  # the service goes down: the session stays resumable
    assert await state_of(db_sessions, sid) == "running"
    stored = await game_numbers(db_sessions, sid)
    assert stored == list(range(1, len(stored) + 1))

    second = Orchestrator(tiny_settings(tmp_path), db_sessions, InlinePool(1))
    await second.start()
    try:
        await wait_for(lambda: ended(db_sessions, sid))
    finally:
        await second.close()
    assert await state_of(db_sessions, sid) == "completed"
    assert await game_numbers(db_sessions, sid) == list(range(1, 11))
    async with db_sessions() as db:
        generations = [c.generation for c in await repo.list_checkpoints(db, sid)]
    assert generations == list(range(len(generations)))


class GatedPool(InlinePool):
    """An inline pool whose workers are handed out only once `gate` is set: a session's
    launch can be held between "its task exists" and "its worker runs"."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.gate = asyncio.Event()

    async def acquire(self):
        await self.gate.wait()
        return await super().acquire()


async def _writes_queued(orch: Orchestrator, n: int) -> bool:
    return orch.writer.pending >= n


async def test_a_stop_during_the_launch_is_not_lost(db_sessions, tmp_path):
    """The stop arrives while the session's worker is still starting, and the launch reads
    the state before the stop's write is stored: the session must still stop, never be
    marked running over `stopping` and play on (the fuzz suite's victim session did)."""
    pool = GatedPool(1)
    orch = Orchestrator(tiny_settings(tmp_path), db_sessions, pool)
    await orch.start()
    writer_busy, writer_free = asyncio.Event(), asyncio.Event()

    async def hold_the_writer(db):
        writer_busy.set()
        await writer_free.wait()

    try:
        sid = await orch.create_session(orch.settings.session_config(max_games=0, session_duration_min=30))
        assert sid in orch.runner.tasks and sid not in orch.runner.workers  # launched, waiting for a worker
        blocker = asyncio.create_task(orch.writer.write(hold_the_writer))
        await writer_busy.wait()
        stopping = asyncio.create_task(orch.stop(sid))
        await wait_for(lambda: _writes_queued(orch, 1), timeout=10)  # the stop's write waits
        pool.gate.set()  # the worker starts and the launch reads the state: still pending
        await wait_for(lambda: _writes_queued(orch, 2), timeout=10)  # the launch's write waits too
        writer_free.set()
        await blocker
        await stopping
        await wait_for(lambda: _is(db_sessions, sid, "stopped"), timeout=30)
        async with db_sessions() as db:
            states = [
                e.data["state"] for e in await repo.events_since(db, sid, 0, 1000) if e.type == EventType.SESSION_STATE
            ]
        assert "running" not in states[states.index("stopping") :], states
    finally:
        writer_free.set()
        await orch.close()
