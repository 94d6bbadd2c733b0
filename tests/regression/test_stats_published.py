"""Statistics pinned to published numbers: fishtest test results quoted in Stockfish pull
requests, and a published Bradley-Terry fit.

fishtest prints a finished SPRT as
    LLR: 2.94 (-2.94,2.94) <0.00,2.00>        <- LLR (lower,upper) <nelo0,nelo1>, {..} = logistic
    Total: 61472 W: 16081 L: 15741 D: 29650
    Ptnml(0-2): 186, 7106, 15647, 7600, 197   <- [LL, LD, DD+WL, WD, WW]
and a fixed-game test as "Elo: x ± y (95%) LOS: z%" (stat_util.get_elo on the pentanomial,
or on [L, D, W] before 2019) plus "nElo: x ± y (95%) PairsRatio: r" (elo_results.mak).
The bound style tells the model (fishtest util.format_bounds): [] BayesElo, {} logistic,
<> normalized. Each row below is copied from the pull request named in its comment; the
numbers were shown by tests.stockfishchess.org and rounded there to the digits shown.

A published LLR just below 2.944 on a passed test is not a discrepancy: fishtest's server
stops a test at the bound minus its estimated overshoot (stat_util.update_SPRT), which this
module does not model (see service/stats/sprt.py), so such rows give "continue" here.
"""

from __future__ import annotations

import math

import pytest

from service.stats.elo import Match, elo_from_pentanomial, elo_from_wdl, fit_ratings, nelo_from_pentanomial, pairs_ratio
from service.stats.sprt import sprt, sprt_bounds

pytestmark = pytest.mark.regression

# (source, model, elo0, elo1, published LLR, total games, pentanomial)
PUBLISHED_SPRT = [
    # https://github.com/official-stockfish/Stockfish/pull/3209
    # (tests/view/5f9c7bbc6a2c112b60691d4d, 5f9d01f06a2c112b60691d87)
    ("PR3209 STC", "logistic", -0.25, 1.25, 2.94, 53712, [253, 4282, 17604, 4431, 286]),
    ("PR3209 LTC", "logistic", 0.25, 1.25, 2.97, 80184, [58, 3302, 33130, 3518, 84]),
    # https://github.com/official-stockfish/Stockfish/pull/3098
    # (tests/view/5f4cb5e8ba100690c5cc5d25, 5f4dbc2eba100690c5cc5dac)
    ("PR3098 STC", "logistic", -0.25, 1.25, 2.96, 91328, [491, 7345, 29693, 7670, 465]),
    ("PR3098 LTC", "logistic", 0.25, 1.25, 2.97, 52448, [53, 2220, 21459, 2445, 47]),
    # https://github.com/official-stockfish/Stockfish/pull/2493
    # (tests/view/5e1c9afed12216a2857e6401, 5e1ceb9975be933c8fe635a3)
    ("PR2493 STC", "logistic", -1.00, 3.00, 2.94, 25428, [424, 2948, 5832, 3045, 460]),
    ("PR2493 LTC", "logistic", 0.00, 2.00, 2.94, 187423, [1284, 17437, 55536, 18085, 1292]),
    # https://github.com/official-stockfish/Stockfish/pull/2537
    # (tests/view/5e334016708b13464ceea32e, 5e34011e57e1ecae66ec2aab)
    ("PR2537 STC", "logistic", -1.50, 0.50, 2.94, 65135, [1090, 7618, 14947, 7623, 1136]),
    ("PR2537 LTC", "logistic", -1.50, 0.50, 2.95, 17768, [128, 1602, 5273, 1679, 140]),
    # https://github.com/official-stockfish/Stockfish/pull/4493
    # (tests/live_elo/64219901db43ab2ba6f901fa, view/642abe3377ff3301150d3a16)
    ("PR4493 STC", "normalized", 0.00, 2.00, 3.22, 664048, [2002, 72968, 180891, 74129, 2034]),
    ("PR4493 LTC", "normalized", 0.50, 2.50, 2.94, 77576, [24, 7350, 23669, 7717, 28]),
    # https://github.com/official-stockfish/Stockfish/pull/6255
    # (tests/view/68a65d8ab6fb3300203bc825, 68a8f45cb6fb3300203bcb5e)
    ("PR6255 STC", "normalized", -1.75, 0.25, 2.96, 107392, [317, 12094, 28735, 12231, 319]),
    ("PR6255 LTC", "normalized", -1.75, 0.25, 2.94, 94014, [47, 9917, 26934, 10064, 45]),
    # https://github.com/official-stockfish/Stockfish/pull/4160 (tests/view/631ba0ff74bc4fe483a99db3)
    ("PR4160 VLTC", "normalized", 0.50, 2.50, 2.95, 29712, [12, 2318, 9925, 2598, 3]),
    # https://github.com/official-stockfish/Stockfish/pull/4403 (tests/view/63ec2025fe833123fef34109,
    # 63eeacdee74a12625bcc0255; the failed retest tests/live_elo/63f922ece74a12625bcdd598)
    ("PR4403 STC", "normalized", -1.75, 0.25, 2.96, 501984, [1402, 55789, 136915, 55460, 1426]),
    ("PR4403 LTC", "normalized", -1.75, 0.25, 2.94, 443224, [173, 43599, 134275, 43384, 181]),
    ("PR4403 retest", "normalized", -1.75, 0.25, -2.94, 113560, [44, 11252, 34531, 10903, 50]),
    # https://github.com/official-stockfish/Stockfish/pull/4112
    # (tests/view/62e0c3e98e4fa6ae472695ed, 62e190aa8e4fa6ae4726b5b5)
    ("PR4112 STC", "normalized", -2.25, 0.25, 2.96, 293568, [1344, 31488, 81366, 31213, 1373]),
    ("PR4112 LTC", "normalized", -2.25, 0.25, 2.98, 187392, [384, 17801, 57369, 17772, 370]),
]


