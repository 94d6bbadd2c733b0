"""Engine (and stats) defaults agree with the settings: one source of truth (#22).

The engine (pure, no pydantic) keeps its own defaults so that tests, benches and the UCI
engine can build its pieces without a session config; each one that stands for a setting
must be that setting's default, or a test or bench that relies on it plays by rules no
session uses (SelfPlayConfig.adjudication_margin was 3 against ADJUDICATION_MARGIN's 1).
A new engine default for a setting goes in PAIRS; a new drift fails here.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from service.config import SessionFields
from service.engine import arena, mcts, network, players
from service.engine.replay import ReplayBuffer
from service.engine.selfplay import GameRecord, SelfPlay, SelfPlayConfig, replay_samples, value_targets
from service.engine.training import Trainer
from service.stats.sprt import sprt

PAIRS: list[tuple[Any, str, str]] = [
    # (engine class or function, its parameter or field, the matching SessionFields field)
    (SelfPlayConfig, "simulations", "selfplay_simulations"),
    (SelfPlayConfig, "fast_simulations", "fast_simulations"),
    (SelfPlayConfig, "late_search_generation", "late_search_generation"),
    (SelfPlayConfig, "late_search_scale", "late_search_scale"),
    (SelfPlayConfig, "full_search_prob", "full_search_prob"),
    (SelfPlayConfig, "parallel_games", "selfplay_parallel_games"),
    (SelfPlayConfig, "temperature_plies", "temperature_plies"),
    (SelfPlayConfig, "max_plies", "max_moves_per_game"),
    (SelfPlayConfig, "adjudication", "adjudication"),
    (SelfPlayConfig, "adjudication_margin", "adjudication_margin"),
    (SelfPlayConfig, "resign_threshold", "resign_threshold"),
    (mcts.SearchConfig, "algorithm", "search"),
    (mcts.SearchConfig, "simulations", "selfplay_simulations"),
    (mcts.SearchConfig, "gumbel_considered", "gumbel_considered"),
    (arena.SearchSide, "algorithm", "search"),
    (arena.SearchSide, "gumbel_considered", "gumbel_considered"),
    (players.MCTSPlayer, "algorithm", "search"),
    (players.MCTSPlayer, "gumbel_considered", "gumbel_considered"),
    (players.MCTSPlayer, "seed", "seed"),
    (players.RandomPlayer, "seed", "seed"),
    (players.GreedyPlayer, "seed", "seed"),
    (SelfPlay, "seed", "seed"),
    (Trainer, "seed", "seed"),
    (Trainer, "device", "device"),
    (ReplayBuffer, "seed", "seed"),
    (network.Evaluator, "device", "device"),
    (sprt, "alpha", "sprt_alpha"),  # stats, pure like the engine
    (sprt, "beta", "sprt_beta"),
]

NO_DEFAULT: list[tuple[Any, tuple[str, ...]]] = [
    # value targets: every caller passes the session's VALUE_HORIZON_PLIES, ADJUDICATION_MARGIN, VALUE_MATERIAL_SCALE
    (GameRecord.samples, ("value_horizon", "margin", "scale")),
    (replay_samples, ("value_horizon", "margin", "scale")),
    (value_targets, ("horizon", "margin", "scale")),
]


def _parameter(target: Any, name: str) -> inspect.Parameter:
    return inspect.signature(target).parameters[name]


@pytest.mark.parametrize("target, name, setting", PAIRS, ids=[f"{t.__qualname__}.{n}={s}" for t, n, s in PAIRS])
def test_an_engine_default_is_its_settings_default(target, name, setting):
    default = _parameter(target, name).default
    assert default is not inspect.Parameter.empty, "no engine default any more: take the pair out of PAIRS"
    assert default == SessionFields.model_fields[setting].default


@pytest.mark.parametrize("target, names", NO_DEFAULT, ids=[t.__qualname__ for t, _ in NO_DEFAULT])
def test_value_target_settings_have_no_engine_default(target, names):
    assert all(_parameter(target, name).default is inspect.Parameter.empty for name in names)
