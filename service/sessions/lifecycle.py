"""A session's lifecycle: its states, the legal transitions, and the domain errors the
API turns into problem+json (404, 409, 429).

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

# What each user action needs and leads to.
ACTIONS: dict[str, tuple[frozenset[State], State]] = {
    "pause": (frozenset({State.RUNNING}), State.PAUSED),
    "resume": (frozenset({State.PAUSED}), State.RUNNING),
    "stop": (frozenset({State.PENDING, State.RUNNING, State.PAUSED}), State.STOPPING),
}

TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.RUNNING, State.STOPPING, State.FAILED}),
    State.RUNNING: frozenset({State.PAUSED, State.STOPPING, State.COMPLETED, State.FAILED}),
    State.PAUSED: frozenset({State.RUNNING, State.STOPPING, State.FAILED}),
    State.STOPPING: frozenset({State.STOPPED, State.COMPLETED, State.FAILED}),
    State.COMPLETED: frozenset(),
    State.STOPPED: frozenset(),
    State.FAILED: frozenset(),
}


class SessionError(Exception):
    """Base of the errors a session operation reports to its caller."""


class SessionNotFound(SessionError):
    """No session (or checkpoint) with that id."""

    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"no {what} with id {ident}")
        self.what = what
        self.ident = ident


class IllegalTransition(SessionError):
    """The action is not allowed in the session's current state (HTTP 409)."""

    def __init__(self, session_id: str, state: str, action: str) -> None:
        allowed = ", ".join(sorted(ACTIONS[action][0])) if action in ACTIONS else "a final state"
        super().__init__(f"cannot {action} session {session_id}: it is {state} (needs {allowed})")
        self.session_id = session_id
        self.state = state
        self.action = action


def check_transition(current: State, new: State) -> None:
    """Raise ValueError for a transition the state machine does not have (a bug, not a user error)."""
    if new not in TRANSITIONS[current]:
        raise ValueError(f"illegal session transition {current} -> {new}")


def action_target(session_id: str, current: str, action: str) -> State:
    """The state `action` leads to from `current`, or IllegalTransition."""
    allowed, target = ACTIONS[action]
    if State(current) not in allowed:
        raise IllegalTransition(session_id, current, action)
    return target
