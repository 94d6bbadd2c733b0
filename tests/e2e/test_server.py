"""`continuous-play serve` end to end: the real console script in a subprocess (uvicorn, a
spawned process worker pool, SQLite or PostgreSQL), driven over real HTTP.

- the full lifecycle of a session (create with overrides, pause, resume, stop, every illegal
  transition a 409 problem, paginated games, PGN, checkpoint download as safetensors and as
  ONNX, delete) on both databases;
- a crash: `kill -9` mid-session, restart, the session completes with games 1..N stored
  exactly once and checkpoint generations without a gap;
- SIGTERM: the server checkpoints the running session, exits, leaves it `running`, and a
  restart resumes it, numbering new games from the highest stored + 1.
"""

from __future__ import annotations

import hashlib
import io
import signal

import chess
import chess.pgn
import onnxruntime as ort
import psutil
import pytest
from server_support import (
    Server,
    all_games,
    assert_problem,
    checkpoints,
    database_url,
    read_db,
    serving,
    wait_for,
)
from sqlalchemy import select

from service.engine import network
from service.event_types import EventType
from service.storage import repositories as repo
from service.storage.models import GameRow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BACKENDS = ["sqlite", "postgresql"]
WORKER_EXIT_S = 10.0  # a pool process polls its parent between search steps (about 1 s)


def numbers(games: list[dict]) -> list[int]:
    return [g["number"] for g in games]


def parse_pgn(text: str) -> list[chess.pgn.Game]:
    games = []
    stream = io.StringIO(text)
    while (game := chess.pgn.read_game(stream)) is not None:
        games.append(game)
    return games


def check_checkpoints(items: list[dict], games_done: int) -> None:
    """Generations 0..K without a gap, games never decreasing, generation 0 before any game."""
    assert [c["generation"] for c in items] == list(range(len(items))), items
    played = [c["games"] for c in items]
    assert played == sorted(played) and played[0] == 0, played
    assert played[-1] <= games_done


def assert_workers_exit(workers: list[psutil.Process], after: str) -> None:
    """The pool processes end on their own (they must not outlive the server and keep
    writing checkpoint files of a session that a new server resumes)."""
    _, alive = psutil.wait_procs(workers, timeout=WORKER_EXIT_S)
    assert not alive, f"worker processes {[p.pid for p in alive]} still alive {WORKER_EXIT_S} s {after}"


