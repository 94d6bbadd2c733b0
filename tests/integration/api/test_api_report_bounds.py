"""report.json / report.html of a long session (issue 21, item 6), on SQLite and PostgreSQL:
built from SQL aggregates and bounded samples (never every game's policy blob), exact in its
totals, built once per change of the session and shared by its readers, with builds capped,
and sent without holding a database connection."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

import pytest
from api_support import game_message, get_scope, seed_session

from service.api import caches
from service.api import reports as reports_route
from service.event_types import EventType
from service.reports import builder, files
from service.stats.scorecard import Scorecard
from service.storage import models
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GAMES, SAMPLED, SEARCHED, ROWS = 40, 10, 3, 8
RESULTS = ("1-0", "0-1", "1/2-1/2")


def message(number: int) -> dict[str, Any]:
    """Games of varied length, result, termination and duration (runs of equal results too)."""
    m = game_message(number, plies=3 + number % 11)
    m["result"] = RESULTS[(number // 3 + number % 2) % 3] if number < 30 else "1/2-1/2"
    m["adjudicated"] = number % 4 == 0
    m["termination"] = ("move_cap", "checkmate", "resignation")[number % 3]
    m["duration_s"] = 0.05 + 0.37 * (number % 9)
    return m


async def long_session(api) -> str:
    """A finished session of GAMES games, 30 learning steps, 20 metric snapshots."""
    session_id = await seed_session(api, games=0, state="running")
    async with api.sessionmaker() as db, db.begin():
        for number in range(1, GAMES + 1):
            await repo.add_game(db, session_id, message(number))
        for i in range(1, 31):
            await repo.add_event(
                db,
                session_id,
                EventType.LEARNING_STEP,
                {
                    "games": i,
                    "step": 3 * i,
                    "steps": 3,
                    "policy_loss": 3.0 - 0.01 * i + 0.2 * (i % 3),
                    "value_loss": 1.0 - 0.01 * i,
                    "total_loss": 4.0 - 0.02 * i + 0.3 * (i % 5 == 2),
                    "grad_norm": 1.0,
                    "lr": 1e-3,
                    "policy_entropy": 3.0 - 0.01 * i,
                    "buffer_size": 10 * i,
                    "seconds": 0.25 + 0.01 * i,
                },
            )
        for i in range(20):
            await repo.add_metric_snapshot(
                db,
                session_id,
                {
                    "simulations_per_second": 100.0 + 7 * i,
                    "rss_mb": 300.0 + i,
                    "rss_growth_mb": float(i),
                    "buffer_size": 10 * i,
                },
            )
        await repo.set_state(
            db,
            session_id,
            "completed",
            stop_reason="max_games",
            started_at=models.utcnow(),
            finished_at=models.utcnow(),
        )
    return session_id


def blobs(value: Any, seen: set[int] | None = None) -> int:
    """How many non-empty bytes values `value` holds (through dataclasses, containers, rows and
    ORM objects)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return int(len(value) > 0)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(blobs(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(blobs(v, seen) for v in value.values())
    if isinstance(value, (list, tuple, set)) or type(value).__name__ == "Row":
        return sum(blobs(v, seen) for v in value)
    if hasattr(value, "_sa_instance_state"):
        return sum(blobs(v, seen) for k, v in vars(value).items() if not k.startswith("_sa"))
    return 0


def close(got: Any, want: Any, where: str = "") -> None:
    """`got` equals `want`, floats to 1e-9 relative."""
    if isinstance(want, float) and isinstance(got, (int, float)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (where, got, want)
        for k in want:
            close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{where}[{i}]")
    else:
        assert got == want, (where, got, want)


@pytest.fixture
def small_samples(monkeypatch):
    monkeypatch.setattr(files, "SAMPLED_GAMES", SAMPLED)
    monkeypatch.setattr(files, "SEARCHED_GAMES", SEARCHED)
    monkeypatch.setattr(files, "SERIES_ROWS", ROWS)


async def test_a_long_session_loads_a_bounded_sample(api, small_samples):
    session_id = await long_session(api)
    async with api.sessionmaker() as db:
        stored = await files.load_session(db, session_id)
    # the policy and root-value blobs of SEARCHED games at most, never every game's
    assert 0 < blobs(stored) <= 2 * SEARCHED


async def test_its_report_is_exact_in_its_totals(api, small_samples):
    session_id = await long_session(api)
    report = (await api.client.get(f"/v1/sessions/{session_id}/report.json")).json()
    async with api.sessionmaker() as db:
        games, _ = await repo.list_games(db, session_id, limit=1000)
        events = await repo.events_since(db, session_id)
    assert len(games) == GAMES
    close(report["scorecard"], Scorecard.from_records(games).to_dict(), "scorecard")
    rows = [
        {
            "number": g.number,
            "result": g.result,
            "plies": g.plies,
            "duration_s": g.duration_s,
            "adjudicated": g.adjudicated,
            "termination": g.termination,
        }
        for g in games
    ]
    series = report["series"]
    close(series["results"], builder.result_buckets(rows), "results")
    close(series["game_length"], builder.histogram([g.plies for g in games], integer=True), "game_length")
    close(series["move_time"], builder.histogram([g.duration_s / max(g.plies, 1) for g in games]), "move_time")
    close(series["game_duration"], builder.histogram([g.duration_s for g in games]), "game_duration")
    assert report["adjudication"]["selfplay"]["games"] == GAMES
    throughput = report["throughput"]
    minutes = throughput["elapsed_s"] / 60
    assert throughput["games_per_minute"] == pytest.approx(GAMES / max(minutes, 1e-9))
    assert throughput["mean_move_seconds"] == pytest.approx(sum(g.duration_s / max(g.plies, 1) for g in games) / GAMES)

    learning = [e.data for e in events if e.type == EventType.LEARNING_STEP]
    losses = report["losses"]
    assert losses["phases"] == 30 and losses["steps"] == learning[-1]["step"]
    for head in ("policy_loss", "value_loss", "total_loss"):
        values = [row[head] for row in learning]
        close(losses[head], {"first": values[0], "last": values[-1], "min": min(values)}, head)
    assert throughput["learning_seconds"] == pytest.approx(sum(row["seconds"] for row in learning))
    assert throughput["simulations_per_second_mean"] == pytest.approx(100.0 + 7 * 9.5)
    # the series are thinned to SERIES_ROWS, first and last kept
    for curve in (losses["curve"], series["learning"]):
        assert len(curve) == ROWS and curve[0]["step"] == 3 and curve[-1]["step"] == 90
    assert len(series["throughput"]) == ROWS and series["throughput"][-1]["rss_mb"] == 319.0
    # the verdicts come from a sample, and the report says how large
    assert report["analysis_sample"] == {"games": GAMES, "sampled_games": SAMPLED, "searched_games": SEARCHED}
    assert {i["name"] for i in report["analysis"]} >= {
        "win_rate_trend",
        "game_length",
        "high_confidence_moves",
        "value_calibration",
        "loss_trend",
    }


async def test_a_short_session_is_read_whole(api):
    """Below the bounds nothing is thinned: every game is in the sample."""
    session_id = await seed_session(api, games=12)
    report = (await api.client.get(f"/v1/sessions/{session_id}/report.json")).json()
    assert report["analysis_sample"] == {"games": 12, "sampled_games": 12, "searched_games": 12}


async def test_the_report_is_built_once_per_change_of_the_session(api):
    session_id = await seed_session(api, games=5, state="running")
    cache = caches.ReportCache.for_app(api.app)
    url = f"/v1/sessions/{session_id}/report"
    first = await api.client.get(url + ".json")
    assert first.status_code == 200 and cache.computed == 1
    assert (await api.client.get(url + ".json")).content == first.content and cache.computed == 1
    page = await api.client.get(url + ".html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert int(page.headers["content-length"]) == len(page.content)
    assert (await api.client.get(url + ".html")).content == page.content
    assert cache.computed == 2  # the JSON once, the page once

    async with api.sessionmaker() as db, db.begin():
        await repo.add_game(db, session_id, game_message(6))
    assert (await api.client.get(url + ".json")).json()["scorecard"]["games"] == 6 and cache.computed == 3
    async with api.sessionmaker() as db, db.begin():  # a learning step changes the report too
        await repo.add_event(
            db,
            session_id,
            EventType.LEARNING_STEP,
            {
                "games": 6,
                "step": 4,
                "policy_loss": 3.0,
                "value_loss": 1.0,
                "total_loss": 4.0,
                "policy_entropy": 3.0,
                "seconds": 0.1,
            },
        )
    assert (await api.client.get(url + ".json")).json()["losses"]["steps"] == 4 and cache.computed == 4


async def test_readers_share_one_build_and_builds_are_capped(api, monkeypatch):
    sessions = [await seed_session(api, games=3) for _ in range(4)]
    release = threading.Event()
    running, peak, threads = [0], [0], set()
    lock = threading.Lock()
    real = reports_route.build_json

    def blocked(*args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.get_ident())
        try:
            assert release.wait(60), "never released"
            return real(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(reports_route, "build_json", blocked)
    cache = caches.ReportCache.for_app(api.app)
    requests = [
        asyncio.ensure_future(api.client.get(f"/v1/sessions/{s}/report.json")) for s in sessions for _ in range(3)
    ]
    for _ in range(3000):  # until two builds run and the other two wait at the gate
        if running[0] == 2 and cache.waiting == 2:
            break
        await asyncio.sleep(0.01)
    assert running[0] == 2 and cache.waiting == 2
    release.set()
    answers = await asyncio.gather(*requests)
    assert all(r.status_code == 200 for r in answers)
    for i, session_id in enumerate(sessions):
        bodies = {r.content for r in answers[3 * i : 3 * i + 3]}
        assert len(bodies) == 1 and json.loads(bodies.pop())["session_id"] == session_id
    assert cache.computed == 4 and peak[0] == 2
    assert threading.get_ident() not in threads  # the build's CPU work runs off the event loop


async def get_watching_the_pool(api, path: str) -> tuple[list[int], list[bytes]]:
    """GET `path` straight through the app's ASGI interface, as a server would; returns the
    pool's checked-out connections at each body message, and the body messages."""
    pool = api.sessionmaker.kw["bind"].pool
    held: list[int] = []
    chunks: list[bytes] = []
    requested, finished = [False], asyncio.Event()

    async def receive():  # the request, then a disconnect once it is answered
        if not requested[0]:
            requested[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            held.append(pool.checkedout())
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body"):
                finished.set()

    scope = get_scope(path)
    await api.app(scope, receive, send)
    return held, chunks


async def test_the_route_holds_no_database_connection_while_it_sends(api):
    session_id = await seed_session(api, games=3)
    for suffix in ("report.json", "report.html"):
        held, chunks = await get_watching_the_pool(api, f"/v1/sessions/{session_id}/{suffix}")
        assert held and set(held) == {0}, (suffix, held)
    # a page of megabytes goes out in chunks of the one kept copy
    assert len([c for c in chunks if c]) > 1
