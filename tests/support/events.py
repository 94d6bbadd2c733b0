"""Events as the orchestrator reports them to its listeners (the metrics, the sinks), for
tests that feed a listener directly."""

from __future__ import annotations

from typing import Any


def game_finished(number: int, result: str, plies: int = 20, duration_s: float | None = None) -> dict[str, Any]:
    """The data of a `game.finished` event: game `number` ended `result` by checkmate after
    `plies` plies (every one 1. e4) in `duration_s` seconds (0.5 s a game number if None)."""
    return {
        "game_id": number,
        "number": number,
        "result": result,
        "termination": "checkmate",
        "adjudicated": False,
        "plies": plies,
        "duration_s": 0.5 * number if duration_s is None else duration_s,
        "simulations": 32 * plies,
        "moves": ["e2e4"] * plies,
        "pgn": '[Result "%s"]\n\n1. e4 %s\n' % (result, result),
    }
