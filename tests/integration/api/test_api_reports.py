"""GET /v1/sessions/{id}/report.json and report.html: built from the database for any
session (finished, running, or with nothing stored yet), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_support import game_message, seed_session

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
NEW_KEYS = {"generated_at", "series", "sprt", "adjudication", "alerts", "fleet"}
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


# (number, actor, generation that started it, generation lag its game.finished recorded):
# actors 1-3 start; actor 2 dies after game 5 and actor 4 replaces it.
FLEET_GAMES = [
    (1, 1, 0, 0),
    (2, 2, 0, 0),
    (3, 1, 0, 1),
    (4, 3, 1, 0),
    (5, 2, 0, 2),
    (6, 3, 1, 1),
    (7, 4, 2, 0),
    (8, 4, 2, 0),
]
FLEET_SNAPSHOT = {
    "simulations_per_second": 310.0,
    "learner_steps_per_second": 1.5,
    "samples_per_position": 1.75,
    "generation": 2,
    "buffer_size": 500,
    "rss_mb": 300.0,
    "rss_growth_mb": 1.0,
    "actors": [
        {
            "actor": 1,
            "state": "running",
            "simulations_per_second": 100.0,
            "generation": 2,
            "games_in_flight": 2,
            "pid": 11,
        },
        {
            "actor": 3,
            "state": "paused",
            "simulations_per_second": 0.0,
            "generation": 1,
            "games_in_flight": 2,
            "pid": 13,
        },
        {
            "actor": 4,
            "state": "running",
            "simulations_per_second": 210.0,
            "generation": 2,
            "games_in_flight": 1,
            "pid": 14,
        },
        {
            "actor": 5,
            "state": "starting",
            "simulations_per_second": 0.0,
            "generation": 2,
            "games_in_flight": 0,
            "pid": 15,
        },
    ],
}


async def seed_fleet_session(api) -> str:
    """A running session of three actors (one replaced) with FLEET_GAMES stored as the
    orchestrator stores them (the game and its game.finished event), an actor replacement,
    an ordinary state change and two metric snapshots, the newest FLEET_SNAPSHOT."""
    session_id = await seed_session(api, state="running", selfplay_actors=3, train_samples_per_position=2.0)
    async with api.sessionmaker() as db, db.begin():
        await repo.add_event(db, session_id, EventType.SESSION_STATE, {"state": "running"})
        for number, actor, generation, lag in FLEET_GAMES:
            game = await repo.add_game(
                db, session_id, {**game_message(number), "generation": generation, "actor": actor}
            )
            await repo.add_event(
                db,
                session_id,
                EventType.GAME_FINISHED,
                {"game_id": game.id, "number": number, "generation": generation, "actor": actor, "generation_lag": lag},
            )
            if number == 5:
                await repo.add_event(
                    db,
                    session_id,
                    EventType.SESSION_STATE,
                    {
                        "state": "running",
                        "actor_replaced": True,
                        "actor": 2,
                        "replacement": 4,
                        "exitcode": -9,
                        "reason": f"self-play actor 2 died {HOSTILE}",
                    },
                )
        await repo.add_metric_snapshot(db, session_id, {**FLEET_SNAPSHOT, "samples_per_position": None, "actors": []})
    async with api.sessionmaker() as db, db.begin():  # a later timestamp: the newest
        await repo.add_metric_snapshot(db, session_id, FLEET_SNAPSHOT)
    return session_id


async def test_the_fleet_section_counts_actors_lag_and_replacements(api):
    session_id = await seed_fleet_session(api)
    report = (await api.client.get(f"/v1/sessions/{session_id}/report.json")).json()
    fleet = report["fleet"]
    assert (fleet["selfplay_actors"], fleet["train_samples_per_position"], fleet["max_generation_lag"]) == (
        3,
        2.0,
        None,
    )
    assert fleet["games"] == 8
    assert fleet["actors"] == [
        {
            "actor": 1,
            "games": 2,
            "first_game": 1,
            "last_game": 3,
            "generation_min": 0,
            "generation_max": 0,
            "lag_games": 2,
            "generation_lag_mean": 0.5,
            "generation_lag_max": 1,
        },
        {
            "actor": 2,
            "games": 2,
            "first_game": 2,
            "last_game": 5,
            "generation_min": 0,
            "generation_max": 0,
            "lag_games": 2,
            "generation_lag_mean": 1.0,
            "generation_lag_max": 2,
        },
        {
            "actor": 3,
            "games": 2,
            "first_game": 4,
            "last_game": 6,
            "generation_min": 1,
            "generation_max": 1,
            "lag_games": 2,
            "generation_lag_mean": 0.5,
            "generation_lag_max": 1,
        },
        {
            "actor": 4,
            "games": 2,
            "first_game": 7,
            "last_game": 8,
            "generation_min": 2,
            "generation_max": 2,
            "lag_games": 2,
            "generation_lag_mean": 0.0,
            "generation_lag_max": 0,
        },
    ]
    assert fleet["generation_lag"] == {
        "games": 8,
        "mean": 0.5,
        "max": 2,
        "lagging": 3,
        "counts": [{"lag": 0, "games": 5}, {"lag": 1, "games": 2}, {"lag": 2, "games": 1}],
    }
    assert fleet["replacements"] == 1  # the ordinary state change is not one
    (replaced,) = fleet["replaced"]
    assert {k: replaced[k] for k in ("actor", "replacement", "exitcode")} == {
        "actor": 2,
        "replacement": 4,
        "exitcode": -9,
    }
    assert replaced["reason"].endswith(HOSTILE) and replaced["seq"] and replaced["ts"]
    latest = fleet["latest"]
    assert latest["ts"] and {k: latest[k] for k in ("simulations_per_second", "learner_steps_per_second")} == {
        "simulations_per_second": 310.0,
        "learner_steps_per_second": 1.5,
    }
    assert latest["samples_per_position"] == 1.75 and latest["generation"] == 2
    assert latest["actors"] == [{k: v for k, v in a.items() if k != "pid"} for a in FLEET_SNAPSHOT["actors"]]

    page = (await api.client.get(f"/v1/sessions/{session_id}/report.html")).text
    assert 'id="fleet"' in page and "Games per actor" in page and "Actor replacements" in page
    assert "1.75 / 2<" in page  # samples per position, actual / target
    assert HOSTILE not in page and "self-play actor 2 died &lt;script&gt;" in page


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
    # games stored before the fleet: all actor 0, generation 0, no recorded lag, no replacement
    fleet = report["fleet"]
    assert [(a["actor"], a["games"], a["first_game"], a["last_game"]) for a in fleet["actors"]] == [(0, 12, 1, 12)]
    assert (fleet["actors"][0]["generation_min"], fleet["actors"][0]["generation_max"]) == (0, 0)
    assert fleet["actors"][0]["generation_lag_mean"] is None and fleet["generation_lag"] is None
    assert fleet["replacements"] == 0 and fleet["replaced"] == []
    assert fleet["latest"]["simulations_per_second"] == 250.0 and fleet["latest"]["actors"] == []
    assert fleet["latest"]["learner_steps_per_second"] is None


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
    assert report["fleet"]["actors"] == [] and report["fleet"]["games"] == 0 and report["fleet"]["latest"] is None
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