def test_displayed_bounds():
    # every row above shows "(-2.94,2.94)": alpha = beta = 0.05 (fishtest's default)
    lower, upper = sprt_bounds(0.05, 0.05)
    assert (f"{lower:.2f}", f"{upper:.2f}") == ("-2.94", "2.94")


@pytest.mark.parametrize("row", PUBLISHED_SPRT, ids=[r[0] for r in PUBLISHED_SPRT])
def test_llr_matches_fishtest(row):
    _, model, elo0, elo1, published, total, ptnml = row
    # the row was copied consistently; in January 2020 (PR2493, PR2537) some workers still
    # sent single games only (fishtest util.get_chi2: "a small window in time where we could
    # have both trinomial and pentanomial workers"), so Total may exceed 2 x pairs there
    assert 2 * sum(ptnml) == total or (row[0].startswith(("PR2493", "PR2537")) and 2 * sum(ptnml) < total)
    r = sprt(ptnml, elo0, elo1, alpha=0.05, beta=0.05, elo_model=model)
    assert f"{r.llr:.2f}" == f"{published:.2f}"
    if published >= 2.95:
        assert r.state == "accepted"
    elif published <= -2.95:
        assert r.state == "rejected"
    else:  # stopped by fishtest within its overshoot margin of the bound (module docstring)
        assert abs(abs(r.llr) - r.upper) < 0.01


def test_the_model_matters():
    # the same counts in the other model give another LLR: the rows pin the model too
    _, _, elo0, elo1, published, _, ptnml = PUBLISHED_SPRT[8]  # PR4493 STC, normalized
    assert f"{sprt(ptnml, elo0, elo1, elo_model='logistic').llr:.2f}" != f"{published:.2f}"


# Fixed-game tests: (source, ptnml, W, L, D, Elo, ±, LOS %, nElo, ±, PairsRatio)
PUBLISHED_ELO = [
    # https://github.com/official-stockfish/Stockfish/pull/6255 ("Passed Stalemate 10k")
    ("PR6255 10k", [1, 137, 4659, 203, 0], 4626, 4562, 812, 2.22, 1.3, 100.0, 12.00, 6.8, 1.47),
    # https://github.com/official-stockfish/Stockfish/pull/4160 (tests/view/631836b437f41b13973d7da1)
    ("PR4160 60k", [39, 5335, 18992, 5622, 12], 16422, 16189, 27389, 1.35, 1.2, 98.6, 3.13, 2.8, 1.05),
]


@pytest.mark.parametrize("row", PUBLISHED_ELO, ids=[r[0] for r in PUBLISHED_ELO])
def test_fixed_game_elo_matches_fishtest(row):
    _, ptnml, w, lost, d, elo, err, los, nelo, nerr, ratio = row
    assert 2 * sum(ptnml) == w + lost + d
    e = elo_from_pentanomial(ptnml)
    assert (f"{e.elo:.2f}", f"{e.error:.1f}", f"{100 * e.los:.1f}") == (f"{elo:.2f}", f"{err:.1f}", f"{los:.1f}")
    assert e.games == w + lost + d
    assert e.score == pytest.approx((w + d / 2) / (w + lost + d), abs=1e-6)
    n = nelo_from_pentanomial(ptnml)
    assert (f"{n.elo:.2f}", f"{n.error:.1f}") == (f"{nelo:.2f}", f"{nerr:.1f}")
    assert f"{pairs_ratio(ptnml):.2f}" == f"{ratio:.2f}"


