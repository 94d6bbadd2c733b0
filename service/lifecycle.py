"""A session's lifecycle: its states and the legal transitions, the one copy that storage,
the sessions, telemetry and the API import (a leaf: it imports nothing from the project, so
`service.storage` can use it without importing `service.sessions`).

    pending -> running <-> paused -> stopping -> completed | stopped | failed

`pending` waits for a free worker slot (MAX_CONCURRENT_SESSIONS); a session that is
`running` or `paused` when the service stops or crashes is restored at the next start.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a session is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


ACTIVE = frozenset({State.PENDING, State.RUNNING, State.PAUSED, State.STOPPING})
"""States that hold (or wait for) a worker: such a session cannot be deleted."""

FINAL = frozenset({State.COMPLETED, State.STOPPED, State.FAILED})
"""States a session never leaves: it is over, its worker gone."""

ACTIONS: dict[str, tuple[frozenset[State], State]] = {
    "pause": (frozenset({State.RUNNING}), State.PAUSED),
    "resume": (frozenset({State.PAUSED}), State.RUNNING),
    "stop": (frozenset({State.PENDING, State.RUNNING, State.PAUSED}), State.STOPPING),
}
"""What each user action needs (the states it is allowed in) and leads to."""

TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.RUNNING, State.STOPPING, State.STOPPED, State.FAILED}),
    State.RUNNING: frozenset(
        {State.PAUSED, State.STOPPING, State.STOPPED, State.COMPLETED, State.FAILED, State.PENDING}
    ),
    State.PAUSED: frozenset({State.RUNNING, State.STOPPING, State.STOPPED, State.COMPLETED, State.FAILED}),
    State.STOPPING: frozenset({State.STOPPED, State.COMPLETED, State.FAILED}),
    State.COMPLETED: frozenset(),
    State.STOPPED: frozenset(),
    State.FAILED: frozenset(),
}
"""Every state change a session may make, the one table the writer enforces (each change is
a compare-and-set from the states that may lead to it: `sources`). Why the less obvious
ones: a session's own end (completed, a worker failure) can be reported after a user's pause
or stop was stored, so both lead on to it; a stop of a session that nothing runs (pending,
or left running/paused by a service that went down) ends it at once; a `running` session
that the restarted service has no slot for waits as `pending` again. A final state never
changes."""


def sources(target: State) -> frozenset[State]:
    """The states from which TRANSITIONS allows `target`."""
    return frozenset(state for state, targets in TRANSITIONS.items() if target in targets)


class ActorState(StrEnum):
    """What one of a session's self-play actors is doing (`selfplay_actors{state}`, the
    session's live `actors`). A dead actor is replaced under a new number and not listed."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
