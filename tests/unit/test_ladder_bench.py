"""bench/ladder.py: which checkpoints climb the ladder, who plays whom, and what the fit says.

The ladder is a bench (it measures), but its choices decide what a strength run reports:
a wrong pairing or a misread fit would show a rise that was never played.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.bench import load

from service.config import SessionConfig
from service.engine import network


@pytest.fixture(scope="module")
def ladder():
    return load("ladder")


def test_the_points_are_generation_0_and_evenly_spaced_stored_checkpoints_up_to_the_newest(ladder):
    assert ladder.ladder_points(90, 3, set(range(91))) == [0, 30, 60, 90]
    # only every 7th generation was kept: the nearest stored one at or below each target
    assert ladder.ladder_points(90, 3, {0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 90}) == [0, 28, 56, 90]
    assert ladder.ladder_points(2, 5, {0, 1, 2}) == [0, 1, 2]  # more points than generations


def test_each_consecutive_pair_plays_and_the_newest_also_meets_the_first_point(ladder):
    assert ladder.pairings([0, 30, 60, 90]) == [(30, 0), (60, 30), (90, 60), (90, 30)]
    assert ladder.pairings([0, 30, 60]) == [(30, 0), (60, 30)]  # the newest already meets the first
    assert ladder.pairings([0, 9]) == [(9, 0)]


def test_the_rise_is_fitted_with_the_first_point_as_the_anchor(ladder):
    matches = [
        {"candidate": "gen30", "opponent": "gen0", "wins": 30, "draws": 10, "losses": 0},
        {"candidate": "gen60", "opponent": "gen30", "wins": 20, "draws": 20, "losses": 0},
        {"candidate": "gen60", "opponent": "gen0", "wins": 35, "draws": 5, "losses": 0},
    ]
    by_gen0 = ladder.fitted(matches, "gen0")
    by_gen30 = ladder.fitted(matches, "gen30")
    assert by_gen0["gen0"]["rating"] == 0 and by_gen30["gen30"]["rating"] == 0
    # one fit, two anchors: the same differences
    rise = by_gen0["gen60"]["rating"] - by_gen0["gen30"]["rating"]
    assert by_gen30["gen60"]["rating"] == pytest.approx(rise, abs=1e-6)
    assert rise > 0
    # the difference's own interval is narrower than gen60's interval relative to gen0
    width = by_gen30["gen60"]["high"] - by_gen30["gen60"]["low"]
    assert width < by_gen0["gen60"]["high"] - by_gen0["gen60"]["low"]


@pytest.fixture
def tiny_weights(tmp_path) -> dict[int, Path]:
    """Generations 0..3 as tiny networks of different seeds, saved as weights files."""
    weights = {}
    for generation in (0, 1, 2, 3):
        weights[generation] = tmp_path / f"gen{generation}.safetensors"
        network.save_weights(
            network.build_network("tiny", generation), weights[generation], generation=generation, seed=0
        )
    return weights


TINY = SessionConfig(chess_preset="tiny", eval_simulations=2, seed=3)


def test_a_ladder_of_tiny_checkpoints_plays_every_pairing_to_the_end(ladder, tiny_weights):
    out = ladder.ladder(tiny_weights, TINY, points=3, pairs=1, plies=6)
    assert out["points"] == [0, 1, 2, 3]
    assert [(m["candidate"], m["opponent"]) for m in out["matches"]] == [
        ("gen1", "gen0"),
        ("gen2", "gen1"),
        ("gen3", "gen2"),
        ("gen3", "gen1"),
    ]
    for match in out["matches"]:
        assert match["games"] == 2 == match["wins"] + match["draws"] + match["losses"]
        assert sum(match["endings"].values()) == 2
    assert set(out["ratings"]) == {"gen0", "gen1", "gen2", "gen3"}
    assert out["rise"]["from"] == "gen1" and out["rise"]["to"] == "gen3"
    assert out["intervals_overlap"] is True  # 2 games a match cannot show a rise


def test_only_the_pairings_asked_for_are_played_and_no_list_is_fitted_without_gen0(ladder, tiny_weights):
    out = ladder.ladder(tiny_weights, TINY, points=3, pairs=1, plies=6, only=[(3, 1)])
    assert [(m["candidate"], m["opponent"]) for m in out["matches"]] == [("gen3", "gen1")]
    assert out["points"] == [0, 1, 3]
    assert out["ratings"] == {} and "rise" not in out  # gen0 played nobody: nothing to anchor


def test_two_runs_checkpoints_meet_each_with_its_own_search(ladder, tiny_weights):
    other = SessionConfig(chess_preset="tiny", eval_simulations=3, seed=4)
    row = ladder.head_to_head((tiny_weights[3], TINY), (tiny_weights[1], other), pairs=2, plies=6)
    assert row["games"] == 4 == row["wins"] + row["draws"] + row["losses"]
    assert sum(row["endings"].values()) == 4
    assert row["endings"]["move_cap"] >= 1  # 6 plies after the opening end few games by the rules
