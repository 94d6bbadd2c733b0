"""The live feed: `WS /v1/sessions/{id}/live?since=SEQ&moves=BOOL` and `WS /v1/live?moves=BOOL`.

Every message is one JSON object (DESIGN.md "Live events"):
`{"seq": 17, "session_id": "...", "type": "game.finished", "ts": "2026-01-01T12:00:00.123456Z", "data": {...}}`.
`seq` grows by one per session; `game.move` messages (one featured game per session, at most
about 4 a second, only with `?moves=true`) carry no `seq` and are never stored.

Per session: the events with seq > `since` (default 0: all of them) are replayed from the
database, then the live tail follows with no gap and no duplicate across the switch (the
handler subscribes to the bus first, then replays from the store page by page, then drains
the subscription, dropping the seqs it already sent). `WS /v1/live` is the live tail of every
session, without replay (`since` is refused there): a client that sees a gap in a session's
seqs fetches it from that session's feed.

Auth: with API_KEYS set, `Authorization: Bearer <key>` or `?token=<key>` (compared in
constant time, as every other route); without keys the feed is open.

The server accepts the WebSocket, then closes it with one of the codes below when something
is wrong; the close reason names the problem. Anything the client sends (text or binary) is
read and ignored: the feed is one-way and a client's pings or garbage change nothing.
Messages over the server's size limit are refused by the WebSocket server itself (1009).
"""

from __future__ import annotations

import asyncio
import logging
import re

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from service.api.auth import bearer_token, key_matches
from service.sessions.events import OVERFLOW, Subscription, SubscriptionEnded, encode
from service.storage import repositories as repo

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

CLOSE_GOING_AWAY = 1001
"""The service is shutting down (its orchestrator closed): reconnect later with `since`.
(uvicorn itself closes sockets still open at SIGTERM with 1012, before the service's
shutdown reaches the feed; treat 1001 and 1012 alike.)"""
CLOSE_INTERNAL_ERROR = 1011
"""The server failed while serving the feed (e.g. the database went away): reconnect with `since`."""
CLOSE_BAD_REQUEST = 4400
"""A bad query: `since` not an integer, negative, or beyond the session's last seq; `since`
on /v1/live; `moves` not a boolean (true/false, 1/0, yes/no, on/off); a parameter given twice."""
CLOSE_UNAUTHORIZED = 4401
"""API_KEYS is set and the key is missing (no `Authorization: Bearer` header, no `?token=`) or not valid."""
CLOSE_UNKNOWN_SESSION = 4404
"""No session with that id."""
CLOSE_TOO_SLOW = 4008
"""The client read too slowly: more than WS_QUEUE_SIZE messages waited for it. Reconnect with
`?since=<last seq received>` to get what was missed."""

REPLAY_PAGE = 200
"""Stored events read per database query while replaying."""
CLOSE_TIMEOUT_S = 10.0
"""How long a close waits for a client that does not read; then the handler gives up on it."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9]{1,30}")


class Refused(Exception):
    """The feed cannot be served: close with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _authorize(websocket: WebSocket) -> None:
    """Nothing when API_KEYS is empty or the client gives a valid key, else Refused(4401)."""
    keys = websocket.app.state.settings.api_keys
    if not keys:
        return
    token = bearer_token(websocket)  # the header, as for every other route
    if token is None:
        given = websocket.query_params.getlist("token")
        if len(given) > 1:
            raise Refused(CLOSE_UNAUTHORIZED, "token given more than once")
        if given and given[0]:
            # the query string is percent-decoded UTF-8; key_matches expects a header's latin-1 text
            token = given[0].encode("utf-8").decode("latin-1")
    if token is None:
        raise Refused(CLOSE_UNAUTHORIZED, "missing key: send 'Authorization: Bearer <key>' or ?token=<key>")
    if not key_matches(token, keys):
        raise Refused(CLOSE_UNAUTHORIZED, "the key is not valid")


def _single(websocket: WebSocket, name: str) -> str | None:
    values = websocket.query_params.getlist(name)
    if len(values) > 1:
        raise Refused(CLOSE_BAD_REQUEST, f"{name} given more than once")
    return values[0] if values else None


def _moves(websocket: WebSocket) -> bool:
    value = _single(websocket, "moves")
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Refused(CLOSE_BAD_REQUEST, "moves must be true or false")


def _since(websocket: WebSocket) -> int:
    value = _single(websocket, "since")
    if value is None:
        return 0
    text = value.strip()
    if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
        raise Refused(CLOSE_BAD_REQUEST, "since must not be negative")
    if not _DIGITS.fullmatch(text):
        raise Refused(CLOSE_BAD_REQUEST, "since must be a non-negative integer (a seq)")
    return int(text)