def test_trinomial_elo_matches_fishtest():
    # https://github.com/official-stockfish/Stockfish/pull/311 (2015, before pentanomials):
    # "ELO: 4.77 +-2.2 (95%) LOS: 100.0%  Total: 40124 W: 8711 L: 8160 D: 23253"
    e = elo_from_wdl(8711, 23253, 8160)
    assert (f"{e.elo:.2f}", f"{e.error:.1f}", f"{100 * e.los:.1f}") == ("4.77", "2.2", "100.0")
    assert e.games == 40124


def test_pentanomial_interval_is_narrower_than_trinomial_on_the_same_games():
    # PR4160 60k: the same 60000 games read as pairs and as single games (derived, not
    # published: the paired interval is the one fishtest shows, +-1.2)
    paired = elo_from_pentanomial([39, 5335, 18992, 5622, 12])
    single = elo_from_wdl(16422, 27389, 16189)
    assert paired.elo == pytest.approx(single.elo, abs=1e-3)
    assert paired.error < single.error


# A published Bradley-Terry fit: Agresti (2002), Categorical Data Analysis, 2nd ed., Sec. 10.6,
# Table 10.11 -- 1987 American League East, no draws. The data are hturner/BradleyTerry2
# data/baseball.csv (commit ce4902e7) and the pinned results its tests/testthat/test-baseball.R
# (commit 279b99ee): sorted log-odds abilities relative to Baltimore rounded to 2 decimals
# (0.68, 1.11, 1.25, 1.29, 1.44, 1.58) and standard errors that round to 0.3.
BASEBALL = """\
Milwaukee,Detroit,4,3;Milwaukee,Toronto,4,2;Milwaukee,New York,4,3;Milwaukee,Boston,6,1;
Milwaukee,Cleveland,4,2;Milwaukee,Baltimore,6,0;Detroit,Milwaukee,3,3;Detroit,Toronto,4,2;
Detroit,New York,4,3;Detroit,Boston,6,0;Detroit,Cleveland,6,1;Detroit,Baltimore,4,3;
Toronto,Milwaukee,2,5;Toronto,Detroit,4,3;Toronto,New York,2,4;Toronto,Boston,4,3;
Toronto,Cleveland,4,2;Toronto,Baltimore,6,0;New York,Milwaukee,3,3;New York,Detroit,5,1;
New York,Toronto,2,5;New York,Boston,4,3;New York,Cleveland,4,2;New York,Baltimore,6,1;
Boston,Milwaukee,5,1;Boston,Detroit,2,5;Boston,Toronto,3,3;Boston,New York,4,2;
Boston,Cleveland,5,2;Boston,Baltimore,6,0;Cleveland,Milwaukee,2,5;Cleveland,Detroit,3,3;
Cleveland,Toronto,3,4;Cleveland,New York,4,3;Cleveland,Boston,4,2;Cleveland,Baltimore,2,4;
Baltimore,Milwaukee,2,5;Baltimore,Detroit,1,5;Baltimore,Toronto,1,6;Baltimore,New York,2,4;
Baltimore,Boston,1,6;Baltimore,Cleveland,3,4"""


def baseball_matches() -> list[Match]:
    out = []
    for row in BASEBALL.replace("\n", "").split(";"):
        home, away, home_wins, away_wins = row.split(",")
        out.append(Match(home, away, int(home_wins), 0, int(away_wins)))
    return out


def test_rating_list_reproduces_the_published_bradley_terry_fit():
    fit = fit_ratings(baseball_matches(), anchor="Baltimore", anchor_rating=0.0, prior_draws=0.0)
    per_elo = math.log(10) / 400  # natural-log odds per Elo point
    assert fit["Baltimore"].rating == 0.0 and len(fit) == 7
    teams = [t for t in fit if t != "Baltimore"]
    abilities = sorted(round(fit[t].rating * per_elo, 2) for t in teams)
    assert abilities == [0.68, 1.11, 1.25, 1.29, 1.44, 1.58]
    assert [round(fit[t].stderr * per_elo, 1) for t in teams] == [0.3] * 6
    # Agresti's ranking, strongest first
    order = sorted(fit, key=lambda t: -fit[t].rating)
    assert order == ["Milwaukee", "Detroit", "Toronto", "New York", "Boston", "Cleveland", "Baltimore"]
    assert all(fit[t].games == 78 for t in fit)  # 13 games against each of 6 rivals


def test_rating_list_prior_shrinks_but_keeps_the_order():
    # derived, not published: one virtual draw per pair (the default) pulls every team a
    # little towards the others but changes no ranking
    plain = fit_ratings(baseball_matches(), anchor="Baltimore", anchor_rating=0.0, prior_draws=0.0)
    prior = fit_ratings(baseball_matches(), anchor="Baltimore", anchor_rating=0.0)
    assert sorted(plain, key=lambda t: plain[t].rating) == sorted(prior, key=lambda t: prior[t].rating)
    for t in plain:
        if t != "Baltimore":
            assert 0 < prior[t].rating < plain[t].rating
            assert prior[t].stderr < plain[t].stderr
