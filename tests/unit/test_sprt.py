"""SPRT: bounds, LLR at no data, monotone and symmetric behaviour, verdicts at the bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.stats.elo import expected_score
from service.stats.sprt import (
    SPRTResult,
    llr_approximation,
    llr_logistic,
    llr_normalized,
    mle_expected,
    mle_t_value,
    sprt,
    sprt_bounds,
)

pytestmark = pytest.mark.unit

MODELS = ("normalized", "logistic")
bins = st.integers(min_value=0, max_value=300)
penta = st.lists(bins, min_size=5, max_size=5)


def test_bounds_for_alpha_beta_0_05():
    lower, upper = sprt_bounds(0.05, 0.05)
    assert lower == pytest.approx(-math.log(19)) and upper == pytest.approx(math.log(19))
    assert (round(lower, 3), round(upper, 3)) == (-2.944, 2.944)


def test_bounds_general():
    lower, upper = sprt_bounds(0.1, 0.2)
    assert lower == pytest.approx(math.log(0.2 / 0.9))
    assert upper == pytest.approx(math.log(0.8 / 0.1))


@pytest.mark.parametrize("ab", [(0, 0.05), (0.05, 1), (0.6, 0.5), (-0.1, 0.1)])
def test_bad_bounds_are_rejected(ab):
    with pytest.raises(ValueError):
        sprt_bounds(*ab)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("empty", [[0] * 5, [0] * 3])
def test_llr_is_zero_at_no_data(model, empty):
    r = sprt(empty, 0.0, 2.0, elo_model=model)
    assert abs(r.llr) < 1e-3
    assert r.state == "continue" and r.samples == 0


@pytest.mark.parametrize("model", MODELS)
def test_balanced_results_favour_neither_of_symmetric_hypotheses(model):
    assert sprt([10, 200, 500, 200, 10], -2.0, 2.0, elo_model=model).llr == pytest.approx(0.0, abs=1e-6)


@given(penta, st.sampled_from(MODELS), st.floats(0.5, 5.0))
@settings(max_examples=60)
def test_mirrored_results_negate_the_llr_of_symmetric_hypotheses(c, model, e):
    assert sprt(c, -e, e, elo_model=model).llr == pytest.approx(-sprt(c[::-1], -e, e, elo_model=model).llr, abs=1e-6)


@given(penta, st.sampled_from(MODELS), st.floats(-5.0, 5.0), st.floats(0.5, 5.0))
@settings(max_examples=60)
def test_a_better_pair_raises_the_llr(c, model, elo0, width):
    # one pair moves from LD (0.5 points) to WD (1.5 points): same number of pairs, more wins
    assume(c[1] > 0)
    better = [c[0], c[1] - 1, c[2], c[3] + 1, c[4]]
    assert sprt(better, elo0, elo0 + width, elo_model=model).llr > sprt(c, elo0, elo0 + width, elo_model=model).llr


@pytest.mark.parametrize("model", MODELS)
def test_more_wins_raise_the_llr_monotonically(model):
    llrs = [sprt([100 - k, 400, 1000, 400 + k, 20], 0.0, 2.0, elo_model=model).llr for k in range(0, 100, 10)]
    assert llrs == sorted(llrs) and len(set(llrs)) == len(llrs)


@pytest.mark.parametrize("model", MODELS)
def test_trinomial_more_wins_raise_the_llr(model):
    llrs = [sprt([500 - k, 800, 500 + k], 0.0, 5.0, elo_model=model).llr for k in range(0, 60, 10)]
    assert llrs == sorted(llrs)


@pytest.mark.parametrize("model", MODELS)
def test_verdicts_over_a_growing_test(model):
    strong = [sprt([k, 10 * k, 20 * k, 14 * k, 2 * k], 0.0, 5.0, elo_model=model) for k in range(1, 60)]
    weak = [sprt([2 * k, 14 * k, 20 * k, 10 * k, k], 0.0, 5.0, elo_model=model) for k in range(1, 60)]
    assert strong[0].state == "continue" and strong[-1].state == "accepted"
    assert weak[0].state == "continue" and weak[-1].state == "rejected"
    for r in strong + weak:
        assert r.state == ("accepted" if r.llr >= r.upper else "rejected" if r.llr <= r.lower else "continue")


@pytest.mark.parametrize("model", MODELS)
def test_state_changes_exactly_at_the_bounds(model):
    # pick alpha = beta so that the bound sits just below / just above the LLR
    up = [5, 40, 100, 60, 9]
    llr = sprt(up, 0.0, 5.0, elo_model=model).llr
    assert llr > 0

    def ab(bound):  # alpha = beta = a gives bounds -/+ log((1 - a) / a)
        return 1.0 / (1.0 + math.exp(bound))

    assert sprt(up, 0.0, 5.0, ab(llr - 1e-6), ab(llr - 1e-6), model).state == "accepted"
    assert sprt(up, 0.0, 5.0, ab(llr + 1e-6), ab(llr + 1e-6), model).state == "continue"
    down = up[::-1]
    llr_down = sprt(down, 0.0, 5.0, elo_model=model).llr
    assert llr_down < 0
    assert sprt(down, 0.0, 5.0, ab(-llr_down - 1e-6), ab(-llr_down - 1e-6), model).state == "rejected"
    assert sprt(down, 0.0, 5.0, ab(-llr_down + 1e-6), ab(-llr_down + 1e-6), model).state == "continue"


def test_result_fields():
    r = sprt([1, 2, 3, 4, 5], -1.0, 3.0, alpha=0.1, beta=0.2, elo_model="logistic")
    assert isinstance(r, SPRTResult)
    assert (r.elo0, r.elo1, r.elo_model, r.alpha, r.beta, r.samples) == (-1.0, 3.0, "logistic", 0.1, 0.2, 15)
    assert (r.lower, r.upper) == sprt_bounds(0.1, 0.2)
    assert r.to_dict()["state"] == r.state


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(pentanomial=[1, 2, 3, 4, 5], elo0=2.0, elo1=1.0),
        dict(pentanomial=[1, 2, 3, 4, 5], elo0=0.0, elo1=1.0, elo_model="bayes"),
        dict(pentanomial=[1, 2, 3, 4], elo0=0.0, elo1=1.0),
        dict(pentanomial=[1, 2, -3, 4, 5], elo0=0.0, elo1=1.0),
    ],
)
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        sprt(**kwargs)


def test_mle_expected_has_the_asked_mean_and_stays_close():
    values = [0.0, 0.25, 0.5, 0.75, 1.0]
    probs = [0.05, 0.2, 0.5, 0.2, 0.05]
    for s in (0.3, 0.5, 0.52, 0.9):
        q = mle_expected(values, probs, s)
        assert sum(q) == pytest.approx(1.0)
        assert sum(v * p for v, p in zip(values, q)) == pytest.approx(s)
    assert mle_expected(values, probs, 0.5) == pytest.approx(probs)  # already has that mean


def test_mle_t_value_has_the_asked_t_value():
    values = [0.0, 0.25, 0.5, 0.75, 1.0]
    probs = [0.02, 0.2, 0.55, 0.2, 0.03]
    for t in (-0.5, 0.0, 0.05, 0.3, 2.0):  # 2.0 takes the stepped path
        q = mle_t_value(values, probs, 0.5, t)
        mu = sum(v * p for v, p in zip(values, q))
        sd = math.sqrt(sum(p * (v - mu) ** 2 for v, p in zip(values, q)))
        assert sum(q) == pytest.approx(1.0)
        assert (mu - 0.5) / sd == pytest.approx(t, abs=1e-6)


@pytest.mark.parametrize("extreme", [[0, 0, 0, 0, 10], [10, 0, 0, 0, 0], [0, 0, 10, 0, 0], [0, 5, 0, 5, 0]])
def test_extreme_results_and_wide_bounds_do_not_crash(extreme):
    for elo0, elo1 in ((0.0, 2.0), (-300.0, 300.0), (0.0, 2000.0)):
        for model in MODELS:
            assert math.isfinite(sprt(extreme, elo0, elo1, elo_model=model).llr)


def test_logistic_llr_of_the_trinomial_by_hand():
    # With equal scores under H0/H1 mirrored around the observed mean the LLR is 0; and the
    # single-category jump: for [L, D, W] the H0 distribution has mean expected_score(elo0).
    s0 = expected_score(-10.0)
    q = mle_expected([0.0, 0.5, 1.0], [0.3, 0.4, 0.3], s0)
    assert sum(v * p for v, p in zip([0.0, 0.5, 1.0], q)) == pytest.approx(s0)
    assert llr_logistic(-10.0, 10.0, [30, 40, 30]) == pytest.approx(0.0, abs=1e-9)


@given(
    st.integers(5, 500), st.integers(200, 5000), st.integers(200, 10000), st.floats(-0.1, 0.1), st.sampled_from(MODELS)
)
@settings(max_examples=40)
def test_exact_llr_agrees_with_the_closed_form_approximation(ww, wd, dd, shift, model):
    # fishtest's approximations (LLR_alt2, LLR_normalized_alt) hold near the hypotheses:
    # results a few Elo from 0, as in an SPRT with bounds [0, 2], while the LLR is within
    # the test's bounds (far outside them the second-order expansion drifts by a few %)
    k = round(shift * wd)
    c = [ww, wd - k, dd, wd + k, ww]
    exact = sprt(c, 0.0, 2.0, elo_model=model).llr
    approx = llr_approximation(0.0, 2.0, c, model)
    assume(abs(approx) < 3.0)
    assert exact == pytest.approx(approx, rel=0.05, abs=0.05)


def test_normalized_and_logistic_llr_functions_match_sprt():
    c = [3, 40, 100, 50, 7]
    assert sprt(c, 0.0, 2.0, elo_model="normalized").llr == llr_normalized(0.0, 2.0, c)
    assert sprt(c, 0.0, 2.0, elo_model="logistic").llr == llr_logistic(0.0, 2.0, c)
    with pytest.raises(ValueError):
        llr_approximation(0.0, 2.0, c, "bayes")
