"""A fleet of two self-play actors through the real server (`continuous-play serve`, the
process pool): every game stored once, numbered 1..N, each with its generation and actor; an
actor killed with SIGKILL is replaced while the session runs; the learner killed restarts the
session from its checkpoint; pause and stop reach every actor and none outlives the session.
"""

from __future__ import annotations

import io
import os
import signal

import chess.pgn
import psutil
import pytest
from server_support import all_games, read_db, serving, sqlite_url, wait_for

from service.event_types import EventType
from service.storage import repositories as repo

pytestmark = pytest.mark.e2e

FLEET = {"selfplay_actors": 2, "max_games": 0, "session_duration_min": 10, "seed": 9}


def _actors(body: dict) -> dict[int, dict]:
    return {a["actor"]: a for a in ((body.get("metrics") or {}).get("actors") or [])}


def _gone(pids: list[int]) -> None:
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=15)
    assert not alive, f"actor processes {[p.pid for p in alive]} outlived their session"


def test_a_fleet_session_over_http(tmp_path):
    url = sqlite_url(tmp_path)
    with serving(tmp_path, url) as server, server.client() as c:
        sid = c.post("/v1/sessions", json=FLEET).json()["id"]
        base = f"/v1/sessions/{sid}"
        body = wait_for(
            c, sid, lambda b: b["games_done"] >= 3 and len(_actors(b)) == 2, "games of two actors", server, 120
        )
        assert body["config"]["selfplay_actors"] == 2
        first_pids = [a["pid"] for a in _actors(body).values()]

        # an actor dies: another takes its place, the session goes on
        victim = min(_actors(body))
        os.kill(_actors(body)[victim]["pid"], signal.SIGKILL)
        wait_for(c, sid, lambda b: 3 in _actors(b), "the replacement actor", server, 120)
        wait_for(
            c,
            sid,
            lambda b: any(g["actor"] == 3 for g in all_games(c, sid, limit=200)),
            "a game of the replacement",
            server,
            120,
            interval=0.5,
        )

        # the learner dies: the session restarts from its last checkpoint and stored games
        learners = [w for w in server.workers() if w.ppid() == server.proc.pid]
        assert len(learners) == 1
        learner_actors = [a["pid"] for a in _actors(c.get(base).json()).values()]
        learners[0].kill()
        _gone(learner_actors)  # the learner's actors follow it
        done = c.get(base).json()["games_done"]
        body = wait_for(c, sid, lambda b: b["games_done"] >= done + 3, "games after the learner's restart", server, 180)
        assert body["state"] == "running"

        # pause holds every actor; stop ends them
        assert c.post(f"{base}/pause").status_code == 202
        body = wait_for(c, sid, lambda b: (b["metrics"] or {}).get("paused") is True, "the pause's ack", server, 60)
        assert len(all_games(c, sid, limit=200)) == body["games_done"]
        last_pids = [a["pid"] for a in _actors(body).values()]
        assert c.post(f"{base}/resume").status_code == 202
        assert c.post(f"{base}/stop").status_code == 202
        body = wait_for(c, sid, lambda b: b["state"] == "stopped", "stopped", server, 120)
        _gone(first_pids + last_pids)

        games = all_games(c, sid, limit=200)
        assert [g["number"] for g in games] == list(range(1, body["games_done"] + 1))  # once each, no gap
        assert {g["actor"] for g in games} >= {1, 2, 3}
        assert all(g["generation"] >= 0 for g in games)
        pgn = c.get(f"{base}/games.pgn").text
        stream = io.StringIO(pgn)
        for game in games:
            headers = chess.pgn.read_headers(stream)
            assert headers is not None
            assert (headers["Round"], headers["Actor"], headers["Generation"]) == (
                str(game["number"]),
                str(game["actor"]),
                str(game["generation"]),
            )

    events = read_db(url, lambda db: repo.events_since(db, sid, 0, 100_000))
    states = [e.data for e in events if e.type == EventType.SESSION_STATE]
    replaced = [d for d in states if d.get("actor_replaced")]
    assert replaced and replaced[0]["actor"] == victim and replaced[0]["replacement"] == 3
    assert replaced[0]["state"] == "running"
    assert any(d.get("restarted") for d in states), "the learner's death was not recorded as a restart"
    finished = [e.data for e in events if e.type == EventType.GAME_FINISHED]
    assert [d["number"] for d in finished] == list(range(1, len(games) + 1))
    assert all({"generation", "actor", "generation_lag"} <= set(d) for d in finished)
