"""bench/policy_target.py: the figures that say whether self-play's policy targets still teach.

A bench, but its completed Q and KL decide what a plateau is blamed on, so they are checked
against what they claim to be.
"""

from __future__ import annotations

import chess
import numpy as np
import pytest
from support.bench import load
from support.positions import random_positions

from service.engine import mcts, network


@pytest.fixture(scope="module")
def bench():
    return load("policy_target")


@pytest.fixture(scope="module")
def evaluator():
    return network.Evaluator(network.build_network("tiny", 5))


def boards(n: int, seed: int = 0) -> list[chess.Board]:
    """`n` seeded random positions with a move to play."""
    return [b for b in random_positions(4 * n, seed) if not b.is_game_over()][:n]


def test_kl_is_zero_on_equal_distributions_and_matches_the_formula(bench):
    p = np.array([0.5, 0.25, 0.25, 0.0])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    assert bench.kl(p, p) == 0.0
    assert bench.kl(p, q) == pytest.approx(0.5 * np.log(2))


def test_completed_q_is_the_visited_moves_mean_values_up_to_one_constant(bench, evaluator):
    (search,) = bench.searched(boards(1, seed=3), evaluator, mcts.SearchConfig(simulations=32), "t")
    root = search.root
    q = bench.completed_q(search)
    legal, where = search.legal_moves()
    visited = [(where[i], root.w[i] / root.n[i]) for i in range(len(root.moves)) if root.n[i]]
    assert len(visited) >= 2
    (g0, q0), *rest = visited
    for g, mean in rest:
        assert q[g] - q[g0] == pytest.approx(mean - q0, abs=1e-9)


def test_the_figures_of_each_variant_over_positions_without_a_mate(bench, evaluator):
    variants = ["rescale", "plain:1", "rescale@32"]
    out = bench.measure(boards(6), evaluator, mcts.SearchConfig(simulations=16), variants=variants, reference=2, seed=0)
    assert out["reference_simulations"] == 32
    for name in variants:
        row = out[name]
        assert row["positions"] == 6
        assert row["kl_target_prior"] > 0 and row["kl_target_target"] >= 0
        assert all(0 <= row[k] <= 1 for k in row if k.startswith("top1_"))
    # min-max rescaling turns any Q gap into the full gain: its targets move further off the prior
    assert out["rescale"]["kl_target_prior"] > out["plain:1"]["kl_target_prior"]


def test_a_variant_names_its_search_config_and_a_bad_one_is_refused(bench):
    base = mcts.SearchConfig()
    assert bench.variant_config(base, "rescale") == base
    assert bench.variant_config(base, "plain:2.5") == mcts.SearchConfig(q_span_floor=2.0, c_scale=2.5)
    assert bench.variant_config(base, "0.2") == mcts.SearchConfig(q_span_floor=0.2)
    assert bench.variant_config(base, "rescale@64") == mcts.SearchConfig(simulations=64)
    assert bench.variant_config(base, "plain:1@8") == mcts.SearchConfig(q_span_floor=2.0, c_scale=1.0, simulations=8)
    for bad in ("flat", "plain:x", "plain:0", "rescale@0", "rescale@x", "0", "-1"):
        with pytest.raises(ValueError):
            bench.variant_config(base, bad)
