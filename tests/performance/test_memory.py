"""Resource behaviour of the hot loop (no timings: those live in bench/).

The search runs with Python's cyclic garbage collector off (DESIGN.md "Performance"), so
its trees must be freed by reference counting alone: any reference cycle would leak a
whole tree per move. And the replay buffer must stay bounded however much it is fed.
"""

import gc

import pytest

from service.engine import mcts
from service.engine.replay import ReplayBuffer
from service.engine.selfplay import SelfPlay, SelfPlayConfig

pytestmark = pytest.mark.performance


def live_nodes() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is mcts.Node)


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_search_trees_are_freed_without_the_cyclic_gc(algorithm):
    gc.collect()
    before = live_nodes()
    cfg = SelfPlayConfig(search=mcts.SearchConfig(algorithm=algorithm, leaves_per_step=2),
                         simulations=12, fast_simulations=4, parallel_games=4, max_plies=40)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        sp = SelfPlay(cfg, mcts.UniformEvaluator(), seed=3)
        sp.max_new_games = 8
        records = []
        while sp.in_flight or sp.max_new_games:
            records += sp.step()
            # at any time only the trees of the games in flight are alive
        assert len(records) == 8
        del sp
        assert live_nodes() == before, "search trees survived their games: a reference cycle?"
    finally:
        if was_enabled:
            gc.enable()


def test_replay_buffer_stays_bounded():
    cfg = SelfPlayConfig(simulations=4, fast_simulations=2, full_search_prob=1.0, parallel_games=4, max_plies=30)
    sp = SelfPlay(cfg, mcts.UniformEvaluator(), seed=4)
    sp.max_new_games = 6
    samples = []
    while sp.in_flight or sp.max_new_games:
        for record in sp.step():
            samples += record.samples()
    buffer = ReplayBuffer(50, seed=0)
    for _ in range(5):
        buffer.add(samples)
    assert len(buffer) == 50
    assert buffer.total_added == 5 * len(samples)
