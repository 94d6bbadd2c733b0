"""What a worker and the orchestrator say to each other, and whose session it is about.

Commands go in (`Command`: run, pause, resume, stop, shutdown, exit), messages come out
(`WorkerMessage`: ready, game, move, checkpoint, evaluation, learning, stats, paused,
resumed, finished, failed, idle, died). Both name the session they belong to, so that a
worker never takes a command meant for another session as its own, and the orchestrator
drops a message for a session it did not give that worker (a stale loop's) instead of
storing it under the session it did give it. `ready` (a worker is up) and `died` (its
process is gone) are about the worker, not a session: their `session_id` is None.

Both are plain named tuples: picklable across a process or a Ray actor, and cheap.
"""

from __future__ import annotations

from typing import Any, NamedTuple

WORKER_COMMANDS = ("pause", "resume", "stop", "shutdown")
"""Commands about the session a worker runs (payload: that session's id)."""


class Command(NamedTuple):
    """A command for a worker: `run` (payload: the WorkerSpec), a session command
    (WORKER_COMMANDS; `session_id` names the session it is for) or `exit` (the worker ends)."""

    kind: str
    session_id: str | None = None
    payload: Any = None


class WorkerMessage(NamedTuple):
    """A worker's report: its kind, the session it is about (None for `ready`/`died`) and
    its data (plain picklable values)."""

    kind: str
    session_id: str | None
    data: dict[str, Any]
