"""A web page cannot drive a keyless service (issue 21 item 5), and a caller without a key
sees no driver error text (item 7).

Any page the user visits can send "simple" requests to 127.0.0.1 (a body-less POST, a form,
text/plain: no CORS preflight), open WebSockets to it (CORS does not cover them), and, by
DNS rebinding, read the answers under a name of its own. These tests send those requests
as such a page would (its `Origin`, its `Host`, its content types) over real HTTP (httpx on
the ASGI app) and real WebSockets (the `websockets` client against the app under uvicorn
on a loopback socket), and check that nothing was stored or changed; the dashboard's own
calls (same origin), clients without an Origin (curl, Python) and CORS_ORIGINS still work.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from api_support import (
    API_KEY,
    FakeOrchestrator,
    count_rows,
    make_settings,
    running_api,
    seed_session,
    uvicorn_on_loopback,
)
from httpx_ws import WebSocketDisconnect, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport

from service.api import health, origin
from service.app import create_app
from service.config import SettingsError, load_settings
from service.event_types import EventType
from service.sessions.events import EventBus

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PROBLEM = "application/problem+json"
EVIL = "http://evil.example"
GRAFANA = "https://grafana.example"
TIMEOUT = 60.0  # seconds to wait for one message: generous for a loaded 2-core machine


def assert_problem(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    if type_ is not None:
        assert body["type"] == type_, body
    return body


def own_origin(client: httpx.AsyncClient) -> str:
    """The origin of the pages the service serves to `client` (the dashboard's)."""
    return f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"


# -- Origin ---------------------------------------------------------------------------------


async def test_a_cross_origin_page_cannot_create_or_drive_sessions(api):
    running = await seed_session(api, state="running", games=1)
    paused = await seed_session(api, state="paused")
    before = await count_rows(api)
    # the reproduction: a body-less POST is a simple request, sent without a preflight
    assert_problem(await api.client.post("/v1/sessions", headers={"Origin": EVIL}), 403, origin.FOREIGN_ORIGIN)
    for kwargs in (
        {"json": {"max_games": 1}},
        {"data": {"max_games": "1"}},
        {"content": b'{"max_games": 1}', "headers": {"content-type": "text/plain"}},
    ):
        headers = {"Origin": EVIL, **kwargs.pop("headers", {})}  # type: ignore[arg-type]
        assert_problem(await api.client.post("/v1/sessions", headers=headers, **kwargs), 403)
    # a sandboxed or file page (Origin: null), a look-alike name, this host on another port
    for other in (
        "null",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1:1",
        "https://evil.example:443",
    ):
        assert_problem(await api.client.post("/v1/sessions", headers={"Origin": other}), 403)
    for method, url in [
        ("POST", f"/v1/sessions/{running}/pause"),
        ("POST", f"/v1/sessions/{running}/stop"),
        ("POST", f"/v1/sessions/{paused}/resume"),
        ("DELETE", f"/v1/sessions/{paused}"),
    ]:
        assert_problem(await api.client.request(method, url, headers={"Origin": EVIL}), 403)
    assert await count_rows(api) == before
    assert [item["id"] for item in (await api.client.get("/v1/sessions")).json()["items"]] != []
    states = {sid: (await api.client.get(f"/v1/sessions/{sid}")).json()["state"] for sid in (running, paused)}
    assert states == {running: "running", paused: "paused"}
    assert api.orchestrator.calls == []


async def test_same_origin_no_origin_and_listed_origins_still_work(database, tmp_path):
    async with running_api(database, tmp_path, cors_origins=[GRAFANA]) as api:
        own = own_origin(api.client)
        created = []
        for headers in ({"Origin": own}, {}, {"Origin": GRAFANA}):
            r = await api.client.post("/v1/sessions", json={"max_games": 1}, headers=headers)
            assert r.status_code == 201, (headers, r.text)
            created.append(r.json()["id"])
        assert r.headers["access-control-allow-origin"] == GRAFANA
        # the dashboard's calls: a body-less POST with its own Origin, a DELETE
        r = await api.client.post(f"/v1/sessions/{created[0]}/stop", headers={"Origin": own})
        assert r.status_code == 202, r.text
        assert (await api.client.delete(f"/v1/sessions/{created[0]}", headers={"Origin": own})).status_code == 204
        # curl and Python clients send no Origin: a body-less create (the defaults) works
        assert (await api.client.post("/v1/sessions")).status_code == 201
        # reads are not refused for any Origin (CORS keeps a foreign page from reading them)
        r = await api.client.get("/v1/sessions", headers={"Origin": EVIL})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


# -- Host -----------------------------------------------------------------------------------

FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "0.0.0.0",
    "192.168.1.20:8000",
    "127.0.0.1@evil.example",
    "",
]


