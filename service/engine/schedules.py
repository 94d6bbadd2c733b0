"""Temperature schedules over the games of a session.

The temperature applies to the first `TEMPERATURE_PLIES` plies of each game (opening
variety); later moves take the search's best. Decay runs over `decay_games` games.
"""

from __future__ import annotations

SCHEDULES = ("constant", "linear_decay", "exponential_decay", "step")


def temperature(schedule: str, game: int, initial: float, final: float, decay_games: int) -> float:
    """Temperature for the session's `game`-th game (0-based).

    constant: `initial` always; linear_decay: straight line from `initial` to `final`
    over `decay_games`; exponential_decay: geometric from `initial` to `final` over
    `decay_games` (linear if either is 0); step: `initial` until `decay_games`, then `final`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown temperature schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    frac = min(max(game, 0) / max(decay_games, 1), 1.0)
    if schedule == "constant":
        return initial
    if schedule == "step":
        return initial if game < decay_games else final
    if schedule == "exponential_decay" and initial > 0 and final > 0:
        return initial * (final / initial) ** frac
    return initial + (final - initial) * frac
