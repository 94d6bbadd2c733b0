"""/v1/sessions: create with overrides and validation, list with cursors, detail, lifecycle."""

from __future__ import annotations

import base64
import json

import pytest
from api_support import count_rows, seed_checkpoint, seed_session

from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, *, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    if field is not None:
        fields = [e["field"] for e in body["errors"]]
        assert field in fields, body
        assert field in body["detail"]
    return body


async def test_create_session_applies_overrides_and_defaults(api):
    r = await api.client.post(
        "/v1/sessions",
        json={
            "max_games": 7,
            "chess_preset": "tiny",
            "seed": 5,
            "eval_opponents": ["random", "greedy"],
            "resign_threshold": -0.9,
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/sessions/{body['id']}"
    assert len(body["id"]) == 32
    assert body["state"] == "running"
    config = body["config"]
    assert config["max_games"] == 7 and config["seed"] == 5 and body["seed"] == 5
    assert config["eval_opponents"] == ["random", "greedy"]
    assert config["resign_threshold"] == -0.9
    assert config["learning_rate"] == api.settings.learning_rate  # not overridden: the service's value
    assert body["scorecard"]["games"] == 0 and body["elo"] is None and body["metrics"] is None

    got = await api.client.get(r.headers["location"])
    assert got.status_code == 200 and got.json()["config"] == config

    empty = await api.client.post("/v1/sessions")  # no body at all: every setting from the service
    assert empty.status_code == 201, empty.text
    assert empty.json()["config"]["max_games"] == api.settings.max_games


async def test_create_session_from_checkpoint(api):
    source = await seed_session(api)
    checkpoint_id = await seed_checkpoint(api, source)
    r = await api.client.post("/v1/sessions", json={"init_checkpoint_id": checkpoint_id})
    assert r.status_code == 201, r.text
    assert r.json()["init_checkpoint_id"] == checkpoint_id

    missing = await api.client.post("/v1/sessions", json={"init_checkpoint_id": checkpoint_id + 1000})
    body = assert_problem(missing, 404)
    assert "checkpoint" in body["detail"]


BAD_CREATE_BODIES = [
    ({"max_games": "many"}, "max_games"),  # wrong type
    ({"max_games": -1}, "max_games"),  # negative
    ({"max_games": 10**30}, "max_games"),  # huge
    ({"seed": 2**40}, "seed"),
    ({"learning_rate": 5}, "learning_rate"),
    ({"chess_preset": "enormous"}, "chess_preset"),  # bad enum
    ({"eval_opponents": ["gen0", "stockfish"]}, "eval_opponents.1"),
    ({"eval_opponents": ["uci"]}, "eval_opponents"),  # needs eval_uci_engine
    ({"eval_games": 3}, "eval_games"),  # odd
    ({"sprt_elo0": 10, "sprt_elo1": 5}, "sprt_elo1"),  # cross-field
    ({"max_games": None}, "max_games"),  # null for a required setting
    ({"no_such_setting": 1}, "no_such_setting"),  # unknown field
    ({"database_url": "sqlite://"}, "database_url"),  # a service setting is not a session one
    ({"init_checkpoint_id": "x"}, "init_checkpoint_id"),
    ({"init_checkpoint_id": 2**70}, "init_checkpoint_id"),
    ({"init_checkpoint_id": 0}, "init_checkpoint_id"),
    ({"eval_uci_engine": "stock\x00fish"}, "eval_uci_engine"),  # NUL fits no text column
    ({"selfplay_simulations": 1.5}, "selfplay_simulations"),
    ({"gating": "perhaps"}, "gating"),
    # strict types, as the schema says (schemathesis found `true` taken as 1)
    ({"fast_simulations": True}, "fast_simulations"),
    ({"selfplay_parallel_games": 3600.0}, "selfplay_parallel_games"),
    ({"learning_rate": "0.01"}, "learning_rate"),
    ({"gating": 1}, "gating"),
    ({"gating": "true"}, "gating"),
    ({"init_checkpoint_id": True}, "init_checkpoint_id"),
    ({"selfplay_openings": "/etc/passwd"}, "selfplay_openings"),  # a book file is the operator's
    ({"value_material_decay_positions": -1}, "value_material_decay_positions"),
    ({"aux_material_weight": -0.5}, "aux_material_weight"),
]


async def test_create_session_validation_is_problem_naming_the_field(api):
    before = await count_rows(api)
    for payload, field in BAD_CREATE_BODIES:
        r = await api.client.post("/v1/sessions", json=payload)
        body = assert_problem(r, 422, field=field)
        assert body["errors"][0]["loc"][0] == "body", payload
    assert await count_rows(api) == before


async def test_create_session_rejects_non_object_bodies(api):
    for content, ctype, status in [
        ("[1, 2]", "application/json", 422),
        ("{not json", "application/json", 422),
        ('{"max_games": NaN}', "application/json", 422),
        ("max_games=3", "text/plain", 415),
    ]:  # a body must be JSON (test_web_origin.py)
        r = await api.client.post("/v1/sessions", content=content, headers={"content-type": ctype})
        assert_problem(r, status)
    assert (await count_rows(api))["sessions"] == 0


async def test_list_sessions_pages_without_overlap(api):
    ids = {await seed_session(api, state=state) for state in ["completed"] * 5 + ["stopped"] * 2}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await api.client.get("/v1/sessions", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 7 and set(seen) == ids
    created = [item["created_at"] for item in (await api.client.get("/v1/sessions?limit=500")).json()["items"]]
    assert created == sorted(created, reverse=True)

    stopped = (await api.client.get("/v1/sessions", params={"state": "stopped"})).json()
    assert len(stopped["items"]) == 2 and {i["state"] for i in stopped["items"]} == {"stopped"}
    assert stopped["next_cursor"] is None


def forged_cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BAD_LIST_QUERIES = [
    ("state=sleeping", 422, "state"),
    ("limit=0", 422, "limit"),
    ("limit=501", 422, "limit"),
    ("limit=-5", 422, "limit"),
    ("limit=99999999999999999999999", 422, "limit"),
    ("limit=ten", 422, "limit"),
    ("cursor=not-a-cursor", 400, None),
    ("cursor=WzEsMl0", 400, None),  # valid base64 JSON, wrong shape
    ("cursor=" + "A" * 600, 422, "cursor"),
    ("cursor=" + forged_cursor(["0001-01-01T00:00:00+14:00", "a" * 32]), 400, None),  # out of range
    ("cursor=" + forged_cursor([10**30]), 400, None),
]


async def test_list_bad_queries(api):
    session_id = await seed_session(api, games=2)
    games = f"/v1/sessions/{session_id}/games"
    cases = [
        (url, *case)
        for case in BAD_LIST_QUERIES
        for url in ("/v1/sessions", games)
        if not (url == games and case[0].startswith("state"))
    ]
    cases += [
        (games, "cursor=" + forged_cursor([-1]), 400, None),
        (games, "cursor=" + forged_cursor([True]), 400, None),
        (games, "cursor=" + forged_cursor([1, 2]), 400, None),
    ]
    for url, query, status, field in cases:
        body = assert_problem(await api.client.get(f"{url}?{query}"), status, field=field)
        if status == 400:
            assert "cursor" in body["detail"]
    # Values PostgreSQL cannot hold (a game number beyond INTEGER, a NUL in text) are 400
    # there; SQLite holds them, and such a cursor is merely past the end.
    for url, cursor in [
        (games, forged_cursor([2**31])),
        ("/v1/sessions", forged_cursor(["2020-01-01T00:00:00+00:00", "\x00" * 32])),
    ]:
        r = await api.client.get(url, params={"cursor": cursor})
        if api.backend == "postgresql":
            assert_problem(r, 400)
        else:
            assert r.status_code == 200 and r.json()["items"] == []


async def test_session_detail_scorecard_metrics_elo(api):
    session_id = await seed_session(api, games=6, state="running")
    detail = (await api.client.get(f"/v1/sessions/{session_id}")).json()
    assert detail["games_done"] == 6
    card = detail["scorecard"]
    assert (card["games"], card["white_wins"], card["black_wins"], card["draws"]) == (6, 2, 2, 2)
    assert card["adjudicated"] == 2 and card["adjudicated_decisive"] == 0
    assert card["terminations"] == {"move_cap": 2, "resignation": 4}
    assert card["mean_plies"] == 12 and card["draw_rate"] == pytest.approx(1 / 3)
    assert detail["metrics"] is None and detail["elo"] is None

    checkpoint_id = await seed_checkpoint(api, session_id, generation=1, games=6)
    async with api.sessionmaker() as db, db.begin():
        await repo.add_metric_snapshot(db, session_id, {"games_per_minute": 3.5})
        await repo.add_evaluation(
            db,
            session_id,
            checkpoint_id,
            "random",
            wins=3,
            draws=1,
            losses=0,
            elo=1620.5,
            elo_low=1500.0,
            elo_high=1741.0,
        )
    detail = (await api.client.get(f"/v1/sessions/{session_id}")).json()
    assert detail["metrics"] == {"games_per_minute": 3.5} and detail["metrics_at"]
    assert detail["elo"]["rating"] == 1620.5 and detail["elo"]["checkpoint_id"] == checkpoint_id
    assert detail["elo"]["generation"] == 1 and detail["elo"]["low"] == 1500.0

    api.orchestrator.live_stats[session_id] = {"simulations_per_second": 1234.0}
    detail = (await api.client.get(f"/v1/sessions/{session_id}")).json()
    assert detail["metrics"] == {"simulations_per_second": 1234.0} and detail["metrics_at"] is None

    assert (await api.client.get(f"/v1/sessions/{session_id}/scorecard")).json() == card
    metrics = (await api.client.get(f"/v1/sessions/{session_id}/metrics")).json()
    assert [m["data"] for m in metrics["items"]] == [{"games_per_minute": 3.5}]
    later = await api.client.get(f"/v1/sessions/{session_id}/metrics", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json()["items"] == []
    naive = await api.client.get(f"/v1/sessions/{session_id}/metrics", params={"since": "2020-01-01T00:00:00"})
    assert_problem(naive, 422, field="since")
    evaluations = (await api.client.get(f"/v1/sessions/{session_id}/evaluations")).json()["items"]
    assert [(e["opponent"], e["wins"], e["draws"], e["losses"], e["games"]) for e in evaluations] == [
        ("random", 3, 1, 0, 4)
    ]
    checkpoints = (await api.client.get(f"/v1/sessions/{session_id}/checkpoints")).json()["items"]
    assert [(c["id"], c["generation"], c["weights_url"]) for c in checkpoints] == [
        (checkpoint_id, 1, f"/v1/checkpoints/{checkpoint_id}/weights")
    ]


async def test_unknown_or_malformed_session_ids_are_404(api):
    for suffix in ["", "/games", "/games.pgn", "/scorecard", "/metrics", "/evaluations", "/checkpoints"]:
        for session_id in ["0" * 32, "f" * 32, "not-an-id", "A" * 32, "1" * 33, "%2e%2e", "9" * 400]:
            r = await api.client.get(f"/v1/sessions/{session_id}{suffix}")
            assert_problem(r, 404)


async def test_lifecycle_and_illegal_transitions(api):
    created = (await api.client.post("/v1/sessions", json={"max_games": 3})).json()
    sid = created["id"]
    base = f"/v1/sessions/{sid}"

    r = await api.client.post(f"{base}/pause")
    assert r.status_code == 202 and r.json()["state"] == "paused"
    body = assert_problem(await api.client.post(f"{base}/pause"), 409)
    assert body["state"] == "paused" and body["action"] == "pause" and body["session_id"] == sid
    r = await api.client.post(f"{base}/resume")
    assert r.status_code == 202 and r.json()["state"] == "running"
    assert_problem(await api.client.post(f"{base}/resume"), 409)

    body = assert_problem(await api.client.delete(base), 409)
    assert body["state"] == "running" and body["action"] == "delete"

    r = await api.client.post(f"{base}/stop")
    assert r.status_code == 202 and r.json()["state"] == "stopped"
    for action in ("pause", "resume", "stop"):
        assert_problem(await api.client.post(f"{base}/{action}"), 409)

    r = await api.client.delete(base)
    assert r.status_code == 204 and r.content == b""
    assert_problem(await api.client.get(base), 404)
    assert_problem(await api.client.delete(base), 404)
    for action in ("pause", "resume", "stop"):
        assert_problem(await api.client.post(f"/v1/sessions/{'0' * 32}/{action}"), 404)
        assert_problem(await api.client.post(f"/v1/sessions/nope/{action}"), 404)


async def test_delete_removes_the_sessions_rows(api):
    keep = await seed_session(api, games=2)
    gone = await seed_session(api, games=3)
    await seed_checkpoint(api, gone)
    assert (await api.client.delete(f"/v1/sessions/{gone}")).status_code == 204
    rows = await count_rows(api)
    assert rows["sessions"] == 1 and rows["games"] == 2 and rows["checkpoints"] == 0
    assert (await api.client.get(f"/v1/sessions/{keep}")).json()["games_done"] == 2
