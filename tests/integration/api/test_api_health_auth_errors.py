"""/healthz, /readyz, API keys, problem+json for framework errors, and bad input that
must never lose stored data nor answer 5xx."""

from __future__ import annotations

import logging

import httpx
import pytest
from api_support import API_KEY, count_rows, running_api, seed_checkpoint, seed_session

from service.storage.database import create_engine, session_factory

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


async def test_healthz_and_readyz(api):
    r = await api.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await api.client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready", "checks": {"database": "ok", "workers": "ok"}}

    api.orchestrator.warm = False  # the pool is not warm
    body = assert_problem(await api.client.get("/readyz"), 503)
    assert body["checks"] == {"database": "ok", "workers": "not ready"} and "worker" in body["detail"]
    assert (await api.client.get("/healthz")).status_code == 200
    api.orchestrator.warm = True

    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")  # nothing listens there
    api.app.state.sessionmaker = session_factory(dead)
    try:
        body = assert_problem(await api.client.get("/readyz"), 503)
        assert body["checks"] == {"database": "unavailable", "workers": "ok"} and "database" in body["detail"]
        assert "127.0.0.1:9" not in body["detail"]
    finally:
        api.app.state.sessionmaker = api.sessionmaker
        await dead.dispose()
    assert (await api.client.get("/readyz")).status_code == 200


