"""Improvement indicators: distributions against table values, hand-computed slopes, and each
verdict on seeded synthetic data with a known answer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.stats.analyzer import (
    CALIBRATED,
    IMPROVING,
    INSUFFICIENT,
    MISCALIBRATED,
    STABLE,
    WORSENING,
    Indicator,
    analyze,
    chi2_sf_wilson_hilferty,
    elo_delta_per_10_games,
    elo_progression,
    f_cdf,
    game_length_trend,
    high_confidence_moves,
    linear_trend,
    loss_spread,
    loss_trend,
    policy_entropy_trend,
    rolling_mean,
    rolling_win_rates,
    t_two_sided_p,
    two_proportion_z,
    value_calibration,
    win_rate_trend,
)

pytestmark = pytest.mark.unit

Z95 = 1.959963984540054


def point(games, rating, se):
    """An Elo point whose 95% interval has standard error `se`."""
    return (games, rating, rating - Z95 * se, rating + Z95 * se)


# --- distributions (table values: Abramowitz & Stegun 26.7, 26.6, 26.4) -----------------------


@pytest.mark.parametrize("t, df", [(12.706204736, 1), (2.228138852, 10), (2.045229642, 29), (1.959963985, 1e7)])
def test_t_quantiles_give_p_005(t, df):
    assert t_two_sided_p(t, df) == pytest.approx(0.05, abs=1e-6)
    assert t_two_sided_p(0.0, df) == pytest.approx(1.0)


def test_f_and_chi2_quantiles():
    assert f_cdf(4.025994, 9, 9) == pytest.approx(0.975, abs=1e-6)
    assert f_cdf(3.438101, 8, 8) == pytest.approx(0.95, abs=1e-6)
    assert f_cdf(1.0, 5, 5) == pytest.approx(0.5)
    assert chi2_sf_wilson_hilferty(18.307038, 10) == pytest.approx(0.05, abs=1e-3)
    assert chi2_sf_wilson_hilferty(124.342113, 100) == pytest.approx(0.05, abs=1e-4)


def test_two_proportion_z_by_hand():
    # 2/10 vs 8/10: pooled 0.5, se = sqrt(0.25 * 0.2)
    z, p = two_proportion_z(2, 10, 8, 10)
    assert z == pytest.approx(0.6 / math.sqrt(0.05))
    assert p == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(z / math.sqrt(2)))))
    assert two_proportion_z(0, 10, 0, 10) == (0.0, 1.0)


# --- Elo progression --------------------------------------------------------------------------


def test_elo_slope_exact_line_equal_weights():
    # y = 1500 + 3 * games, se 20 each: slope 3/game = 30 per 10 games; Sxx = 200 -> se 20/sqrt(200)
    pts = [point(0, 1500, 20), point(10, 1530, 20), point(20, 1560, 20)]
    slope, se = elo_delta_per_10_games(pts)
    assert slope == pytest.approx(30.0)
    assert se == pytest.approx(10 * 20 / math.sqrt(200))


def test_elo_slope_two_points_unequal_intervals():
    # two points: the slope is the difference quotient whatever the weights
    slope, se = elo_delta_per_10_games([point(40, 1600, 40), point(0, 1500, 30)])  # unsorted on purpose
    assert slope == pytest.approx(10 * 100 / 40)
    assert se == pytest.approx(10 * math.sqrt(30**2 + 40**2) / 40)


def test_elo_slope_scatter_beyond_intervals_scales_the_error():
    # OLS: slope 3/game, residuals (-10/3, 20/3, -10/3), SSR = 200/3; with se 2 the chi2 is 16.7 on
    # 1 dof, so the error is the OLS one: sqrt(SSR / (n - 2) / Sxx) = sqrt(1/3) per game.
    pts = [point(0, 1500, 2), point(10, 1540, 2), point(20, 1560, 2)]
    slope, se = elo_delta_per_10_games(pts)
    assert slope == pytest.approx(30.0)
    assert se == pytest.approx(10 * math.sqrt(1 / 3))


def test_elo_slope_weights_follow_the_intervals():
    # a precise point pins the line: the vague one barely moves it
    pts = [point(0, 1500, 1), point(10, 1500, 1), point(20, 1800, 1000)]
    slope, _ = elo_delta_per_10_games(pts)
    assert abs(slope) < 1.0


def test_elo_slope_undefined():
    assert elo_delta_per_10_games([]) is None
    assert elo_delta_per_10_games([point(10, 1500, 20)]) is None
    assert elo_delta_per_10_games([point(10, 1500, 20), point(10, 1600, 20)]) is None


def test_anchor_with_zero_width_interval_is_allowed():
    pts = [(0, 1500, 1500, 1500), point(100, 1600, 30), point(200, 1700, 30)]
    slope, se = elo_delta_per_10_games(pts)
    assert slope == pytest.approx(10.0, abs=0.1)
    assert 0 < se < 3


def test_elo_progression_verdicts():
    rng = np.random.default_rng(11)
    games = np.arange(0, 1000, 100)
    rising = [point(g, 1500 + 0.5 * g + rng.normal(0, 30), 30) for g in games]  # +5 per 10 games
    ind = elo_progression(rising)
    assert ind.verdict == IMPROVING
    assert ind.detail["slope_low"] > 0
    assert ind.trend == pytest.approx(5.0, abs=1.5)
    assert ind.value == pytest.approx(rising[-1][1])

    falling = [point(g, 1500 - 0.5 * g + rng.normal(0, 30), 30) for g in games]
    assert elo_progression(falling).verdict == WORSENING

    flat = [point(g, 1500 + rng.normal(0, 30), 30) for g in games]
    ind = elo_progression(flat)
    assert ind.verdict == STABLE
    assert ind.detail["slope_low"] < 0 < ind.detail["slope_high"]


def test_elo_progression_too_few_points():
    assert elo_progression([]).verdict == INSUFFICIENT
    ind = elo_progression([point(0, 1500, 20), point(100, 1900, 20)])
    assert ind.verdict == INSUFFICIENT  # a slope through 2 points is only the delta
    assert ind.trend == pytest.approx(40.0)


def test_elo_delta_first_to_last_by_hand():
    ind = elo_progression([point(0, 1500, 30), point(50, 1560, 25), point(100, 1620, 40)])
    assert ind.detail["delta"] == pytest.approx(120.0)
    assert ind.detail["delta_stderr"] == pytest.approx(50.0)  # sqrt(30^2 + 40^2)
    assert ind.detail["delta_low"] == pytest.approx(120 - Z95 * 50)
    assert ind.detail["delta_high"] == pytest.approx(120 + Z95 * 50)


@pytest.mark.parametrize("bad", [(10, 1500, 1510, 1520), (-1, 1500, 1400, 1600), (0, math.nan, 1400, 1600)])
def test_bad_elo_points(bad):
    with pytest.raises(ValueError):
        elo_progression([bad])


# --- self-play games ---------------------------------------------------------------------------


def test_rolling_rates_by_hand():
    assert rolling_mean([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert rolling_mean([1], 2) == []
    rates = rolling_win_rates(["1-0", "1/2-1/2", "0-1", "1-0"], window=2)
    assert rates["decisive_rate"] == [0.5, 0.5, 1.0]
    assert rates["white_score"] == [0.75, 0.25, 0.5]
    with pytest.raises(ValueError):
        rolling_win_rates(["1-0", "white won"])


def test_win_rate_trend_verdicts():
    draws, decisive = ["1/2-1/2"] * 10, ["1-0", "0-1"] * 5
    ind = win_rate_trend(draws + draws + decisive)
    assert ind.verdict == IMPROVING
    assert (ind.value, ind.trend) == (1.0, 1.0)
    assert ind.detail["decisive_p"] < 0.001
    assert win_rate_trend(decisive + draws).verdict == WORSENING
    # 4/10 -> 6/10 decisive: z = 0.89, not significant
    mixed_a = ["1-0"] * 4 + draws[:6]
    mixed_b = ["0-1"] * 6 + draws[:4]
    assert win_rate_trend(mixed_a + mixed_b).verdict == STABLE
    short = win_rate_trend(decisive + draws[:9])
    assert short.verdict == INSUFFICIENT and short.detail["min_games"] == 20


def test_white_score_is_reported_not_judged():
    ind = win_rate_trend(["0-1"] * 10 + ["1-0"] * 10)  # white 0% -> 100%, all decisive
    assert ind.verdict == STABLE
    assert ind.detail["white_score_first"] == 0.0 and ind.detail["white_score_last"] == 1.0
    assert ind.detail["white_score_p"] < 0.001


def test_game_length_verdicts():
    rng = np.random.default_rng(3)
    n = np.arange(300)
    assert game_length_trend(60 + 0.2 * n + rng.normal(0, 10, 300)).verdict == IMPROVING
    assert game_length_trend(120 - 0.2 * n + rng.normal(0, 10, 300)).verdict == WORSENING
    assert game_length_trend(80 + rng.normal(0, 10, 300)).verdict == STABLE
    assert game_length_trend([80, 90, 100, 110]).verdict == INSUFFICIENT


# --- learning ----------------------------------------------------------------------------------


def test_linear_trend_matches_ols_without_autocorrelation():
    x = np.arange(20, dtype=float)
    y = 2.0 * x + 1.0 + np.where(np.arange(20) % 2, 1.0, -1.0)  # alternating residuals: r1 < 0
    tr = linear_trend(y)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    se = math.sqrt(resid @ resid / 18 / ((x - x.mean()) @ (x - x.mean())))
    assert tr.slope == pytest.approx(slope)
    assert tr.stderr == pytest.approx(se)
    assert tr.lag1_autocorrelation < 0 and tr.n_effective == 20 and tr.df == 18
    assert tr.p_value == pytest.approx(t_two_sided_p(slope / se, 18))


def test_linear_trend_discounts_autocorrelated_residuals():
    rng = np.random.default_rng(4)
    a = np.zeros(200)
    for i in range(1, 200):
        a[i] = 0.8 * a[i - 1] + rng.normal()
    tr = linear_trend(a)
    assert tr.lag1_autocorrelation > 0.5
    assert tr.n_effective < 200 * 0.4


def test_linear_trend_edge_cases():
    assert linear_trend([1.0, 2.0]) is None
    assert linear_trend([1.0, 2.0, 3.0], [5, 5, 5]) is None
    exact = linear_trend([1.0, 2.0, 3.0, 4.0])
    assert exact.slope == pytest.approx(1.0) and exact.p_value == 0.0
    with pytest.raises(ValueError):
        linear_trend([1.0, 2.0, 3.0], [1.0, 2.0])


def falling_loss(seed=2, n=400):
    rng = np.random.default_rng(seed)
    steps = np.arange(n) * 5
    return steps, 3.0 * np.exp(-steps / 600) + 1.0 + rng.normal(0, 0.1, n)


def test_falling_noisy_loss_is_improving_and_converging():
    steps, loss = falling_loss()
    trend = loss_trend(loss, steps)
    assert trend.verdict == IMPROVING
    assert trend.trend < 0 and trend.detail["p_value"] < 1e-6
    spread = loss_spread(loss)
    assert spread.verdict == IMPROVING
    assert spread.trend < 0.5 and spread.detail["window"] == 100


def test_loss_verdicts_flat_rising_and_widening():
    rng = np.random.default_rng(8)
    flat = 2.0 + rng.normal(0, 0.1, 400)
    assert loss_trend(flat).verdict == STABLE
    assert loss_spread(flat).verdict == STABLE
    assert loss_trend(2.0 + 0.002 * np.arange(400) + rng.normal(0, 0.1, 400)).verdict == WORSENING
    widening = 2.0 + rng.normal(0, 1, 400) * np.linspace(0.05, 0.5, 400)
    assert loss_spread(widening).verdict == WORSENING


def test_loss_too_short():
    assert loss_trend([3.0, 2.0, 1.0]).verdict == INSUFFICIENT
    assert loss_spread([3.0, 2.0, 1.0, 0.5] * 2).verdict == INSUFFICIENT  # window 2 < 5
    assert loss_spread([1.0] * 30, window=20).verdict == INSUFFICIENT  # 2 windows do not fit


def test_policy_entropy_sharpening_is_improving():
    rng = np.random.default_rng(5)
    ent = 3.0 - 0.004 * np.arange(300) + rng.normal(0, 0.2, 300)
    ind = policy_entropy_trend(ent)
    assert ind.verdict == IMPROVING and ind.trend < 0
    assert policy_entropy_trend(3.0 + rng.normal(0, 0.2, 300)).verdict == STABLE


def test_high_confidence_moves():
    rng = np.random.default_rng(6)
    early = rng.uniform(0.0, 1.0, 500) * 0.8  # 25% >= 0.6
    late = 0.5 + rng.uniform(0.0, 0.5, 500)  # 80% >= 0.6
    ind = high_confidence_moves(np.concatenate([early, late]))
    assert ind.verdict == IMPROVING
    assert ind.value == pytest.approx(np.mean(late[-250:] >= 0.6))
    assert ind.detail["meets_target"] is True
    assert high_confidence_moves(np.concatenate([late, early])).verdict == WORSENING
    few = high_confidence_moves([0.7] * 30)
    assert few.verdict == INSUFFICIENT and few.value == 1.0
    with pytest.raises(ValueError):
        high_confidence_moves([1.2])


# --- value calibration -------------------------------------------------------------------------


def calibration_pairs(n, seed, p_win):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1, 1, n)
    result = np.where(rng.random(n) < p_win(v), 1, -1)
    return list(zip(v.tolist(), result.tolist()))


def test_well_calibrated_values():
    ind = value_calibration(calibration_pairs(5000, 7, lambda v: (v + 1) / 2))
    assert ind.verdict == CALIBRATED
    assert ind.value < 0.03  # noise alone: about 0.017 here
    assert ind.detail["brier"] == pytest.approx(1 / 6, abs=0.02)  # E[e (1 - e)], e ~ U(0, 1)
    assert ind.detail["brier"] < ind.detail["brier_reference"]


@pytest.mark.parametrize("p_win", [lambda v: np.full_like(v, 0.5), lambda v: (v / 3 + 1) / 2])
def test_miscalibrated_values(p_win):
    ind = value_calibration(calibration_pairs(5000, 9, p_win))  # ECE 0.25 and 0.17
    assert ind.verdict == MISCALIBRATED
    assert ind.value > 0.1 and ind.detail["p_value"] < 1e-6


def test_calibration_small_samples():
    assert value_calibration([]).verdict == INSUFFICIENT
    assert value_calibration(calibration_pairs(50, 1, lambda v: np.full_like(v, 0.5))).verdict == INSUFFICIENT


def test_calibration_bins_by_hand():
    pairs = [(0.9, 1), (0.9, 0), (-0.9, -1), (-0.9, -1)]
    ind = value_calibration(pairs, bins=2, min_samples=1)
    lo, hi = ind.detail["bins"]
    assert (lo["count"], lo["expected"], lo["actual"]) == (2, pytest.approx(0.05), 0.0)
    assert (hi["count"], hi["expected"], hi["actual"]) == (2, pytest.approx(0.95), 0.75)
    assert ind.value == pytest.approx(0.5 * 0.05 + 0.5 * 0.2)
    assert ind.detail["brier"] == pytest.approx((0.05**2 + 0.45**2 + 0.05**2 + 0.05**2) / 4)
    with pytest.raises(ValueError):
        value_calibration([(0.5, 0.5)])
    with pytest.raises(ValueError):
        value_calibration([(1.5, 1)])


# --- analyze -----------------------------------------------------------------------------------


def test_analyze_shows_what_is_given():
    assert analyze() == []
    steps, loss = falling_loss()
    got = analyze(losses=loss.tolist(), loss_steps=steps.tolist(), results=["1/2-1/2"] * 3)
    assert [i.name for i in got] == ["win_rate_trend", "loss_trend", "loss_spread"]
    assert [i.verdict for i in got] == [INSUFFICIENT, IMPROVING, IMPROVING]


def test_analyze_everything_is_json():
    rng = np.random.default_rng(10)
    got = analyze(
        elo_points=[(0, 1500, 1500, 1500), point(100, 1550, 30), point(200, 1620, 30)],
        results=["1-0", "1/2-1/2", "0-1"] * 10,
        losses=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # constant: zero spread, slope 0
        plies=[40, 50, 60],
        move_max_probabilities=rng.random(200).tolist(),
        policy_entropies=(3 - 0.01 * np.arange(50)).tolist(),  # exact line: t infinite
        value_pairs=calibration_pairs(300, 2, lambda v: (v + 1) / 2),
    )
    assert [i.name for i in got] == [
        "elo_progression",
        "win_rate_trend",
        "loss_trend",
        "loss_spread",
        "game_length",
        "high_confidence_moves",
        "policy_entropy",
        "value_calibration",
    ]
    assert all(isinstance(i, Indicator) for i in got)
    text = json.dumps([i.to_dict() for i in got], allow_nan=False)
    assert json.loads(text)[0]["name"] == "elo_progression"
    by_name = {i.name: i for i in got}
    assert by_name["policy_entropy"].verdict == IMPROVING
    assert by_name["loss_trend"].verdict == STABLE
    assert by_name["game_length"].verdict == INSUFFICIENT
