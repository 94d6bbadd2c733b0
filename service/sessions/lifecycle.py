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


class SessionOwned(IllegalTransition):
    """Another live process runs the session (`run --resume` beside `serve`, a second
    `serve` on the same database): its lease in the database holds, so this one may not run
    it or act on it (HTTP 409; the CLI says so in one line, exit 2)."""

    def __init__(self, session_id: str, state: str, action: str, owner: str, until: str) -> None:
        super().__init__(session_id, state, action)
        self.args = (
            f"cannot {action} session {session_id}: it is {state} and run by another process "
            f"({owner}, lease until {until}); act on it there, or after that process has "
            "stopped and its lease has expired",
        )
        self.owner = owner


def action_target(session_id: str, current: str, action: str) -> State:
    """The state `action` leads to from `current`, or IllegalTransition."""
    allowed, target = ACTIONS[action]
    if State(current) not in allowed:
        raise IllegalTransition(session_id, current, action)
    return target