# -- the full lifecycle ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_session_lifecycle_over_http(backend, tmp_path):
    with database_url(backend, tmp_path) as url, serving(tmp_path, url) as server, server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "workers": "ok"}

        # create, with per-session overrides on top of the service's settings
        r = c.post("/v1/sessions", json={"max_games": 0, "session_duration_min": 10, "seed": 5})
        assert r.status_code == 201, r.text
        created = r.json()
        sid = created["id"]
        base = f"/v1/sessions/{sid}"
        assert r.headers["location"] == base
        assert created["state"] in ("pending", "running")
        config = created["config"]
        assert config["max_games"] == 0 and config["session_duration_min"] == 10 and config["seed"] == 5
        assert config["chess_preset"] == "tiny" and config["max_moves_per_game"] == 24  # the service's env
        assert created["seed"] == 5 and created["games_done"] == 0

        body = wait_for(c, sid, lambda b: b["state"] == "running" and b["games_done"] >= 2, "2 games", server)
        assert body["started_at"] is not None and body["finished_at"] is None
        assert body["scorecard"]["games"] >= 2

        # illegal while running
        problem = assert_problem(c.delete(base), 409)
        assert problem["state"] == "running" and problem["action"] == "delete" and problem["session_id"] == sid
        problem = assert_problem(c.post(f"{base}/resume"), 409)
        assert problem["state"] == "running" and problem["action"] == "resume"

        # pause: no new game once those in flight have landed
        r = c.post(f"{base}/pause")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "paused"
        problem = assert_problem(c.post(f"{base}/pause"), 409)
        assert problem["state"] == "paused" and problem["action"] == "pause"
        assert_problem(c.delete(base), 409)
        # the worker acknowledges the pause once it holds between two search steps; its reports
        # come in order, so every game it finished before is stored by then, and it plays no
        # other until it is resumed (it waits on its commands)
        body = wait_for(c, sid, lambda b: (b["metrics"] or {}).get("paused") is True, "the pause's ack", server)
        held = body["games_done"]
        assert body["state"] == "paused"
        assert len(all_games(c, sid)) == held
        assert c.get(base).json()["games_done"] == held

        # resume: games go on
        r = c.post(f"{base}/resume")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "running"
        wait_for(c, sid, lambda b: b["games_done"] >= held + 2, "games after resume", server)

        # stop: the session checkpoints and ends as stopped
        r = c.post(f"{base}/stop")
        assert r.status_code == 202, r.text
        assert r.json()["state"] in ("stopping", "stopped")
        body = wait_for(c, sid, lambda b: b["state"] == "stopped", "stopped", server)
        assert body["stop_reason"] == "stopped" and body["finished_at"] is not None
        for action in ("stop", "pause", "resume"):
            problem = assert_problem(c.post(f"{base}/{action}"), 409)
            assert problem["state"] == "stopped" and problem["action"] == action
        # `stopped` is stored after the worker's last report: every game.finished event precedes it
        events = read_db(url, lambda db: repo.events_since(db, sid, 0, 100_000))
        stopped_seq = next(
            e.seq for e in events if e.type == EventType.SESSION_STATE and e.data.get("state") == "stopped"
        )
        finished = [e.seq for e in events if e.type == EventType.GAME_FINISHED]
        assert finished and max(finished) < stopped_seq, (finished, stopped_seq)
        n = c.get(base).json()["games_done"]
        assert n == len(finished) == body["games_done"] >= held + 2

        # metrics: the worker's stats were stored (METRICS_EXPORT_INTERVAL=1) and the last one kept
        snapshots = c.get(f"{base}/metrics").json()["items"]
        assert snapshots and all("simulations_per_second" in m["data"] for m in snapshots)
        assert body["metrics"] is not None and body["metrics"]["buffer_size"] > 0

        # games: paginated, numbered 1..N, each readable alone
        games = all_games(c, sid, limit=3)
        assert numbers(games) == list(range(1, n + 1))
        assert body["scorecard"]["games"] == n
        assert {g["session_id"] for g in games} == {sid}
        one = c.get(f"/v1/games/{games[-1]['id']}")
        assert one.status_code == 200 and one.json() == games[-1]
        one_pgn = c.get(f"/v1/games/{games[-1]['id']}.pgn")
        assert one_pgn.status_code == 200 and one_pgn.headers["content-type"].startswith("application/x-chess-pgn")

        # games.pgn: N parseable games, Round 1..N, matching the JSON
        r = c.get(f"{base}/games.pgn")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-chess-pgn")
        parsed = parse_pgn(r.text)
        assert [int(g.headers["Round"]) for g in parsed] == list(range(1, n + 1))
        for game, row in zip(parsed, games):
            assert game.errors == [], game.errors
            assert [m.uci() for m in game.mainline_moves()] == row["moves"]
            assert game.headers["Result"] == row["result"]
            board = game.board()
            for move in game.mainline_moves():
                assert board.is_legal(move)
                board.push(move)

        # checkpoints: generations 0..K, the last one the stop's, with all N games
        items = checkpoints(c, sid)
        check_checkpoints(items, n)
        assert items[-1]["games"] == n and len(items) >= 2
        last = items[-1]
        r = c.get(last["weights_url"])
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/octet-stream"
        assert hashlib.sha256(r.content).hexdigest() == last["sha256"] == r.headers["x-checkpoint-sha256"]
        path = tmp_path / "download.safetensors"
        path.write_bytes(r.content)
        net, header = network.load_weights(path)
        assert header["generation"] == last["generation"] and header["preset"] == "tiny" and header["seed"] == 5
        assert header["games"] == n
        assert sum(p.numel() for p in net.parameters()) > 0
        r = c.get(last["onnx_url"])  # the same network as ONNX, exported on this first request
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] == f'attachment; filename="{sid}-gen-{last["generation"]:04d}.onnx"'
        meta = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        assert (meta["generation"], meta["preset"], meta["seed"]) == (str(last["generation"]), "tiny", "5")

        # delete: gone, with its games, checkpoints and files
        r = c.delete(base)
        assert r.status_code == 204 and r.content == b""
        assert_problem(c.get(base), 404)
        assert_problem(c.get(f"{base}/games"), 404)
        assert_problem(c.get(f"/v1/games/{games[0]['id']}"), 404)
        assert_problem(c.get(last["weights_url"]), 404)
        assert_problem(c.get(last["onnx_url"]), 404)
        assert_problem(c.delete(base), 404)
        assert sid not in [s["id"] for s in c.get("/v1/sessions").json()["items"]]
        assert not (tmp_path / "checkpoints" / sid).exists()
        assert "Traceback" not in server.stderr(), server.output()


# -- kill -9 mid-session ------------------------------------------------------------------------

