"""Database faults: PostgreSQL stopped under a running session (issue #12, item 3).

Each test gets a private PostgreSQL cluster (`tests/support/pg_cluster.py`: Debian's initdb/pg_ctl
in a temp folder, a free loopback port) that it stops (`pg_ctl stop -m immediate`: a
crash, connections cut) and starts again, under the real app (lifespan, migrations, the
real orchestrator on an inline worker playing the tiny preset) driven over HTTP (httpx on
the ASGI app):

- an outage shorter than the bound: `/readyz` is 503 naming the database while it lasts,
  the worker keeps playing (games that ended during the outage are stored afterwards), and
  the session completes with every game 1..N stored once and event seqs without a gap;
- an outage past the bound (shortened to a few seconds): the running session is stopped
  and, once the database is back, ends `failed` with a reason saying so and counting the
  games it held, which are stored, once each;
- the service shut down during an outage: it gives the held writes up within the grace
  time, claims nothing stored, and the session stays resumable;
- a commit whose answer is lost (the connection dies after the COMMIT went through): the
  retried write is not stored twice; a write failing for another reason is not retried.

Missing PostgreSQL binaries FAIL these tests (never skip): install Debian's `postgresql`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from integration.api.api_support import game_message
from sqlalchemy import func, pool, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.pg_cluster import PgCluster
from support.tiny import tiny_settings
from support.waiting import wait_for

from service.app import create_app
from service.config import Settings
from service.event_types import EventType
from service.lifecycle import FINAL
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import InlinePool
from service.sessions.worker import SessionWorker
from service.storage import models
from service.storage import repositories as repo
from service.storage.database import create_engine, session_factory, upgrade_engine

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgCluster]:
    """One private cluster for this module (initdb takes seconds): each test gets a fresh
    database on it and leaves the server running."""
    with PgCluster.create() as c:
        yield c


@pytest.fixture
def cluster(pg_server: PgCluster) -> PgCluster:
    """A fresh database on the module's private cluster, which the test may stop and start."""
    if not pg_server.running:  # a test that failed with the server stopped
        pg_server.start()
    return pg_server.new_database()


def settings(cluster: PgCluster, tmp_path: Path, **overrides: Any) -> Settings:
    """TINY with shorter games (two in flight, 16 plies), a checkpoint every 3 games and no
    evaluation before a session's end, for the app on the cluster's database."""
    values = dict(
        selfplay_parallel_games=2,
        max_moves_per_game=16,
        checkpoint_interval=3,
        eval_interval_games=100000,
        database_url=cluster.url,
        worker_backend="inline",
        workers=1,
        api_keys=[],
        cors_origins=[],
    )
    return tiny_settings(tmp_path, **(values | overrides))


@asynccontextmanager
async def running_app(cfg: Settings):
    """The real app (migrations, orchestrator, inline pool) with its lifespan, and a client."""
    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=30
        ) as client:
            yield app, client


@asynccontextmanager
async def reader(cluster: PgCluster):
    """A separate engine for the test's own reads (no pooled connection outlives an outage)."""
    engine = create_engine(cluster.url, poolclass=pool.NullPool)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def stored(maker: async_sessionmaker[AsyncSession], sid: str) -> dict[str, Any]:
    """What the database holds for a session: state, games, events."""
    async with maker() as db:
        row = await repo.get_session(db, sid)
        numbers = list(
            await db.scalars(
                select(models.GameRow.number).where(models.GameRow.session_id == sid).order_by(models.GameRow.number)
            )
        )
        events = await repo.events_since(db, sid, 0, 100_000)
    return {
        "state": row.state,
        "games_done": row.games_done,
        "failure_reason": row.failure_reason,
        "last_seq": row.last_seq,
        "numbers": numbers,
        "events": events,
    }


def assert_stored_once(data: dict[str, Any]) -> None:
    """Games 1..N each once (N = games_done), one game.finished event per game, seqs 1..last."""
    numbers = data["numbers"]
    assert numbers == list(range(1, len(numbers) + 1)), f"games not 1..N once each: {numbers}"
    assert data["games_done"] == len(numbers)
    seqs = [e.seq for e in data["events"]]
    assert seqs == list(range(1, data["last_seq"] + 1)), f"event seqs with a gap or a duplicate: {seqs}"
    finished = sorted(e.data["number"] for e in data["events"] if e.type == EventType.GAME_FINISHED)
    assert finished == numbers, f"game.finished events {finished} != stored games {numbers}"


