"""Sessions: create, list with keyset pagination, state changes, cascading delete."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from service.config import SessionConfig
from service.event_types import EventType
from service.storage import repositories as repo
from service.storage.models import (
    CheckpointRow,
    EvaluationRow,
    EventRow,
    GameRow,
    MetricSnapshotRow,
    SessionRow,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONFIG = SessionConfig().model_dump(mode="json")


async def test_create_and_get(db_sessions):
    async with db_sessions() as db, db.begin():
        row = await repo.create_session(db, CONFIG, seed=2**32 - 1)
    async with db_sessions() as db:
        got = await repo.get_session(db, row.id)
        assert got is not None and got.id == row.id and len(got.id) == 32 and int(got.id, 16) >= 0
        assert (got.state, got.seed, got.games_done, got.last_seq) == ("pending", 2**32 - 1, 0, 0)
        assert got.config == CONFIG and SessionConfig.model_validate(got.config) == SessionConfig()
        assert got.created_at.tzinfo == timezone.utc and got.updated_at.tzinfo == timezone.utc
        assert got.started_at is None and got.init_checkpoint_id is None and got.active
        assert await repo.get_session(db, "0" * 32) is None
        with pytest.raises(repo.NotFound):
            await repo.require_session(db, "0" * 32)


async def test_list_paginates_newest_first_without_overlap(db_sessions):
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    async with db_sessions() as db, db.begin():
        ids = []
        for i in range(8):
            row = await repo.create_session(db, CONFIG, seed=i)
            row.created_at = base + timedelta(seconds=i // 2)  # pairs share a timestamp: id breaks ties
            row.state = "running" if i % 3 == 0 else "pending"
            ids.append(row.id)
    expected = [
        r for _, r in sorted(((base + timedelta(seconds=i // 2), sid) for i, sid in enumerate(ids)), reverse=True)
    ]
    pages, cursor = [], None
    async with db_sessions() as db:
        for _ in range(3):
            rows, cursor = await repo.list_sessions(db, limit=3, cursor=cursor)
            pages.append([r.id for r in rows])
            if cursor is None:
                break
        assert [len(p) for p in pages] == [3, 3, 2] and cursor is None
        assert [sid for page in pages for sid in page] == expected
        running, nxt = await repo.list_sessions(db, state="running", limit=10)
        assert {r.id for r in running} == {ids[0], ids[3], ids[6]} and nxt is None
        rows, nxt = await repo.list_sessions(db, limit=8)
        assert len(rows) == 8 and nxt is None


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "abc",
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["yesterday", "x"]').decode(),
        base64.urlsafe_b64encode(b'["2025-01-01T00:00:00", "' + b"a" * 32 + b'"]').decode(),  # naive
        base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
    ],
)
async def test_tampered_cursors_are_refused(db_sessions, cursor):
    async with db_sessions() as db:
        with pytest.raises(ValueError):
            await repo.list_sessions(db, limit=2, cursor=cursor)
        with pytest.raises(ValueError):
            await repo.list_games(db, "0" * 32, limit=2, cursor=cursor)


async def test_a_real_cursor_cut_short_is_refused(db_sessions):
    async with db_sessions() as db, db.begin():
        for i in range(3):
            await repo.create_session(db, CONFIG, seed=i)
    async with db_sessions() as db:
        _, cursor = await repo.list_sessions(db, limit=1)
        assert cursor is not None
        for bad in (cursor[:-3], cursor[3:], cursor + "x"):
            with pytest.raises(ValueError):
                await repo.list_sessions(db, limit=1, cursor=bad)
        with pytest.raises(ValueError):
            await repo.list_sessions(db, state="sleeping")
        with pytest.raises(ValueError):
            await repo.list_sessions(db, limit=0)


async def test_state_changes(db_sessions):
    async with db_sessions() as db, db.begin():
        sid = (await repo.create_session(db, CONFIG, seed=1)).id
    started = datetime.now(timezone.utc)
    async with db_sessions() as db, db.begin():
        row = await repo.set_state(db, sid, "running", from_states=("pending",), started_at=started)
        assert row.state == "running"
    async with db_sessions() as db:
        with pytest.raises(repo.StateConflict) as conflict:
            async with db.begin():
                await repo.set_state(db, sid, "running", from_states=("pending", "paused"))
        assert conflict.value.state == "running"
        with pytest.raises(repo.NotFound):
            async with db.begin():
                await repo.set_state(db, "f" * 32, "paused")
        with pytest.raises(ValueError):
            await repo.set_state(db, sid, "sleeping")
        with pytest.raises(TypeError):
            await repo.set_state(db, sid, "paused", last_seq=9)
    async with db_sessions() as db, db.begin():
        await repo.set_state(
            db,
            sid,
            "failed",
            failure_reason="worker died: OOM",
            stop_reason="failed",
            finished_at=datetime.now(timezone.utc),
        )
    async with db_sessions() as db:
        row = await repo.get_session(db, sid)
        assert (row.state, row.failure_reason, row.stop_reason) == ("failed", "worker died: OOM", "failed")
        assert abs(row.started_at - started) < timedelta(milliseconds=1) and row.started_at.tzinfo == timezone.utc
        assert row.finished_at >= row.started_at and row.updated_at >= row.created_at and not row.active


async def _counts(db, session_id: str) -> dict[str, int]:
    out = {}
    for model in (GameRow, CheckpointRow, EvaluationRow, MetricSnapshotRow, EventRow):
        out[model.__tablename__] = await db.scalar(
            select(func.count()).select_from(model).where(model.session_id == session_id)
        )
    return out


async def test_delete_cascades_to_every_table(db_sessions, make_game, tmp_path):
    async with db_sessions() as db, db.begin():
        sid = (await repo.create_session(db, CONFIG, seed=5)).id
        await repo.add_game(db, sid, make_game(1))
        ck = await repo.add_checkpoint(
            db,
            sid,
            {
                "generation": 0,
                "games": 0,
                "path": str(tmp_path / sid / "gen-0000.safetensors"),
                "state_path": str(tmp_path / sid / "gen-0000.state.pt"),
                "sha256": "0" * 64,
            },
            tmp_path,
        )
        await repo.add_evaluation(db, sid, ck.id, "random", wins=3, draws=1, losses=0)
        await repo.add_metric_snapshot(db, sid, {"games_per_minute": 3.0})
        await repo.add_event(db, sid, EventType.SESSION_STATE, {"state": "running"})
        other = (await repo.create_session(db, CONFIG, seed=5, init_checkpoint_id=ck.id)).id
        await repo.add_event(db, other, EventType.SESSION_STATE, {"state": "pending"})
    async with db_sessions() as db:
        assert set((await _counts(db, sid)).values()) == {1}
    async with db_sessions() as db, db.begin():
        assert await repo.delete_session(db, sid) is True
        assert await repo.delete_session(db, "0" * 32) is False
    async with db_sessions() as db:
        assert await repo.get_session(db, sid) is None
        assert set((await _counts(db, sid)).values()) == {0}
        survivor = await repo.get_session(db, other)
        assert survivor is not None and survivor.init_checkpoint_id is None  # ON DELETE SET NULL
        assert (await _counts(db, other))["events"] == 1
        assert await db.scalar(select(func.count()).select_from(SessionRow)) == 1
