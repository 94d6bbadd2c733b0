"""`/healthz` (the process serves) and `/readyz` (database answers, workers warm).

`/readyz` is 503 while the database is unreachable: either its own `SELECT 1` fails, or the
orchestrator's writer is holding writes because the database went away (`database_outage`:
since when, how long, the last error, how many writes wait, the bound after which running
sessions are stopped). The problem's `checks` name the failing check, `database_outage`
gives those figures (its `error`, the driver's text, only to a caller with a key: `_shown`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from service.api.auth import check_key
from service.api.errors import PROBLEM_BASE, Problem, problem_responses

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

DB_TIMEOUT_S = 3.0
HIDDEN_ERROR = "not shown: the server log has it"
"""The outage's `error` as a caller without a key reads it: driver text names hosts, users,
SQL and paths."""


def _shown(request: Request, outage: dict[str, Any]) -> dict[str, Any]:
    """`outage` with its driver error only for a caller with a valid key. Without API_KEYS
    there is no such caller: the service is then on loopback, where any local program (and
    any web page a browser there shows, as far as CORS lets it) is a caller without a key,
    so it never shows there either (DESIGN "Auth"); the orchestrator logs the error."""
    keys = request.app.state.settings.api_keys
    if keys and check_key(request) is None:
        return outage
    return {**outage, "error": HIDDEN_ERROR}


@router.get("/healthz", summary="Liveness: 200 while the process serves")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database_ok(request: Request) -> bool:
    maker = getattr(request.app.state, "sessionmaker", None)
    if maker is None:
        return False
    try:
        async with maker() as db:
            await asyncio.wait_for(db.execute(text("SELECT 1")), DB_TIMEOUT_S)
        return True
    except Exception as exc:  # any failure means not ready; the reason goes to the log only
        log.warning("readiness: database check failed: %s: %s", type(exc).__name__, exc)
        return False


@router.get(
    "/readyz",
    summary="Readiness: 200 when the database answers and the worker pool is warm, else 503",
    responses=problem_responses(503),
)
async def readyz(request: Request) -> dict[str, object]:
    orchestrator = getattr(request.app.state, "orchestrator", None)
    outage = getattr(orchestrator, "database_outage", None) if orchestrator is not None else None
    database_ok = outage is None and await _database_ok(request)
    checks = {
        "database": "ok" if database_ok else "unavailable",
        "workers": "ok" if orchestrator is not None and orchestrator.ready else "not ready",
    }
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        database = "the database does not answer"
        if outage is not None:
            database += (
                f" (for {outage['seconds']:.0f} s: {outage['held_writes']} writes held in order, "
                "finished games are kept until it is back"
                + (
                    f"; running sessions were stopped past the limit of {outage['limit_s']:g} s"
                    if outage["limit_passed"]
                    else ""
                )
                + ")"
            )
        reasons = {"database": database, "workers": "the worker pool is not warm yet"}
        extra = {"database_outage": _shown(request, outage)} if outage is not None else {}
        raise Problem(
            503,
            "; ".join(reasons[name] for name in failing),
            title="Service Unavailable",
            type_=PROBLEM_BASE + "not-ready",
            checks=checks,
            headers={"Retry-After": "5"},
            **extra,
        )
    return {"status": "ready", "checks": checks}