async def test_a_foreign_host_is_refused(api):
    """DNS rebinding: a page's own name resolved to 127.0.0.1 arrives with that name as Host."""
    before = await count_rows(api)
    for host in FOREIGN_HOSTS:
        for url in ("/", "/v1/sessions", "/healthz", "/readyz", "/openapi.json"):
            assert_problem(await api.client.get(url, headers={"Host": host}), 400, origin.FOREIGN_HOST)
        r = await api.client.post("/v1/sessions", json={"max_games": 1}, headers={"Host": host})
        assert_problem(r, 400, origin.FOREIGN_HOST)
    assert await count_rows(api) == before
    for host in ("localhost", "localhost:8000", "LocalHost:1", "127.0.0.1", "127.0.0.1:8000", "[::1]", "[::1]:8000"):
        assert (await api.client.get("/v1/sessions", headers={"Host": host})).status_code == 200, host


async def test_allowed_hosts_and_a_specific_host_setting_are_served(database, tmp_path):
    async with running_api(database, tmp_path, allowed_hosts=["chess.example.org"], host="10.0.0.5") as api:
        for host in ("chess.example.org", "Chess.Example.Org:443", "10.0.0.5:8000", "localhost:8000"):
            assert (await api.client.get("/v1/sessions", headers={"Host": host})).status_code == 200, host
        for host in ("evil.example", "example.org", "10.0.0.6"):
            assert_problem(await api.client.get("/v1/sessions", headers={"Host": host}), 400)
    async with running_api(database, tmp_path, host="0.0.0.0", api_keys=[API_KEY]) as api:
        assert_problem(await api.client.get("/v1/sessions", headers={"Host": "0.0.0.0:8000"}), 400)
    async with running_api(database, tmp_path, allowed_hosts=["*"]) as api:  # any: a proxy checks Host
        assert (await api.client.get("/v1/sessions", headers={"Host": "evil.example"})).status_code == 200


async def test_allowed_hosts_is_parsed_like_cors_origins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOWED_HOSTS", " Chess.Example.org, api ,[::1]")
    assert load_settings().allowed_hosts == ["chess.example.org", "api", "[::1]"]
    monkeypatch.setenv("ALLOWED_HOSTS", "")
    assert load_settings().allowed_hosts == []
    for bad in ("http://chess.example.org", "chess.example.org:443", "chess.example.org/x", "a b", "*.example.org"):
        monkeypatch.setenv("ALLOWED_HOSTS", bad)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert "ALLOWED_HOSTS" in str(caught.value) and "\n" not in str(caught.value)


# -- Content-Type ---------------------------------------------------------------------------


