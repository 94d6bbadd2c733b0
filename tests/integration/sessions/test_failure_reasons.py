"""A session's `failure_reason` is readable by every caller: it shows no driver error text,
SQL or server paths (issue #21, item 7); those go to the service log. The worker is scripted
(`scripted_workers`); the orchestrator and the database (SQLite and PostgreSQL) are real."""

from __future__ import annotations

import logging

import pytest
from integration.api.api_support import game_message
from scripted_workers import ScriptedPool, until
from support.tiny import folder_settings

from service.sessions.orchestrator import Orchestrator
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


async def failed_session(db_sessions, tmp_path, script) -> tuple[str, str]:
    """Run a session whose scripted worker does `script(worker, sid)`; its failure reason."""
    pool = ScriptedPool(1)
    orch = Orchestrator(folder_settings(tmp_path), db_sessions, pool)
    await orch.start()
    try:
        sid = await orch.create_session(orch.settings.session_config(max_games=5))
        worker = pool.spawned[0]
        await worker.wait_for_command("run")
        script(worker, sid)
        await until(lambda: sid not in orch.runner.tasks)
    finally:
        await orch.close()
    async with db_sessions() as db:
        row = await repo.get_session(db, sid)
    assert row.state == "failed"
    return sid, row.failure_reason


async def test_a_database_error_fails_the_session_without_its_sql(db_sessions, tmp_path, caplog):
    def twice(worker, sid):  # the same game number twice: UNIQUE(session_id, number) refuses it
        worker.report("game", sid, game_message(1))
        worker.report("game", sid, game_message(1))

    with caplog.at_level(logging.ERROR):
        _, reason = await failed_session(db_sessions, tmp_path, twice)
    assert "IntegrityError" in reason and "service log" in reason, reason
    for leak in ("INSERT", "games", "UNIQUE", "unique", "sqlite3", "asyncpg", "[SQL"):
        assert leak not in reason, reason
    assert "INSERT" in caplog.text  # the details are logged


async def test_a_worker_error_keeps_its_words_but_not_the_servers_paths(db_sessions, tmp_path, caplog):
    secret = str(tmp_path / "secret-folder" / "gen-0003.safetensors")

    def fails(worker, sid):
        worker.report("failed", sid, {"error": f"FileNotFoundError: no weights file at {secret}"})
        worker.report("idle", sid)

    with caplog.at_level(logging.ERROR):
        _, reason = await failed_session(db_sessions, tmp_path, fails)
    assert reason == "FileNotFoundError: no weights file at .../gen-0003.safetensors", reason
    assert secret in caplog.text
