"""Checkpoints, events (gap-free per-session seq, also under concurrent writers), metric
snapshots and evaluations."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from service.config import SessionConfig
from service.event_types import EventType
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _session(db_sessions, seed: int = 0) -> str:
    async with db_sessions() as db, db.begin():
        return (await repo.create_session(db, SessionConfig().model_dump(mode="json"), seed=seed)).id


def _checkpoint(folder: Path, session_id: str, generation: int, games: int) -> dict:
    """A worker "checkpoint" message (paths as the worker writes them: absolute)."""
    base = folder / session_id / f"gen-{generation:04d}"
    return {
        "generation": generation,
        "games": games,
        "path": str(base) + ".safetensors",
        "state_path": str(base) + ".state.pt",
        "sha256": f"{generation:064x}",
    }


async def test_checkpoints_are_unique_per_generation(db_sessions, tmp_path):
    sid = await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        assert await repo.latest_checkpoint(db, sid) is None
        for generation in (0, 2, 1):
            await repo.add_checkpoint(db, sid, _checkpoint(tmp_path, sid, generation, 10 * generation), tmp_path)
    async with db_sessions() as db:
        rows = await repo.list_checkpoints(db, sid)
        assert [r.generation for r in rows] == [0, 1, 2]
        latest = await repo.latest_checkpoint(db, sid)
        assert (latest.generation, latest.games) == (2, 20)
        assert latest.file_name == f"{sid}/gen-0002.safetensors"
        assert latest.state_file_name == f"{sid}/gen-0002.state.pt"
        assert latest.weights_path(tmp_path) == tmp_path / sid / "gen-0002.safetensors"
        assert latest.sha256 == f"{2:064x}" and latest.created_at.tzinfo == timezone.utc
        assert (await repo.get_checkpoint(db, rows[0].id)).generation == 0
        assert await repo.get_checkpoint(db, 10**6) is None
    async with db_sessions() as db:
        with pytest.raises(IntegrityError):
            async with db.begin():
                await repo.add_checkpoint(db, sid, _checkpoint(tmp_path, sid, 1, 99), tmp_path)
        with pytest.raises(ValueError, match="CHECKPOINT_DIR"):
            await repo.add_checkpoint(db, sid, _checkpoint(tmp_path.parent, sid, 3, 30), tmp_path)


async def test_events_are_numbered_one_by_one(db_sessions):
    sid, other = await _session(db_sessions), await _session(db_sessions)
    async with db_sessions() as db, db.begin():
        for i in range(5):
            await repo.add_event(db, sid, EventType.LEARNING_STEP, {"i": i})
        row = await repo.add_event(db, other, EventType.SESSION_STATE, {"state": "running"})
        assert row.seq == 1
    async with db_sessions() as db:  # a rolled-back event gives its number back
        with contextlib.suppress(RuntimeError):
            async with db.begin():
                assert (await repo.add_event(db, sid, EventType.ALERT_RAISED, {})).seq == 6
                raise RuntimeError("abort")
    async with db_sessions() as db, db.begin():
        row = await repo.add_event(db, sid, EventType.GAME_FINISHED, {"result": "1-0", "moves": ["e2e4"]})
    assert row.seq == 6
    message = row.to_message()
    assert message["seq"] == 6 and message["session_id"] == sid and message["type"] == EventType.GAME_FINISHED
    assert message["ts"].endswith("Z") and datetime.fromisoformat(message["ts"]).tzinfo is not None
    async with db_sessions() as db:
        assert [e.seq for e in await repo.events_since(db, sid)] == [1, 2, 3, 4, 5, 6]
        tail = await repo.events_since(db, sid, since=3, limit=2)
        assert [(e.seq, e.data) for e in tail] == [(4, {"i": 3}), (5, {"i": 4})]
        assert await repo.events_since(db, sid, since=6) == []
        assert (await repo.get_session(db, sid)).last_seq == 6
        with pytest.raises(repo.NotFound):
            await repo.add_event(db, "0" * 32, EventType.SESSION_STATE, {})


async def test_concurrent_writers_get_distinct_consecutive_seqs(database, db_sessions):
    """Each task writes with its own AsyncSession, one transaction per event. SQLite has one
    writer (DESIGN.md "Storage"), so its tasks take turns on a lock; on PostgreSQL they really
    run at once and the row lock of `UPDATE sessions ... RETURNING` orders them."""
    sid = await _session(db_sessions)
    tasks, per_task = 6, 5
    writer = asyncio.Lock() if database.backend == "sqlite" else contextlib.nullcontext()

    open_now = peak = 0

    async def write(task: int) -> list[int]:
        nonlocal open_now, peak
        seqs = []
        for i in range(per_task):
            async with writer, db_sessions() as db, db.begin():
                open_now += 1
                peak = max(peak, open_now)
                try:
                    row = await repo.add_event(db, sid, EventType.METRICS_SNAPSHOT, {"task": task, "i": i})
                    await asyncio.sleep(0.002)  # hold the transaction open: the others queue up
                finally:
                    open_now -= 1
                seqs.append(row.seq)
        return seqs

    results = await asyncio.gather(*(write(t) for t in range(tasks)))
    assert peak == 1 if database.backend == "sqlite" else peak > 1  # PostgreSQL: transactions overlapped
    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(1, tasks * per_task + 1))
    assert all(r == sorted(r) for r in results)
    async with db_sessions() as db:
        stored = await repo.events_since(db, sid, limit=1000)
        assert [e.seq for e in stored] == seqs
        assert sorted((e.data["task"], e.data["i"]) for e in stored) == [
            (t, i) for t in range(tasks) for i in range(per_task)
        ]


async def test_metric_snapshots_round_trip(db_sessions):
    sid, other = await _session(db_sessions), await _session(db_sessions)
    t0 = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    async with db_sessions() as db, db.begin():
        for i in (2, 0, 1):
            await repo.add_metric_snapshot(
                db, sid, {"games": i, "loss": {"policy": 1.5 - i / 10}}, ts=t0 + timedelta(seconds=30 * i)
            )
        await repo.add_metric_snapshot(db, other, {"games": 9})
    async with db_sessions() as db:
        rows = await repo.list_metric_snapshots(db, sid)
        assert [r.data["games"] for r in rows] == [0, 1, 2] and rows[1].data["loss"] == {"policy": 1.4}
        assert rows[0].ts == t0 and rows[0].ts.tzinfo == timezone.utc
        assert [r.data["games"] for r in await repo.list_metric_snapshots(db, sid, since=t0)] == [1, 2]
        assert [r.data["games"] for r in await repo.list_metric_snapshots(db, sid, limit=2)] == [1, 2]
        assert (await repo.latest_metric_snapshot(db, sid)).data["games"] == 2
        assert await repo.latest_metric_snapshot(db, "0" * 32) is None


async def test_evaluations_round_trip(db_sessions, tmp_path):
    sid, other, stranger = [await _session(db_sessions, seed=seed) for seed in (4, 4, 5)]
    sprt = {"llr": 1.2, "lower": -2.94, "upper": 2.94, "verdict": None}
    async with db_sessions() as db, db.begin():
        cks = {
            s: await repo.add_checkpoint(db, s, _checkpoint(tmp_path, s, 1, 10), tmp_path)
            for s in (sid, other, stranger)
        }
        first = await repo.add_evaluation(
            db,
            sid,
            cks[sid].id,
            "gen0",
            wins=12,
            draws=20,
            losses=8,
            pentanomial=[1, 3, 8, 5, 3],
            elo=34.8,
            elo_low=-20.5,
            elo_high=90.1,
            sprt=sprt,
        )
        await repo.add_evaluation(db, sid, cks[sid].id, "random", wins=40, draws=0, losses=0)
        await repo.add_evaluation(db, other, cks[other].id, "greedy", wins=5, draws=5, losses=30)
        await repo.add_evaluation(db, stranger, cks[stranger].id, "gen0", wins=1, draws=1, losses=0)
    async with db_sessions() as db:
        rows = await repo.list_evaluations(db, sid)
        assert [r.opponent for r in rows] == ["gen0", "random"] and rows[0].id == first.id
        got = rows[0]
        assert (got.games, got.wins, got.draws, got.losses) == (40, 12, 20, 8)
        assert got.pentanomial == [1, 3, 8, 5, 3] and got.sprt == sprt
        assert (got.elo, got.elo_low, got.elo_high) == (34.8, -20.5, 90.1)
        assert (rows[1].pentanomial, rows[1].elo, rows[1].sprt) == (None, None, None)
        by_seed = await repo.evaluations_for_seed(db, 4)
        assert [(e.session_id, c.generation, e.opponent) for e, c in by_seed] == [
            (sid, 1, "gen0"),
            (sid, 1, "random"),
            (other, 1, "greedy"),
        ]
        assert await repo.evaluations_for_seed(db, 99) == []


async def test_a_diverged_loss_is_stored_as_null_not_lost(db_sessions):
    """NaN and infinity are not JSON: a diverged learning step is stored (as null), on both
    backends, instead of failing the writer."""
    sid = await _session(db_sessions)
    data = {
        "policy_loss": float("nan"),
        "value_loss": float("inf"),
        "total_loss": 2.5,
        "nested": {"grad_norm": float("-inf"), "values": [1.0, float("nan")]},
    }
    async with db_sessions() as db, db.begin():
        await repo.add_event(db, sid, EventType.LEARNING_STEP, data)
        await repo.add_metric_snapshot(db, sid, {"rss_mb": float("nan"), "buffer_size": 3})
    async with db_sessions() as db:
        (event,) = await repo.events_since(db, sid)
        assert event.data == {
            "policy_loss": None,
            "value_loss": None,
            "total_loss": 2.5,
            "nested": {"grad_norm": None, "values": [1.0, None]},
        }
        snapshot = await repo.latest_metric_snapshot(db, sid)
        assert snapshot.data == {"rss_mb": None, "buffer_size": 3}
