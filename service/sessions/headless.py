"""One session without the service: a spawned worker process, its messages written to
`REPORT_DIR/<session_id>/` (games.pgn, metrics.json, report.json).

The worker owns the engine; this side only records what it reports, so Ctrl-C here asks
the worker to stop, waits for its last checkpoint, and still writes the report.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_mod
import secrets
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..config import SessionConfig, Settings
from ..reports.builder import build_report
from ..stats.scorecard import Scorecard
from .worker import SessionWorker, WorkerSpec, worker_main


def new_session_id() -> str:
    """Sortable and unique: UTC time plus random hex."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class SessionRecorder:
    """Turns worker messages into the session's files and running totals."""

    def __init__(self, session_id: str, config: SessionConfig, settings: Settings, out_dir: Path,
                 torch_threads: int) -> None:
        self.session_id = session_id
        self.config = config
        self.settings = settings
        self.out_dir = out_dir
        self.torch_threads = torch_threads
        out_dir.mkdir(parents=True, exist_ok=True)
        self.pgn_path = out_dir / "games.pgn"
        self.pgn_path.write_text("")
        self.scorecard = Scorecard()
        self.learning: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.games: list[dict[str, Any]] = []
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_mono

    def handle(self, kind: str, data: dict[str, Any]) -> None:
        """Record one worker message."""
        if kind == "game":
            with self.pgn_path.open("a") as f:
                f.write(data["pgn"])
            self.scorecard.add(data["result"], data["plies"], data["termination"], data["adjudicated"],
                               data["duration_s"])
            self.games.append({k: data[k] for k in ("number", "result", "termination", "adjudicated", "plies",
                                                     "duration_s", "simulations", "temperature")}
                              | {"t": self.elapsed_s,
                                 "mean_move_s": sum(data["move_seconds"]) / max(len(data["move_seconds"]), 1)})
        elif kind == "learning":
            self.learning.append(data | {"t": self.elapsed_s})
        elif kind == "stats":
            self.stats.append(data | {"t": self.elapsed_s})
        elif kind == "checkpoint":
            self.checkpoints.append(data | {"t": self.elapsed_s})
        elif kind == "finished":
            self.summary = data
        elif kind == "failed":
            self.error = data["error"]

    def games_per_minute(self) -> float:
        return self.scorecard.games / max(self.elapsed_s / 60, 1e-9)

    def write(self) -> dict[str, Any]:
        """Write metrics.json and report.json; returns the report."""
        metrics = {"session_id": self.session_id, "games": self.games, "learning": self.learning,
                   "stats": self.stats, "checkpoints": self.checkpoints}
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        report = build_report(
            session_id=self.session_id, config=self.config, settings=self.settings, scorecard=self.scorecard,
            learning=self.learning, stats=self.stats, checkpoints=self.checkpoints, games=self.games,
            started=self.started, elapsed_s=self.elapsed_s, summary=self.summary, error=self.error,
            torch_threads=self.torch_threads)
        (self.out_dir / "report.json").write_text(json.dumps(report, indent=1))
        return report


def run_headless(settings: Settings, config: SessionConfig, *, torch_threads: int,
                 on_message: Callable[[str, dict[str, Any], SessionRecorder], None] = lambda k, d, r: None,
                 inline: bool = False, session_id: str | None = None) -> SessionRecorder:
    """Run one session to its end and write its files. Ctrl-C asks the worker to stop and
    waits for it. `inline` runs the worker in this process (tests, benchmarks)."""
    session_id = session_id or new_session_id()
    recorder = SessionRecorder(session_id, config, settings, Path(settings.report_dir) / session_id, torch_threads)
    spec = WorkerSpec(session_id=session_id, config=config.model_dump(),
                      checkpoint_dir=Path(settings.checkpoint_dir) / session_id, torch_threads=torch_threads)

    def handle(kind: str, data: dict[str, Any]) -> None:
        recorder.handle(kind, data)
        on_message(kind, data, recorder)

    if inline:
        SessionWorker(spec, handle).run()
        recorder.write()
        return recorder
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=worker_main, args=(spec, messages, stop), name=f"worker-{session_id}", daemon=True)
    proc.start()

    def interrupt(signum, frame) -> None:  # Ctrl-C: ask the worker to stop; again: kill it
        if stop.is_set():
            proc.kill()
        else:
            stop.set()
            on_message("stopping", {}, recorder)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        _drain(proc, messages, handle)
    finally:
        signal.signal(signal.SIGINT, previous)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
        recorder.write()
    return recorder


def _drain(proc, messages, handle) -> None:
    """Handle messages until the worker reports its end (or dies)."""
    while True:
        try:
            kind, data = messages.get(timeout=0.5)
        except queue_mod.Empty:
            if not proc.is_alive():
                handle("failed", {"error": f"worker exited with code {proc.exitcode}"})
                return
            continue
        handle(kind, data)
        if kind in ("finished", "failed"):
            return


def default_threads(settings: Settings) -> int:
    """A headless run is the only session: TORCH_THREADS, else every core."""
    return settings.torch_threads or max(1, os.cpu_count() or 1)
