"""The evaluator in a process of its own, so that self-play never waits for a match.

With a fleet (self-play actors in processes of their own) the learner hands each evaluation to
this process: the checkpoint's weights file (written durably before), its generation and the
games played. The process keeps what `Evaluations` keeps between evaluations (generation 0, the
previous evaluated checkpoint) and sends each match's result back as it ends; the learner
reports them. While it plays, the learner goes on taking games and learning. An evaluation
asked for while one runs waits, and only the newest waiting one is played (evaluating every
checkpoint late is worth less than the newest one soon). Under GATING evaluations stay
interleaved in the learner: promoting a checkpoint needs its verdict before self-play goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from pathlib import Path
from typing import Any

import torch

from ..config import SessionConfig
from ..engine import network
from .evaluation import Evaluations


def evaluator_main(cfg: SessionConfig, device: str, init_weights: Path | None, threads: int, conn: Any) -> None:
    """The evaluator process: ("evaluate", weights, generation, games) -> one ("match", data)
    per match, then ("done", generation, games, or None when it was stopped); ("stop",)
    mid-match ends that evaluation without a result (it does not count); ("exit",) ends the
    process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)
    try:
        _serve(Evaluations(cfg, device, init_weights), conn)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the learner is gone (even by SIGKILL): so is its evaluator


def _serve(evaluations: Evaluations, conn: Any) -> None:
    pending: list[tuple[Any, ...]] = []

    def stop_requested() -> bool:
        while conn.poll():
            pending.append(conn.recv())
        return any(job[0] in ("stop", "exit") for job in pending)

    while True:
        job = pending.pop(0) if pending else conn.recv()
        if job[0] == "exit":
            return
        if job[0] != "evaluate":
            continue
        _, weights, generation, games = job
        net, _ = network.load_weights(weights, evaluations.device)
        for data in evaluations.play(net, generation, games, stop_requested):
            conn.send(("match", data))
        pending[:] = [j for j in pending if j[0] != "stop"]
        conn.send(("done", generation, games if evaluations.last_games == games else None))


class EvaluatorProcess:
    """The learner's handle on its evaluator process."""

    def __init__(self, cfg: SessionConfig, device: str, init_weights: Path | None, threads: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=evaluator_main, args=(cfg, device, init_weights, threads, child), name="evaluator", daemon=True
        )
        self._process.start()
        child.close()
        self._running: tuple[int, int] | None = None  # (generation, games) being evaluated
        self._waiting: tuple[Path, int, int] | None = None
        self.last_games = 0
        """Games played at the checkpoint of the last finished evaluation."""

    @property
    def busy(self) -> bool:
        """An evaluation is running or waiting."""
        return self._running is not None or self._waiting is not None

    def submit(self, weights: Path, generation: int, games: int) -> None:
        """Evaluate checkpoint `generation` (its weights file, after `games` games), now or
        after the running one (replacing any that waited)."""
        if self._running is None:
            self._start(weights, generation, games)
        else:
            self._waiting = (weights, generation, games)

    def _start(self, weights: Path, generation: int, games: int) -> None:
        self._conn.send(("evaluate", str(weights), generation, games))
        self._running = (generation, games)

    def results(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """The match results that arrived (waiting up to `timeout` for the first)."""
        out: list[dict[str, Any]] = []
        if not self._process.is_alive() and not self._conn.poll():
            raise RuntimeError(f"the evaluator process died (exit code {self._process.exitcode})")
        if not self._conn.poll(timeout):
            return out
        while self._conn.poll():
            message = self._conn.recv()
            if message[0] == "match":
                out.append(message[1])
            elif message[0] == "done":
                self._running = None
                if message[2] is not None:
                    self.last_games = max(self.last_games, message[2])
                if self._waiting is not None:
                    self._start(*self._waiting)
                    self._waiting = None
        return out

    def stop(self) -> None:
        """Drop what waits and stop the running evaluation without a result."""
        self._waiting = None
        if self._running is not None:
            self._conn.send(("stop",))

    def close(self) -> None:
        """End the process (what it was playing ends without a result)."""
        try:
            self._conn.send(("exit",))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(timeout=10.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5.0)
        self._conn.close()
