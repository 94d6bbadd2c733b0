"""One session without the API: the same orchestrator, worker pool and database as
`serve`, so a headless session is stored, resumable (`run --resume ID`) and visible to
the API; at its end its files are written under `REPORT_DIR/<session_id>/`.

With ENABLE_PROMETHEUS the session's metrics (DESIGN.md "Prometheus names") are served on
http://127.0.0.1:PROMETHEUS_PORT/ while it runs; a port already taken is a warning on
stderr, not a failure. With ENABLE_WANDB / ENABLE_BRAINTRUST its events also go to W&B /
Braintrust (`service.telemetry.sinks`; WANDB_MODE=offline needs no network).

Ctrl-C asks the session to stop (it checkpoints, becomes `stopped`, and the report is
written); a second Ctrl-C stops waiting: the worker is shut down and the report is
written from what was stored.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any, Callable

from ..config import SessionConfig, Settings
from ..event_types import EventType
from ..lifecycle import FINAL
from ..reports.files import write_session_files
from ..storage.database import create_engine, session_factory, upgrade_engine
from ..telemetry import SessionMetrics, serve
from ..telemetry.sinks import attach_sinks, close_sinks
from .orchestrator import Orchestrator
from .pool import make_pool

OnEvent = Callable[[str, dict[str, Any]], None]


def default_threads(settings: Settings) -> int:
    """A headless run is the only session: TORCH_THREADS, else every core."""
    return settings.torch_threads or max(1, os.cpu_count() or 1)


async def run_session(
    settings: Settings,
    config: SessionConfig | None = None,
    *,
    resume_id: str | None = None,
    on_event: OnEvent = lambda kind, data: None,
) -> tuple[str, dict[str, Any]]:
    """Run a new session (or continue `resume_id`) to its end; returns (id, report)."""
    threads = default_threads(settings)
    settings = settings.model_copy(update={"max_concurrent_sessions": 1, "torch_threads": threads})
    engine = create_engine(settings.database_url)
    await upgrade_engine(engine)
    sessionmaker = session_factory(engine)
    pool = make_pool(settings.worker_backend, 1, threads, ray_address=settings.ray_address)
    orchestrator = Orchestrator(settings, sessionmaker, pool, recover=False)
    done = asyncio.Event()
    current: dict[str, str] = {}

    def listener(session_id: str, kind: str, data: dict[str, Any]) -> None:
        if session_id != current.get("id"):
            return
        if kind == EventType.GAME_FINISHED:  # games.pgn grows as games finish; rewritten whole at the end
            out = Path(settings.report_dir) / session_id
            out.mkdir(parents=True, exist_ok=True)
            with (out / "games.pgn").open("a") as f:
                f.write(data["pgn"])
        on_event(kind, data)
        if kind == EventType.SESSION_STATE and data["state"] in FINAL:
            done.set()

    stop_metrics = None
    if settings.enable_prometheus:  # first: on_event sees metrics that include its event
        metrics = SessionMetrics()
        metrics.attach(orchestrator)
        stop_metrics = serve(settings.prometheus_port, metrics.registry)
    sinks = attach_sinks(settings, orchestrator)  # ENABLE_WANDB / ENABLE_BRAINTRUST
    orchestrator.listeners.append(listener)
    loop = asyncio.get_running_loop()
    interrupts = 0

    def interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and "id" in current:
            on_event("stopping", {})
            loop.create_task(orchestrator.stop(current["id"]))
        else:
            done.set()

    try:
        await orchestrator.start()
    except BaseException:
        if stop_metrics is not None:
            stop_metrics()
        await close_sinks(sinks)
        raise
    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        if resume_id is not None:
            current["id"] = resume_id
            try:
                await orchestrator.continue_session(resume_id)
            except Exception:
                current.pop("id")
                raise
        else:
            assert config is not None, "a new session needs its config"
            current["id"] = await orchestrator.create_session(config)
        await done.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await orchestrator.close(timeout=30)
        if stop_metrics is not None:
            stop_metrics()
        await close_sinks(sinks)  # finishes the session's W&B run, flushes Braintrust
        report = None
        if "id" in current:
            out = Path(settings.report_dir) / current["id"]
            report = await write_session_files(sessionmaker, settings, current["id"], out)
        await engine.dispose()
    session_id = current["id"]
    assert report is not None  # written for the session once it has an id
    return session_id, report
