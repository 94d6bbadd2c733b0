"""The FastAPI app factory and its lifespan.

`create_app(settings)` builds the app; nothing runs until its lifespan starts, which opens
the requests' read pool and starts the service's runtime (`service.runtime`: database
migrated to the newest schema, worker pool, orchestrator with its writer task, pool warm-up
and recovery of interrupted sessions, metrics, sinks).
Requests read through that pool of their own; the orchestrator's writer has one connection
that no request can take, and its reads another small pool: readers can make requests
wait (503 after READ_POOL_TIMEOUT_S), never a game wait to be stored.
Shutdown stops the runtime (running sessions are checkpointed and left resumable) and then
disposes of the read pool.

With ENABLE_PROMETHEUS, `GET /metrics` serves prometheus-fastapi-instrumentator's HTTP
metrics and the sessions' metrics (`service.telemetry.SessionMetrics`, fed from the
orchestrator's events) as one text exposition; with API_KEYS set it needs a key unless
METRICS_PUBLIC is true. With ENABLE_WANDB / ENABLE_BRAINTRUST the sessions' events also go
to W&B / Braintrust (`service.telemetry.sinks`), flushed after the orchestrator closes.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from service.api import checkpoints, dashboard, games, health, live, ratings, reports, sessions
from service.api.auth import check_key
from service.api.errors import (
    MAX_BODY_BYTES,
    BodyLimitMiddleware,
    ProblemCORSMiddleware,
    install_error_handlers,
    problem_responses,
)
from service.api.origin import WebGuard
from service.config import Settings, load_settings
from service.runtime import OrchestratorFactory, started
from service.storage import database

log = logging.getLogger(__name__)

READ_POOL_TIMEOUT_S = 10.0
"""How long a request waits for one of the read pool's connections before it answers 503
(with Retry-After). The orchestrator never waits on that pool: it has engines of its own."""


def _version() -> str:
    try:
        return metadata.version("continuous-play")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


def create_app(
    settings: Settings | None = None,
    *,
    pool: Any = None,
    orchestrator_factory: OrchestratorFactory | None = None,
    migrate: bool = True,
    engine_kwargs: dict[str, Any] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over `settings` (default: the environment).

    `pool` is the worker pool the orchestrator drives (default: `runtime.default_pool`,
    the backend WORKER_BACKEND names). `orchestrator_factory` replaces the orchestrator
    class (tests). `migrate=False` leaves the schema alone (the caller migrated it).
    `engine_kwargs` go to every engine (tests: a PostgreSQL schema's search_path).
    """
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        kwargs = engine_kwargs or {}
        engine = database.create_engine(settings.database_url, pool_timeout=READ_POOL_TIMEOUT_S, **kwargs)
        try:
            async with started(
                settings,
                pool=pool,
                orchestrator_factory=orchestrator_factory,
                metrics=app.state.session_metrics,  # served at /metrics since create_app
                migrate=migrate,
                engine_kwargs=kwargs,
            ) as runtime:
                app.state.sessionmaker = database.session_factory(engine)
                app.state.orchestrator = runtime.orchestrator
                app.state.sinks = runtime.sinks
                yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="continuous-play",
        version=_version(),
        description="AlphaZero-style continuous self-play and learning for chess, measured honestly. "
        "Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessionmaker = None
    app.state.orchestrator = None
    app.state.session_metrics = None
    app.state.sinks = []
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,  # CORSMiddleware, its refusals as problem+json
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Content-Disposition"],
        )
    app.add_middleware(WebGuard, settings=settings)  # added last, runs first: Host, Origin, Content-Type
    app.include_router(health.router)
    if settings.enable_prometheus:
        install_metrics(app, settings)
    for module in (sessions, games, checkpoints, ratings, reports, live):
        app.include_router(module.router, prefix="/v1")
    app.include_router(dashboard.router)  # GET / and its files
    return app


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """HTTP metrics of every request (prometheus-fastapi-instrumentator, on a registry of
    this app's own) and the sessions' metrics (fed by the runtime once the lifespan starts
    it), both served at `GET /metrics`."""
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    from service.telemetry import CONTENT_TYPE, SessionMetrics, exposition

    http_registry = CollectorRegistry(auto_describe=True)
    Instrumentator(registry=http_registry, excluded_handlers=["^/metrics$"]).instrument(app)
    session_metrics = SessionMetrics()
    app.state.session_metrics = session_metrics

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics: HTTP requests and every session's self-play, learning and rating",
        description="The Prometheus text format (0.0.4). With API_KEYS set it needs "
        "`Authorization: Bearer <key>` unless METRICS_PUBLIC is true.",
        response_class=PlainTextResponse,
        responses=problem_responses(401),
    )
    async def metrics(request: Request) -> Response:
        if not settings.metrics_public:
            denied = check_key(request)
            if denied is not None:
                raise denied
        return Response(exposition(http_registry, session_metrics.registry), media_type=CONTENT_TYPE)
