"""Self-play's game rules as a session configures them: adjudication, resignation,
playout cap. A small material-counting evaluator stands in for a trained network so
that values are meaningful (a lead shows up as a high value for the side ahead)."""

import numpy as np
import pytest

from service.engine import encoding
from service.engine.selfplay import SelfPlay, SelfPlayConfig

pytestmark = pytest.mark.functional

VALUES = np.array([1, 3, 3, 5, 9, 0], dtype=np.float32)


class MaterialEvaluator:
    """Uniform priors; value = tanh(material lead of the side to move / 3)."""

    def evaluate(self, planes):
        ours = planes[:, 0:6].sum(axis=(2, 3)) @ VALUES
        theirs = planes[:, 6:12].sum(axis=(2, 3)) @ VALUES
        value = np.tanh((ours - theirs) / 3.0).astype(np.float32)
        wdl = np.stack([(1 + value) / 2, np.zeros_like(value), (1 - value) / 2], axis=1)
        return np.zeros((len(planes), encoding.POLICY_SIZE), np.float32), value, wdl


def play(cfg: SelfPlayConfig, games: int, seed: int = 0):
    sp = SelfPlay(cfg, MaterialEvaluator(), seed=seed, temperature_for=lambda n: 1.0)
    sp.max_new_games = games
    records = []
    while sp.in_flight or sp.max_new_games:
        records += sp.step()
    return records


def test_without_adjudication_every_capped_game_is_a_draw():
    cfg = SelfPlayConfig(simulations=8, fast_simulations=4, parallel_games=6, max_plies=40, adjudication="none")
    records = play(cfg, 12)
    capped = [r for r in records if r.termination == "move_cap"]
    assert capped
    assert all(r.result == "1/2-1/2" and r.adjudicated for r in capped)


def test_material_adjudication_follows_the_margin():
    cfg = SelfPlayConfig(
        simulations=8,
        fast_simulations=4,
        parallel_games=6,
        max_plies=40,
        adjudication="material",
        adjudication_margin=3,
    )
    records = play(cfg, 12)
    for r in records:
        if r.termination == "move_cap":
            expected = "1-0" if r.material >= 3 else "0-1" if r.material <= -3 else "1/2-1/2"
            assert r.result == expected
    assert any(r.termination == "move_cap" and r.result != "1/2-1/2" for r in records)


def test_resignation_ends_lost_games_and_played_out_games_measure_false_resigns():
    cfg = SelfPlayConfig(
        simulations=16,
        fast_simulations=8,
        parallel_games=8,
        max_plies=80,
        resign_threshold=-0.6,
        resign_playout_share=0.5,
        temperature_plies=80,
    )
    records = play(cfg, 16, seed=5)
    resigned = [r for r in records if r.termination == "resignation"]
    assert resigned, "nobody resigned a lost position"
    for r in resigned:
        # the side to move resigned, its search's value below the threshold, and lost
        resigner_is_white = r.plies % 2 == 0
        assert r.result == ("0-1" if resigner_is_white else "1-0")
        assert r.root_values[-1] < -0.6
        assert len(r.root_values) == r.plies + 1  # the resigning ply was searched, not played
    played_out = [r for r in records if r.false_resign is not None]
    assert played_out, "no played-out game would have resigned"
    assert all(r.termination != "resignation" for r in played_out)


def test_playout_cap_only_full_searches_become_policy_targets():
    cfg = SelfPlayConfig(simulations=12, fast_simulations=3, full_search_prob=0.3, parallel_games=4, max_plies=40)
    records = play(cfg, 6)
    full = sum(sum(r.full_search) for r in records)
    plies = sum(r.plies for r in records)
    assert 0 < full < plies
    samples = [s for r in records for s in r.samples(0, 3, 0.0)]
    assert len(samples) == plies  # every position teaches the value head
    assert sum(s.policy_target for s in samples) == full
    for r in records:  # a fast search spends its small budget, a full one the full budget
        assert r.simulations == 12 * sum(r.full_search) + 3 * (r.plies - sum(r.full_search))
