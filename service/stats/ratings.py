"""Rating lists from stored evaluation matches: who played whom, fitted by maximum
likelihood with generation 0 anchored at ELO_ANCHOR (DESIGN.md "Statistics").

Players are named `gen<N>` for a session's checkpoints (`<session>/gen<N>` when several
sessions share one generation 0 in GET /v1/ratings), `gen0` for the shared generation 0,
and the anchors' own names (`random`, `greedy`, `uci-<elo>`, `stockfish-s<S>-d<D>`).

A list is fitted over the results of one yardstick only (the cap and adjudication rule a
match was played under, `engine.yardstick`): results made under other rules are not
comparable, so `rating_lists` fits one list per yardstick and `rating_list` the current one.
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


Evaluated = tuple[Any, int, str | None]
"""(evaluation row, candidate generation, session id or None): what a list is fitted over."""


def yardstick_of(row: Any) -> str | None:
    """The yardstick an evaluation row was made under (None: a row stored without one)."""
    return getattr(row, "yardstick", None)


def _fit(evaluations: Iterable[Evaluated], anchor_rating: float) -> dict[str, Rating]:
    matches = [
        Match(player(gen, sid), opponent_name(row.opponent, sid), row.wins, row.draws, row.losses)
        for row, gen, sid in evaluations
        if row.games
    ]
    if not matches:
        return {}
    return fit_ratings(matches, anchor=ANCHOR, anchor_rating=anchor_rating)


def rating_lists(evaluations: Iterable[Evaluated], anchor_rating: float) -> dict[str | None, dict[str, Rating]]:
    """One rating list per yardstick, the newest evaluation's first (then by their newest
    evaluations); a yardstick whose rows have no games has no list."""
    groups: dict[str | None, list[Evaluated]] = {}
    for item in reversed(list(evaluations)):
        groups.setdefault(yardstick_of(item[0]), []).append(item)
    fitted = {yardstick: _fit(reversed(items), anchor_rating) for yardstick, items in groups.items()}
    return {yardstick: ratings for yardstick, ratings in fitted.items() if ratings}


def rating_list(evaluations: Iterable[Evaluated], anchor_rating: float) -> dict[str, Rating]:
    """The current rating list: fitted over the rows of the newest evaluation's yardstick
    (all of them when every row has one yardstick), in the order given."""
    items = list(evaluations)
    if not items:
        return {}
    current = yardstick_of(items[-1][0])
    return _fit((item for item in items if yardstick_of(item[0]) == current), anchor_rating)


def ratings_out(ratings: dict[str, Rating], yardstick: str | None = None) -> list[dict]:
    """A rating list as JSON rows, strongest first, each naming the list's yardstick."""
    rows = [
        {"player": name, "rating": r.rating, "low": r.low, "high": r.high, "games": r.games, "yardstick": yardstick}
        for name, r in ratings.items()
    ]
    return sorted(rows, key=lambda row: -row["rating"])


def lists_out(lists: dict[str | None, dict[str, Rating]]) -> list[dict]:
    """`rating_lists` as JSON rows: list after list (the newest yardstick's first), each strongest first."""
    return [row for yardstick, ratings in lists.items() for row in ratings_out(ratings, yardstick)]