CRASH_MAX_GAMES = 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_crash_mid_session_then_restart_completes_without_gap_or_duplicate(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        server = Server(tmp_path, url)
        try:
            server.start()
            with server.client() as c:
                r = c.post("/v1/sessions", json={"max_games": CRASH_MAX_GAMES})
                assert r.status_code == 201, r.text
                sid = r.json()["id"]
                body = wait_for(c, sid, lambda b: b["games_done"] >= 4, "4 games", server, interval=0.05)
                workers = server.workers()
                assert workers, "no pool process found"
                server.kill()  # SIGKILL: no shutdown, no final checkpoint
            assert body["games_done"] < CRASH_MAX_GAMES, "the session ended before the crash: raise max_games"
            assert_workers_exit(workers, "after the server's SIGKILL")
            server.stop()  # reap what else it had spawned (the resource tracker)

            async def stored(db):
                row = await repo.get_session(db, sid)
                return row.state, row.games_done, await repo.max_game_number(db, sid)

            state, done, top = read_db(url, stored)
            assert state == "running" and done == top >= 4

            server.start()
            with server.client() as c:
                body = wait_for(
                    c, sid, lambda b: b["state"] not in ("running", "pending"), "the end", server, timeout=120
                )
                assert body["state"] == "completed", body
                assert body["stop_reason"] == "max_games"
                assert body["games_done"] == CRASH_MAX_GAMES
                assert body["scorecard"]["games"] == CRASH_MAX_GAMES
                games = all_games(c, sid, limit=4)
                assert numbers(games) == list(range(1, CRASH_MAX_GAMES + 1)), numbers(games)
                parsed = parse_pgn(c.get(f"/v1/sessions/{sid}/games.pgn").text)
                assert [int(g.headers["Round"]) for g in parsed] == list(range(1, CRASH_MAX_GAMES + 1))
                items = checkpoints(c, sid)
                check_checkpoints(items, CRASH_MAX_GAMES)
                assert items[-1]["games"] == CRASH_MAX_GAMES
                # every file is the one its row names (a file rewritten by an orphan worker, or
                # left by the killed run under a generation written again, would not match)
                for item in items:
                    r = c.get(item["weights_url"])
                    assert r.status_code == 200, r.text
                    assert hashlib.sha256(r.content).hexdigest() == item["sha256"], item
            assert "Traceback" not in server.stderr(), server.output()
        finally:
            server.stop()


# -- SIGTERM ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_checkpoints_running_session_and_restart_resumes_it(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        server = Server(tmp_path, url)
        try:
            server.start()
            with server.client() as c:
                # no periodic checkpoint after generation 0: the only other one is the shutdown's
                r = c.post(
                    "/v1/sessions", json={"max_games": 0, "session_duration_min": 60, "checkpoint_interval": 100_000}
                )
                assert r.status_code == 201, r.text
                sid = r.json()["id"]
                before = wait_for(c, sid, lambda b: b["games_done"] >= 3, "3 games", server)["games_done"]
            workers = server.workers()
            assert workers, "no pool process found"
            code, took = server.terminate(timeout=60)
            assert code is not None, f"the server did not exit within 60 s of SIGTERM\n{server.output()}"
            # uvicorn (>= 0.29) re-raises a captured SIGTERM after its graceful shutdown, so the
            # status is -SIGTERM rather than 0; either way the shutdown must have completed.
            assert code in (0, -signal.SIGTERM), f"exit status {code}\n{server.output()}"
            err = server.stderr()
            assert "Application shutdown complete" in err and "Traceback" not in err, server.output()
            assert_workers_exit(workers, "after the server exited")

            async def stored(db):
                row = await repo.get_session(db, sid)
                numbers_ = (await db.scalars(select(GameRow.number).where(GameRow.session_id == sid))).all()
                return row, sorted(numbers_), await repo.list_checkpoints(db, sid)

            row, stored_numbers, ckpts = read_db(url, stored)
            n = len(stored_numbers)
            # the session is left resumable: still running, not finished
            assert row.state == "running" and row.finished_at is None and row.stop_reason is None
            assert stored_numbers == list(range(1, n + 1)) and row.games_done == n >= before
            # a checkpoint was saved at shutdown, after the last stored game: it holds every
            # stored game (games in flight at SIGTERM are dropped, never half-stored)
            assert [k.generation for k in ckpts] == [0, 1], [(k.generation, k.games) for k in ckpts]
            assert ckpts[-1].games == n
            assert (tmp_path / "checkpoints" / ckpts[-1].file_name).is_file()
            assert (tmp_path / "checkpoints" / ckpts[-1].state_file_name).is_file()

            # restart: the session resumes from that checkpoint, new games numbered n+1, n+2...
            server.start()
            with server.client() as c:
                wait_for(
                    c,
                    sid,
                    lambda b: b["state"] == "running" and b["games_done"] >= n + 2,
                    "games after the restart",
                    server,
                )
                r = c.post(f"/v1/sessions/{sid}/stop")
                assert r.status_code == 202, r.text
                body = wait_for(c, sid, lambda b: b["state"] == "stopped", "stopped", server)
                total = body["games_done"]
                assert numbers(all_games(c, sid, limit=10)) == list(range(1, total + 1))
                items = checkpoints(c, sid)
                check_checkpoints(items, total)
                # generation 0 is not written again on resume; the stop adds generation 2
                assert [(k["generation"], k["games"]) for k in items[:2]] == [(0, 0), (1, n)]
                assert items[-1]["games"] == total and items[-1]["generation"] == 2
            assert "Traceback" not in server.stderr(), server.output()
        finally:
            server.stop()