async def test_readyz_before_the_lifespan_ran(database, tmp_path):
    from api_support import make_settings

    from service.app import create_app

    app = create_app(make_settings(database, tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        assert assert_problem(await client.get("/readyz"), 503)["checks"]["workers"] == "not ready"
        assert (await client.get("/healthz")).status_code == 200


async def mutating_requests(api, sid: str) -> list[tuple[str, str, dict]]:
    return [
        ("POST", "/v1/sessions", {"json": {"max_games": 3}}),
        ("POST", f"/v1/sessions/{sid}/pause", {}),
        ("POST", f"/v1/sessions/{sid}/resume", {}),
        ("POST", f"/v1/sessions/{sid}/stop", {}),
        ("DELETE", f"/v1/sessions/{sid}", {}),
    ]


async def test_api_keys_guard_every_mutating_route(keyed_api, caplog):
    api = keyed_api
    caplog.set_level(logging.DEBUG)
    sid = await seed_session(api, state="running", games=2)
    checkpoint_id = await seed_checkpoint(api, sid)
    before = await count_rows(api)
    bad_headers = [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": f"Bearer {API_KEY[:-1]}"},
        {"Authorization": "Bearer ключ".encode()},
    ]
    for method, url, kwargs in await mutating_requests(api, sid):
        for headers in bad_headers:
            r = await api.client.request(method, url, headers=headers, **kwargs)
            assert_problem(r, 401)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert API_KEY not in r.text
    # a body that fails validation still gets the 401 first (nothing is said about the body)
    r = await api.client.post("/v1/sessions", content="{not json", headers={"content-type": "application/json"})
    assert_problem(r, 401)
    r = await api.client.post("/v1/sessions", json={"max_games": -1})
    assert_problem(r, 401)
    assert await count_rows(api) == before

    for url in [
        "/v1/sessions",
        f"/v1/sessions/{sid}",
        f"/v1/sessions/{sid}/games",
        f"/v1/sessions/{sid}/games.pgn",
        f"/v1/sessions/{sid}/scorecard",
        f"/v1/sessions/{sid}/metrics",
        f"/v1/sessions/{sid}/evaluations",
        f"/v1/sessions/{sid}/checkpoints",
        f"/v1/checkpoints/{checkpoint_id}/weights",
        f"/v1/checkpoints/{checkpoint_id}/weights.onnx",
        "/healthz",
        "/readyz",
    ]:
        assert (await api.client.get(url)).status_code == 200, url

    ok = api.auth()
    r = await api.client.post("/v1/sessions", json={"max_games": 3}, headers=ok)
    assert r.status_code == 201
    assert (await api.client.post(f"/v1/sessions/{sid}/pause", headers=ok)).status_code == 202
    assert (await api.client.post(f"/v1/sessions/{sid}/resume", headers=ok)).status_code == 202
    assert (await api.client.post(f"/v1/sessions/{sid}/stop", headers=ok)).status_code == 202
    assert (await api.client.delete(f"/v1/sessions/{sid}", headers=api.auth("another-key"))).status_code == 204
    assert API_KEY not in caplog.text and "another-key" not in caplog.text


async def test_framework_errors_are_problems(database, tmp_path):
    async with running_api(database, tmp_path) as api:
        body = assert_problem(await api.client.get("/v1/nothing-here"), 404)
        assert body["instance"] == "/v1/nothing-here"
        r = await api.client.put("/v1/sessions")
        assert_problem(r, 405)
        assert r.headers["allow"]

        big = b'{"max_games": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'
        body = assert_problem(
            await api.client.post("/v1/sessions", content=big, headers={"content-type": "application/json"}), 413
        )
        assert "bytes" in body["detail"]

        async def chunks():  # no Content-Length: counted while read
            for _ in range(40):
                yield b"x" * 65536

        r = await api.client.post("/v1/sessions", content=chunks(), headers={"content-type": "application/json"})
        assert_problem(r, 413)
        assert (await count_rows(api))["sessions"] == 0


async def test_unexpected_errors_are_500_problems_without_internals(api, caplog):
    async def explode():
        raise RuntimeError("secret internals at /srv/db password=hunter2")

    api.app.add_api_route("/v1/explode", explode)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        r = await client.get("/v1/explode")
    body = assert_problem(r, 500)
    assert "secret" not in r.text and "hunter2" not in r.text and "Traceback" not in r.text
    assert body["instance"] == "/v1/explode"
    assert "secret internals" in caplog.text  # the log has it


async def test_cors_only_when_configured(database, tmp_path):
    preflight = {"Origin": "https://grafana.example", "Access-Control-Request-Method": "POST"}
    async with running_api(database, tmp_path) as api:
        r = await api.client.options("/v1/sessions", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    async with running_api(database, tmp_path, cors_origins=["https://grafana.example"]) as api:
        r = await api.client.options("/v1/sessions", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://grafana.example"
        r = await api.client.get("/v1/sessions", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_bad_input_never_loses_data_nor_answers_5xx(api):
    done = await seed_session(api, games=4, state="completed")
    running = await seed_session(api, games=3, state="running")
    checkpoint_id = await seed_checkpoint(api, done)
    before = await count_rows(api)
    states = {sid: (await api.client.get(f"/v1/sessions/{sid}")).json()["state"] for sid in (done, running)}

    requests = [
        ("DELETE", f"/v1/sessions/{running}", {}),  # active: 409
        ("DELETE", f"/v1/sessions/{done[:-1]}", {}),
        ("DELETE", f"/v1/sessions/{done}x", {}),
        ("DELETE", f"/v1/sessions/{done.upper()}", {}),
        ("DELETE", "/v1/sessions/" + "0" * 32, {}),
        ("DELETE", "/v1/sessions/%25", {}),
        ("DELETE", "/v1/sessions/'%20OR%201=1--", {}),
        ("DELETE", "/v1/sessions", {}),
        ("DELETE", f"/v1/games/{checkpoint_id}", {}),
        ("DELETE", f"/v1/checkpoints/{checkpoint_id}/weights", {}),
        ("POST", f"/v1/checkpoints/{checkpoint_id}/weights.onnx", {}),
        ("POST", f"/v1/sessions/{done}/pause", {}),
        ("POST", f"/v1/sessions/{done}/resume", {"json": {"force": True}}),
        ("POST", f"/v1/sessions/{running}/resume", {}),
        ("POST", f"/v1/sessions/{done}/explode", {}),
        ("POST", "/v1/sessions", {"json": {"max_games": 10**100}}),
        ("POST", "/v1/sessions", {"content": b'{"max_games": 1e400}', "headers": {"content-type": "application/json"}}),
        (
            "POST",
            "/v1/sessions",
            {
                "content": b'{"learning_rate": Infinity, "session_duration_min": NaN}',
                "headers": {"content-type": "application/json"},
            },
        ),
        (
            "POST",
            "/v1/sessions",
            {"content": b'{"session_duration_min": 1e400}', "headers": {"content-type": "application/json"}},
        ),
        (
            "POST",
            "/v1/sessions",
            {"content": b'{"max_games": ' + b"9" * 5000 + b"}", "headers": {"content-type": "application/json"}},
        ),
        ("POST", "/v1/sessions", {"content": b"[" * 100000, "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/sessions", {"json": {"learning_rate": -1, "seed": -1, "device": "tpu"}}),
        ("POST", "/v1/sessions", {"json": {"init_checkpoint_id": 2**62}}),
        ("POST", "/v1/sessions", {"json": {"init_checkpoint_id": -1}}),
        ("POST", "/v1/sessions", {"json": {"id": done, "state": "running"}}),
        ("POST", "/v1/sessions", {"json": [1, 2, 3]}),
        ("POST", "/v1/sessions", {"json": "text"}),
        ("POST", "/v1/sessions", {"json": {"eval_opponents": "gen0" * 10000}}),
        ("POST", "/v1/sessions", {"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/sessions", {"content": b"{}", "headers": {"content-length": "-5"}}),
        ("GET", "/v1/sessions?limit=1e9", {}),
        ("GET", "/v1/sessions?cursor=%00", {}),
        ("GET", f"/v1/sessions/{done}/games?cursor=eyJ9", {}),
        ("GET", f"/v1/sessions/{done}/games?limit=" + "9" * 5000, {}),
        ("GET", f"/v1/sessions/{done}/metrics?since=yesterday", {}),
        ("GET", f"/v1/sessions/{done}/metrics?limit=0", {}),
        ("GET", "/v1/games/" + "9" * 5000, {}),
        ("GET", "/v1/games/1e3.pgn", {}),
        ("GET", f"/v1/checkpoints/{2**40}/weights", {}),
        ("GET", "/v1/checkpoints/..%2F..%2Fetc%2Fpasswd/weights", {}),
        ("GET", f"/v1/checkpoints/{2**40}/weights.onnx", {}),
        ("GET", "/v1/checkpoints/..%2F..%2Fetc%2Fpasswd/weights.onnx", {}),
        ("GET", f"/v1/checkpoints/{checkpoint_id}/weights.onnx.exe", {}),
    ]
    for method, url, kwargs in requests:
        r = await api.client.request(method, url, **kwargs)
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
        assert r.headers["content-type"].startswith(PROBLEM), (method, url)
    assert await count_rows(api) == before
    for sid, state in states.items():
        assert (await api.client.get(f"/v1/sessions/{sid}")).json()["state"] == state
