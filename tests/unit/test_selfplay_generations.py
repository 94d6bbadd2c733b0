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


def _simulations_of_one_move_each(selfplay: SelfPlay) -> set[int]:
    """Step until every game in flight has played one more move: the simulations each spent."""
    moves = {g.record.number: len(g.record.moves) for g in selfplay.games}
    sims = {g.record.number: g.record.simulations for g in selfplay.games}
    while any(len(g.record.moves) == moves[g.record.number] for g in selfplay.games):
        selfplay.step()
    return {g.record.simulations - sims[g.record.number] for g in selfplay.games}


def test_searches_use_the_late_budget_from_the_late_search_generation_on():
    """LATE_SEARCH_GENERATION: moves searched under an older network keep the base budgets,
    from that generation on both full and fast searches run LATE_SEARCH_SCALE times as many."""
    config = SelfPlayConfig(
        search=mcts.SearchConfig(simulations=4, gumbel_considered=2),
        simulations=4,
        fast_simulations=2,
        full_search_prob=1.0,
        parallel_games=2,
        max_plies=40,
        late_search_generation=3,
        late_search_scale=2.0,
    )
    selfplay = SelfPlay(config, mcts.UniformEvaluator(), seed=1)
    assert (selfplay.budget(True), selfplay.budget(False)) == (4, 2)
    selfplay.step()
    assert _simulations_of_one_move_each(selfplay) == {4}
    selfplay.play_generation(2, None)
    assert _simulations_of_one_move_each(selfplay) == {4}
    selfplay.play_generation(3, None)
    assert (selfplay.budget(True), selfplay.budget(False)) == (8, 4)
    _simulations_of_one_move_each(selfplay)  # the searches already started keep their budget
    assert _simulations_of_one_move_each(selfplay) == {8}


def test_a_session_config_passes_its_late_search_to_self_play():
    """The worker builds self-play's budgets from LATE_SEARCH_GENERATION / LATE_SEARCH_SCALE,
    and a session stored before the settings never switches."""
    from service.config import SessionConfig, stored_session_config
    from service.sessions.worker import selfplay_config

    built = selfplay_config(SessionConfig(late_search_generation=7, late_search_scale=3.0))
    assert (built.late_search_generation, built.late_search_scale) == (7, 3.0)
    stored = SessionConfig().model_dump(mode="json")
    del stored["late_search_generation"], stored["late_search_scale"]
    assert selfplay_config(stored_session_config(stored)).late_search_generation is None
