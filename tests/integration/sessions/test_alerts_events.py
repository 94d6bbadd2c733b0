"""Alerts through the orchestrator: worker reports (learning steps, evaluation matches,
stats) fed to the real orchestrator over real storage (SQLite and PostgreSQL) raise
`alert.raised` events, stored with the session's next seqs, announced after the commit
(listeners, live feed) and counted in `mcts_continuous_play_alerts_total`."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from support.tiny import folder_settings

from service.config import Settings
from service.event_types import EventType
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import InlinePool
from service.storage import repositories as repo
from service.telemetry import SessionMetrics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

P = "mcts_continuous_play_"


def settings(tmp_path: Path, **overrides) -> Settings:
    """folder_settings, a stats report stored as a metrics snapshot at most once an hour."""
    return folder_settings(tmp_path, **{"metrics_export_interval": 3600, **overrides})


@pytest_asyncio.fixture
async def running(db_sessions, tmp_path):
    """A started orchestrator (no session scheduled: recover=False), its metrics, a stored
    `running` session, and everything its listeners heard."""
    orch = Orchestrator(settings(tmp_path), db_sessions, InlinePool(1), recover=False)
    metrics = SessionMetrics()
    metrics.attach(orch)
    heard: list[tuple[str, str, dict]] = []
    orch.listeners.append(lambda sid, kind, data: heard.append((sid, kind, data)))
    await orch.start()
    cfg = orch.settings.session_config()
    async with db_sessions() as db, db.begin():
        sid = (await repo.create_session(db, cfg.model_dump(mode="json"), cfg.seed)).id
        await repo.set_state(db, sid, "running")
    try:
        yield orch, metrics, sid, heard
    finally:
        await orch.close()


def learning(step: int, loss: float) -> dict:
    return {
        "games": 10 * step,
        "step": step,
        "steps": 1,
        "policy_loss": loss * 0.7,
        "value_loss": loss * 0.3,
        "total_loss": loss,
        "grad_norm": 1.0,
        "lr": 1e-3,
        "policy_entropy": 2.0,
        "samples": 256,
        "buffer_size": 1000,
        "positions_learned": 100 * step,
        "seconds": 0.1,
    }


def count(metrics: SessionMetrics, sid: str, alert: str, severity: str) -> float | None:
    return metrics.registry.get_sample_value(
        P + "alerts_total", {"session_id": sid, "alert": alert, "severity": severity}
    )


async def stored(db_sessions, sid: str):
    async with db_sessions() as db:
        return await repo.events_since(db, sid, 0, 10_000)


async def test_a_loss_spike_raises_one_stored_alert_and_counts_it(running, db_sessions):
    orch, metrics, sid, heard = running
    sub = orch.bus.subscribe(sid)
    for step, loss in enumerate([2.0, 2.1, 1.9, 2.0, 2.0, 2.05], start=1):
        await orch.record(sid, "learning", learning(step, loss))
    assert count(metrics, sid, "loss_spike", "critical") == 0.0  # every series starts at 0
    await orch.record(sid, "learning", learning(7, 30.0))  # > 2 x 3 x the recent mean: critical
    await orch.record(sid, "learning", learning(8, 31.0))  # the same episode: not raised again
    events = await stored(db_sessions, sid)
    assert [e.type for e in events] == [EventType.LEARNING_STEP] * 7 + [EventType.ALERT_RAISED, EventType.LEARNING_STEP]
    assert [e.seq for e in events] == list(range(1, 10))
    alert = events[7].data
    assert alert["name"] == "loss_spike" and alert["severity"] == "critical" and alert["value"] == 30.0
    assert alert["threshold"] == pytest.approx(3 * 2.0083333, rel=1e-4)
    assert alert["trigger"] == EventType.LEARNING_STEP and alert["games"] == 70 and alert["step"] == 7
    assert alert["message"]
    assert count(metrics, sid, "loss_spike", "critical") == 1.0
    assert count(metrics, sid, "loss_spike", "warning") == 0.0
    # announced after the commit, in seq order, to the listeners and the live feed
    assert [(k, d) for s, k, d in heard if k == EventType.ALERT_RAISED] == [(EventType.ALERT_RAISED, alert)]
    live = []
    while (item := sub.get_nowait()) is not None:
        live.append(item.message)
    assert [m["seq"] for m in live] == list(range(1, 10)) and live[7]["data"] == alert
    assert live == [e.to_message() for e in events]
    # the loss comes back down (clears), then spikes again: a new episode
    for step, loss in enumerate([2.0] * 10, start=9):
        await orch.record(sid, "learning", learning(step, loss))
    await orch.record(sid, "learning", learning(19, 7.0))  # > 3x, < 6x: warning
    assert count(metrics, sid, "loss_spike", "warning") == 1.0
    assert [e.data["severity"] for e in await stored(db_sessions, sid) if e.type == EventType.ALERT_RAISED] == [
        "critical",
        "warning",
    ]


async def checkpoint(orch, sid, generation, tmp_path):
    folder = Path(orch.settings.checkpoint_dir) / sid
    await orch.record(
        sid,
        "checkpoint",
        {
            "generation": generation,
            "games": 10 * generation,
            "path": str(folder / f"gen-{generation:04d}.safetensors"),
            "state_path": str(folder / f"gen-{generation:04d}.state.pt"),
            "sha256": "0" * 64,
        },
    )


def match(generation: int, opponent: str, wins: int, draws: int, losses: int) -> dict:
    return {
        "generation": generation,
        "games_played": 10 * generation,
        "opponent": opponent,
        "wins": wins,
        "draws": draws,
        "losses": losses,
        "pentanomial": [0, 0, 0, 0, 0],
        "adjudicated": 0,
        "seconds": 1.0,
    }


async def test_an_elo_regression_raises_a_stored_alert_and_counts_it(running, db_sessions, tmp_path):
    orch, metrics, sid, _ = running
    for generation in range(3):
        await checkpoint(orch, sid, generation, tmp_path)
    await orch.record(sid, "evaluation", match(1, "gen0", 15, 4, 1))  # gen1 well above gen0
    assert [e.type for e in await stored(db_sessions, sid)].count(EventType.ALERT_RAISED) == 0
    await orch.record(sid, "evaluation", match(2, "gen0", 1, 3, 16))  # gen2 far below the best (gen1)
    events = await stored(db_sessions, sid)
    alerts = [e for e in events if e.type == EventType.ALERT_RAISED]
    assert len(alerts) == 1
    data = alerts[0].data
    assert data["name"] == "elo_regression" and data["trigger"] == EventType.EVALUATION_FINISHED
    assert data["generation"] == 2 and data["opponent"] == "gen0" and data["games"] == 20
    evaluation = [e for e in events if e.type == EventType.EVALUATION_FINISHED][-1]
    ratings = evaluation.data["ratings"]
    drop = ratings["gen2"]["rating"] - max(ratings["gen0"]["rating"], ratings["gen1"]["rating"])
    assert data["value"] == pytest.approx(drop) and drop < -100 and data["threshold"] == -100
    assert alerts[0].seq == evaluation.seq + 1  # stored in the same transaction, right after it
    assert count(metrics, sid, "elo_regression", data["severity"]) == 1.0


async def test_memory_growth_from_stats_raises_once_and_thresholds_come_from_settings(db_sessions, tmp_path):
    orch = Orchestrator(settings(tmp_path, alert_memory_growth_mb=100), db_sessions, InlinePool(1), recover=False)
    metrics = SessionMetrics()
    metrics.attach(orch)
    await orch.start()
    try:
        cfg = orch.settings.session_config()
        async with db_sessions() as db, db.begin():
            sid = (await repo.create_session(db, cfg.model_dump(mode="json"), cfg.seed)).id
        for growth in (10.0, 150.0, 160.0, 20.0, 250.0):
            await orch.record(
                sid,
                "stats",
                {
                    "simulations_per_second": 100.0,
                    "buffer_size": 10,
                    "games_in_flight": 2,
                    "rss_mb": 400.0 + growth,
                    "rss_growth_mb": growth,
                },
            )
        alerts = [e.data for e in await stored(db_sessions, sid) if e.type == EventType.ALERT_RAISED]
        # 150: warning; 160: the same episode; 20: clears; 250 (>= 2 x 100): critical
        assert [(a["name"], a["severity"], a["value"]) for a in alerts] == [
            ("memory_growth", "warning", 150.0),
            ("memory_growth", "critical", 250.0),
        ]
        assert alerts[0]["trigger"] == "stats" and alerts[0]["rss_mb"] == 550.0
        assert count(metrics, sid, "memory_growth", "warning") == 1.0
        assert count(metrics, sid, "memory_growth", "critical") == 1.0
        async with db_sessions() as db, db.begin():
            await repo.set_state(db, sid, "completed")
        await orch.delete(sid)  # a deleted session's alert series go too
        assert count(metrics, sid, "memory_growth", "critical") is None
    finally:
        await orch.close()


async def test_a_rolled_back_write_announces_nothing(running, db_sessions):
    orch, _, sid, heard = running
    sub = orch.bus.subscribe(None)
    before = len(heard)

    async def job(db):
        await orch.writer.event(db, sid, EventType.LEARNING_STEP, {"step": 1})
        raise RuntimeError("the write fails after storing its event")

    with pytest.raises(RuntimeError):
        await orch.writer.write(job)
    assert len(heard) == before and sub.get_nowait() is None
    assert await stored(db_sessions, sid) == []
    message = await orch.add_event(sid, EventType.LEARNING_STEP, {"step": 2})
    assert message["seq"] == 1  # the rolled-back seq was given back
    assert sub.get_nowait().message == message and heard[-1] == (sid, EventType.LEARNING_STEP, {"step": 2})
