"""The live feed over real WebSockets: `WS /v1/sessions/{id}/live` and `WS /v1/live`.

The app runs the real orchestrator on an inline pool (the real engine, tiny preset) over
the test database (SQLite and PostgreSQL). Most tests talk to it through httpx-ws over
ASGI; the slow-subscriber and protocol-garbage tests run it under uvicorn on a loopback
socket with the `websockets` client, because only a real socket can stop being read.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from api_support import API_KEY, Api, make_settings, running_api, seed_session, uvicorn_on_loopback
from httpx_ws import WebSocketDisconnect, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from support.tiny import TINY
from support.waiting import wait_for
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from service.api import live
from service.app import create_app
from service.event_types import EventType
from service.lifecycle import FINAL
from service.sessions.pool import InlinePool
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

FAST = {**TINY, "metrics_export_interval": 0.5, "max_concurrent_sessions": 1}  # the app's settings
TIMEOUT = 90.0  # seconds to wait for one message: generous for a loaded 2-core machine


@asynccontextmanager
async def live_api(database, tmp_path, **settings: Any) -> AsyncIterator[tuple[Api, httpx.AsyncClient]]:
    """The app with the real orchestrator (inline pool), and a WebSocket-capable client on it."""
    async with running_api(
        database, tmp_path, orchestrator_factory=None, pool=InlinePool(1), **{**FAST, **settings}
    ) as api:
        async with ASGIWebSocketTransport(app=api.app, initial_receive_timeout=30) as transport:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                yield api, client


async def read_until(ws, stop: Callable[[dict], bool], timeout: float = TIMEOUT) -> list[dict]:
    out = []
    while True:
        message = json.loads(await ws.receive_text(timeout=timeout))
        out.append(message)
        if stop(message):
            return out


def final_state(message: dict) -> bool:
    return message["type"] == EventType.SESSION_STATE and message["data"]["state"] in FINAL


async def stored_messages(api: Api, session_id: str) -> list[dict]:
    async with api.sessionmaker() as db:
        return [json.loads(json.dumps(e.to_message())) for e in await repo.events_since(db, session_id, 0, 100_000)]


async def closed_with(client: httpx.AsyncClient, url: str, **kwargs: Any) -> tuple[int, str]:
    """Connect, expect the server to close at once; (code, reason)."""
    async with aconnect_ws(url, client, **kwargs) as ws:
        try:
            message = await ws.receive_text(timeout=30)
        except WebSocketDisconnect as closed:
            return closed.code, closed.reason
    raise AssertionError(f"{url}: not closed, got {message[:200]}")


async def healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/healthz")).status_code == 200


async def subscribed(bus, count: int, timeout: float = TIMEOUT) -> None:
    """Until `count` feeds are subscribed (a WebSocket is accepted before it subscribes)."""
    await wait_for(
        lambda: bus.subscribers >= count,
        timeout=timeout,
        interval=0.01,
        what=f"{count} subscriptions",
        detail=lambda: f"{bus.subscribers} subscribed",
    )


# -- replay, then the live tail ------------------------------------------------------------


async def test_reconnecting_with_since_gets_exactly_what_was_missed_then_the_tail(database, tmp_path):
    """A real session: one client reads the first events and leaves; a second connects with
    since=<last seq it saw> while the session still plays and reads to its end."""
    async with live_api(database, tmp_path) as (api, client):
        created = await client.post("/v1/sessions", json={"max_games": 6})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        async with aconnect_ws(f"/v1/sessions/{sid}/live", client) as ws:
            first = [json.loads(await ws.receive_text(timeout=TIMEOUT)) for _ in range(4)]
        assert [m["seq"] for m in first] == [1, 2, 3, 4]
        assert first[0]["type"] == EventType.SESSION_STATE and first[0]["data"]["state"] == "pending"
        last = first[-1]["seq"]
        async with aconnect_ws(f"/v1/sessions/{sid}/live?since={last}", client) as ws:
            rest = await read_until(ws, final_state)
        assert [m["seq"] for m in rest] == list(range(last + 1, last + 1 + len(rest))), "gap or duplicate"
        assert rest[-1]["data"]["state"] == "completed"
        stored = await stored_messages(api, sid)
        assert first + rest == stored  # the same messages, live or replayed
        games = [m for m in stored if m["type"] == EventType.GAME_FINISHED]
        assert len(games) == 6 and all(g["data"]["ended_at"] > 0 for g in games)
        for m in stored:
            assert set(m) == {"seq", "session_id", "type", "ts", "data"} and m["ts"].endswith("Z")
        assert await healthy(client)


async def test_the_switch_from_replay_to_live_has_no_gap_nor_duplicate(database, tmp_path):
    """Clients connect with various `since` while events are being written (more than one
    replay page): each gets exactly seq since+1 .. N, in order."""
    total = live.REPLAY_PAGE + 60
    async with live_api(database, tmp_path) as (api, client):
        sid = await seed_session(api, state="completed")
        orchestrator = api.orchestrator
        rng = random.Random(7)

        async def produce() -> None:
            for i in range(1, total + 1):
                await orchestrator.add_event(sid, EventType.METRICS_SNAPSHOT, {"i": i})
                if i % 25 == 0:
                    await asyncio.sleep(0.01)

        async def consume(delay_events: int) -> tuple[int, list[int]]:
            while True:  # connect once about `delay_events` events exist, with since somewhere before
                async with api.sessionmaker() as db:
                    now = (await repo.get_session(db, sid)).last_seq
                if now >= delay_events:
                    break
                await asyncio.sleep(0.005)
            since = rng.randint(0, now)
            async with aconnect_ws(f"/v1/sessions/{sid}/live?since={since}", client) as ws:
                got = await read_until(ws, lambda m: m["seq"] == total)
            return since, [m["seq"] for m in got]

        producer = asyncio.create_task(produce())
        results = await asyncio.gather(*(consume(n) for n in (0, 1, 40, 120, 190, 230, 250)))
        await producer
        for since, seqs in results:
            assert seqs == list(range(since + 1, total + 1)), f"since={since}"
        # a client arriving after the last event gets the replay alone, then nothing more
        async with aconnect_ws(f"/v1/sessions/{sid}/live?since={total - 3}", client) as ws:
            assert [json.loads(await ws.receive_text(timeout=TIMEOUT))["seq"] for _ in range(3)] == [
                total - 2,
                total - 1,
                total,
            ]
            with pytest.raises(TimeoutError):
                await ws.receive_text(timeout=0.5)
            await orchestrator.add_event(sid, EventType.METRICS_SNAPSHOT, {"i": total + 1})
            assert json.loads(await ws.receive_text(timeout=TIMEOUT))["seq"] == total + 1


async def test_all_sessions_feed_and_moves_only_on_request(database, tmp_path):
    async with live_api(database, tmp_path) as (api, client):
        one, two = await seed_session(api, state="completed"), await seed_session(api, state="completed")
        orchestrator = api.orchestrator
        move = {
            "game": 3,
            "ply": 1,
            "uci": "e2e4",
            "san": "e4",
            "fen": "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - 0 1",
        }
        async with (
            aconnect_ws("/v1/live", client) as everything,
            aconnect_ws("/v1/live?moves=true", client) as everything_moves,
            aconnect_ws(f"/v1/sessions/{one}/live?moves=1", client) as one_moves,
            aconnect_ws(f"/v1/sessions/{two}/live?moves=false", client) as two_plain,
        ):
            await subscribed(orchestrator.bus, 4)
            await orchestrator.add_event(one, EventType.LEARNING_STEP, {"step": 1})
            await orchestrator.record(one, "move", move)  # how the worker's move reports arrive
            await orchestrator.record(two, "move", move)
            await orchestrator.add_event(two, EventType.LEARNING_STEP, {"step": 1})
            await orchestrator.add_event(one, EventType.LEARNING_STEP, {"step": 2})

            async def take(ws, n):
                return [json.loads(await ws.receive_text(timeout=TIMEOUT)) for _ in range(n)]

            plain = await take(everything, 3)
            assert [(m["session_id"], m["seq"], m["type"]) for m in plain] == [
                (one, 1, EventType.LEARNING_STEP),
                (two, 1, EventType.LEARNING_STEP),
                (one, 2, EventType.LEARNING_STEP),
            ]
            with_moves = await take(everything_moves, 5)
            assert [m["type"] for m in with_moves] == [
                EventType.LEARNING_STEP,
                EventType.GAME_MOVE,
                EventType.GAME_MOVE,
                EventType.LEARNING_STEP,
                EventType.LEARNING_STEP,
            ]
            moves = [m for m in with_moves if m["type"] == EventType.GAME_MOVE]
            assert [m["session_id"] for m in moves] == [one, two]
            assert all("seq" not in m and m["data"] == move and m["ts"].endswith("Z") for m in moves)
            assert [m["type"] for m in await take(one_moves, 3)] == [
                EventType.LEARNING_STEP,
                EventType.GAME_MOVE,
                EventType.LEARNING_STEP,
            ]
            assert [m["type"] for m in await take(two_plain, 1)] == [EventType.LEARNING_STEP]
        async with api.sessionmaker() as db:  # moves are neither stored nor numbered
            assert [e.type for e in await repo.events_since(db, one)] == [
                EventType.LEARNING_STEP,
                EventType.LEARNING_STEP,
            ]


async def test_a_live_session_streams_its_featured_game_moves(database, tmp_path):
    async with live_api(database, tmp_path) as (api, client):
        sid = (await client.post("/v1/sessions", json={"max_games": 6})).json()["id"]
        async with aconnect_ws(f"/v1/sessions/{sid}/live?moves=true", client) as ws:
            got = await read_until(ws, final_state)
    moves = [m for m in got if m["type"] == EventType.GAME_MOVE]
    games = {m["data"]["started"]: m["data"]["moves"] for m in got if m["type"] == EventType.GAME_FINISHED}
    assert moves and len(games) == 6
    for m in moves:
        assert "seq" not in m and set(m["data"]) == {"game", "ply", "uci", "san", "fen", "actor"}
        assert games[m["data"]["game"]][m["data"]["ply"] - 1] == m["data"]["uci"]
    numbered = [m["seq"] for m in got if "seq" in m]
    assert numbered == list(range(1, len(numbered) + 1))


# -- refusals: each closes with its documented code; the server goes on ----------------------


async def test_malformed_requests_close_with_their_codes(database, tmp_path):
    async with live_api(database, tmp_path) as (api, client):
        sid = await seed_session(api, state="completed")
        await api.orchestrator.add_event(sid, EventType.LEARNING_STEP, {"step": 1})
        base = f"/v1/sessions/{sid}/live"
        cases = [
            (f"/v1/sessions/{'0' * 32}/live", live.CLOSE_UNKNOWN_SESSION, "unknown session"),
            ("/v1/sessions/not-a-session/live", live.CLOSE_UNKNOWN_SESSION, "unknown session"),
            (base + "?since=abc", live.CLOSE_BAD_REQUEST, "since"),
            (base + "?since=1.5", live.CLOSE_BAD_REQUEST, "since"),
            (base + "?since=", live.CLOSE_BAD_REQUEST, "since"),
            (base + "?since=-1", live.CLOSE_BAD_REQUEST, "negative"),
            (base + "?since=2", live.CLOSE_BAD_REQUEST, "beyond"),
            (base + "?since=" + "9" * 40, live.CLOSE_BAD_REQUEST, "since"),
            (base + "?since=0&since=1", live.CLOSE_BAD_REQUEST, "more than once"),
            (base + "?moves=maybe", live.CLOSE_BAD_REQUEST, "moves"),
            ("/v1/live?moves=2", live.CLOSE_BAD_REQUEST, "moves"),
            ("/v1/live?since=0", live.CLOSE_BAD_REQUEST, "since"),
        ]
        for url, code, words in cases:
            got, reason = await closed_with(client, url)
            assert (got, words in reason) == (code, True), (url, got, reason)
            assert await healthy(client)
        assert api.orchestrator.bus.subscribers == 0
        # since = the last seq is fine: nothing to replay, the tail follows
        async with aconnect_ws(base + "?since=1", client) as ws:
            await subscribed(api.orchestrator.bus, 1)
            await api.orchestrator.add_event(sid, EventType.LEARNING_STEP, {"step": 2})
            assert json.loads(await ws.receive_text(timeout=TIMEOUT))["seq"] == 2


async def test_garbage_from_the_client_is_ignored(database, tmp_path):
    async with live_api(database, tmp_path) as (api, client):
        sid = await seed_session(api, state="completed")
        async with aconnect_ws(f"/v1/sessions/{sid}/live", client) as ws:
            await ws.send_text("garbage")
            await ws.send_text('{"type": "subscribe", "since": "x"}')
            await ws.send_bytes(bytes(range(256)) * 64)
            await ws.send_text("\x00" * 10_000)
            await api.orchestrator.add_event(sid, EventType.LEARNING_STEP, {"step": 1})
            message = json.loads(await ws.receive_text(timeout=TIMEOUT))
            assert message["seq"] == 1 and message["data"] == {"step": 1}
        assert await healthy(client)


async def test_api_keys_header_or_token(database, tmp_path):
    async with live_api(database, tmp_path, api_keys=["another-key", API_KEY]) as (api, client):
        sid = await seed_session(api, state="completed")
        await api.orchestrator.add_event(sid, EventType.LEARNING_STEP, {"step": 1})
        url = f"/v1/sessions/{sid}/live"
        refused = [
            (url, {}),
            (url + "?token=wrong", {}),
            (url + "?token=", {}),
            (url, {"headers": {"Authorization": "Bearer wrong"}}),
            (url, {"headers": {"Authorization": f"Basic {API_KEY}"}}),
            (url + f"?token={API_KEY}&token={API_KEY}", {}),
            ("/v1/live", {}),
            ("/v1/live?token=nope", {}),
            (f"/v1/sessions/{'0' * 32}/live", {}),  # 4401 before 4404: no key, no hint about sessions
        ]
        for target, kwargs in refused:
            code, reason = await closed_with(client, target, **kwargs)
            assert code == live.CLOSE_UNAUTHORIZED, (target, code, reason)
            assert API_KEY not in reason and "wrong" not in reason
            assert await healthy(client)
        async with aconnect_ws(url + f"?token={API_KEY}", client) as ws:
            assert json.loads(await ws.receive_text(timeout=TIMEOUT))["seq"] == 1
        async with aconnect_ws(url, client, headers={"Authorization": f"Bearer {API_KEY}"}) as ws:
            assert json.loads(await ws.receive_text(timeout=TIMEOUT))["seq"] == 1
        async with aconnect_ws("/v1/live?token=another-key", client) as ws:
            await subscribed(api.orchestrator.bus, 1)
            await api.orchestrator.add_event(sid, EventType.LEARNING_STEP, {"step": 2})
            assert json.loads(await ws.receive_text(timeout=TIMEOUT))["seq"] == 2


async def test_shutdown_closes_feeds_with_1001(database, tmp_path):
    async with live_api(database, tmp_path) as (api, client):
        sid = await seed_session(api, state="completed")
        async with aconnect_ws(f"/v1/sessions/{sid}/live", client) as one, aconnect_ws("/v1/live", client) as two:
            await subscribed(api.orchestrator.bus, 2)
            await api.orchestrator.close()  # what the lifespan's shutdown does
            for ws in (one, two):
                with pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive_text(timeout=TIMEOUT)
                assert closed.value.code == live.CLOSE_GOING_AWAY and "shutting down" in closed.value.reason
        code, _ = await closed_with(client, f"/v1/sessions/{sid}/live")  # after it: closed at once
        assert code == live.CLOSE_GOING_AWAY


# -- a real socket: a subscriber that stops reading ------------------------------------------


class SmallWriteBuffer(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with a 1 KiB write buffer (default 64 KiB): a client that
    stops reading blocks the server's sends after kilobytes rather than megabytes."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=1024)


@asynccontextmanager
async def uvicorn_app(database, tmp_path, **settings: Any) -> AsyncIterator[tuple[Any, str]]:
    """The app served by uvicorn in this event loop on a loopback socket with small kernel
    buffers; yields (app, "127.0.0.1:port")."""
    cfg = make_settings(database, tmp_path, **{**FAST, **settings})
    app = create_app(cfg, pool=InlinePool(1), engine_kwargs=database.engine_kwargs)
    async with uvicorn_on_loopback(app, sndbuf=4096, ws=SmallWriteBuffer) as port:
        yield app, f"127.0.0.1:{port}"


def small_socket(address: str) -> socket.socket:
    host, port = address.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_subscriber_that_never_reads_is_closed_4008_and_the_session_goes_on(database, tmp_path):
    """A session with a long history (events stored before it started), then played for real:
    a client replaying it that never reads fills the pipes at once; the session's live events
    then overflow its queue (WS_QUEUE_SIZE=4) and it is closed with 4008, while the session
    plays on to its end. Reconnecting with since=<last seq received> gets the rest."""
    max_games = 8
    async with uvicorn_app(database, tmp_path, ws_queue_size=4) as (app, address):
        orchestrator, bus = app.state.orchestrator, app.state.orchestrator.bus
        config = app.state.settings.session_config(max_games=max_games)
        async with app.state.sessionmaker() as db, db.begin():
            sid = (await repo.create_session(db, config.model_dump(mode="json"), config.seed)).id
        for i in range(80):  # about 80 KB of history: far more than the socket buffers hold
            await orchestrator.add_event(sid, EventType.METRICS_SNAPSHOT, {"history": i, "note": "x" * 1000})
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as http:
            # max_queue=1: the client library stops reading its socket after one message;
            # no compression: the bytes on the wire are the messages themselves
            async with websockets.connect(
                f"ws://{address}/v1/sessions/{sid}/live?moves=true",
                sock=small_socket(address),
                compression=None,
                max_queue=1,
                ping_interval=None,
            ) as slow:
                await orchestrator.continue_session(sid)  # the pending session starts: live events flow

                async def overflowed() -> bool:
                    return bus.overflows >= 1

                await wait_for(overflowed, timeout=240, what="the slow subscriber's overflow")
                received = []
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:  # now read: what was in the pipes, then the close frame
                        received.append(json.loads(await asyncio.wait_for(slow.recv(), TIMEOUT)))
                assert closed.value.rcvd is not None and closed.value.rcvd.code == live.CLOSE_TOO_SLOW
                assert "too slow" in closed.value.rcvd.reason
            seqs = [m["seq"] for m in received if "seq" in m]
            assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < 80  # in order; it fell behind

            async def finished() -> bool:
                return (await http.get(f"/v1/sessions/{sid}")).json()["state"] in FINAL

            await wait_for(finished, timeout=240, what="the session's end")
            detail = (await http.get(f"/v1/sessions/{sid}")).json()
            assert detail["state"] == "completed" and detail["games_done"] == max_games
            assert (await http.get("/healthz")).status_code == 200
            # reconnecting with since = the last seq received gets the rest, without a gap
            async with websockets.connect(f"ws://{address}/v1/sessions/{sid}/live?since={seqs[-1]}") as again:
                rest = []
                while not rest or not final_state(rest[-1]):
                    rest.append(json.loads(await asyncio.wait_for(again.recv(), TIMEOUT)))
            assert [m["seq"] for m in rest] == list(range(seqs[-1] + 1, seqs[-1] + 1 + len(rest)))
            assert sum(m["type"] == EventType.GAME_FINISHED for m in rest) == max_games

            async def unsubscribed() -> bool:
                return bus.subscribers == 0

            await wait_for(unsubscribed, timeout=240, what="the feeds to unsubscribe")


async def test_protocol_garbage_on_a_real_socket_leaves_the_server_serving(database, tmp_path):
    async with uvicorn_app(database, tmp_path) as (app, address):
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as http:
            created = await http.post("/v1/sessions", json={"max_games": 1})
            sid = created.json()["id"]
            # bytes that are no WebSocket frame, after a valid handshake
            async with websockets.connect(f"ws://{address}/v1/sessions/{sid}/live") as ws:
                ws.transport.write(b"\xff\xff\xff\xff not a frame at all \x00\x01")
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
            # a plain HTTP request to the feed, and a half-finished handshake
            assert (await http.get(f"/v1/sessions/{sid}/live")).status_code in (400, 404, 405, 426)
            reader, writer = await asyncio.open_connection(*address.split(":"))
            writer.write(b"GET /v1/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(1000), TIMEOUT)
            writer.close()
            # bad codes over a real socket too
            for url, code in (
                (f"/v1/sessions/{sid}/live?since=x", live.CLOSE_BAD_REQUEST),
                (f"/v1/sessions/{'1' * 32}/live", live.CLOSE_UNKNOWN_SESSION),
            ):
                async with websockets.connect(f"ws://{address}{url}") as ws:
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
                    assert closed.value.rcvd.code == code
            assert (await http.get("/healthz")).status_code == 200
            async with websockets.connect(f"ws://{address}/v1/sessions/{sid}/live") as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["seq"] == 1
