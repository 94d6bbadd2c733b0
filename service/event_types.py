"""The types of a session's live events (DESIGN.md "Live events"), the one copy that the
orchestrator, the API, telemetry, reports, the sinks and the tests import (a leaf: it
imports nothing from the project). The dashboard's copy in service/dashboard/dashboard.js
is checked against it by tests/unit/test_dashboard_constants.py.

Every type but `game.move` is stored (an `events` row) and numbered (the session's `seq`),
so a client reconnecting with `?since=SEQ` gets what it missed; `game.move` is live only.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """The `type` of a live event; its `data` is described on each member."""

    SESSION_STATE = "session.state"
    """The session's new state (`state`) with the fields the change set (`started_at`,
    `finished_at`, `stop_reason`, `failure_reason`), or `restarted` and its reason after a
    worker restart. Stored and numbered."""

    GAME_FINISHED = "game.finished"
    """A self-play game was stored: its number, result, termination, plies, duration,
    simulations, moves and PGN. Stored and numbered."""

    LEARNING_STEP = "learning.step"
    """A learning phase ended: its losses (policy, value, total), the replay buffer's size,
    the positions learned so far and the games it followed. Stored and numbered."""

    CHECKPOINT_SAVED = "checkpoint.saved"
    """A checkpoint was stored: its id, generation, the games it followed and its sha256.
    Stored and numbered."""

    EVALUATION_FINISHED = "evaluation.finished"
    """An evaluation match ended: the checkpoint, the opponent, W/D/L, pentanomial counts,
    Elo with its 95% interval, the SPRT and the refitted rating list. Stored and numbered."""

    METRICS_SNAPSHOT = "metrics.snapshot"
    """The worker's stats (speed, buffer, memory), stored every METRICS_EXPORT_INTERVAL.
    Stored and numbered."""

    ALERT_RAISED = "alert.raised"
    """An alert became true (elo_regression, loss_spike, memory_growth, timeout_rate): its
    name, severity, message, value and threshold, and the event that triggered it. Stored
    and numbered."""

    GAME_MOVE = "game.move"
    """A move of the session's featured game (a few per second at most), sent only to
    clients that asked with `?moves=true`. Live only: neither stored nor numbered."""


STORED = frozenset(EventType) - {EventType.GAME_MOVE}
"""The types that are stored and numbered (every one but `game.move`)."""

LIVE_STATS = "stats"
"""Not an event type: the kind under which the orchestrator hands its listeners (telemetry,
the headless progress bar) a worker's live stats every few seconds. Neither stored nor sent
to WebSocket clients; `metrics.snapshot` is its throttled, stored copy."""
