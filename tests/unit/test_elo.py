"""Elo estimates and the maximum-likelihood rating list: properties, edge cases, recovery of
known ratings from simulated games."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.stats.elo import (
    ELO_CAP,
    Match,
    elo_from_pentanomial,
    elo_from_wdl,
    expected_score,
    fit_ratings,
    logistic_elo,
    nelo_from_pentanomial,
    nelo_from_wdl,
    pairs_ratio,
    pentanomial,
)

pytestmark = pytest.mark.unit

counts = st.integers(min_value=0, max_value=5000)
penta = st.lists(st.integers(min_value=0, max_value=2000), min_size=5, max_size=5).filter(lambda c: sum(c) > 0)


# --- the Elo curve ------------------------------------------------------------------------


def test_logistic_curve_known_points():
    assert logistic_elo(0.5) == 0.0
    assert expected_score(0.0) == 0.5
    # 400 points = odds of 10 to 1
    assert expected_score(400.0) == pytest.approx(10 / 11)
    assert logistic_elo(10 / 11) == pytest.approx(400.0)
    assert logistic_elo(0.75) == pytest.approx(400 * math.log10(3))


def test_scores_0_and_1_give_the_finite_cap():
    assert logistic_elo(1.0) == ELO_CAP
    assert logistic_elo(0.0) == pytest.approx(-ELO_CAP)
    assert ELO_CAP == pytest.approx(400 * math.log10(999))
    assert expected_score(-1e6) == 0.0 and expected_score(1e6) == 1.0  # no overflow


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan")])
def test_scores_outside_0_1_are_rejected(bad):
    with pytest.raises(ValueError):
        logistic_elo(bad)


@given(st.floats(min_value=-1100, max_value=1100))
def test_expected_score_and_logistic_elo_are_inverse(d):
    assert logistic_elo(expected_score(d)) == pytest.approx(d, abs=1e-6)
    assert expected_score(d) + expected_score(-d) == pytest.approx(1.0)


# --- one match ----------------------------------------------------------------------------


@given(counts, counts, counts)
def test_swapping_wins_and_losses_negates_elo_and_mirrors_the_interval(w, d, lost):
    assume(w + d + lost > 0)
    a, b = elo_from_wdl(w, d, lost), elo_from_wdl(lost, d, w)
    assert a.elo == pytest.approx(-b.elo, abs=1e-9)
    assert a.low == pytest.approx(-b.high, abs=1e-9)
    assert a.high == pytest.approx(-b.low, abs=1e-9)
    assert a.score == pytest.approx(1 - b.score)
    assert a.low <= a.elo <= a.high


@given(penta)
def test_reversing_a_pentanomial_negates_elo(c):
    a, b = elo_from_pentanomial(c), elo_from_pentanomial(c[::-1])
    assert a.elo == pytest.approx(-b.elo, abs=1e-9)
    assert a.low == pytest.approx(-b.high, abs=1e-9)
    na, nb = nelo_from_pentanomial(c), nelo_from_pentanomial(c[::-1])
    assert na.elo == pytest.approx(-nb.elo, abs=1e-9)
    assert na.error == pytest.approx(nb.error)


@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(0, 2000))
def test_four_times_the_games_shrinks_the_interval(w, d, lost):
    assume(w + d >= 1 and lost + d >= 1 and w + d + lost >= 2)  # a score strictly inside (0, 1)
    small, big = elo_from_wdl(w, d, lost), elo_from_wdl(4 * w, 4 * d, 4 * lost)
    assert big.error < small.error
    assert big.games == 4 * small.games
    # a 0 count is regularised to 1e-3 (LLRcalc.regularize), which moves a small match's
    # score by up to 1e-3 / games per empty cell: the same score within that
    assert big.score == pytest.approx(small.score, abs=2e-3 / small.games)


@given(penta)
def test_four_times_the_pairs_shrinks_the_interval(c):
    assume(c[0] + c[1] + c[2] > 0 and c[2] + c[3] + c[4] > 0 and sum(c) >= 2)
    small, big = elo_from_pentanomial(c), elo_from_pentanomial([4 * x for x in c])
    assert big.error < small.error
    assert nelo_from_pentanomial([4 * x for x in c]).error < nelo_from_pentanomial(c).error


@given(st.integers(0, 5000), st.integers(0, 5000))
def test_half_score_is_zero_elo(wl, d):
    assume(wl + d > 0)
    e = elo_from_wdl(wl, d, wl)
    assert e.elo == pytest.approx(0.0, abs=1e-9)
    assert e.los == pytest.approx(0.5)
    assert e.low == pytest.approx(-e.high)
    assert nelo_from_wdl(wl, d, wl).elo == pytest.approx(0.0, abs=1e-9)


def test_symmetric_pentanomial_is_zero_elo():
    assert elo_from_pentanomial([3, 20, 50, 20, 3]).elo == pytest.approx(0.0, abs=1e-9)
    assert nelo_from_pentanomial([3, 20, 50, 20, 3]).elo == pytest.approx(0.0, abs=1e-9)


def test_trinomial_interval_by_hand():
    # 60 W, 20 D, 20 L: score 0.7, per-game variance 0.6*0.09 + 0.2*0.04 + 0.2*0.49 = 0.16
    e = elo_from_wdl(60, 20, 20)
    z = 1.959963984540054
    assert e.score == pytest.approx(0.7)
    assert e.elo == pytest.approx(-400 * math.log10(1 / 0.7 - 1))
    se = math.sqrt(0.16 / 100)
    assert e.low == pytest.approx(logistic_elo(0.7 - z * se))
    assert e.high == pytest.approx(logistic_elo(0.7 + z * se))
    assert e.games == 100 and e.method == "trinomial"
    assert e.to_dict()["error"] == pytest.approx(e.error)


def test_pentanomial_interval_by_hand():
    # 10 pairs: mean per-game scores 0.25 x2, 0.5 x4, 0.75 x4 -> mean 0.55, variance
    # (2 * 0.3^2 + 4 * 0.05^2 + 4 * 0.2^2) / 10 = 0.035 per pair
    e = elo_from_pentanomial([0, 2, 4, 4, 0])
    z = 1.959963984540054
    assert e.score == pytest.approx(0.55, abs=1e-4)  # the two zero counts are regularized to 1e-3
    se = math.sqrt(0.035 / 10)
    assert e.low == pytest.approx(logistic_elo(0.55 - z * se), abs=0.05)
    assert e.high == pytest.approx(logistic_elo(0.55 + z * se), abs=0.05)
    assert e.games == 20 and e.method == "pentanomial"


def test_pairing_narrows_the_interval_when_colours_correlate():
    # the same 200 games: each pair is a win and a loss (colour bias), so pairs are all 1-1
    pairs = elo_from_pentanomial([0, 0, 100, 0, 0])
    games = elo_from_wdl(100, 0, 100)
    assert pairs.elo == pytest.approx(0.0, abs=1e-9) and games.elo == pytest.approx(0.0, abs=1e-9)
    assert pairs.error < games.error / 10


def test_undefeated_match_stays_finite():
    e = elo_from_wdl(50, 0, 0)
    assert math.isfinite(e.elo) and math.isfinite(e.low) and e.elo == ELO_CAP
    assert e.low < e.elo


@pytest.mark.parametrize("args", [(0, 0, 0), (-1, 2, 3), (1.5, 2, 3)])
def test_bad_wdl_is_rejected(args):
    with pytest.raises(ValueError):
        elo_from_wdl(*args)


def test_bad_pentanomial_is_rejected():
    with pytest.raises(ValueError):
        elo_from_pentanomial([1, 2, 3, 4])
    with pytest.raises(ValueError):
        elo_from_pentanomial([0, 0, 0, 0, 0])


def test_nelo_sign_and_pairs_ratio():
    c = [5, 40, 100, 60, 8]
    assert nelo_from_pentanomial(c).elo > 0 and elo_from_pentanomial(c).elo > 0
    assert pairs_ratio(c) == pytest.approx(68 / 45)
    assert pairs_ratio([0, 0, 3, 1, 0]) == math.inf
    assert math.isnan(pairs_ratio([0, 0, 3, 0, 0]))


# --- pentanomial counting -----------------------------------------------------------------


def test_pentanomial_from_pairs():
    pairs = [(0, 0), (0, 0.5), (0.5, 0), (1, 0), (0.5, 0.5), (0, 1), (1, 0.5), (0.5, 1), (1, 1)]
    assert pentanomial(pairs) == [1, 2, 3, 2, 1]
    assert pentanomial([]) == [0, 0, 0, 0, 0]
    with pytest.raises(ValueError):
        pentanomial([(0.25, 1)])


@given(st.lists(st.tuples(st.sampled_from([0, 0.5, 1]), st.sampled_from([0, 0.5, 1])), max_size=50))
def test_pentanomial_keeps_the_points(pairs):
    c = pentanomial(pairs)
    assert sum(c) == len(pairs)
    assert sum(i * 0.5 * n for i, n in enumerate(c)) == pytest.approx(sum(a + b for a, b in pairs))


# --- rating list ----------------------------------------------------------------------------


def simulate(true: dict[str, float], games_per_pair: int, seed: int) -> list[Match]:
    """Round robin with draws: P(draw) up to 30%, P(win) = E - P(draw)/2 (the score model)."""
    rng = np.random.default_rng(seed)
    names = sorted(true)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            e = expected_score(true[a] - true[b])
            draw = min(0.3, 1.6 * min(e, 1 - e))
            w, d, lost = rng.multinomial(games_per_pair, [e - draw / 2, draw, 1 - e - draw / 2])
            out.append(Match(a, b, int(w), int(d), int(lost)))
    return out


def test_fit_recovers_known_ratings():
    true = {"gen0": 1500.0, "a": 1620.0, "b": 1380.0, "c": 1750.0}
    fit = fit_ratings(simulate(true, 600, seed=7), anchor="gen0", anchor_rating=1500.0)
    assert set(fit) == set(true)
    assert fit["gen0"].rating == 1500.0 and fit["gen0"].low == fit["gen0"].high == 1500.0
    for name, r in fit.items():
        assert abs(r.rating - true[name]) <= 3 * r.stderr + 1e-9, (name, r)
        assert abs(r.rating - true[name]) < 40
        assert r.low < r.rating < r.high or name == "gen0"
        assert r.games == 1800
    # the order is recovered
    assert sorted(fit, key=lambda n: fit[n].rating) == ["b", "gen0", "a", "c"]


def test_fit_intervals_cover_the_truth_most_of_the_time():
    true = {"p0": 1500.0, "p1": 1550.0, "p2": 1450.0}
    covered = total = 0
    for seed in range(30):
        fit = fit_ratings(simulate(true, 100, seed=seed), anchor="p0", prior_draws=0.0)
        for name in ("p1", "p2"):
            total += 1
            covered += fit[name].low <= true[name] <= fit[name].high
    assert covered / total >= 0.85  # nominal 95%, conservative with draws


@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 300))
@settings(max_examples=40)
def test_two_player_fit_is_the_match_elo(w, d, lost):
    assume(w + d >= 1 and lost + d >= 1)
    score = (w + d / 2) / (w + d + lost)
    assume(0.002 < score < 0.998)  # inside the clamp of logistic_elo
    fit = fit_ratings([Match("x", "y", w, d, lost)], anchor="y", anchor_rating=0.0, prior_draws=0.0)
    assert fit["x"].rating == pytest.approx(logistic_elo(score), abs=1e-6)


@given(st.floats(-1000, 3000, allow_nan=False))
@settings(max_examples=20)
def test_anchor_has_exactly_the_anchor_rating(anchor_rating):
    matches = [Match("a", "b", 5, 3, 2), Match("b", "c", 1, 1, 4), Match("c", "a", 2, 2, 2)]
    fit = fit_ratings(matches, anchor="b", anchor_rating=anchor_rating)
    assert fit["b"].rating == anchor_rating
    base = fit_ratings(matches, anchor="b", anchor_rating=0.0)
    for name in "ac":  # shifting the anchor shifts everybody
        assert fit[name].rating - anchor_rating == pytest.approx(base[name].rating, abs=1e-6)
        assert fit[name].stderr == pytest.approx(base[name].stderr)


def test_undefeated_and_winless_players_get_finite_ratings():
    matches = [Match("gen0", "random", 40, 0, 0), Match("new", "gen0", 30, 10, 0), Match("gen0", "greedy", 20, 5, 15)]
    fit = fit_ratings(matches, anchor="gen0")
    for r in fit.values():
        assert all(math.isfinite(x) for x in (r.rating, r.low, r.high, r.stderr))
    assert fit["random"].rating < fit["greedy"].rating < fit["gen0"].rating < fit["new"].rating
    # the plain ML has no finite solution here
    with pytest.raises(ValueError, match="prior_draws"):
        fit_ratings(matches, anchor="gen0", prior_draws=0.0)


def test_draws_count_half_a_point():
    all_draws = fit_ratings([Match("a", "b", 0, 50, 0)], anchor="a")
    assert all_draws["b"].rating == pytest.approx(1500.0)
    mixed = fit_ratings([Match("a", "b", 10, 20, 0)], anchor="b", prior_draws=0.0)
    assert mixed["a"].rating - 1500.0 == pytest.approx(logistic_elo(20 / 30))


def test_matches_are_aggregated_in_either_orientation():
    split = [Match("a", "b", 3, 1, 2), Match("b", "a", 2, 4, 1), Match("a", "c", 1, 1, 1)]
    merged = [Match("a", "b", 4, 5, 4), Match("a", "c", 1, 1, 1)]
    fa, fb = fit_ratings(split, anchor="a"), fit_ratings(merged, anchor="a")
    for name in "abc":
        assert fa[name].rating == pytest.approx(fb[name].rating)
        assert fa[name].games == fb[name].games
    assert fa["a"].games == 16


def test_players_not_connected_to_the_anchor_are_left_out():
    matches = [Match("a", "b", 3, 3, 3), Match("x", "y", 5, 0, 1), Match("c", "d", 0, 0, 0)]
    fit = fit_ratings(matches, anchor="a")
    assert set(fit) == {"a", "b"}
    # an anchor without games is listed alone
    alone = fit_ratings(matches, anchor="zz", anchor_rating=1000.0)
    assert set(alone) == {"zz"} and alone["zz"].rating == 1000.0 and alone["zz"].games == 0
    assert set(fit_ratings([], anchor="a")) == {"a"}


def test_more_games_narrow_the_rating_interval():
    few = fit_ratings([Match("a", "b", 6, 2, 2)], anchor="a")
    many = fit_ratings([Match("a", "b", 60, 20, 20)], anchor="a")
    assert many["b"].high - many["b"].low < few["b"].high - few["b"].low


def test_rating_list_is_consistent_in_a_cycle():
    # a beats b, b beats c, c beats a, equally: everyone is equal
    matches = [Match("a", "b", 6, 0, 4), Match("b", "c", 6, 0, 4), Match("c", "a", 6, 0, 4)]
    fit = fit_ratings(matches, anchor="a", prior_draws=0.0)
    assert fit["b"].rating == pytest.approx(1500.0, abs=1e-6)
    assert fit["c"].rating == pytest.approx(1500.0, abs=1e-6)


@pytest.mark.parametrize(
    "bad",
    [[Match("a", "a", 1, 0, 0)], [Match("a", "b", -1, 0, 0)], [Match("", "b", 1, 0, 0)], [Match("a", "b", 1.5, 0, 0)]],
)
def test_bad_matches_are_rejected(bad):
    with pytest.raises(ValueError):
        fit_ratings(bad, anchor="a")


def test_bad_prior_is_rejected():
    with pytest.raises(ValueError):
        fit_ratings([Match("a", "b", 1, 0, 0)], anchor="a", prior_draws=-1)
