"""Sums over a session's games, read in SQL: what its scorecard counts, summed once for the
API's scorecard (`api.caches.ScorecardCache`, which adds only the games stored since its
last sums) and for the report (`reports.reads.game_totals`). Rows and dataclasses only: the
callers make their own views of them.

`game_sums` is one grouped query (per termination) that hands no row per game to Python.
Why adding the games after the last summed id is exact is told in `api.caches`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..stats.scorecard import DRAW
from .models import GameRow

MOVE_SECONDS = GameRow.duration_s / case((GameRow.plies > 1, GameRow.plies), else_=1)
"""A game's seconds per move, as the report's charts count it (duration / max(plies, 1))."""


def count_if(condition: Any) -> Any:
    """SQL: how many rows of the group meet `condition` (0 for none)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_ADJUDICATED = GameRow.adjudicated.is_(True)
# Built once: per termination, the sums of the session's games stored after `after_id`.
_GAME_SUMS = (
    select(
        GameRow.termination,
        func.count(GameRow.id),
        count_if(GameRow.result == "1-0"),
        count_if(GameRow.result == "0-1"),
        count_if(GameRow.result == DRAW),
        count_if(_ADJUDICATED),
        count_if(_ADJUDICATED & (GameRow.result != DRAW)),
        func.coalesce(func.sum(GameRow.plies), 0),
        func.min(GameRow.plies),
        func.max(GameRow.plies),
        func.coalesce(func.sum(GameRow.duration_s), 0.0),
        func.min(GameRow.duration_s),
        func.max(GameRow.duration_s),
        func.coalesce(func.sum(MOVE_SECONDS), 0.0),
        func.min(MOVE_SECONDS),
        func.max(MOVE_SECONDS),
        func.max(GameRow.id),
    )
    .where(GameRow.session_id == bindparam("session_id"), GameRow.id > bindparam("after_id"))
    .group_by(GameRow.termination)
)


def _low(low: Any, value: Any) -> Any:
    return value if low is None else min(low, value)


def _high(high: Any, value: Any) -> Any:
    return value if high is None else max(high, value)


@dataclass(frozen=True)
class GameSums:
    """A session's games summed up to game id `last_id` (immutable: a newer one replaces it).
    Per game: its plies, its duration and its seconds per move (`MOVE_SECONDS`), each summed,
    with the least and the greatest (None without games)."""

    games: int = 0
    white: int = 0
    black: int = 0
    draws: int = 0
    adjudicated: int = 0
    adjudicated_decisive: int = 0
    plies: int = 0
    min_plies: int | None = None
    max_plies: int | None = None
    duration_s: float = 0.0
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    move_seconds: float = 0.0
    min_move_seconds: float | None = None
    max_move_seconds: float | None = None
    terminations: dict[str, int] = field(default_factory=dict)
    last_id: int = 0

    def plus(self, rows: Sequence[Any]) -> "GameSums":
        """These sums with the grouped rows of `_GAME_SUMS` added."""
        if not rows:
            return self
        games, white, black, draws = self.games, self.white, self.black, self.draws
        adjudicated, decisive = self.adjudicated, self.adjudicated_decisive
        plies, low, high = self.plies, self.min_plies, self.max_plies
        duration, duration_low, duration_high = self.duration_s, self.min_duration_s, self.max_duration_s
        move, move_low, move_high = self.move_seconds, self.min_move_seconds, self.max_move_seconds
        last_id, terminations = self.last_id, dict(self.terminations)
        for row in rows:
            name, count, w, b, d, adj, adj_decisive = row[:7]
            sum_plies, lo, hi, seconds, seconds_lo, seconds_hi, per_move, per_move_lo, per_move_hi, top = row[7:]
            games += int(count)
            white, black, draws = white + int(w), black + int(b), draws + int(d)
            adjudicated, decisive = adjudicated + int(adj), decisive + int(adj_decisive)
            plies, low, high = plies + int(sum_plies), _low(low, int(lo)), _high(high, int(hi))
            duration += float(seconds or 0.0)
            duration_low, duration_high = _low(duration_low, float(seconds_lo)), _high(duration_high, float(seconds_hi))
            move += float(per_move or 0.0)
            move_low, move_high = _low(move_low, float(per_move_lo)), _high(move_high, float(per_move_hi))
            last_id = max(last_id, int(top))
            terminations[str(name)] = terminations.get(str(name), 0) + int(count)
        return GameSums(
            games,
            white,
            black,
            draws,
            adjudicated,
            decisive,
            plies,
            low,
            high,
            duration,
            duration_low,
            duration_high,
            move,
            move_low,
            move_high,
            dict(sorted(terminations.items())),
            last_id,
        )


async def game_sums(db: AsyncSession, session_id: str, since: GameSums | None = None) -> GameSums:
    """`since` (default: nothing) plus the session's games stored after it, in one query."""
    since = since or GameSums()
    rows = (await db.execute(_GAME_SUMS, {"session_id": session_id, "after_id": since.last_id})).all()
    return since.plus(rows)
