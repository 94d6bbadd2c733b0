"""Alembic migrations reach head on SQLite and PostgreSQL and match the models exactly."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, pool, text

from service.storage.database import (
    DatabaseError,
    alembic_config,
    check_connection,
    create_engine,
    upgrade,
    upgrade_engine,
)
from service.storage.models import Base

pytestmark = pytest.mark.integration

TABLES = {"sessions", "games", "checkpoints", "evaluations", "metric_snapshots", "events", "alembic_version"}


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _schema(connection) -> dict:
    inspector = inspect(connection)
    return {
        "tables": set(inspector.get_table_names()),
        "checks": {c["name"] for c in inspector.get_check_constraints("sessions")},
        "session_fks": {(fk["name"], fk["options"].get("ondelete")) for fk in inspector.get_foreign_keys("sessions")},
        "version": connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one(),
    }


@pytest.mark.asyncio
async def test_head_matches_the_models(engine):
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        schema = await conn.run_sync(_schema)
    assert schema["tables"] == TABLES
    assert schema["checks"] == {"ck_sessions_state"}
    assert schema["session_fks"] == {("fk_sessions_init_checkpoint_id_checkpoints", "SET NULL")}
    assert schema["version"] == "0004"


def _down_and_up(connection) -> None:
    cfg = alembic_config(connection.engine.url)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "base")
    assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    command.upgrade(cfg, "head")


@pytest.mark.asyncio
async def test_downgrade_to_base_and_back(engine):
    async with engine.begin() as conn:
        await conn.run_sync(_down_and_up)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    await upgrade_engine(engine)  # at head already: a no-op


def _upgrade_and_inspect(url: str, engine_kwargs: dict) -> None:
    upgrade(url, **engine_kwargs)  # the CLI's path: asyncio.run inside env.py (here on a worker thread)
    upgrade(url, **engine_kwargs)  # idempotent

    async def check() -> None:
        engine = create_engine(url, poolclass=pool.NullPool, **engine_kwargs)
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
        await engine.dispose()

    asyncio.run(check())


@pytest.mark.asyncio
async def test_upgrade_by_url(database, tmp_path):
    """`upgrade(url)` (what `continuous-play db upgrade` runs) on a fresh database."""
    if database.backend == "sqlite":
        path = tmp_path / "new" / "folder" / "cp.db"  # the folder does not exist yet
        await asyncio.to_thread(_upgrade_and_inspect, f"sqlite+aiosqlite:///{path}", {})
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    else:
        await asyncio.to_thread(_upgrade_and_inspect, database.url, database.engine_kwargs)


def test_other_urls_are_refused():
    with pytest.raises(ValueError, match="DATABASE_URL") as caught:
        create_engine("mysql+aiomysql://user:secret@host/db")
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match="DATABASE_URL"):
        upgrade("sqlite:///plain-sync-driver.db")


@pytest.mark.asyncio
async def test_an_unreachable_database_is_named_without_its_password():
    engine = create_engine("postgresql+asyncpg://user:secret@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(DatabaseError, match=r"user:\*\*\*@127.0.0.1:1/nowhere") as caught:
            await check_connection(engine, timeout=5)
        assert "secret" not in str(caught.value)
    finally:
        await engine.dispose()


def _migrate(connection, revision: str, *, down: bool) -> None:
    cfg = alembic_config(connection.engine.url)
    cfg.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(cfg, revision)


@pytest.mark.asyncio
async def test_0004_gives_existing_evaluations_the_yardstick_they_were_made_under(engine, tmp_path):
    """Evaluations stored before 0004 were all played to 150 plies and adjudicated on material
    with a 3-pawn margin: the upgrade names that yardstick on every one of them."""
    from service.config import SessionConfig
    from service.engine.yardstick import LEGACY
    from service.storage import repositories as repo
    from service.storage.database import session_factory

    async with session_factory(engine)() as db, db.begin():
        sid = (await repo.create_session(db, SessionConfig().model_dump(mode="json"), seed=0)).id
        base = tmp_path / sid / "gen-0001"
        checkpoint = {
            "generation": 1,
            "games": 10,
            "path": str(base) + ".safetensors",
            "state_path": str(base) + ".state.pt",
            "sha256": "0" * 64,
        }
        ckpt = await repo.add_checkpoint(db, sid, checkpoint, tmp_path)
        for opponent in ("gen0", "random"):
            await repo.add_evaluation(db, sid, ckpt.id, opponent, wins=3, draws=1, losses=0)
    async with engine.begin() as conn:
        await conn.run_sync(_migrate, "0003", down=True)
        columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("evaluations")})
        assert "yardstick" not in columns
        await conn.run_sync(_migrate, "head", down=False)
    async with session_factory(engine)() as db, db.begin():
        rows = await repo.list_evaluations(db, sid)
        assert [(r.opponent, r.yardstick) for r in rows] == [("gen0", LEGACY), ("random", LEGACY)]
        await repo.add_evaluation(db, sid, ckpt.id, "greedy", wins=1, draws=0, losses=0, yardstick="cap150/none")
        await repo.add_evaluation(db, sid, ckpt.id, "greedy", wins=1, draws=0, losses=0)
        assert [r.yardstick for r in await repo.list_evaluations(db, sid)][2:] == ["cap150/none", None]