def watch_worker(monkeypatch) -> dict[str, list]:
    """What the inline worker does, seen from its own thread: the numbers of the games it
    finishes ("games") and the summaries of the session loops it ends ("finished")."""
    seen: dict[str, list] = {"games": [], "finished": []}
    on_game, run = SessionWorker._on_game, SessionWorker.run

    def counted_game(self, record):
        on_game(self, record)
        seen["games"].append(self.games_done)

    def counted_run(self):
        summary = run(self)
        seen["finished"].append(summary)
        return summary

    monkeypatch.setattr(SessionWorker, "_on_game", counted_game)
    monkeypatch.setattr(SessionWorker, "run", counted_run)
    return seen


async def _grown(items: list, size: int) -> bool:
    return len(items) > size


async def games_stored(cluster: PgCluster, sid: str) -> int:
    async with reader(cluster) as maker, maker() as db:
        return int(
            await db.scalar(select(func.count()).select_from(models.GameRow).where(models.GameRow.session_id == sid))
        )


async def readyz_problem(client: httpx.AsyncClient) -> dict[str, Any] | None:
    r = await client.get("/readyz")
    if r.status_code == 503:
        assert r.headers["content-type"].startswith("application/problem+json")
        return r.json()
    assert r.status_code == 200, r.text
    return None


async def outage_seen(client: httpx.AsyncClient, orchestrator) -> dict[str, Any] | None:
    """The 503 problem of /readyz once the orchestrator's writer has met the outage."""
    if orchestrator.database_ok:
        return None
    return await readyz_problem(client)


async def test_a_session_outlives_a_database_outage_and_stores_every_game_once(cluster, tmp_path, monkeypatch):
    max_games = 12
    worker = watch_worker(monkeypatch)
    async with running_app(settings(cluster, tmp_path)) as (app, client):
        orch = app.state.orchestrator
        assert (await client.get("/readyz")).status_code == 200
        r = await client.post("/v1/sessions", json={"max_games": max_games})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        await wait_for(lambda: _at_least(cluster, sid, 2), timeout=60, what="2 games stored")
        before = await games_stored(cluster, sid)

        t_stop = time.time()
        cluster.stop("immediate")
        problem = await wait_for(lambda: outage_seen(client, orch), timeout=30, what="the writer to meet the outage")
        assert problem["status"] == 503 and problem["checks"]["database"] == "unavailable", problem
        assert problem["checks"]["workers"] == "ok"
        assert "the database does not answer" in problem["detail"]
        assert problem["database_outage"]["held_writes"] >= 1 and not problem["database_outage"]["limit_passed"]
        # the worker plays on (its games wait in order): one more game finished during the outage
        played = len(worker["games"])
        await wait_for(lambda: _grown(worker["games"], played), timeout=60, what="a game during the outage")
        problem = await readyz_problem(client)
        assert problem is not None and problem["checks"]["database"] == "unavailable"
        assert not orch.database_ok
        for path in (f"/v1/sessions/{sid}", f"/v1/sessions/{sid}/games?limit=5", "/v1/sessions"):
            r = await client.get(path)  # reads: 503 saying why and when to retry, not a 500
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers["retry-after"] == "5"
            assert (
                r.json()["type"] == "urn:continuous-play:problem:database-unavailable"
                and "database" in r.json()["detail"]
            ), r.json()

        t_start = time.time()
        cluster.start()
        await wait_for(lambda: _ready(client), timeout=30, what="/readyz 200 after the restart")

        async with reader(cluster) as maker:
            data = await wait_for(lambda: _final(maker, sid), timeout=90, what="the session to end")
        assert data["state"] == "completed", data["failure_reason"]
        assert data["numbers"] == list(range(1, max_games + 1))
        assert_stored_once(data)
        ended = {e.data["number"]: e.data["ended_at"] for e in data["events"] if e.type == EventType.GAME_FINISHED}
        during = [n for n, at in ended.items() if n > before and t_stop <= at <= t_start]
        assert during, f"no game ended during the outage ({t_stop}..{t_start}): {ended}"
        assert orch.database_ok and orch.database_outage is None


