"""A worker goes back to the pool only once its session loop has ended (issue #21, item 2).

The real orchestrator, real workers (inline threads and spawned processes running the engine
on the tiny preset) and real storage (SQLite and PostgreSQL):

- a session whose task ends by an error that is not a worker death (a storage error while
  its worker plays on) must not leave its loop running on a worker that the next session
  gets: the next session's games are its own, numbered 1..N, its checkpoints in its own
  folder;
- a message for a session the orchestrator did not give that worker is dropped and logged,
  never stored under the session it did give it;
- a worker's inbox is bounded: a session whose reports are not read fills it and waits,
  and nothing it reported is lost.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import pytest_asyncio
from scripted_workers import ScriptedPool
from support.stored import ended, game_numbers, session_row
from support.tiny import tiny_settings
from support.waiting import wait_for

from service.sessions import orchestrator as orchestrator_module
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import InlinePool, ProcessPool, ProcessWorker
from service.sessions.protocol import WorkerMessage
from service.sessions.worker import WorkerSpec
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]


@pytest_asyncio.fixture(params=["inline", "process"])
async def pool(request):
    return InlinePool(1) if request.param == "inline" else ProcessPool(1)


async def test_a_failed_sessions_loop_is_never_carried_into_the_next_session(db_sessions, tmp_path, pool, monkeypatch):
    """Storing the first session's second game fails (a constraint, a bug: not an outage):
    that session ends `failed`, and its worker, still playing it, must not be handed to the
    next session as it is."""
    add_game = repo.add_game
    doomed: dict[str, str] = {}

    async def failing_add_game(db, session_id, message):
        if session_id == doomed.get("id") and message["number"] == 2:
            raise RuntimeError("injected storage failure")
        return await add_game(db, session_id, message)

    monkeypatch.setattr(repo, "add_game", failing_add_game)
    orch = Orchestrator(tiny_settings(tmp_path), db_sessions, pool)
    await orch.start()
    try:
        config = orch.settings.session_config(max_games=0, session_duration_min=30)
        doomed["id"] = first = await orch.create_session(config)
        await wait_for(lambda: ended(db_sessions, first))
        assert (await session_row(db_sessions, first)).state == "failed"
        second = await orch.create_session(orch.settings.session_config(max_games=4))
        await wait_for(lambda: ended(db_sessions, second))
        row = await session_row(db_sessions, second)
        assert row.state == "completed", row.failure_reason
        assert await game_numbers(db_sessions, second) == [1, 2, 3, 4]
        assert await game_numbers(db_sessions, first) == [1]  # nothing of it stored after it failed
        async with db_sessions() as db:
            checkpoints = await repo.list_checkpoints(db, second)
        assert checkpoints and all(c.file_name.startswith(f"{second}/") for c in checkpoints)
    finally:
        await orch.close()


async def test_a_message_for_a_session_the_worker_was_not_given_is_dropped(db_sessions, tmp_path, caplog):
    """The orchestrator gives a session to a worker; a report that names another session
    (a stale loop's) is dropped and logged, not stored under the session it was given."""
    orch = Orchestrator(tiny_settings(tmp_path), db_sessions, InlinePool(1))
    await orch.start()
    try:
        sid = await orch.create_session(orch.settings.session_config(max_games=3))
        await wait_for(lambda: ended(db_sessions, sid))
        other = "f" * 32
        worker = await orch.pool.acquire()
        stray = {
            "number": 99,
            "started": 99,
            "moves": [],
            "result": "1/2-1/2",
            "termination": "max_plies",
            "adjudicated": False,
            "plies": 0,
            "temperature": 1.0,
            "policies": [],
            "root_values": [],
            "full_search": [],
            "move_seconds": [],
            "simulations": 0,
            "duration_s": 0.0,
            "ended_at": 0.0,
            "material": 0,
            "false_resign": False,
            "pgn": "",
        }
        for message in (WorkerMessage("game", other, stray), WorkerMessage("idle", sid, {})):
            await worker._inbox.put(message)  # as the worker's reader thread hands them over
        with caplog.at_level(logging.WARNING, logger=orchestrator_module.__name__):
            assert await orch.runner._pump(sid, worker) is None
        assert await game_numbers(db_sessions, sid) == [1, 2, 3]
        assert any(other in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
        await orch.pool.release(worker)
    finally:
        await orch.close()


async def test_a_workers_inbox_is_bounded_and_loses_nothing(tmp_path):
    """Nobody reads a process worker's reports for a while: its inbox fills to its bound and
    the worker waits (its reports back up into the worker, not into the service); once read,
    every report arrives, in order."""
    loop = asyncio.get_running_loop()
    worker = ProcessWorker("bounded", loop, threads=1, inbox_size=4)
    try:
        assert (await worker.receive()).kind == "ready"
        config = tiny_settings(tmp_path).session_config(max_games=6)
        spec = WorkerSpec(session_id="a" * 32, config=config, checkpoint_dir=tmp_path / "ck", move_interval_s=0.0)
        worker.send("run", spec.session_id, spec)
        await wait_for(lambda: _full(worker), timeout=120)
        peak = worker.inbox_peak
        messages = []
        while not messages or messages[-1].kind != "idle":
            messages.append(await worker.receive())
            peak = max(peak, worker.inbox_peak)
        assert peak <= 4
        assert {m.session_id for m in messages} == {"a" * 32}
        numbers = [m.data["number"] for m in messages if m.kind == "game"]
        assert numbers == [1, 2, 3, 4, 5, 6]
        assert [m.kind for m in messages][-2:] == ["finished", "idle"]
    finally:
        await asyncio.to_thread(worker.close)


async def _full(worker) -> bool:
    return worker.inbox_full


async def test_a_worker_that_died_while_idle_is_replaced_when_acquired():
    """Pool.acquire hands out live workers only: one found dead in the idle queue is
    replaced by a fresh one (it once called a method that no longer existed)."""
    pool = ScriptedPool(1)
    await pool.start()
    try:
        first = pool.spawned[0]
        first.discard()  # died while idle
        worker = await pool.acquire()
        assert worker is pool.spawned[1] and worker.alive
    finally:
        await pool.close()
