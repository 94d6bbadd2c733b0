"""The report's share of games at the move cap and its value health (service/reports/builder.py),
from plain rows, with numbers worked by hand."""

from __future__ import annotations

import pytest

from service.reports.builder import cap_share, complete, result_buckets, side_to_move_results, value_health

pytestmark = pytest.mark.unit


def test_cap_share_per_bucket_of_games():
    games = [
        {"number": n, "result": "1-0", "plies": 40, "termination": "move_cap" if n <= 30 else "checkmate"}
        for n in range(1, 101)
    ]
    out = cap_share(result_buckets(list(reversed(games))))  # order of the rows does not matter
    assert out["bucket_size"] == 5 and len(out["buckets"]) == 20
    assert (out["games"], out["move_cap"], out["share"]) == (100, 30, 0.3)
    assert out["buckets"][5] == {"first": 26, "last": 30, "games": 5, "move_cap": 5, "share": 1.0}
    assert out["buckets"][6]["share"] == 0.0
    assert cap_share(result_buckets([])) == {"bucket_size": 1, "games": 0, "move_cap": 0, "share": None, "buckets": []}


def test_results_from_the_side_to_move():
    assert side_to_move_results("1-0", 3) == [1, -1, 1]
    assert side_to_move_results("0-1", 2) == [-1, 1]
    assert side_to_move_results("1-0", 2, white_first=False) == [-1, 1]
    assert side_to_move_results("1/2-1/2", 2) == [0, 0]


def test_value_health_by_hand():
    # game 7, White won: White's positions valued +1 and 0 (expected 1 and .5), Black's -1;
    # game 8 drawn, one position valued 0 (expected .5)
    out = value_health([(7, "1-0", [1.0, -1.0, 0.0], True), (8, "1/2-1/2", [0.0], True)])
    assert out is not None
    assert (out["games"], out["first_game"], out["last_game"], out["positions"]) == (2, 7, 8, 4)
    assert out["base_rates"] == pytest.approx({"win": 0.5, "draw": 0.25, "loss": 0.25})
    # errors 0, 0, .5, 0: Brier .25 / 4
    assert out["brier"] == pytest.approx(0.0625)
    assert value_health([]) is None


def test_an_older_report_gets_cap_share_from_its_metrics_and_no_value_health():
    games = [
        {"number": n, "result": "1/2-1/2", "termination": t, "adjudicated": t == "move_cap", "plies": 10}
        for n, t in ((1, "move_cap"), (2, "stalemate"))
    ]
    out = complete({"scorecard": {}}, {"games": games})
    assert out["series"]["cap_share"]["move_cap"] == 1 and out["series"]["cap_share"]["share"] == 0.5
    assert out["value_health"] is None
