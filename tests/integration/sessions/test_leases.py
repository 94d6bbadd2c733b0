"""One writer per session across processes (issue #21, item 4).

A session is run through a lease in its database row: owner, heartbeat, expiry. Two
orchestrators on one database (two `serve`s, or `serve` beside `run --resume`) never both run
a session: the second is refused (SessionOwned, HTTP 409 / CLI exit 2) while the first is
alive, takes over once its lease has expired or its owner is known to be gone, and the first
then stores nothing more for that session. Workers are scripted (see `scripted_workers`);
the orchestrators and the database (SQLite and PostgreSQL) are real.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from integration.api.api_support import game_message as game
from scripted_workers import ScriptedPool, until
from sqlalchemy import update
from support.tiny import folder_settings

from service.config import Settings
from service.sessions.errors import SessionOwned
from service.sessions.orchestrator import Orchestrator
from service.sessions.writer import utcnow
from service.storage import repositories as repo
from service.storage.models import SessionRow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


def settings(tmp_path: Path) -> Settings:
    return folder_settings(tmp_path, max_concurrent_sessions=2)


async def row(db_sessions, sid: str) -> SessionRow:
    async with db_sessions() as db:
        return await repo.get_session(db, sid)


async def game_numbers(db_sessions, sid: str) -> list[int]:
    async with db_sessions() as db:
        return sorted(g.number for g in await repo.newest_games(db, sid, 10**9))


async def set_lease(db_sessions, sid: str, owner: str, expires_in_s: float) -> None:
    async with db_sessions() as db:
        now = utcnow()
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == sid)
            .values(owner=owner, heartbeat_at=now, lease_expires_at=now + timedelta(seconds=expires_in_s))
        )
        await db.commit()


async def running(orch: Orchestrator, pool: ScriptedPool) -> str:
    sid = await orch.create_session(orch.settings.session_config(max_games=50))
    await pool.spawned[0].wait_for_command("run")
    await until(lambda: sid in orch.runner.workers and orch.writer.pending == 0)
    return sid


async def test_a_second_orchestrator_is_refused_while_the_owner_lives(db_sessions, tmp_path):
    pool_a, pool_b = ScriptedPool(1), ScriptedPool(1)
    a = Orchestrator(settings(tmp_path), db_sessions, pool_a)
    b = Orchestrator(settings(tmp_path), db_sessions, pool_b)
    await a.start()
    try:
        sid = await running(a, pool_a)
        assert (await row(db_sessions, sid)).owner == a.leases.owner
        await b.start()  # its recovery leaves a session with a live owner alone
        for act in (b.continue_session, b.pause, b.stop):
            with pytest.raises(SessionOwned) as refused:
                await act(sid)
            assert a.leases.owner in str(refused.value) and refused.value.state == "running"
        assert (await row(db_sessions, sid)).state == "running"
        assert pool_b.spawned[0].kinds() == []  # b never ran it
        # the owner itself acts as before
        await a.pause(sid)
        assert (await row(db_sessions, sid)).state == "paused"
    finally:
        await b.close()
        await a.close()


async def test_an_expired_lease_is_taken_over_and_the_old_owner_writes_nothing_more(db_sessions, tmp_path):
    pool_a, pool_b = ScriptedPool(1), ScriptedPool(1)
    a = Orchestrator(settings(tmp_path), db_sessions, pool_a)
    a.heartbeat_s = 3600.0  # a stalls: its lease is never renewed
    await a.start()
    b = None
    try:
        sid = await running(a, pool_a)
        worker_a = pool_a.spawned[0]
        worker_a.report("game", sid, game(1))
        await until(lambda: a.writer.games_written.get(sid) == 1)
        await set_lease(db_sessions, sid, a.leases.owner, expires_in_s=-1)  # a's lease has expired
        b = Orchestrator(settings(tmp_path), db_sessions, pool_b)
        b.heartbeat_s = 0.05
        await b.start()
        run_b = await pool_b.spawned[0].wait_for_command("run")
        assert run_b.payload.first_game == 2
        assert (await row(db_sessions, sid)).owner == b.leases.owner
        worker_a.report("game", sid, game(2))  # a wakes up: its write is refused, a lets go
        await until(lambda: sid not in a.runner.tasks)
        assert worker_a.alive is False  # never handed on with the session's loop in it
        pool_b.spawned[0].report("game", sid, game(2))
        await until(lambda: b.writer.games_written.get(sid) == 1)
        assert await game_numbers(db_sessions, sid) == [1, 2]
        stored = await row(db_sessions, sid)
        assert stored.state == "running" and stored.owner == b.leases.owner and stored.failure_reason is None
    finally:
        if b is not None:
            await b.close()
        await a.close()


@pytest.mark.parametrize("gone", ["dead process on this host", "closed orchestrator of this process"])
async def test_a_crashed_owners_lease_does_not_delay_recovery(db_sessions, tmp_path, gone):
    async with db_sessions() as db:
        sid = (await repo.create_session(db, settings(tmp_path).session_config().model_dump(mode="json"), 1)).id
        await repo.set_state(db, sid, "running")
        await db.commit()
    if gone.startswith("dead"):
        owner = f"{socket.gethostname()}:999999999:0123456789ab"  # no such pid
    else:
        closed = Orchestrator(settings(tmp_path), db_sessions, ScriptedPool(1))
        owner = closed.leases.owner
        await closed.close()
    await set_lease(db_sessions, sid, owner, expires_in_s=3600)
    pool = ScriptedPool(1)
    orch = Orchestrator(settings(tmp_path), db_sessions, pool)
    await orch.start()
    try:
        await pool.spawned[0].wait_for_command("run")
        assert (await row(db_sessions, sid)).owner == orch.leases.owner
    finally:
        await orch.close()


async def test_an_owner_elsewhere_is_trusted_until_its_lease_expires(db_sessions, tmp_path):
    async with db_sessions() as db:
        sid = (await repo.create_session(db, settings(tmp_path).session_config().model_dump(mode="json"), 1)).id
        await repo.set_state(db, sid, "running")
        await db.commit()
    await set_lease(db_sessions, sid, "another-host.example:4242:0123456789ab", expires_in_s=0.5)
    pool = ScriptedPool(1)
    orch = Orchestrator(settings(tmp_path), db_sessions, pool)
    orch.heartbeat_s = 0.05
    await orch.start()
    try:
        with pytest.raises(SessionOwned):
            await orch.continue_session(sid)
        assert pool.spawned[0].kinds() == []
        await pool.spawned[0].wait_for_command("run")  # the heartbeat's recovery, once it expired
        assert (await row(db_sessions, sid)).owner == orch.leases.owner
    finally:
        await orch.close()


async def test_a_session_that_ends_gives_its_lease_back(db_sessions, tmp_path):
    pool = ScriptedPool(1)
    orch = Orchestrator(settings(tmp_path), db_sessions, pool)
    await orch.start()
    try:
        sid = await running(orch, pool)
        pool.spawned[0].report("finished", sid, {"reason": "max_games"})
        pool.spawned[0].report("idle", sid)
        await until(lambda: sid not in orch.runner.tasks)
        for _ in range(200):  # the task gives its lease back as it ends: wait for that write
            stored = await row(db_sessions, sid)
            if stored.owner is None:
                break
            await asyncio.sleep(0.05)
        assert stored.state == "completed"
        assert (stored.owner, stored.lease_expires_at) == (None, None)
    finally:
        await orch.close()