async def test_a_body_must_be_json(api):
    before = await count_rows(api)
    refused = [
        ("text/plain", b'{"max_games": 1}'),
        ("text/plain;charset=UTF-8", b'{"max_games": 1}'),
        ("application/x-www-form-urlencoded", b"max_games=1"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--'),
        ("application/jsonp", b'{"max_games": 1}'),
        (None, b'{"max_games": 1}'),
    ]
    for content_type, content in refused:
        headers = {"content-type": content_type} if content_type else {}
        r = await api.client.post("/v1/sessions", content=content, headers=headers)
        body = assert_problem(r, 415, origin.NOT_JSON)
        assert "application/json" in body["detail"]
    assert await count_rows(api) == before
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
        r = await api.client.post("/v1/sessions", content=b'{"max_games": 1}', headers={"content-type": content_type})
        assert r.status_code == 201, (content_type, r.text)
    r = await api.client.post("/v1/sessions")  # no body, no Content-Type: the defaults
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert (await api.client.post(f"/v1/sessions/{sid}/pause")).status_code == 202


async def test_a_refused_content_type_without_a_key_is_401_first(keyed_api):
    api = keyed_api
    before = await count_rows(api)
    for headers in ({}, api.auth("wrong")):
        r = await api.client.post(
            "/v1/sessions", content=b"max_games=1", headers={"content-type": "text/plain", **headers}
        )
        assert_problem(r, 401)
    r = await api.client.post(
        "/v1/sessions", content=b"max_games=1", headers={"content-type": "text/plain", **api.auth()}
    )
    assert_problem(r, 415)
    assert await count_rows(api) == before


# -- WebSockets -----------------------------------------------------------------------------


class LiveOrchestrator(FakeOrchestrator):
    """The fake orchestrator with a real event bus, so the live feed can be served."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.bus = EventBus()

    async def close(self) -> None:
        self.bus.close()
        await super().close()


@asynccontextmanager
async def served(database, tmp_path, **settings: Any) -> AsyncIterator[tuple[Any, int]]:
    """The app (LiveOrchestrator) under uvicorn in this event loop on a loopback socket;
    yields (app, port)."""
    app = create_app(
        make_settings(database, tmp_path, **settings),
        orchestrator_factory=LiveOrchestrator,
        engine_kwargs=database.engine_kwargs,
    )
    async with uvicorn_on_loopback(app) as port:
        yield app, port


def loopback(port: int) -> socket.socket:
    """A connected socket to the server, whatever name the URL gives (DNS rebinding)."""
    return socket.create_connection(("127.0.0.1", port))


async def refused_status(url: str, port: int, **kwargs: Any) -> int:
    """The HTTP status that refused the WebSocket handshake (it must not open)."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, sock=loopback(port), proxy=None, open_timeout=TIMEOUT, **kwargs):
            pass
    return refused.value.response.status_code


async def live_message_arrives(app: Any, ws: Any, subscribers: int) -> None:
    """The feed is really open: once subscribed, a published event reaches the client."""
    bus = app.state.orchestrator.bus
    while bus.subscribers < subscribers:
        await asyncio.sleep(0.05)
    bus.publish(
        {
            "seq": 1,
            "session_id": "s" * 32,
            "type": EventType.METRICS_SNAPSHOT,
            "ts": "2026-01-01T00:00:00Z",
            "data": {"probe": subscribers},
        }
    )
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert f'"probe": {subscribers}' in message or f'"probe":{subscribers}' in message, message


async def test_a_foreign_origin_or_host_cannot_open_the_live_feed(database, tmp_path):
    async with served(database, tmp_path, cors_origins=[GRAFANA]) as (app, port):
        feed = f"ws://127.0.0.1:{port}/v1/live"
        for other in (EVIL, "null", f"http://127.0.0.1:{port + 1}", f"http://localhost.evil.example:{port}"):
            assert await refused_status(feed, port, origin=other) == 403, other
        # DNS rebinding: the page's own name, resolved to 127.0.0.1
        rebound = f"ws://evil.example:{port}/v1/live"
        assert await refused_status(rebound, port, origin=f"http://evil.example:{port}") == 400
        assert await refused_status(f"ws://evil.example:{port}/v1/live", port) == 400
        session = f"ws://127.0.0.1:{port}/v1/sessions/{'a' * 32}/live?since=0"
        assert await refused_status(session, port, origin=EVIL) == 403
        assert app.state.orchestrator.bus.subscribers == 0

        # the dashboard (its own origin), a client without Origin, a listed origin: the feed opens
        opened = 0
        for kwargs in (
            {"origin": f"http://127.0.0.1:{port}"},
            {"origin": f"http://localhost:{port}"},
            {},
            {"origin": GRAFANA},
        ):
            url = feed.replace("127.0.0.1", "localhost") if "localhost" in kwargs.get("origin", "") else feed
            async with websockets.connect(url, sock=loopback(port), proxy=None, open_timeout=TIMEOUT, **kwargs) as ws:
                opened += 1
                await live_message_arrives(app, ws, 1)
            while app.state.orchestrator.bus.subscribers:
                await asyncio.sleep(0.05)
        assert opened == 4
        # over real HTTP too: a foreign Host or Origin on the real server
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            assert_problem(await client.get("/v1/sessions", headers={"Host": "evil.example"}), 400)
            assert_problem(await client.post("/v1/sessions", headers={"Origin": EVIL}), 403)
            own = await client.post("/v1/sessions", headers={"Origin": f"http://127.0.0.1:{port}"})
            assert own.status_code == 201


async def test_without_denial_responses_a_refused_websocket_is_closed_before_accept(database, tmp_path):
    """A server without ASGI's websocket.http.response extension (httpx-ws over ASGI):
    the handshake is closed before accept (1008), never opened."""
    async with running_api(database, tmp_path, orchestrator_factory=LiveOrchestrator) as api:
        bus = api.orchestrator.bus
        async with (
            ASGIWebSocketTransport(app=api.app, initial_receive_timeout=TIMEOUT) as transport,
            httpx.AsyncClient(transport=transport, base_url=str(api.client.base_url)) as client,
        ):
            for headers in ({"Origin": EVIL}, {"Host": "evil.example"}):
                with pytest.raises(WebSocketDisconnect) as closed:
                    async with aconnect_ws("/v1/live", client, headers=headers):
                        pass
                assert closed.value.code == 1008, headers
            assert bus.subscribers == 0
            async with aconnect_ws("/v1/live", client, headers={"Origin": own_origin(client)}):
                while bus.subscribers < 1:  # opened and subscribed
                    await asyncio.sleep(0.05)


# -- no driver text for callers without a key -----------------------------------------------

DRIVER_TEXT = (
    '(sqlalchemy.dialects.postgresql.asyncpg.InterfaceError) connection to server at "10.9.8.7", '
    'port 5432 failed: FATAL: password authentication failed for user "continuous"\n'
    "[SQL: INSERT INTO games (session_id, number) VALUES ($1, $2)] /srv/continuous-play/data/db.sqlite"
)
SECRETS_OF_THE_SERVER = ("10.9.8.7", "INSERT INTO", "/srv/continuous-play", "sqlalchemy", "password")


class OutageOrchestrator(FakeOrchestrator):
    """The fake orchestrator in the middle of a database outage, its last error driver text."""

    @property
    def database_outage(self) -> dict[str, Any]:
        return {
            "since": "2026-01-01T00:00:00Z",
            "seconds": 12.0,
            "error": DRIVER_TEXT,
            "held_writes": 3,
            "limit_s": 120.0,
            "limit_passed": False,
        }


async def test_readyz_shows_no_driver_text_to_a_caller_without_a_key(database, tmp_path):
    async with running_api(database, tmp_path, orchestrator_factory=OutageOrchestrator) as api:
        r = await api.client.get("/readyz")
        body = assert_problem(r, 503)
        assert body["checks"]["database"] == "unavailable"
        assert body["database_outage"]["held_writes"] == 3 and body["database_outage"]["seconds"] == 12.0
        assert body["database_outage"]["error"] == health.HIDDEN_ERROR
        for secret in SECRETS_OF_THE_SERVER:
            assert secret not in r.text, secret
    async with running_api(database, tmp_path, orchestrator_factory=OutageOrchestrator, api_keys=[API_KEY]) as api:
        for headers in ({}, api.auth("wrong")):
            r = await api.client.get("/readyz", headers=headers)
            assert_problem(r, 503)
            for secret in SECRETS_OF_THE_SERVER:
                assert secret not in r.text, secret
        body = assert_problem(await api.client.get("/readyz", headers=api.auth()), 503)
        assert body["database_outage"]["error"] == DRIVER_TEXT  # an operator with a key sees the cause


async def test_problem_details_carry_no_driver_text(api, caplog):
    from sqlalchemy.exc import IntegrityError, OperationalError

    async def constraint() -> None:
        raise IntegrityError(
            "INSERT INTO games (session_id, number) VALUES (?, ?)",
            ("x", 1),
            Exception("UNIQUE constraint failed: games.session_id, games.number"),
        )

    async def unreachable() -> None:
        raise OperationalError("SELECT 1", (), ConnectionRefusedError(111, DRIVER_TEXT))

    async def path() -> None:
        raise FileNotFoundError(2, "No such file or directory", "/srv/continuous-play/checkpoints/x.safetensors")

    for name, route in (("constraint", constraint), ("unreachable", unreachable), ("path", path)):
        api.app.add_api_route(f"/v1/explode/{name}", route, methods=["GET", "POST"])
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=str(api.client.base_url)) as client:
        for name, status in (("constraint", 500), ("unreachable", 503), ("path", 500)):
            for method in ("GET", "POST"):
                r = await client.request(method, f"/v1/explode/{name}")
                assert_problem(r, status)
                for secret in (*SECRETS_OF_THE_SERVER, "UNIQUE constraint", "games.number", "x.safetensors"):
                    assert secret not in r.text, (name, secret, r.text)
    assert "UNIQUE constraint failed" in caplog.text and "/srv/continuous-play/checkpoints" in caplog.text
