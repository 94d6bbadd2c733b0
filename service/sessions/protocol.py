"""What a worker and the orchestrator say to each other, and whose session it is about.

Commands go in (`Command`, kinds `CommandKind`), messages come out (`WorkerMessage`, kinds
`MessageKind`). Both name the session they belong to, so that a worker never takes a command
meant for another session as its own, and the orchestrator drops a message for a session it
did not give that worker (a stale loop's) instead of storing it under the session it did
give it. `ready` (a worker is up), `died` (its process is gone) and `exited` (a Ray actor's
loop returned) are about the worker, not a session: their `session_id` is None.

Both are plain named tuples with plain-value payloads: picklable across a process or a Ray
actor, and cheap. The recorder dispatches session messages through a table keyed by
`MessageKind` (`SESSION_MESSAGES` is what that table must cover; a test checks it), so a
kind nobody handles fails loudly instead of being dropped.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class CommandKind(StrEnum):
    """What the orchestrator (or a pool) tells a worker."""

    RUN = "run"
    """Run a session (payload: its `WorkerSpec`)."""
    PAUSE = "pause"
    """Hold between two search steps."""
    RESUME = "resume"
    """Go on after a pause."""
    STOP = "stop"
    """End the session: checkpoint, report `finished` (reason `stopped`)."""
    SHUTDOWN = "shutdown"
    """The service is going down: checkpoint and leave the session resumable."""
    EXIT = "exit"
    """The worker itself ends (its pool is closing or replacing it)."""


SESSION_COMMANDS = frozenset({CommandKind.PAUSE, CommandKind.RESUME, CommandKind.STOP, CommandKind.SHUTDOWN})
"""Commands about the session a worker runs (`session_id` names it)."""


class MessageKind(StrEnum):
    """What a worker reports (data: plain picklable values)."""

    READY = "ready"
    """The worker is up (data: its pid)."""
    GAME = "game"
    """A self-play game finished (stored, then announced as `game.finished`)."""
    MOVE = "move"
    """A move of the featured game (live only: `game.move`)."""
    CHECKPOINT = "checkpoint"
    """A checkpoint was written (stored, `checkpoint.saved`)."""
    EVALUATION = "evaluation"
    """An evaluation match ended (stored, `evaluation.finished`)."""
    LEARNING = "learning"
    """A learning phase ended (`learning.step`: losses, buffer size)."""
    STATS = "stats"
    """Live stats (speed, memory...): to the listeners, kept as `metrics.snapshot` now and then."""
    PAUSED = "paused"
    """The worker holds (every game it finished before is reported)."""
    ACTOR_REPLACED = "actor_replaced"
    """A self-play actor died and another took its place (data: both numbers, the exit code)."""
    RESUMED = "resumed"
    """The worker goes on after a pause."""
    FINISHED = "finished"
    """The session loop ended (data: the reason: max_games, duration, stopped, shutdown)."""
    FAILED = "failed"
    """The session loop raised (data: the error); `idle` follows."""
    IDLE = "idle"
    """The worker is done with its session and may take another."""
    DIED = "died"
    """The worker's process or actor is gone (sent by its pool, not by the worker)."""
    EXITED = "exited"
    """A Ray actor's session loop returned (internal to the Ray pool, which turns it into `died`)."""


SESSION_MESSAGES = frozenset(MessageKind) - {MessageKind.READY, MessageKind.DIED, MessageKind.EXITED}
"""The messages about a session: each has a handler in the recorder."""


class Command(NamedTuple):
    """A command for a worker: `run` (payload: the WorkerSpec), a session command
    (SESSION_COMMANDS; `session_id` names the session it is for) or `exit`."""

    kind: CommandKind
    session_id: str | None = None
    payload: Any = None


class WorkerMessage(NamedTuple):
    """A worker's report: its kind, the session it is about (None for `ready`/`died`) and
    its data (plain picklable values)."""

    kind: MessageKind
    session_id: str | None
    data: dict[str, Any]
