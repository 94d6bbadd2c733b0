"""Elo from match results: one-match estimates with 95% intervals and a fitted rating list.

Pure functions in the manner of fishtest's statistics (official-stockfish/fishtest,
`server/fishtest/stats/stat_util.py` and `LLRcalc.py`, read at commits 1054c5aa and 121549e5):

- logistic Elo: E = 1 / (1 + 10^(-d/400)) (stat_util.L) and its inverse (stat_util.elo);
- the interval of a match: mean score +- z * sd / sqrt(n) with the sd of the per-game
  (trinomial) or per-pair (pentanomial) score, mapped through logistic Elo
  (stat_util.get_elo); counts of 0 are replaced by 1e-3 first (LLRcalc.regularize);
- normalized Elo: nElo = (score - 1/2) / sigma_per_game * 800 / ln 10 (LLRcalc,
  `nelo_divided_by_nt`), with the interval fishtest shows for fixed-game tests
  (`server/fishtest/templates/elo_results.mak`, commit 204a2a3e; theory in
  https://www.cantate.be/Fishtest/normalized_elo_practical.pdf);
- a rating list fitted by maximum likelihood over all matches (`fit_ratings`).

Pentanomial counts follow fishtest's order, the tested side's points over a game pair
(same opening, colours swapped), low to high:

    index 0: LL (0 points)   1: LD/DL (0.5)   2: DD/WL/LW (1)   3: WD/DW (1.5)   4: WW (2)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

ELO_SCALE = 400.0  # Elo points per factor 10 in the odds
SCORE_EPSILON = 1e-3  # stat_util.elo clamps scores to [1e-3, 1 - 1e-3]
REGULARIZE_EPSILON = 1e-3  # LLRcalc.regularize: a count of 0 becomes 1e-3
NELO_DIVIDED_BY_NT = 800.0 / math.log(10.0)  # LLRcalc.nelo_divided_by_nt = 347.4355855...
_NAT_PER_ELO = math.log(10.0) / ELO_SCALE  # natural-log odds per Elo point


def expected_score(elo_diff: float) -> float:
    """Expected score of the side `elo_diff` points stronger: 1 / (1 + 10^(-d/400)) (stat_util.L)."""
    x = float(elo_diff) * _NAT_PER_ELO
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # no overflow for very negative differences
    return e / (1.0 + e)


def logistic_elo(score: float) -> float:
    """Elo difference of a score in [0, 1]: -400 log10(1/score - 1) (stat_util.elo).

    Scores are clamped to [1e-3, 1 - 1e-3] as fishtest does, so 0 and 1 give the finite cap
    -/+ ELO_CAP (about 1199.8) instead of infinities.
    """
    score = float(score)
    if not 0.0 <= score <= 1.0:  # also rejects NaN
        raise ValueError(f"a score lies in [0, 1], got {score!r}")
    return _elo_clamped(score)


def _elo_clamped(score: float) -> float:
    s = min(max(score, SCORE_EPSILON), 1.0 - SCORE_EPSILON)
    return -ELO_SCALE * math.log10(1.0 / s - 1.0)


ELO_CAP = _elo_clamped(1.0)  # the largest Elo difference logistic_elo reports


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence lies in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True)
class EloEstimate:
    """An Elo difference with its interval.

    `elo` is in logistic Elo (method "trinomial" / "pentanomial") or normalized Elo
    ("normalized-trinomial" / "normalized-pentanomial"); `low`/`high` bound the interval at
    `confidence`; `score` is the mean score per game; `games` counts games (2 per pair);
    `los` is the likelihood of superiority, Phi((score - 1/2) / se) as in stat_util.get_elo.
    """

    elo: float
    low: float
    high: float
    score: float
    games: int
    method: str
    los: float
    confidence: float = 0.95

    @property
    def error(self) -> float:
        """Half width of the interval: fishtest's "Elo: x +- error" ((high - low) / 2)."""
        return (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error": self.error}


def _check_counts(counts: Sequence[int], size: int, what: str) -> list[int]:
    values = list(counts)
    if len(values) != size:
        raise ValueError(f"{what} takes {size} counts, got {len(values)}")
    out = []
    for c in values:
        if isinstance(c, bool) or int(c) != c or c < 0:
            raise ValueError(f"{what} counts are non-negative integers, got {values!r}")
        out.append(int(c))
    if sum(out) == 0:
        raise ValueError(f"no games: {what} counts are all 0")
    return out


def _regularize(counts: Sequence[float]) -> list[float]:
    """LLRcalc.regularize: a 0 count becomes 1e-3 so variances stay positive."""
    return [float(c) if c else REGULARIZE_EPSILON for c in counts]


def _moments(values: Sequence[float], counts: Sequence[float]) -> tuple[float, float, float, float, float]:
    """(n, mean, variance, skewness, excess kurtosis) of a discrete distribution given by counts."""
    n = float(sum(counts))
    mean = sum(c * v for v, c in zip(values, counts)) / n
    var = sum(c * (v - mean) ** 2 for v, c in zip(values, counts)) / n
    m3 = sum(c * (v - mean) ** 3 for v, c in zip(values, counts)) / n
    m4 = sum(c * (v - mean) ** 4 for v, c in zip(values, counts)) / n
    return n, mean, var, m3 / var**1.5, m4 / var**2 - 3.0


_TRINOMIAL_VALUES = (0.0, 0.5, 1.0)  # score of one game: L, D, W
_PENTANOMIAL_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)  # mean score per game of a pair


