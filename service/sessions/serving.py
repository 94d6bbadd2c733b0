"""A worker's life outside any one session: it starts warm, runs one session per `run`
command (`serve_sessions`), reports `idle` when that session's loop has ended, and exits on
`exit`. The process pool spawns `pool_process_main`; the inline pool and Ray actors call
`serve_sessions` on a thread of their own.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Callable

import torch

from .protocol import SESSION_COMMANDS, Command, CommandKind, MessageKind, WorkerMessage
from .worker import Commands, SessionWorker, WorkerSpec


def _process_setup(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a session stops
    torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)


def serve_sessions(commands: Callable[[float | None], Command | None], emit: Callable[[WorkerMessage], None]) -> None:
    """A long-lived worker: runs one session per `run` command until `exit`.

    Used by the process pool (in a spawned process, warm before any session needs it), by
    the inline pool (in a thread) and by Ray actors. Every message names the session it is
    about, and a session reads only the commands for it (`session_commands`); when its loop
    has ended the worker reports `idle` for it, which is what lets the orchestrator give the
    worker to the next session. `exit` during a session ends it as a shutdown would, then
    the worker."""
    emit(WorkerMessage(MessageKind.READY, None, {"pid": os.getpid()}))
    while True:
        command = commands(None)
        if command is None:
            continue
        if command.kind == CommandKind.EXIT:
            return
        if command.kind != CommandKind.RUN:
            continue  # a late pause/stop for a session that already ended
        spec: WorkerSpec = command.payload
        session_id = spec.session_id
        exiting = False

        def session_command(timeout: float | None, session_id: str = session_id) -> CommandKind | None:
            nonlocal exiting
            while True:
                got = commands(timeout)
                if got is None:
                    return None
                if got.kind == CommandKind.EXIT:
                    exiting = True
                    return CommandKind.SHUTDOWN
                if got.kind in SESSION_COMMANDS and got.session_id == session_id:
                    return got.kind
                # a command for another session (or a `run` while this one runs): not ours

        def session_emit(kind: MessageKind, data: dict[str, Any], session_id: str = session_id) -> None:
            emit(WorkerMessage(kind, session_id, data))

        try:
            SessionWorker(spec, session_emit, commands=Commands(session_command)).run()
        except Exception as exc:  # the session failed; the worker lives on for the next one
            session_emit(MessageKind.FAILED, {"error": f"{type(exc).__name__}: {exc}"})
        session_emit(MessageKind.IDLE, {})
        if exiting:
            return


def pool_process_main(commands, messages, threads: int) -> None:
    """Entry point of a process-pool worker (spawned): commands and messages are mp queues."""
    import multiprocessing
    import queue as queue_mod

    _process_setup(threads)
    # Daemonic to the service (it never outlives it), yet a learner spawns its self-play
    # actors and evaluator, which multiprocessing refuses to a daemonic process: they are
    # this process's to end (fleet.Fleet.close, evaluator.EvaluatorProcess.close), and they
    # end on their own when it dies.
    multiprocessing.current_process().daemon = False
    parent = os.getppid()

    def get(timeout: float | None):
        while True:
            if os.getppid() != parent:  # the service died (even by SIGKILL): don't outlive it
                os._exit(0)
            try:
                if timeout == 0:
                    return commands.get_nowait()
                return commands.get(timeout=1.0 if timeout is None else timeout)
            except queue_mod.Empty:
                if timeout is not None:
                    return None

    serve_sessions(get, messages.put)
