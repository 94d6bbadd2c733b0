"""/v1/sessions/{id}/report.json and report.html: a session's report, built from the database.

Any session has one, running or finished: the same document `continuous-play run` writes at
its end (scorecard, rating list with intervals, evaluations and SPRT verdicts, losses, the
series the charts draw, the analyzer's verdicts, alerts, manifest). The database reads are
async; decoding the games for the analyzer and rendering the page (plotly.js inlined, about
5 MB) run in a worker thread, so the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from service.api.deps import Db, SessionId, SettingsDep
from service.api.errors import problem_responses
from service.reports.files import session_report
from service.reports.html import CSP, render_html
from service.sessions.lifecycle import SessionNotFound

router = APIRouter(prefix="/sessions", tags=["reports"])

PROBLEMS = problem_responses(404, 422)


async def _report(db, settings, session_id: str) -> dict[str, Any]:
    report = await session_report(db, settings, session_id)
    if report is None:
        raise SessionNotFound("session", session_id)
    return report


@router.get(
    "/{session_id}/report.json",
    response_class=JSONResponse,
    responses={
        **PROBLEMS,
        200: {"description": "The report.json document (format `continuous-play-report/1`), as `continuous-play "
                             "run` writes it at its end",
              "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}},
    },
    summary="A session's report as JSON: scorecard, ratings with intervals, curves, verdicts, alerts, manifest",
)
async def report_json(session_id: SessionId, db: Db, settings: SettingsDep) -> JSONResponse:
    report = await _report(db, settings, session_id)
    return JSONResponse(report, headers={"Cache-Control": "no-store"})


@router.get(
    "/{session_id}/report.html",
    response_class=HTMLResponse,
    responses={**PROBLEMS, 200: {"description": "One self-contained HTML page (charts included; opens offline)",
                                 "content": {"text/html": {"schema": {"type": "string"}}}}},
    summary="A session's report as one self-contained HTML page",
)
async def report_html(session_id: SessionId, db: Db, settings: SettingsDep) -> HTMLResponse:
    report = await _report(db, settings, session_id)
    page = await run_in_threadpool(render_html, report)
    return HTMLResponse(page, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": CSP + "; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
    })