def _logistic_estimate(values, counts, games, method, confidence) -> EloEstimate:
    # stat_util.get_elo: interval on the mean score, mapped through logistic Elo.
    n, mu, var, _, _ = _moments(values, _regularize(counts))
    se = math.sqrt(var / n)
    z = _z(confidence)
    return EloEstimate(
        elo=_elo_clamped(mu),
        low=_elo_clamped(mu - z * se),
        high=_elo_clamped(mu + z * se),
        score=mu,
        games=games,
        method=method,
        los=NormalDist().cdf((mu - 0.5) / se),
        confidence=confidence,
    )


def elo_from_wdl(wins: int, draws: int, losses: int, confidence: float = 0.95) -> EloEstimate:
    """Logistic Elo of W/D/L with the trinomial interval (per-game score variance), as
    stat_util.get_elo computes it for [L, D, W]."""
    lose, draw, win = _check_counts((losses, draws, wins), 3, "W/D/L")
    return _logistic_estimate(_TRINOMIAL_VALUES, (lose, draw, win), lose + draw + win, "trinomial", confidence)


def elo_from_pentanomial(counts: Sequence[int], confidence: float = 0.95) -> EloEstimate:
    """Logistic Elo of game pairs [LL, LD, DD+WL, WD, WW] with the interval from the per-pair
    score variance (stat_util.get_elo on a pentanomial); pairs are the independent samples."""
    c = _check_counts(counts, 5, "pentanomial")
    return _logistic_estimate(_PENTANOMIAL_VALUES, c, 2 * sum(c), "pentanomial", confidence)


def _normalized_estimate(values, counts, games, per_game_factor, method, confidence) -> EloEstimate:
    # elo_results.mak: t = (mean - 1/2) / sd over the samples (games or pairs), the variance of
    # its estimate by the delta method var_t = 1 - t * skew + t^2 (exkurt + 2) / 4 per sample,
    # nElo = coeff * t with coeff = 800 / ln 10 / per_game_factor (sqrt 2 for pairs, 1 for games).
    n, mu, var, skew, exkurt = _moments(values, _regularize(counts))
    t = (mu - 0.5) / math.sqrt(var)
    var_t = max(1.0 - t * skew + 0.25 * t * t * (exkurt + 2.0), 0.0)
    coeff = NELO_DIVIDED_BY_NT / per_game_factor
    nelo = coeff * t
    delta = coeff * _z(confidence) * math.sqrt(var_t / n)
    return EloEstimate(
        elo=nelo,
        low=nelo - delta,
        high=nelo + delta,
        score=mu,
        games=games,
        method=method,
        los=NormalDist().cdf((mu - 0.5) / math.sqrt(var / n)),
        confidence=confidence,
    )


def nelo_from_wdl(wins: int, draws: int, losses: int, confidence: float = 0.95) -> EloEstimate:
    """Normalized Elo of W/D/L: (score - 1/2) / sd_game * 800 / ln 10 (LLRcalc, 3 results)."""
    lose, draw, win = _check_counts((losses, draws, wins), 3, "W/D/L")
    return _normalized_estimate(
        _TRINOMIAL_VALUES, (lose, draw, win), lose + draw + win, 1.0, "normalized-trinomial", confidence
    )