async def test_an_outage_past_the_bound_fails_the_session_and_keeps_its_games(cluster, tmp_path, monkeypatch):
    bound = 3.0
    worker = watch_worker(monkeypatch)
    async with running_app(settings(cluster, tmp_path)) as (app, client):
        orch = app.state.orchestrator
        orch.writer.outage_limit_s = bound
        r = await client.post("/v1/sessions", json={"max_games": 0})  # no game limit: it plays on
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        await wait_for(lambda: _at_least(cluster, sid, 2), timeout=60, what="2 games stored")
        before = await games_stored(cluster, sid)

        cluster.stop("immediate")
        await wait_for(lambda: outage_seen(client, orch), timeout=30, what="the writer to meet the outage")
        problem = await wait_for(lambda: _limit_passed(client), timeout=30, what="the outage to pass its bound")
        assert problem["checks"]["database"] == "unavailable"
        assert f"running sessions were stopped past the limit of {bound:g} s" in problem["detail"], problem
        # the stopped worker's last reports (its final checkpoint, "finished") join the held ones
        await wait_for(
            lambda: _grown(worker["finished"], 0), timeout=60, what="the stopped worker to end its session loop"
        )
        assert worker["finished"][0]["reason"] == "stopped"
        cluster.start()

        async with reader(cluster) as maker:
            data = await wait_for(lambda: _final(maker, sid), timeout=60, what="the session to end")
        assert data["state"] == "failed"
        reason = data["failure_reason"]
        assert reason.startswith(f"database unreachable for more than {bound:g} s"), reason
        assert "the session was stopped" in reason
        assert "Errno" not in reason and "127.0.0.1" not in reason and "Error" not in reason, reason
        found = re.search(
            r"the (\d+) games? it finished after the database went away (were|was) held and stored", reason
        )
        assert found, reason
        held = int(found.group(1))
        assert 1 <= held <= len(data["numbers"]) - before, (held, before, data["numbers"])
        assert_stored_once(data)
        last = data["events"][-1]
        assert last.type == EventType.SESSION_STATE and last.data["state"] == "failed"
        assert last.data["failure_reason"] == reason
        r = await client.get(f"/v1/sessions/{sid}")
        assert r.status_code == 200 and r.json()["state"] == "failed"
        assert (await client.get("/readyz")).status_code == 200


async def test_a_shutdown_during_an_outage_gives_up_and_claims_nothing(cluster, tmp_path, caplog):
    """The shutdown ends although the database never comes back: the writer gives the held
    writes up (it would otherwise retry them forever, and this test would hit its timeout)."""
    caplog.set_level(logging.ERROR, logger="service.sessions.orchestrator")
    cfg = settings(cluster, tmp_path)
    async with running_app(cfg) as (app, client):
        orch = app.state.orchestrator
        orch.writer.close_grace_s = 1.0
        r = await client.post("/v1/sessions", json={"max_games": 0})
        sid = r.json()["id"]
        await wait_for(lambda: _at_least(cluster, sid, 2), timeout=60, what="2 games stored")
        cluster.stop("immediate")
        await wait_for(lambda: outage_seen(client, orch), timeout=30, what="the writer to meet the outage")
        # leaving the block closes the app: the held writes are given up after the grace time
    gave_up = [r.getMessage() for r in caplog.records if "giving up" in r.getMessage()]
    assert len(gave_up) == 1 and "while shutting down" in gave_up[0], caplog.text[-3000:]
    assert re.search(r"giving up [1-9]\d* held writes", gave_up[0]), gave_up
    assert not orch.database_ok  # it never claimed the database came back
    cluster.start()
    async with reader(cluster) as maker:
        data = await stored(maker, sid)
    assert data["state"] == "running"  # resumable: nothing claimed it ended
    assert_stored_once(data)


# -- exactly once when a commit's answer is lost; other errors are not retried -------------


class LostAckSession(AsyncSession):
    """An AsyncSession whose next `commit()` (once `arm`ed) commits, then raises the error a
    connection that died before the server's answer would: the commit went through, the
    writer cannot know it."""

    armed = 0

    async def commit(self) -> None:
        await super().commit()
        if LostAckSession.armed:
            LostAckSession.armed -= 1
            raise ConnectionResetError(104, "Connection reset by peer (simulated: the COMMIT's answer was lost)")


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def lost_ack_orchestrator(request, tmp_path) -> AsyncIterator[tuple[Orchestrator, list]]:
    if request.param == "postgresql":
        c = request.getfixturevalue("cluster")
        async with _lost_ack_orchestrator(c.url, tmp_path) as out:
            yield out
    else:
        async with _lost_ack_orchestrator(f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}", tmp_path) as out:
            yield out


@asynccontextmanager
async def _lost_ack_orchestrator(url: str, tmp_path: Path):
    engine = create_engine(url)
    await upgrade_engine(engine)
    maker = async_sessionmaker(engine, expire_on_commit=False, class_=LostAckSession)
    cfg = Settings(
        _env_file=None,
        database_url=url,
        checkpoint_dir=tmp_path / "checkpoints",
        report_dir=tmp_path / "reports",
        chess_preset="tiny",
    )
    orch = Orchestrator(cfg, maker, InlinePool(0), recover=False)
    orch.writer.retry_initial_s = 0.01
    heard: list[tuple[str, str, dict]] = []
    orch.listeners.append(lambda sid, kind, data: heard.append((sid, kind, data)))
    await orch.start()
    LostAckSession.armed = 0
    try:
        yield orch, heard
    finally:
        LostAckSession.armed = 0
        await orch.close()
        await engine.dispose()


