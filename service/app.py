"""The FastAPI app factory and its lifespan (database, worker pool, orchestrator).

`create_app(settings)` builds the app; nothing runs until its lifespan starts, which
opens the database (migrating it to the newest schema), builds the orchestrator over the
worker pool and starts it (writer task, pool warm-up, recovery of interrupted sessions).
Shutdown closes the orchestrator (running sessions are checkpointed and left resumable)
and then disposes of the engine.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.api import checkpoints, games, health, ratings, sessions
from service.api.errors import MAX_BODY_BYTES, BodyLimitMiddleware, install_error_handlers
from service.config import Settings, load_settings

log = logging.getLogger(__name__)

OrchestratorFactory = Callable[[Settings, Any, Any], Any]
"""(settings, sessionmaker, pool) -> orchestrator; the real one unless a test passes its own."""


def _version() -> str:
    try:
        return metadata.version("continuous-play")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


def default_pool(settings: Settings) -> Any:
    """The worker pool WORKER_BACKEND names, WORKERS big, TORCH_THREADS per worker."""
    from service.sessions.pool import make_pool

    return make_pool(settings.worker_backend, settings.resolved_workers(), settings.resolved_torch_threads())


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

    `pool` is the worker pool the orchestrator drives (default: `make_pool(settings)`,
    the backend WORKER_BACKEND names). `orchestrator_factory` replaces the orchestrator
    class (tests). `migrate=False` leaves the schema alone (the caller migrated it).
    `engine_kwargs` go to the engine (tests: a PostgreSQL schema's search_path).
    """
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.storage import database

        engine = database.create_engine(settings.database_url, **(engine_kwargs or {}))
        try:
            if migrate:
                await database.upgrade_engine(engine)
            sessionmaker = database.session_factory(engine)
            if orchestrator_factory is not None:
                orchestrator = orchestrator_factory(settings, sessionmaker, pool)
            else:
                from service.sessions.orchestrator import Orchestrator

                workers = pool if pool is not None else default_pool(settings)
                orchestrator = Orchestrator(settings, sessionmaker, workers)
            app.state.sessionmaker = sessionmaker
            app.state.orchestrator = orchestrator
            try:
                await orchestrator.start()
            except BaseException:
                await orchestrator.close()
                raise
            try:
                yield
            finally:
                await orchestrator.close()
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
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Content-Disposition"],
        )
    app.include_router(health.router)
    for module in (sessions, games, checkpoints, ratings):
        app.include_router(module.router, prefix="/v1")
    return app