def nelo_from_pentanomial(counts: Sequence[int], confidence: float = 0.95) -> EloEstimate:
    """Normalized Elo of game pairs as fishtest shows it ("nElo: x +- y"): the per-game sd is
    sqrt(2) times the sd of a pair's mean score (LLRcalc.LLR_normalized, elo_results.mak)."""
    c = _check_counts(counts, 5, "pentanomial")
    return _normalized_estimate(
        _PENTANOMIAL_VALUES, c, 2 * sum(c), math.sqrt(2.0), "normalized-pentanomial", confidence
    )


def pairs_ratio(counts: Sequence[int]) -> float:
    """fishtest's PairsRatio (elo_results.mak): (WD + WW) / (LL + LD); inf or nan when LL + LD = 0."""
    c = _check_counts(counts, 5, "pentanomial")
    good, bad = c[3] + c[4], c[0] + c[1]
    if bad:
        return good / bad
    return math.inf if good else math.nan


_GAME_SCORES = (0.0, 0.5, 1.0)


def pentanomial(pair_scores: Iterable[tuple[float, float]]) -> list[int]:
    """Counts [LL, LD, DD+WL, WD, WW] from game pairs: each pair is the tested side's scores
    (0, 0.5 or 1) in the two games of one opening, colours swapped."""
    counts = [0] * 5
    for pair in pair_scores:
        first, second = pair
        if first not in _GAME_SCORES or second not in _GAME_SCORES:
            raise ValueError(f"game scores are 0, 0.5 or 1, got {pair!r}")
        counts[int(round(2 * (first + second)))] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Rating list by maximum likelihood


@dataclass(frozen=True)
class Match:
    """Games between players `a` and `b`: `a` won `wins_a`, drew `draws`, lost `losses_a`."""

    a: str
    b: str
    wins_a: int
    draws: int
    losses_a: int


