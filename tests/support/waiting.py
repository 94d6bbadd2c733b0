"""Waiting until a condition holds: the one polling loop of the tests.

`wait_for` (on the event loop) and `wait_for_sync` (blocking) call `predicate` every
`interval` seconds until it returns something truthy, and return that value. `predicate`
may be a plain function or a coroutine function (its result is awaited when it is
awaitable). After `timeout` seconds they fail with an AssertionError that names `what` was
awaited, and `detail()` where given (the last state seen, a server's output...). A predicate
may fail at once by raising (pytest.fail, an assertion) when waiting on cannot help.

Timeouts here are generous ceilings for a loaded 2-core machine, never timed assertions.

`wait_for_session` polls GET /v1/sessions/{id} through an httpx AsyncClient until the body
satisfies a predicate.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import httpx


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 120.0,
    interval: float = 0.05,
    what: str = "the condition",
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll `predicate()` (sync or async) on the event loop until it is truthy; its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(_timed_out(timeout, what, detail))
        await asyncio.sleep(interval)


def wait_for_sync(
    predicate: Callable[[], Any],
    timeout: float = 120.0,
    interval: float = 0.05,
    what: str = "the condition",
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll `predicate()` (blocking) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what, detail))
        time.sleep(interval)


def _timed_out(timeout: float, what: str, detail: Callable[[], str] | None) -> str:
    message = f"timed out after {timeout:g} s waiting for {what}"
    return f"{message}: {detail()}" if detail is not None else message


async def wait_for_session(
    client: httpx.AsyncClient,
    session_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
    interval: float = 0.1,
    what: str | None = None,
) -> dict[str, Any]:
    """Poll GET /v1/sessions/{session_id} until `predicate(body)`; the body. A timeout names
    the session's last state and game count."""
    last: dict[str, Any] = {}

    async def satisfied() -> dict[str, Any] | None:
        r = await client.get(f"/v1/sessions/{session_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        last.clear()
        last.update(body)
        return body if predicate(body) else None

    return await wait_for(
        satisfied,
        timeout=timeout,
        interval=interval,
        what=what or f"session {session_id}",
        detail=lambda: f"last: {last.get('state')} {last.get('games_done')} games",
    )
