"""GET /v1/sessions/{id}/report.json and report.html: built from the database for any
session (finished, running, or with nothing stored yet), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_support import seed_session

from service.event_types import EventType
from service.reports.files import write_session_files
from service.storage import models
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PROBLEM = "application/problem+json"
LEGACY_KEYS = {
    "format",
    "session_id",
    "started_at",
    "finished_at",
    "stop_reason",
    "error",
    "scorecard",
    "losses",
    "throughput",
    "checkpoints",
    "elo",
    "manifest",
    "state",
    "rating_list",
    "evaluations",
    "analysis",
}
NEW_KEYS = {"generated_at", "series", "sprt", "adjudication", "alerts"}
HOSTILE = "<script>alert(1)</script>"
SPRT = {
    "llr": 0.4,
    "lower": -2.94,
    "upper": 2.94,
    "state": "continue",
    "elo0": 0.0,
    "elo1": 50.0,
    "elo_model": "normalized",
    "alpha": 0.05,
    "beta": 0.05,
    "samples": 2,
}


async def seed_evaluated_session(api, *, state: str = "completed") -> str:
    """A session with 12 games, checkpoints 0..2, evaluations of gens 1 and 2 (vs random and
    the previous generation), learning steps, a metric snapshot and an alert."""
    session_id = await seed_session(api, games=12, state=state, eval_interval_games=4)
    root = Path(api.settings.checkpoint_dir)
    async with api.sessionmaker() as db, db.begin():
        ids = []
        for g in range(3):
            row = await repo.add_checkpoint(
                db,
                session_id,
                {
                    "generation": g,
                    "games": 4 * g,
                    "path": root / session_id / f"gen-{g:04d}.safetensors",
                    "state_path": root / session_id / f"gen-{g:04d}.state.pt",
                    "sha256": f"{g:02d}" * 32,
                },
                root,
            )
            ids.append(row.id)
        for g in (1, 2):
            for opponent, (w, d, lost), penta, sprt in (
                ("random", (3, 1, 0), [0, 0, 0, 1, 1], None),
                (f"gen{g - 1}", (2, 1, 1), [0, 0, 1, 1, 0], {**SPRT, "against_generation": g - 1}),
            ):
                await repo.add_evaluation(
                    db,
                    session_id,
                    ids[g],
                    opponent,
                    wins=w,
                    draws=d,
                    losses=lost,
                    pentanomial=penta,
                    sprt=sprt,
                    elo=1550.0,
                    elo_low=1400.0,
                    elo_high=1700.0,
                )
                await repo.add_event(
                    db,
                    session_id,
                    EventType.EVALUATION_FINISHED,
                    {
                        "checkpoint_id": ids[g],
                        "generation": g,
                        "opponent": opponent,
                        "wins": w,
                        "draws": d,
                        "losses": lost,
                        "pentanomial": penta,
                        "adjudicated": 1,
                    },
                )
        for i in range(1, 5):
            await repo.add_event(
                db,
                session_id,
                EventType.LEARNING_STEP,
                {
                    "games": 2 * i,
                    "step": 5 * i,
                    "steps": 5,
                    "policy_loss": 3.0 - 0.1 * i,
                    "value_loss": 0.9,
                    "total_loss": 3.9 - 0.1 * i,
                    "grad_norm": 1.0,
                    "lr": 0.001,
                    "policy_entropy": 3.0,
                    "samples": 160,
                    "buffer_size": 100 * i,
                    "positions_learned": 100 * i,
                    "seconds": 0.25,
                },
            )
        await repo.add_event(
            db,
            session_id,
            EventType.ALERT_RAISED,
            {
                "name": "loss_spike",
                "severity": "warning",
                "message": f"loss spiked {HOSTILE}",
                "value": 9.0,
                "threshold": 6.0,
                "trigger": EventType.LEARNING_STEP,
                "games": 8,
            },
        )
        await repo.add_metric_snapshot(
            db, session_id, {"simulations_per_second": 250.0, "rss_mb": 310.0, "rss_growth_mb": 4.0, "buffer_size": 300}
        )
        if state == "completed":
            await repo.set_state(
                db,
                session_id,
                "completed",
                stop_reason="max_games",
                finished_at=models.utcnow(),
                started_at=models.utcnow(),
            )
    return session_id


async def test_report_json_of_an_evaluated_session(api):
    session_id = await seed_evaluated_session(api)
    r = await api.client.get(f"/v1/sessions/{session_id}/report.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    report = r.json()
    assert LEGACY_KEYS | NEW_KEYS <= set(report)
    assert report["format"] == "continuous-play-report/1" and report["session_id"] == session_id
    assert report["state"] == "completed" and report["stop_reason"] == "max_games" and report["finished_at"]
    card = report["scorecard"]
    assert (card["games"], card["results"]["white_wins"], card["results"]["draws"], card["adjudicated"]) == (
        12,
        4,
        4,
        4,
    )
    # ratings with intervals: gen0 is the anchor, every checkpoint and anchor is rated
    ratings = {row["player"]: row for row in report["rating_list"]}
    assert set(ratings) == {"gen0", "gen1", "gen2", "random"}
    assert ratings["gen0"]["rating"] == 1500.0 and all(r["low"] <= r["rating"] <= r["high"] for r in ratings.values())
    assert report["elo"]["generation"] == 2 and report["elo"]["rating"] == ratings["gen2"]["rating"]
    # evaluations carry W/D/L, pentanomial, the match's Elo difference and adjudications
    assert [(e["generation"], e["opponent"]) for e in report["evaluations"]] == [
        (1, "random"),
        (1, "gen0"),
        (2, "random"),
        (2, "gen1"),
    ]
    assert all(
        e["adjudicated"] == 1 and e["match"]["low"] <= e["match"]["elo"] <= e["match"]["high"]
        for e in report["evaluations"]
    )
    assert report["adjudication"] == {
        "selfplay": {"games": 12, "adjudicated": 4, "adjudicated_decisive": 0, "adjudicated_draws": 4},
        "evaluation": {"games": 16, "adjudicated": 4},
    }
    assert [(s["generation"], s["against_generation"], s["state"]) for s in report["sprt"]] == [
        (1, 0, "continue"),
        (2, 1, "continue"),
    ]
    # the series the charts draw
    series = report["series"]
    assert [(p["generation"], p["games"]) for p in series["elo"]] == [(0, 0), (1, 4), (2, 8)]
    assert set(series["matches"]) == {"random", "gen0", "previous generation"}
    assert [row["step"] for row in series["learning"]] == [5, 10, 15, 20]
    assert sum(b["games"] for b in series["results"]["buckets"]) == 12
    assert sum(series["game_length"]["counts"]) == 12 and sum(series["move_time"]["counts"]) == 12
    assert series["throughput"][0]["simulations_per_second"] == 250.0 and series["throughput"][0]["ts"]
    assert report["losses"]["phases"] == 4 and report["losses"]["steps"] == 20
    assert {i["name"] for i in report["analysis"]} >= {"elo_progression", "win_rate_trend", "loss_trend"}
    (alert,) = report["alerts"]
    assert alert["name"] == "loss_spike" and alert["message"].endswith(HOSTILE) and alert["seq"] and alert["ts"]
    assert report["manifest"]["seed"] == 0 and report["manifest"]["config"]["eval_interval_games"] == 4


async def test_report_html_of_an_evaluated_session(api):
    session_id = await seed_evaluated_session(api)
    r = await api.client.get(f"/v1/sessions/{session_id}/report.html")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    page = r.text
    assert page.startswith("<!DOCTYPE html>") and session_id in page
    for chart in ("chart-elo", "chart-matches", "chart-losses", "chart-results", "chart-length", "chart-move-time"):
        assert f'id="{chart}"' in page
    assert HOSTILE not in page and "loss spiked &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Plotly.newPlot" in page and "<script src" not in page


async def test_a_running_session_and_one_with_nothing_stored(api):
    running = await seed_evaluated_session(api, state="running")
    report = (await api.client.get(f"/v1/sessions/{running}/report.json")).json()
    assert report["state"] == "running" and report["finished_at"] is None and report["stop_reason"] is None
    assert report["scorecard"]["games"] == 12

    pending = await seed_session(api, games=0, state="pending")
    r = await api.client.get(f"/v1/sessions/{pending}/report.json")
    assert r.status_code == 200
    report = r.json()
    assert report["scorecard"]["games"] == 0 and report["rating_list"] == [] and report["elo"] is None
    assert report["series"]["elo"] == [] and report["series"]["learning"] == [] and report["alerts"] == []
    assert report["analysis"] == []
    r = await api.client.get(f"/v1/sessions/{pending}/report.html")
    assert r.status_code == 200
    assert "No evaluation yet" in r.text and "No learning step yet" in r.text and 'id="chart-elo"' not in r.text


async def test_unknown_or_malformed_session_is_a_404_problem(api):
    for suffix in ("report.json", "report.html"):
        for session_id in ("0" * 32, "f" * 32, "not-an-id", "A" * 32, "%3Cscript%3E"):
            r = await api.client.get(f"/v1/sessions/{session_id}/{suffix}")
            assert r.status_code == 404, (session_id, suffix, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
            body = r.json()
            assert body["status"] == 404 and body["title"] and body["type"]


async def test_the_api_and_the_files_agree(api, tmp_path):
    """report.json from the API is the one write_session_files writes (same sections, same
    numbers) and the file set includes report.html."""
    session_id = await seed_evaluated_session(api)
    from_api = (await api.client.get(f"/v1/sessions/{session_id}/report.json")).json()
    out = tmp_path / "out"
    written = await write_session_files(api.sessionmaker, api.settings, session_id, out)
    assert {p.name for p in out.iterdir()} == {"games.pgn", "metrics.json", "report.json", "report.html"}
    assert written == json.loads((out / "report.json").read_text())
    volatile = {"generated_at", "throughput"}
    assert {k: v for k, v in written.items() if k not in volatile} == {
        k: v for k, v in from_api.items() if k not in volatile
    }
    html = (out / "report.html").read_text()
    assert session_id in html and 'id="chart-elo"' in html
