"""/v1/sessions/{id}/report.json and report.html: a session's report, built from the database.

Any session has one, running or finished: the same document `continuous-play run` writes at
its end (scorecard, rating list with intervals, evaluations and SPRT verdicts, losses, the
series the charts draw, the analyzer's verdicts, alerts, manifest).

What a keyless reader can make the service hold stays bounded:
- a build reads aggregates and bounded samples (`service.reports.reads`), never every game;
- its bytes are kept per session until the session changes (`caches.ReportCache`, keyed by
  `reads.report_version`): readers of one version share one build and one copy, and at most
  `caches.REPORT_BUILDS` builds run at once;
- the route opens its own database sessions, for the version and for the build, and closes
  them before it answers: no pooled connection is held while a slow client reads;
- composing the report and rendering the page (plotly.js inlined, about 5 MB) run in a
  thread, so the event loop serves other requests meanwhile;
- the body goes out in chunks of the one kept copy: a slow reader holds a chunk in its
  connection's buffer, not a copy of the page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from service.api.caches import ReportCache
from service.api.deps import SessionId
from service.api.errors import problem_responses
from service.config import Settings
from service.reports.files import compose, load_session
from service.reports.html import CSP, render_html
from service.reports.reads import report_version
from service.sessions.errors import SessionNotFound

router = APIRouter(prefix="/sessions", tags=["reports"])

PROBLEMS = problem_responses(404, 422)
CHUNK = 64 * 1024
"""Bytes per body message: a slow reader's connection buffers about this much of the page."""
HTML_HEADERS = {  # the page runs its own scripts only, in no frame, never sniffed as something else
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP + "; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def build_json(stored: Any, settings: Settings) -> bytes:
    """report.json's bytes (as JSONResponse writes them). Pure CPU: run in a thread."""
    return json.dumps(compose(stored, settings), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def build_html(report_json: bytes) -> bytes:
    """report.html's bytes from report.json's. Pure CPU: run in a thread."""
    return render_html(json.loads(report_json)).encode()


async def report_bytes(request: Request, session_id: str, kind: str) -> bytes:
    """The session's report.json or report.html, from the app's cache or built once for all
    the readers of the session's current version."""
    app = request.app
    async with app.state.sessionmaker() as db:
        version = await report_version(db, session_id)  # read first: what is built is at least as new
    if version is None:
        raise SessionNotFound("session", session_id)
    cache = ReportCache.for_app(app)

    async def build_report_json() -> bytes:
        async with app.state.sessionmaker() as db:
            stored = await load_session(db, session_id)
        if stored is None:  # deleted meanwhile
            raise SessionNotFound("session", session_id)
        return await asyncio.to_thread(build_json, stored, app.state.settings)

    body = await cache.get_or_build((session_id, "json"), version, build_report_json)
    if kind == "html":
        report_json = body
        body = await cache.get_or_build(
            (session_id, "html"), version, lambda: asyncio.to_thread(build_html, report_json)
        )
    return body


def send(body: bytes, media_type: str, headers: dict[str, str]) -> StreamingResponse:
    """`body` in CHUNK-sized views of the one copy (flow control paces each chunk)."""

    async def chunks() -> AsyncIterator[memoryview]:
        view = memoryview(body)
        for start in range(0, len(view), CHUNK):
            yield view[start : start + CHUNK]

    return StreamingResponse(chunks(), media_type=media_type, headers={**headers, "Content-Length": str(len(body))})


@router.get(
    "/{session_id}/report.json",
    response_class=JSONResponse,
    responses={
        **PROBLEMS,
        200: {
            "description": "The report.json document (format `continuous-play-report/1`), as `continuous-play "
            "run` writes it at its end",
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        },
    },
    summary="A session's report as JSON: scorecard, ratings with intervals, curves, verdicts, alerts, manifest",
)
async def report_json(request: Request, session_id: SessionId) -> StreamingResponse:
    body = await report_bytes(request, session_id, "json")
    return send(body, "application/json", {"Cache-Control": "no-store"})


@router.get(
    "/{session_id}/report.html",
    response_class=HTMLResponse,
    responses={
        **PROBLEMS,
        200: {
            "description": "One self-contained HTML page (charts included; opens offline)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    },
    summary="A session's report as one self-contained HTML page",
)
async def report_html(request: Request, session_id: SessionId) -> StreamingResponse:
    body = await report_bytes(request, session_id, "html")
    return send(body, "text/html; charset=utf-8", HTML_HEADERS)
