"""The domain errors a session operation reports to its caller; the API turns them into
problem+json (404, 409) and the CLI into one line."""

from __future__ import annotations

from ..lifecycle import ACTIONS, State


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