@dataclass(frozen=True)
class Rating:
    """A fitted rating, its interval at `confidence` (standard error relative to the anchor,
    so the anchor's interval is a point) and the number of real games behind it."""

    rating: float
    low: float
    high: float
    games: int
    stderr: float = 0.0
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_ratings(
    results: Iterable[Match],
    anchor: str,
    anchor_rating: float = 1500.0,
    *,
    prior_draws: float = 1.0,
    confidence: float = 0.95,
    max_iterations: int = 200,
) -> dict[str, Rating]:
    """Maximum-likelihood ratings of all players, `anchor` fixed at `anchor_rating`.

    Model: Bradley-Terry with the logistic Elo curve, P(i scores against j) =
    expected_score(r_i - r_j), a draw counting half a win each way (the model Ordo fits).
    Chosen over a draw model (Davidson, BayesElo's drawelo) because it is the same Elo as
    `logistic_elo`/`elo_from_wdl` and fishtest's logistic Elo: for two players without a
    prior the fitted difference is exactly logistic_elo(score).

    Prior: `prior_draws` virtual draws are added to every pair of players that met (a weak
    prior; BayesElo's `prior` is likewise a number of virtual draws), so an undefeated or
    winless player gets a finite rating; it never links players who did not meet. With
    prior_draws=0 the plain ML is fitted, and a ValueError is raised when it does not exist
    (some group of players scored 100% or 0% against the rest).

    Fit: Newton's method on the concave log-likelihood with step halving. Intervals: rating
    +- z * se, se from the inverse of the Hessian (observed = Fisher information here) with the
    anchor's row and column removed. It treats each game as a Bernoulli trial of variance
    p(1 - p); draws make the real score variance smaller, so the interval is conservative then.

    Players with no chain of games to the anchor are left out of the result. The anchor is
    always in it (with 0 games if it played none).
    Not split: the Newton iteration and the interval share the same Hessian and index of players.
    """
    if prior_draws < 0 or not math.isfinite(prior_draws):
        raise ValueError(f"prior_draws is a finite number >= 0, got {prior_draws!r}")
    z = _z(confidence)
    points: dict[tuple[str, str], float] = {}  # (i, j) -> points of i against j
    games: dict[tuple[str, str], int] = {}  # (i, j), i < j -> games played
    played: dict[str, int] = {}
    for m in results:
        if not (isinstance(m.a, str) and isinstance(m.b, str) and m.a and m.b):
            raise ValueError(f"player names are non-empty strings: {m!r}")
        if m.a == m.b:
            raise ValueError(f"a player cannot play itself: {m!r}")
        for c in (m.wins_a, m.draws, m.losses_a):
            if isinstance(c, bool) or int(c) != c or c < 0:
                raise ValueError(f"match counts are non-negative integers: {m!r}")
        n = int(m.wins_a) + int(m.draws) + int(m.losses_a)
        if n == 0:
            continue
        key = (m.a, m.b) if m.a < m.b else (m.b, m.a)
        games[key] = games.get(key, 0) + n
        points[(m.a, m.b)] = points.get((m.a, m.b), 0.0) + m.wins_a + 0.5 * m.draws
        points[(m.b, m.a)] = points.get((m.b, m.a), 0.0) + m.losses_a + 0.5 * m.draws
        played[m.a] = played.get(m.a, 0) + n
        played[m.b] = played.get(m.b, 0) + n

    anchor_rating = float(anchor_rating)
    anchor_only = {anchor: Rating(anchor_rating, anchor_rating, anchor_rating, played.get(anchor, 0), 0.0, confidence)}
    if anchor not in played:
        return anchor_only

    # The anchor's connected component (games in either direction).
    neighbours: dict[str, set[str]] = {}
    for i, j in games:
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
    component = _reachable(anchor, neighbours)
    others = sorted(component - {anchor})
    if not others:
        return anchor_only
    names = [anchor, *others]
    index = {name: k for k, name in enumerate(names)}

    pair_i, pair_j, pair_n, pair_s = [], [], [], []  # s: points of i against j
    for (i, j), n in games.items():
        if i in component:
            pair_i.append(index[i])
            pair_j.append(index[j])
            pair_n.append(n + prior_draws)
            pair_s.append(points.get((i, j), 0.0) + prior_draws / 2.0)
    pi, pj = np.array(pair_i), np.array(pair_j)
    pn, ps = np.array(pair_n, dtype=float), np.array(pair_s, dtype=float)

    if prior_draws == 0:
        scored: dict[str, set[str]] = {}
        conceded: dict[str, set[str]] = {}
        for (i, j), s in points.items():
            if s > 0 and i in component:
                scored.setdefault(i, set()).add(j)
                conceded.setdefault(j, set()).add(i)
        if _reachable(anchor, scored) != component or _reachable(anchor, conceded) != component:
            raise ValueError(
                "no finite maximum-likelihood ratings: some players scored 100% or 0% against the rest "
                "of the list; use prior_draws > 0"
            )

    theta = np.zeros(len(names))  # natural-log odds units; theta[0] (anchor) stays 0

    def log_likelihood(th: np.ndarray) -> float:
        d = th[pi] - th[pj]
        # s log sigma(d) + (n - s) log sigma(-d), with log sigma(x) = -log(1 + e^-x)
        return float(-(ps * np.logaddexp(0.0, -d) + (pn - ps) * np.logaddexp(0.0, d)).sum())

    def grad_hess(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = th[pi] - th[pj]
        p = 0.5 * (1.0 + np.tanh(d / 2.0))  # sigma(d), stable
        r = ps - pn * p
        w = pn * p * (1.0 - p)
        g = np.zeros(len(names))
        np.add.at(g, pi, r)
        np.add.at(g, pj, -r)
        info = np.zeros((len(names), len(names)))  # minus the Hessian: weighted graph Laplacian
        np.add.at(info, (pi, pi), w)
        np.add.at(info, (pj, pj), w)
        np.add.at(info, (pi, pj), -w)
        np.add.at(info, (pj, pi), -w)
        return g[1:], info[1:, 1:]

    ll = log_likelihood(theta)
    for _ in range(max_iterations):
        g, info = grad_hess(theta)
        step = np.linalg.solve(info, g)
        t = 1.0
        while True:
            trial = theta.copy()
            trial[1:] += t * step
            trial_ll = log_likelihood(trial)
            if trial_ll >= ll - 1e-12 * abs(ll) or t < 1e-6:
                break
            t /= 2.0
        theta, ll = trial, trial_ll
        if np.max(np.abs(t * step)) < 1e-10:
            break
    else:
        raise ValueError("rating fit did not converge")

    _, info = grad_hess(theta)
    cov = np.linalg.inv(info)
    out = dict(anchor_only)
    for k, name in enumerate(others, start=1):
        rating = anchor_rating + float(theta[k]) / _NAT_PER_ELO
        se = math.sqrt(max(float(cov[k - 1, k - 1]), 0.0)) / _NAT_PER_ELO
        out[name] = Rating(rating, rating - z * se, rating + z * se, played[name], se, confidence)
    return out


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
