"""schedules: temperature over the games of a session (DESIGN.md "Engine")."""

import pytest

from service.engine.schedules import SCHEDULES, temperature

pytestmark = pytest.mark.unit


def test_the_four_schedules():
    assert set(SCHEDULES) == {"constant", "linear_decay", "exponential_decay", "step"}


@pytest.mark.parametrize("game", [0, 1, 5, 10, 11, 1000])
def test_constant(game):
    assert temperature("constant", game, 1.0, 0.1, 10) == 1.0


@pytest.mark.parametrize("game, expected", [(0, 1.0), (5, 0.6), (2, 0.84), (10, 0.2), (11, 0.2), (500, 0.2)])
def test_linear_decay(game, expected):
    assert temperature("linear_decay", game, 1.0, 0.2, 10) == pytest.approx(expected)


@pytest.mark.parametrize("game, expected", [(0, 1.0), (5, 0.5), (10, 0.25), (2, 0.25**0.2), (12, 0.25), (999, 0.25)])
def test_exponential_decay(game, expected):
    assert temperature("exponential_decay", game, 1.0, 0.25, 10) == pytest.approx(expected)


def test_exponential_decay_is_geometric():
    values = [temperature("exponential_decay", g, 2.0, 0.02, 8) for g in range(9)]
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert ratios == pytest.approx([ratios[0]] * 8)
    assert values[0] == pytest.approx(2.0) and values[-1] == pytest.approx(0.02)


@pytest.mark.parametrize("initial, final", [(1.0, 0.0), (0.0, 1.0)])
def test_exponential_decay_with_a_zero_end_is_linear(initial, final):
    for game, frac in [(0, 0.0), (5, 0.5), (10, 1.0), (20, 1.0)]:
        assert temperature("exponential_decay", game, initial, final, 10) == pytest.approx(
            initial + (final - initial) * frac
        )


@pytest.mark.parametrize("game, expected", [(0, 1.0), (5, 1.0), (9, 1.0), (10, 0.3), (11, 0.3), (10_000, 0.3)])
def test_step(game, expected):
    assert temperature("step", game, 1.0, 0.3, 10) == expected


@pytest.mark.parametrize("schedule", ["linear_decay", "exponential_decay"])
def test_decays_are_monotone_and_stay_between_the_ends(schedule):
    values = [temperature(schedule, g, 1.5, 0.1, 20) for g in range(40)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert all(0.1 - 1e-12 <= v <= 1.5 + 1e-12 for v in values)


@pytest.mark.parametrize("schedule", ["constant", "linear_decay", "exponential_decay", "step"])
def test_a_negative_game_counts_as_the_first(schedule):
    assert temperature(schedule, -3, 1.0, 0.2, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("schedule", ["linear_decay", "exponential_decay"])
def test_zero_decay_games_does_not_divide_by_zero(schedule):
    assert temperature(schedule, 0, 1.0, 0.2, 0) == pytest.approx(1.0)
    assert temperature(schedule, 1, 1.0, 0.2, 0) == pytest.approx(0.2)


@pytest.mark.parametrize("name", ["cosine", "", "Linear_Decay", "linear"])
def test_unknown_schedule_raises(name):
    with pytest.raises(ValueError, match="unknown temperature schedule"):
        temperature(name, 0, 1.0, 0.1, 10)
