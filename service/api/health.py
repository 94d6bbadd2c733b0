"""`/healthz` (the process serves) and `/readyz` (database answers, workers warm)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from sqlalchemy import text

from service.api.errors import PROBLEM_BASE, Problem, problem_responses

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

DB_TIMEOUT_S = 3.0


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
        log.warning("readiness: database check failed: %s", type(exc).__name__)
        return False


@router.get(
    "/readyz",
    summary="Readiness: 200 when the database answers and the worker pool is warm, else 503",
    responses=problem_responses(503),
)
async def readyz(request: Request) -> dict[str, object]:
    orchestrator = getattr(request.app.state, "orchestrator", None)
    checks = {
        "database": "ok" if await _database_ok(request) else "unavailable",
        "workers": "ok" if orchestrator is not None and orchestrator.ready else "not ready",
    }
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        reasons = {"database": "the database does not answer", "workers": "the worker pool is not warm yet"}
        raise Problem(503, "; ".join(reasons[name] for name in failing), title="Service Unavailable",
                      type_=PROBLEM_BASE + "not-ready", checks=checks, headers={"Retry-After": "5"})
    return {"status": "ready", "checks": checks}
