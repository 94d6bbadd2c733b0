"""Rating lists from stored evaluation matches: who played whom, fitted by maximum
likelihood with generation 0 anchored at ELO_ANCHOR (DESIGN.md "Statistics").

Players are named `gen<N>` for a session's checkpoints (`<session>/gen<N>` when several
sessions share one generation 0 in GET /v1/ratings), `gen0` for the shared generation 0,
and the anchors' own names (`random`, `greedy`, `uci-<elo>`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .elo import Match, Rating, fit_ratings

ANCHOR = "gen0"


def player(generation: int, session_id: str | None = None) -> str:
    """A checkpoint's name in a rating list (generation 0 is shared by every session of a seed)."""
    if generation == 0 or session_id is None:
        return f"gen{generation}"
    return f"{session_id}/gen{generation}"


def opponent_name(opponent: str, session_id: str | None = None) -> str:
    """A stored opponent as a player name (a `gen<N>` opponent is a checkpoint of the same session)."""
    if opponent.startswith("gen") and opponent[3:].isdigit():
        return player(int(opponent[3:]), session_id)
    return opponent


def rating_list(evaluations: Iterable[tuple[Any, int, str | None]], anchor_rating: float) -> dict[str, Rating]:
    """Fit over (evaluation row, candidate generation, session id or None) triples."""
    matches = [
        Match(player(gen, sid), opponent_name(row.opponent, sid), row.wins, row.draws, row.losses)
        for row, gen, sid in evaluations
        if row.games
    ]
    if not matches:
        return {}
    return fit_ratings(matches, anchor=ANCHOR, anchor_rating=anchor_rating)


def ratings_out(ratings: dict[str, Rating]) -> list[dict]:
    """A rating list as JSON rows, strongest first."""
    rows = [
        {"player": name, "rating": r.rating, "low": r.low, "high": r.high, "games": r.games}
        for name, r in ratings.items()
    ]
    return sorted(rows, key=lambda row: -row["rating"])