async def new_session(orch: Orchestrator) -> str:
    """A stored session that no worker runs (the pool is empty): records come from the test."""
    cfg = orch.settings.session_config(max_games=5)

    async def job(db):
        row = await repo.create_session(db, cfg.model_dump(mode="json"), cfg.seed)
        await orch.writer.event(db, row.id, EventType.SESSION_STATE, {"state": "pending"})
        return row.id

    return await orch.writer.write(job)


async def test_a_commit_whose_answer_is_lost_is_not_stored_twice(lost_ack_orchestrator, caplog):
    orch, heard = lost_ack_orchestrator
    caplog.set_level(logging.WARNING, logger="service.sessions.orchestrator")
    sid = await new_session(orch)
    for number in (1, 2, 3):
        LostAckSession.armed = 1 if number == 2 else 0
        await orch.record(sid, "game", game_message(number))
    # an event-only job too
    LostAckSession.armed = 1
    message = await orch.add_event(sid, EventType.LEARNING_STEP, {"step": 1})
    assert LostAckSession.armed == 0 and orch.database_ok
    data = await stored(orch.sessionmaker, sid)
    assert data["numbers"] == [1, 2, 3]
    assert_stored_once(data)
    assert [e.type for e in data["events"]].count(EventType.LEARNING_STEP) == 1
    assert message["seq"] == data["last_seq"]
    announced = [d["number"] for s, kind, d in heard if kind == EventType.GAME_FINISHED]
    assert announced == [1, 2, 3]  # each announced once, the lost-ack one included
    assert caplog.text.count("a write committed although its connection failed") == 2


async def test_a_write_that_fails_for_another_reason_is_not_retried(lost_ack_orchestrator, monkeypatch):
    orch, _ = lost_ack_orchestrator
    sid = await new_session(orch)
    await orch.record(sid, "game", game_message(1))
    attempts: list[int] = []
    add_game = repo.add_game

    async def counted(db, session_id, message):  # the real insert, its attempts counted
        attempts.append(message["number"])
        return await add_game(db, session_id, message)

    monkeypatch.setattr(repo, "add_game", counted)
    with pytest.raises(IntegrityError):
        await orch.record(sid, "game", game_message(1))  # UNIQUE(session_id, number)
    assert attempts == [1], f"the failing write ran {len(attempts)} times: it was retried"
    assert orch.database_ok and orch.database_outage is None
    await orch.record(sid, "game", game_message(2))  # the writer goes on
    assert attempts == [1, 2]
    assert_stored_once(await stored(orch.sessionmaker, sid))


# -- predicates ----------------------------------------------------------------------------


async def _at_least(cluster: PgCluster, sid: str, n: int) -> bool:
    return await games_stored(cluster, sid) >= n


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _limit_passed(client: httpx.AsyncClient) -> dict[str, Any] | None:
    problem = await readyz_problem(client)
    if problem and (problem.get("database_outage") or {}).get("limit_passed"):
        return problem
    return None


async def _final(maker, sid: str) -> dict[str, Any] | None:
    try:
        data = await stored(maker, sid)
    except Exception:  # noqa: BLE001 - the database may still be starting
        return None
    return data if data["state"] in FINAL else None


async def test_what_counts_as_the_database_being_unreachable():
    """Retried (held): network errors, invalidated connections, asyncpg's connection and
    shutdown errors, SQLite's lock/disk errors. Not retried: constraint and SQL errors, file
    errors, bugs."""
    import sqlite3

    import asyncpg
    from sqlalchemy import exc as sa_exc

    from service.storage.database import is_connection_error

    def wrapped(cls, orig, **kw):
        return cls("INSERT ...", {}, orig, **kw)

    held = [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "reset"),
        TimeoutError(),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        wrapped(
            sa_exc.DBAPIError,
            Exception("connection was closed in the middle of operation"),
            connection_invalidated=True,
        ),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")),
        wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database or disk is full")),
        # every pooled connection busy past the checkout timeout (#21 item 1): "not now"
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out"),
    ]
    not_held = [
        wrapped(sa_exc.IntegrityError, Exception("UNIQUE constraint failed: games.session_id")),
        wrapped(sa_exc.OperationalError, sqlite3.OperationalError("no such table: games")),
        wrapped(sa_exc.ProgrammingError, Exception('relation "games" does not exist')),
        FileNotFoundError(2, "No such file"),
        KeyError("number"),
        ValueError("bad"),
    ]
    assert [e for e in held if not is_connection_error(e)] == []
    assert [e for e in not_held if is_connection_error(e)] == []
    chained = RuntimeError("wrapped")
    chained.__cause__ = ConnectionRefusedError(111, "refused")
    assert is_connection_error(chained)
    handled = KeyError("a bug while handling a connection error")
    handled.__context__ = ConnectionRefusedError(111, "refused")
    assert not is_connection_error(handled)
