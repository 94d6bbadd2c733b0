"""Self-play scorecard: counts, rates, streaks and game lengths of a session's own games.

Both sides of a self-play game are the same engine, so results are reported by colour
(white's score says how much the first move is worth to it, not how strong it is: strength
comes from evaluation matches). Adjudicated games are counted as such, since an untrained
net's decisive results mostly come from the material rule at the move cap.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RESULTS = ("1-0", "0-1", "1/2-1/2")
DRAW = "1/2-1/2"


def rate(part: float, whole: int) -> float | None:
    """part / whole, None without a whole (no game yet)."""
    return part / whole if whole else None


def median_of_counts(counts: Mapping[int, int]) -> float | None:
    """The median of values given as {value: how many}; None without values."""
    n = sum(counts.values())
    if not n:
        return None
    wanted, seen, found = ((n - 1) // 2, n // 2), 0, []
    for value in sorted(counts):
        for index in wanted:
            if seen <= index < seen + counts[value]:
                found.append(value)
        seen += counts[value]
    return float(sum(found) / 2)


def summary(
    *,
    games: int,
    white_wins: int,
    black_wins: int,
    draws: int,
    adjudicated: int,
    adjudicated_decisive: int,
    terminations: Mapping[str, int],
    lengths: Mapping[int, int],
    total_duration_s: float,
    longest_decisive: int,
    longest_draw: int,
    current: tuple[str | None, int],
) -> dict[str, Any]:
    """A scorecard's JSON view (report.json's "scorecard"), in sections, from its counts:
    `lengths` is {plies: games of that length}, `current` (result of the last game, games
    in a row with it). The one place the view's rates and lengths are derived, whether the
    games were counted one by one (`Scorecard`) or summed in SQL (`reports.reads`)."""

    def colour(wins: int, losses: int) -> dict[str, Any]:
        return {
            "wins": wins,
            "losses": losses,
            "draws": draws,
            "score": rate(wins + draws / 2, games),
            "win_rate": rate(wins, games),
        }

    decisive = white_wins + black_wins
    total_plies = sum(plies * count for plies, count in lengths.items())
    return {
        "games": games,
        "results": {
            "white_wins": white_wins,
            "black_wins": black_wins,
            "draws": draws,
            "decisive": decisive,
            "adjudicated_decisive": adjudicated_decisive,
            "white_win_rate": rate(white_wins, games),
            "black_win_rate": rate(black_wins, games),
            "draw_rate": rate(draws, games),
            "decisive_rate": rate(decisive, games),
            "by_colour": {"white": colour(white_wins, black_wins), "black": colour(black_wins, white_wins)},
        },
        "streaks": {
            "longest_decisive": longest_decisive,
            "longest_draw": longest_draw,
            "current": {"result": current[0], "length": current[1]},
        },
        "length": {
            "mean": rate(total_plies, games),
            "median": median_of_counts(lengths),
            "min": min(lengths) if lengths else None,
            "max": max(lengths) if lengths else None,
            "total_plies": total_plies,
        },
        "duration": {"mean_s": rate(total_duration_s, games), "total_s": total_duration_s},
        "terminations": dict(sorted(terminations.items())),
        "adjudicated": adjudicated,
    }


@dataclass
class Scorecard:
    """Built one game at a time with `add`; `to_dict` gives the JSON view."""

    games: int = 0
    white_wins: int = 0
    black_wins: int = 0
    draws: int = 0
    adjudicated: int = 0
    adjudicated_decisive: int = 0
    terminations: Counter = field(default_factory=Counter)
    plies: list[int] = field(default_factory=list)
    total_duration_s: float = 0.0
    longest_decisive_streak: int = 0
    longest_draw_streak: int = 0
    current_result: str | None = None  # result of the last game
    current_streak: int = 0  # games in a row with current_result
    _decisive_run: int = field(default=0, repr=False)
    _draw_run: int = field(default=0, repr=False)

    def add(self, result: str, plies: int, termination: str, adjudicated: bool, duration_s: float = 0.0) -> None:
        """Count one finished game."""
        if result not in RESULTS:
            raise ValueError(f"unknown game result {result!r}; expected one of {RESULTS}")
        self.games += 1
        if result == "1-0":
            self.white_wins += 1
        elif result == "0-1":
            self.black_wins += 1
        else:
            self.draws += 1
        if adjudicated:
            self.adjudicated += 1
            if result != DRAW:
                self.adjudicated_decisive += 1
        self.terminations[termination] += 1
        self.plies.append(int(plies))
        self.total_duration_s += float(duration_s)
        if result == DRAW:
            self._decisive_run = 0
            self._draw_run += 1
            self.longest_draw_streak = max(self.longest_draw_streak, self._draw_run)
        else:
            self._draw_run = 0
            self._decisive_run += 1
            self.longest_decisive_streak = max(self.longest_decisive_streak, self._decisive_run)
        if result == self.current_result:
            self.current_streak += 1
        else:
            self.current_result, self.current_streak = result, 1

    @classmethod
    def from_records(cls, records: Iterable[Any]) -> "Scorecard":
        """A card from finished games with .result/.plies/.termination/.adjudicated/.duration_s
        (e.g. selfplay.GameRecord), in the order they were played."""
        card = cls()
        for r in records:
            card.add(r.result, r.plies, r.termination, r.adjudicated, getattr(r, "duration_s", 0.0))
        return card

    # -- derived figures (None while there are no games) ------------------------------
    @property
    def decisive(self) -> int:
        return self.white_wins + self.black_wins

    @property
    def white_score(self) -> float | None:
        return rate(self.white_wins + self.draws / 2, self.games)

    @property
    def black_score(self) -> float | None:
        return rate(self.black_wins + self.draws / 2, self.games)

    @property
    def white_win_rate(self) -> float | None:
        return rate(self.white_wins, self.games)

    @property
    def black_win_rate(self) -> float | None:
        return rate(self.black_wins, self.games)

    @property
    def draw_rate(self) -> float | None:
        return rate(self.draws, self.games)

    @property
    def decisive_rate(self) -> float | None:
        return rate(self.decisive, self.games)

    @property
    def mean_plies(self) -> float | None:
        return statistics.fmean(self.plies) if self.plies else None

    @property
    def median_plies(self) -> float | None:
        return float(statistics.median(self.plies)) if self.plies else None

    @property
    def mean_duration_s(self) -> float | None:
        return rate(self.total_duration_s, self.games)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary, in sections (`summary`)."""
        return summary(
            games=self.games,
            white_wins=self.white_wins,
            black_wins=self.black_wins,
            draws=self.draws,
            adjudicated=self.adjudicated,
            adjudicated_decisive=self.adjudicated_decisive,
            terminations=self.terminations,
            lengths=Counter(self.plies),
            total_duration_s=self.total_duration_s,
            longest_decisive=self.longest_decisive_streak,
            longest_draw=self.longest_draw_streak,
            current=(self.current_result, self.current_streak),
        )