def _bus(websocket: WebSocket):
    bus = getattr(websocket.app.state.orchestrator, "bus", None)
    if bus is None:
        raise Refused(CLOSE_INTERNAL_ERROR, "the live feed is not available")
    return bus


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with `code`; a client that is gone, or does not read within CLOSE_TIMEOUT_S, is left."""
    try:
        await asyncio.wait_for(websocket.close(code, reason[:120]), CLOSE_TIMEOUT_S)
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _ignore_client(websocket: WebSocket) -> None:
    """Read (and drop) what the client sends until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _send_replay_then_live(websocket: WebSocket, sub: Subscription, session_id: str | None, since: int) -> None:
    """Per session: stored events after `since`, then the subscription's messages without the
    seqs already sent. All sessions (`session_id` None): the subscription's messages."""
    last = since
    if session_id is not None:
        sessionmaker = websocket.app.state.sessionmaker
        while True:
            async with sessionmaker() as db:  # one short read per page: no transaction held while sending
                rows = await repo.events_since(db, session_id, last, REPLAY_PAGE)
            for row in rows:
                await websocket.send_text(encode(row.to_message()))
                last = row.seq
            if len(rows) < REPLAY_PAGE:
                break
    while True:
        item = await sub.get()  # SubscriptionEnded when it overflowed or the bus closed
        seq = item.seq
        if session_id is not None and seq is not None:
            if seq <= last:
                continue  # replayed already
            last = seq
        await websocket.send_text(item.text)


async def _serve(websocket: WebSocket, sub: Subscription, session_id: str | None, since: int) -> None:
    """Send the feed until the client leaves or the subscription ends (then close 4008/1001)."""
    sender = asyncio.create_task(_send_replay_then_live(websocket, sub, session_id, since))
    receiver = asyncio.create_task(_ignore_client(websocket))
    ended = asyncio.create_task(sub.ended.wait())
    try:
        done, _ = await asyncio.wait({sender, receiver, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver, ended):
            task.cancel()
        await asyncio.gather(sender, receiver, ended, return_exceptions=True)
        reason = sub.reason
        sub.close()
    if receiver in done:
        return  # the client left (or can no longer be read from)
    if sender in done and not sender.cancelled():
        error = sender.exception()
        if isinstance(error, (WebSocketDisconnect, OSError)):
            return  # the client is gone
        if error is not None and not isinstance(error, SubscriptionEnded):
            log.error("live feed failed", exc_info=error)
            await _close(websocket, CLOSE_INTERNAL_ERROR, f"server error: {type(error).__name__}")
            return
    if reason == OVERFLOW:
        await _close(
            websocket,
            CLOSE_TOO_SLOW,
            f"subscriber too slow: more than {sub.queue_size} messages waited; reconnect with ?since=<last seq>",
        )
    elif reason is not None:
        await _close(websocket, CLOSE_GOING_AWAY, "server shutting down")


@router.websocket("/sessions/{session_id}/live", name="session_live")
async def session_live(websocket: WebSocket, session_id: str) -> None:
    """One session's events: stored ones with seq > `since`, then the live tail."""
    await websocket.accept()
    try:
        _authorize(websocket)
        moves = _moves(websocket)
        since = _since(websocket)
        if not _SESSION_ID.fullmatch(session_id):
            raise Refused(CLOSE_UNKNOWN_SESSION, "unknown session")
        async with websocket.app.state.sessionmaker() as db:
            row = await repo.get_session(db, session_id)
        if row is None:
            raise Refused(CLOSE_UNKNOWN_SESSION, f"unknown session {session_id}")
        if since > row.last_seq:
            raise Refused(CLOSE_BAD_REQUEST, f"since={since} is beyond the session's last seq {row.last_seq}")
        bus = _bus(websocket)
    except Refused as refused:
        await _close(websocket, refused.code, refused.reason)
        return
    # subscribe FIRST, then replay: an event committed meanwhile is in the queue or the store
    sub = bus.subscribe(session_id, queue_size=websocket.app.state.settings.ws_queue_size, moves=moves)
    await _serve(websocket, sub, session_id, since)


@router.websocket("/live", name="all_live")
async def all_live(websocket: WebSocket) -> None:
    """Every session's events as they happen (no replay: use a session's feed with `since`)."""
    await websocket.accept()
    try:
        _authorize(websocket)
        moves = _moves(websocket)
        if websocket.query_params.getlist("since"):
            raise Refused(CLOSE_BAD_REQUEST, "since is per session: use /v1/sessions/{id}/live?since=")
        bus = _bus(websocket)
    except Refused as refused:
        await _close(websocket, refused.code, refused.reason)
        return
    sub = bus.subscribe(None, queue_size=websocket.app.state.settings.ws_queue_size, moves=moves)
    await _serve(websocket, sub, None, 0)
