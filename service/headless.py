"""One session without the API: the same runtime (`service.runtime`: database, worker pool,
orchestrator, metrics, sinks) as `serve`, so a headless session is stored, resumable
(`run --resume ID`) and visible to the API; at its end its files are written under
`REPORT_DIR/<session_id>/`. It sits beside app.py, not in sessions/: like the app it puts
the runtime and the reports together, which the domain must not import.

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

from .config import SessionConfig, Settings
from .event_types import EventType
from .lifecycle import FINAL
from .reports.files import write_session_files
from .runtime import started
from .telemetry import serve

OnEvent = Callable[[str, dict[str, Any]], None]

CLOSE_TIMEOUT_S = 30.0
"""How long the session gets to checkpoint once it is asked to end (or Ctrl-C'd twice)."""


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
    # the only session: one worker of `threads` threads (WORKERS does not apply)
    settings = settings.model_copy(update={"max_concurrent_sessions": 1, "workers": 1, "torch_threads": threads})
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

    report = None
    async with started(settings, recover=False) as runtime:
        orchestrator = runtime.orchestrator
        orchestrator.listeners.append(listener)  # after the metrics: on_event sees metrics that include its event
        stop_metrics = None if runtime.metrics is None else serve(settings.prometheus_port, runtime.metrics.registry)
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
            await runtime.stop(timeout=CLOSE_TIMEOUT_S)  # the session's last events, then the sinks flushed
            if stop_metrics is not None:
                stop_metrics()
            if "id" in current:
                out = Path(settings.report_dir) / current["id"]
                report = await write_session_files(runtime.sessionmaker, settings, current["id"], out)
    session_id = current["id"]
    assert report is not None  # written for the session once it has an id
    return session_id, report
