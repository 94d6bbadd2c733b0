"""Rating lists from stored evaluations (service.stats.ratings): how checkpoints and anchors
are named, which rows count, and the JSON rows' order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.stats.elo import Match, fit_ratings
from service.stats.ratings import ANCHOR, lists_out, opponent_name, player, rating_list, rating_lists, ratings_out

pytestmark = pytest.mark.unit


def row(opponent: str, wins: int, draws: int, losses: int, yardstick: str | None = None) -> SimpleNamespace:
    """An evaluation row as the repositories return it (the fields rating_list reads)."""
    return SimpleNamespace(
        opponent=opponent, wins=wins, draws=draws, losses=losses, games=wins + draws + losses, yardstick=yardstick
    )


def test_checkpoints_are_named_per_session_except_the_shared_generation_0():
    assert player(3) == "gen3"
    assert player(3, "s1") == "s1/gen3"
    assert player(0, "s1") == ANCHOR == "gen0"


def test_a_gen_opponent_is_a_checkpoint_of_the_same_session_and_anchors_keep_their_names():
    assert opponent_name("gen2", "s1") == "s1/gen2"
    assert opponent_name("gen0", "s1") == "gen0"
    assert opponent_name("random", "s1") == "random"
    assert opponent_name("uci-1350", None) == "uci-1350"
    assert opponent_name("general", "s1") == "general"  # "gen" and no number: not a checkpoint


def test_rating_list_fits_the_rows_with_games_and_anchors_gen0():
    evaluations = [
        (row("gen0", 6, 2, 2), 1, "s1"),
        (row("random", 9, 1, 0), 1, "s1"),
        (row("greedy", 0, 0, 0), 2, "s1"),
    ]
    fitted = rating_list(evaluations, 1200.0)
    expected = fit_ratings([Match("s1/gen1", "gen0", 6, 2, 2), Match("s1/gen1", "random", 9, 1, 0)], "gen0", 1200.0)
    assert fitted == expected  # the empty row (gen2 against greedy) is left out
    assert fitted["gen0"].rating == pytest.approx(1200.0)
    assert rating_list([(row("random", 0, 0, 0), 1, None)], 1200.0) == {}


def test_ratings_out_lists_the_strongest_first():
    fitted = rating_list([(row("gen0", 8, 1, 1), 1, None), (row("gen0", 1, 1, 8), 2, None)], 1500.0)
    rows = ratings_out(fitted)
    assert [r["player"] for r in rows] == ["gen1", "gen0", "gen2"]
    assert set(rows[0]) == {"player", "rating", "low", "high", "games", "yardstick"}
    assert rows[0]["yardstick"] is None
    assert rows[1]["player"] == "gen0" and rows[1]["rating"] == pytest.approx(1500.0) and rows[1]["games"] == 20


OLD, NEW = "cap150/material3", "cap150/stockfish300cp@d10"


def test_yardsticks_are_never_mixed_in_one_list():
    """The same checkpoint scores 9/10 against random under material adjudication and 5/10
    under Stockfish's: one list per yardstick, each fitted over its own rows only."""
    evaluations = [
        (row("gen0", 8, 1, 1, OLD), 1, None),
        (row("random", 9, 1, 0, OLD), 1, None),
        (row("gen0", 5, 2, 3, NEW), 2, None),
        (row("stockfish-s0-d1", 0, 0, 10, NEW), 2, None),
        (row("random", 0, 0, 0, "cap150/none"), 2, None),  # no games: no list
    ]
    lists = rating_lists(evaluations, 1500.0)
    assert list(lists) == [NEW, OLD]  # the newest evaluation with games first, then by their newest
    assert lists[OLD] == rating_list(evaluations[:2], 1500.0)
    assert lists[NEW] == rating_list(evaluations[2:4], 1500.0)
    assert set(lists[OLD]) == {"gen0", "gen1", "random"} and set(lists[NEW]) == {"gen0", "gen2", "stockfish-s0-d1"}
    # the current list is the newest row's yardstick's, whatever came before
    assert rating_list(evaluations[:4], 1500.0) == lists[NEW]
    assert rating_list(evaluations[:4] + [(row("greedy", 5, 0, 5, OLD), 1, None)], 1500.0) == rating_list(
        evaluations[:2] + [(row("greedy", 5, 0, 5, OLD), 1, None)], 1500.0
    )
    rows = lists_out(lists)
    assert [(r["yardstick"], r["player"]) for r in rows] == [
        (NEW, "stockfish-s0-d1"),
        (NEW, "gen2"),
        (NEW, "gen0"),
        (OLD, "gen1"),
        (OLD, "gen0"),
        (OLD, "random"),
    ]
    assert rating_lists([], 1500.0) == {} and lists_out({}) == []
