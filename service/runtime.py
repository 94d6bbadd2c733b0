"""The one start-up path of `serve` (the app's lifespan) and `run` (the headless session).

`started(settings)` builds, in order: the database engines (the writer's own one-connection
engine, so no reader can make a game wait to be stored, and the orchestrator's small read
pool), the migrations, the worker pool, the orchestrator, the sessions' Prometheus metrics
(ENABLE_PROMETHEUS) and the W&B / Braintrust sinks (ENABLE_WANDB / ENABLE_BRAINTRUST), then
starts the orchestrator, and yields them as one `Runtime`. It closes them in reverse: the
orchestrator first (its sessions checkpoint and stay resumable, its pool shuts down; its last
events still reach the metrics and sinks), then the sinks are flushed, then the engines are
disposed of. What only one caller needs stays with it: the app's HTTP read pool and caches
(app.py), the headless run's progress, metrics port, Ctrl-C and report files (headless.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .config import Settings
from .storage import database
from .telemetry import SessionMetrics
from .telemetry.sink import Sink
from .telemetry.sinks import attach_sinks, close_sinks

if TYPE_CHECKING:
    from .sessions.orchestrator import Orchestrator
    from .sessions.pool import Pool

OrchestratorFactory = Callable[[Settings, Any, Any], Any]
"""(settings, sessionmaker, pool) -> orchestrator; the real one unless a test passes its own."""


def default_pool(settings: Settings) -> Pool:
    """The worker pool WORKER_BACKEND names, WORKERS big, TORCH_THREADS per worker."""
    from .sessions.pool import make_pool

    return make_pool(
        settings.worker_backend,
        settings.resolved_workers(),
        settings.resolved_torch_threads(),
        ray_address=settings.ray_address,
        device=settings.device,
    )


@dataclass
class Runtime:
    """The started parts: the orchestrator, its read sessions (the caller's reads too), its
    metrics (None without ENABLE_PROMETHEUS) and its sinks."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    orchestrator: Orchestrator
    metrics: SessionMetrics | None
    sinks: list[Sink]
    _stopped: bool = False

    async def stop(self, timeout: float | None = None) -> None:
        """Close the orchestrator (`timeout`: how long running sessions get to checkpoint;
        default the orchestrator's own), then flush the sinks after its last events. Once:
        a caller that reads the stored session afterwards (headless's report) stops first,
        and leaving `started` does nothing more here."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await (self.orchestrator.close() if timeout is None else self.orchestrator.close(timeout=timeout))
        finally:
            await close_sinks(self.sinks)  # finishes the sessions' W&B runs, flushes Braintrust


@asynccontextmanager
async def started(
    settings: Settings,
    *,
    pool: Any = None,
    orchestrator_factory: OrchestratorFactory | None = None,
    metrics: SessionMetrics | None = None,
    recover: bool = True,
    migrate: bool = True,
    engine_kwargs: dict[str, Any] | None = None,
) -> AsyncIterator[Runtime]:
    """The runtime over `settings`, started; stopped and its engines disposed of on exit.

    `pool` is the worker pool the orchestrator drives (default: `default_pool(settings)`).
    `orchestrator_factory` replaces the orchestrator (tests; it gets `pool` as given).
    `metrics` are the sessions' metrics to feed (the app's, served since `create_app`);
    default: new ones with ENABLE_PROMETHEUS, none without.
    `recover=False` leaves interrupted sessions alone (a headless run continues only its own).
    `migrate=False` leaves the schema alone (the caller migrated it). `engine_kwargs` go to
    every engine (tests: a PostgreSQL schema's search_path).
    """
    kwargs = engine_kwargs or {}
    write_engine = database.create_engine(settings.database_url, pool_size=1, max_overflow=0, **kwargs)
    read_engine = database.create_engine(settings.database_url, pool_size=2, max_overflow=4, **kwargs)
    try:
        if migrate:
            await database.upgrade_engine(read_engine)
        sessionmaker = database.session_factory(read_engine)
        if orchestrator_factory is not None:
            orchestrator = orchestrator_factory(settings, sessionmaker, pool)
        else:
            from .sessions.orchestrator import Orchestrator  # torch comes with it: not for create_app

            orchestrator = Orchestrator(
                settings,
                sessionmaker,
                pool if pool is not None else default_pool(settings),
                recover=recover,
                writer_sessionmaker=database.session_factory(write_engine),
            )
        if metrics is None and settings.enable_prometheus:
            metrics = SessionMetrics()
        if metrics is not None:  # before start: recovery reports events
            metrics.attach(orchestrator)
        runtime = Runtime(settings, sessionmaker, orchestrator, metrics, attach_sinks(settings, orchestrator))
        try:
            await orchestrator.start()
            yield runtime
        finally:
            await runtime.stop()
    finally:
        for engine in (write_engine, read_engine):
            await engine.dispose()
