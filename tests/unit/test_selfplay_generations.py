"""Self-play names the network generation that started each game, and abandons games older
than a bound (MAX_GENERATION_LAG) without numbering them."""

from __future__ import annotations

import pytest

from service.engine import mcts
from service.engine.selfplay import SelfPlay, SelfPlayConfig

pytestmark = pytest.mark.unit

CONFIG = SelfPlayConfig(
    search=mcts.SearchConfig(simulations=2, gumbel_considered=2),
    simulations=2,
    fast_simulations=2,
    parallel_games=3,
    max_plies=6,
)


def _selfplay(**kwargs) -> SelfPlay:
    return SelfPlay(CONFIG, mcts.UniformEvaluator(), seed=1, **kwargs)


def test_a_game_records_the_generation_that_started_it_and_its_actor():
    selfplay = _selfplay(actor=4)
    selfplay.step()  # three games start under generation 0
    selfplay.generation = 2  # a newer network arrives mid-game
    finished = []
    while len(finished) < 6:
        finished += selfplay.step()
    assert [g.number for g in finished] == list(range(1, len(finished) + 1))
    assert {g.actor for g in finished} == {4}
    assert [g.generation for g in finished[:3]] == [0, 0, 0]
    assert all(g.generation == 2 for g in finished[3:])
    assert '[Generation "0"]' in finished[0].pgn() and '[Actor "4"]' in finished[0].pgn()


def test_games_older_than_the_bound_are_dropped_unnumbered_and_not_counted():
    selfplay = _selfplay()
    selfplay.max_new_games = 5
    selfplay.step()
    assert selfplay.in_flight == 3 and selfplay.max_new_games == 2
    selfplay.generation = 3
    assert selfplay.drop_started_before(3) == 3
    assert selfplay.in_flight == 0 and selfplay.max_new_games == 5  # dropped games give their slots back
    assert selfplay.drop_started_before(3) == 0
    finished = []
    while selfplay.in_flight or selfplay.max_new_games:
        finished += selfplay.step()
    assert [g.number for g in finished] == [1, 2, 3, 4, 5]  # no gap where the dropped ones were
    assert {g.generation for g in finished} == {3}
