"""The `continuous-play uci` and `continuous-play db upgrade` console scripts as installed
(`.venv/bin/continuous-play`, in a subprocess with a clean environment), not the modules
behind them (tests/functional/test_uci.py drives `python -m service.uci`;
tests/integration/storage/test_storage_migrations.py calls `upgrade(url)`):

- `uci`, driven by python-chess's `SimpleEngine.popen_uci` as a GUI would: the handshake
  (with and without `--checkpoint`), a few moves under a node limit, an analysis with a
  score, and a clean `quit` (exit status 0);
- `db upgrade` on a fresh database (SQLite and PostgreSQL): every table of the models at
  the Alembic head revision, and again (a no-op); on a bad DATABASE_URL: exit status 2 and
  one line naming DATABASE_URL, no traceback, no password.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import chess
import chess.engine
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from support.cli import CONSOLE_SCRIPT, clean_env

from service.engine import network
from service.storage import models
from service.storage.database import alembic_config

pytestmark = pytest.mark.e2e

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"  # as tests/conftest.py


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db")).get_current_head()


# -- uci -------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("with_checkpoint", [False, True], ids=["generation-0-of-SEED", "--checkpoint"])
def test_uci_console_script_plays_and_analyses_for_python_chess(tmp_path, with_checkpoint):
    args = [str(CONSOLE_SCRIPT), "uci"]
    if with_checkpoint:
        weights = tmp_path / "tiny-seed-7.safetensors"
        network.save_weights(network.build_network("tiny", 7), weights, generation=0, seed=7)
        args += ["--checkpoint", str(weights)]
    env = clean_env(CHESS_PRESET="tiny", SEED="4", TORCH_THREADS="1")
    engine = chess.engine.SimpleEngine.popen_uci(args, timeout=120, cwd=tmp_path, env=env)
    try:
        # the handshake: who it is (the checkpoint's header, or generation 0 of SEED) and its options
        expected = "tiny gen 0 seed 7" if with_checkpoint else "tiny gen 0 seed 4"
        assert engine.id["name"].startswith("continuous-play ") and engine.id["name"].endswith(expected)
        assert {"Simulations", "Threads", "Algorithm", "MoveOverhead", "Hash", "Ponder"} <= set(engine.options)
        board = chess.Board()
        game = object()  # one game: ucinewgame once, then positions that continue it
        for _ in range(6):
            result = engine.play(board, chess.engine.Limit(nodes=16), game=game)
            assert result.move in board.legal_moves, (board.fen(), result.move)
            board.push(result.move)
        info = engine.analyse(board, chess.engine.Limit(nodes=32), game=game)
        assert info["nodes"] == 32
        score = info["score"]
        assert isinstance(score, chess.engine.PovScore) and score.turn == board.turn
        assert score.relative.score(mate_score=100_000) is not None
        assert info["pv"] and info["pv"][0] in board.legal_moves
    finally:
        engine.quit()
    assert engine.protocol.returncode.result() == 0


# -- db upgrade ------------------------------------------------------------------------------


def db_upgrade(tmp_path: Path, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "db", "upgrade"],
        cwd=tmp_path,
        env=clean_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def expected_tables() -> set[str]:
    return set(models.Base.metadata.tables) | {"alembic_version"}


def sqlite_schema(path: Path) -> tuple[set[str], list[str]]:
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        versions = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    return tables, versions


def test_db_upgrade_console_script_migrates_a_fresh_sqlite_database_to_head(tmp_path):
    path = tmp_path / "new" / "cp.db"  # not there yet, nor its folder
    url = f"sqlite+aiosqlite:///{path}"
    for _ in range(2):  # the second run finds it at head and changes nothing
        proc = db_upgrade(tmp_path, url)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines() == [f"database {url} is at the newest revision"], proc.stdout
        tables, versions = sqlite_schema(path)
        assert tables - {"sqlite_sequence"} == expected_tables()
        assert versions == [head_revision()]


async def _postgres_database(admin_url: str, name: str, action: str) -> set[str] | list[str] | None:
    """CREATE or DROP database `name`, or read its tables / alembic version (asyncpg, no pool)."""
    import asyncpg

    u = make_url(admin_url)
    conn = await asyncpg.connect(
        user=u.username,
        password=u.password,
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        database=name if action in ("tables", "versions") else u.database,
        timeout=10,
    )
    try:
        if action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
        elif action == "drop":
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif action == "tables":
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r["tablename"] for r in rows}
        else:
            return [r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()
    return None


def test_db_upgrade_console_script_migrates_a_fresh_postgresql_database_to_head(tmp_path):
    admin = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    name = f"cp_cli_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_postgres_database(admin, name, "create"))
    except Exception as exc:  # noqa: BLE001 - named below, never skipped
        pytest.fail(
            f"PostgreSQL is not reachable (TEST_DATABASE_URL): {type(exc).__name__}: {exc}. Start it: "
            "`pg_ctlcluster 15 main start`.",
            pytrace=False,
        )
    try:
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        for _ in range(2):
            proc = db_upgrade(tmp_path, url)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert "is at the newest revision" in proc.stdout
            assert asyncio.run(_postgres_database(admin, name, "tables")) == expected_tables()
            assert asyncio.run(_postgres_database(admin, name, "versions")) == [head_revision()]
    finally:
        asyncio.run(_postgres_database(admin, name, "drop"))


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://user:s3cret@db.example/cp",  # a database this service does not support
        "sqlite:///plain-sync-driver.db",  # SQLite without the async driver
        "not a url at all",
        "postgresql+asyncpg://user:s3cret@127.0.0.1:1/nowhere",  # well formed, nothing answers there
    ],
    ids=["mysql", "sync-sqlite", "garbage", "unreachable"],
)
def test_db_upgrade_console_script_refuses_a_bad_database_url_in_one_line(tmp_path, url):
    proc = db_upgrade(tmp_path, url)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr + proc.stdout
    assert list(tmp_path.iterdir()) == [], "nothing is created for a refused URL"
