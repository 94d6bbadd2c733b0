"""The live event bus: the orchestrator publishes, WebSocket clients subscribe.

Pure asyncio, no FastAPI. `EventBus.publish(message)` hands a message (the WebSocket form
of DESIGN.md "Live events": `{"seq", "session_id", "type", "ts", "data"}`; `game.move`
has no `seq`) to every matching subscription without ever waiting: each subscription owns
a bounded `asyncio.Queue` (`WS_QUEUE_SIZE`), and a subscription whose queue is full when a
message arrives is *overflowed*: it is dropped from the bus at once, its queue emptied and
`ended` set, so the client's handler closes it (4008) and the client reconnects with
`?since=`. A slow subscriber therefore costs the publisher one failed `put_nowait`, never
a wait: it can't slow a session or the database writer.

Matching: a subscription names one session (or None: every session); `game.move` messages
go only to subscriptions made with `moves=True`. Messages are JSON-encoded once per
publish (`LiveMessage.text`), whatever the number of subscribers.

`close()` (the service shutting down) ends every subscription with reason `shutdown`;
a subscription made after it is ended from the start.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..event_types import EventType

OVERFLOW = "overflow"
"""Reason of a subscription whose queue was full when a message arrived (client too slow)."""
SHUTDOWN = "shutdown"
"""Reason of a subscription ended because the bus closed (the service is shutting down)."""

DEFAULT_QUEUE_SIZE = 1000


def encode(message: dict[str, Any]) -> str:
    """A message as the JSON text a WebSocket client receives."""
    return json.dumps(message, separators=(",", ":"), default=str)


class LiveMessage:
    """One published message, shared by every subscription it goes to; `text` is its JSON,
    encoded on first use and then reused."""

    __slots__ = ("message", "_text")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._text: str | None = None

    @property
    def seq(self) -> int | None:
        """The session's event number; None for unnumbered messages (`game.move`)."""
        return self.message.get("seq")

    @property
    def session_id(self) -> str | None:
        return self.message.get("session_id")

    @property
    def type(self) -> str | None:
        return self.message.get("type")

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = encode(self.message)
        return self._text

    def __repr__(self) -> str:
        return f"LiveMessage({self.message!r})"


class SubscriptionEnded(Exception):
    """Raised by `Subscription.get` once the subscription has ended; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_END = object()  # put in an ended subscription's (emptied) queue to wake its reader


class Subscription:
    """A bounded queue of the messages for one client. Read with `await get()`; `ended` is
    set (and `reason` given) when it overflowed or the bus closed; `close()` unsubscribes."""

    def __init__(self, bus: "EventBus", session_id: str | None, moves: bool, queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.bus = bus
        self.session_id = session_id
        self.moves = moves
        self.queue_size = queue_size
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.ended = asyncio.Event()
        self.reason: str | None = None
        self.delivered = 0  # messages put in the queue

    @property
    def overflowed(self) -> bool:
        return self.reason == OVERFLOW

    def offer(self, item: LiveMessage) -> bool:
        """Queue `item` without waiting; a full queue ends the subscription (OVERFLOW)."""
        if self.reason is not None:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.end(OVERFLOW)
            return False
        self.delivered += 1
        return True

    def end(self, reason: str) -> None:
        """End it: unsubscribe, drop what is queued, wake the reader (idempotent)."""
        if self.reason is not None:
            return
        self.reason = reason
        self.bus._remove(self)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_END)
        self.ended.set()

    async def get(self) -> LiveMessage:
        """The next message; SubscriptionEnded once the subscription has ended."""
        item = await self.queue.get()
        if item is _END:
            self.queue.put_nowait(_END)  # any later get ends too
            raise SubscriptionEnded(self.reason or SHUTDOWN)
        return item

    def get_nowait(self) -> LiveMessage | None:
        """The next queued message, or None when none is queued; SubscriptionEnded once ended."""
        try:
            item = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if item is _END:
            self.queue.put_nowait(_END)
            raise SubscriptionEnded(self.reason or SHUTDOWN)
        return item

    def close(self) -> None:
        """Unsubscribe (the client left); nothing more is queued."""
        if self.reason is None:
            self.reason = "closed"
            self.bus._remove(self)
            self.ended.set()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EventBus:
    """Fan-out of live messages to bounded per-client queues (see the module docstring)."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._by_session: dict[str | None, set[Subscription]] = {}
        self.closed = False
        self.published = 0  # messages published
        self.overflows = 0  # subscriptions ended because their queue was full

    # -- subscribers ---------------------------------------------------------------------
    def subscribe(
        self, session_id: str | None = None, *, queue_size: int | None = None, moves: bool = False
    ) -> Subscription:
        """A new subscription to one session's messages (None: every session's);
        `game.move` only with `moves=True`. After `close()` it is ended at once."""
        sub = Subscription(self, session_id, moves, queue_size or self.queue_size)
        if self.closed:
            sub.reason = SHUTDOWN
            sub.queue.put_nowait(_END)
            sub.ended.set()
            return sub
        self._by_session.setdefault(session_id, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        subs = self._by_session.get(sub.session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_session[sub.session_id]
        if sub.reason == OVERFLOW:
            self.overflows += 1

    @property
    def subscribers(self) -> int:
        """Subscriptions currently receiving messages."""
        return sum(len(s) for s in self._by_session.values())

    # -- publishing ----------------------------------------------------------------------
    def publish(self, message: dict[str, Any]) -> int:
        """Offer `message` to every matching subscription, never waiting; returns how many
        queued it. A subscription whose queue is full is ended (OVERFLOW) instead."""
        self.published += 1
        if self.closed:
            return 0
        targets = list(self._by_session.get(message.get("session_id"), ()))
        targets.extend(self._by_session.get(None, ()))
        if not targets:
            return 0
        item = LiveMessage(message)
        move = message.get("type") == EventType.GAME_MOVE
        queued = 0
        for sub in targets:
            if move and not sub.moves:
                continue
            queued += sub.offer(item)
        return queued

    def close(self) -> None:
        """End every subscription (reason SHUTDOWN); later ones end at once."""
        self.closed = True
        for subs in list(self._by_session.values()):
            for sub in list(subs):
                sub.end(SHUTDOWN)
        self._by_session.clear()
