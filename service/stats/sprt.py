"""Sequential probability ratio test as Stockfish's fishtest computes it.

After official-stockfish/fishtest `server/fishtest/stats/LLRcalc.py` (commit 121549e5) and
`stat_util.py` (commit 1054c5aa), theory by Michel Van den Bergh:
https://www.cantate.be/Fishtest/support_MLE_multinomial.pdf (the MLE of a multinomial with
a given mean, Prop. 1.1) and https://www.cantate.be/Fishtest/normalized_elo_practical.pdf
(the MLE with a given t-value, Sec. 4.1; the approximation of Sec. 4.2).

The LLR is a generalized (GSPRT) log-likelihood ratio: under H0 and H1 the result
distribution is the one nearest, in the maximum-likelihood sense, to the observed one among
those with the hypothesis' mean score (logistic Elo) or t-value (normalized Elo); the LLR is
N * sum_i p_i log(p1_i / p0_i) over the N samples (game pairs for a pentanomial, games for a
trinomial). Counts of 0 become 1e-3 first (LLRcalc.regularize), so no data gives LLR ~ 0.

Results are [LL, LD, DD+WL, WD, WW] (pentanomial, elo.pentanomial) or [L, D, W] (trinomial).
Unlike fishtest's server, which also corrects the bounds for the expected overshoot of the
LLR between updates (Siegmund, Sequential Analysis, Cor. 8.33), the verdict here compares the
LLR of the cumulative counts with Wald's bounds: slightly more conservative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .elo import NELO_DIVIDED_BY_NT, REGULARIZE_EPSILON, expected_score

ELO_MODELS = ("normalized", "logistic")
STATES = ("accepted", "rejected", "continue")


def sprt_bounds(alpha: float, beta: float) -> tuple[float, float]:
    """Wald's bounds on the LLR: (log(beta / (1 - alpha)), log((1 - beta) / alpha)).

    alpha = beta = 0.05 gives -/+ log 19 = -/+ 2.944 (fishtest's "(-2.94,2.94)")."""
    if not (0.0 < alpha < 1.0 and 0.0 < beta < 1.0 and alpha + beta < 1.0):
        raise ValueError(f"need 0 < alpha, beta and alpha + beta < 1, got alpha={alpha!r}, beta={beta!r}")
    return math.log(beta / (1.0 - alpha)), math.log((1.0 - beta) / alpha)


def _results_to_pdf(results: Sequence[int]) -> tuple[float, list[float], list[float]]:
    """LLRcalc.results_to_pdf: (N, values i/(k-1), frequencies), zeros regularized."""
    counts = list(results)
    if len(counts) not in (3, 5):
        raise ValueError(f"results are 3 (L, D, W) or 5 (pentanomial) counts, got {len(counts)}")
    for c in counts:
        if isinstance(c, bool) or int(c) != c or c < 0:
            raise ValueError(f"result counts are non-negative integers, got {counts!r}")
    reg = [float(c) if c else REGULARIZE_EPSILON for c in counts]
    n = sum(reg)
    k = len(reg)
    return n, [i / (k - 1) for i in range(k)], [c / n for c in reg]


def _mean_var(values: Sequence[float], probs: Sequence[float]) -> tuple[float, float]:
    mean = sum(p * v for v, p in zip(values, probs))
    return mean, sum(p * (v - mean) ** 2 for v, p in zip(values, probs))


def _secular(a: Sequence[float], p: Sequence[float]) -> float:
    """The root x of sum_i p_i a_i / (1 + x a_i) = 0 with every 1 + x a_i > 0 (LLRcalc.secular).

    The left side falls strictly from +inf to -inf on (-1/max a, -1/min a), which needs
    min a < 0 < max a; solved by bisection to machine precision."""
    lo_a, hi_a = min(a), max(a)
    if not lo_a < 0.0 < hi_a:
        raise ValueError("the hypothesis lies outside the range of the results; no MLE exists")
    eps = 1e-9  # as fishtest's bracket
    lo, hi = -1.0 / hi_a + eps, -1.0 / lo_a - eps

    def f(x: float) -> float:
        return sum(pi * ai / (1.0 + x * ai) for ai, pi in zip(a, p))

    if f(lo) <= 0.0:
        return lo
    if f(hi) >= 0.0:
        return hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if f(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mle_expected(values: Sequence[float], probs: Sequence[float], s: float) -> list[float]:
    """The distribution on `values` with mean `s` nearest (max likelihood) to `probs`
    (LLRcalc.MLE_expected; Prop. 1.1 of support_MLE_multinomial.pdf): p_i / (1 + x (a_i - s))."""
    a = [v - s for v in values]
    x = _secular(a, probs)
    return [p / (1.0 + x * ai) for ai, p in zip(a, probs)]


def _t_fixed_point(values, probs, ref, t, start) -> list[float]:
    # LLRcalc.MLE_t_value's iteration: freeze mu and sigma of the current guess, which makes
    # the t-value constraint linear in the distribution; solve it by one secular equation.
    cur = list(start)
    for _ in range(200):
        mu, var = _mean_var(values, cur)
        sigma = math.sqrt(var)
        a = [v - ref - t * sigma * (1.0 + ((mu - v) / sigma) ** 2) / 2.0 for v in values]
        x = _secular(a, probs)
        new = [p / (1.0 + x * ai) for ai, p in zip(a, probs)]
        change = max(abs(u - w) for u, w in zip(cur, new))
        cur = new
        if change < 1e-13:
            break
    mu, var = _mean_var(values, cur)
    if abs((mu - ref) / math.sqrt(var) - t) > 1e-6:
        raise ValueError(f"no MLE found for the t-value {t!r}")
    return cur


def mle_t_value(values: Sequence[float], probs: Sequence[float], ref: float, t: float) -> list[float]:
    """The distribution on `values` with t-value (mean - ref) / sd = `t` nearest to `probs`
    (LLRcalc.MLE_t_value; Sec. 4.1 of normalized_elo_practical.pdf): a fixed-point iteration
    from the uniform distribution, each step one secular equation.

    That start fails for large |t| (about 1 and beyond: nElo bounds in the hundreds, far from
    fishtest's); then t is walked from 0 (the mean-only MLE) in adaptive steps, each iteration
    started from the previous solution."""
    try:
        return _t_fixed_point(values, probs, ref, t, [1.0 / len(values)] * len(values))
    except ValueError:
        pass
    cur = mle_expected(values, probs, ref)  # t = 0
    done, step = 0.0, t / 16.0
    while done != t:
        target = t if abs(t - done) <= abs(step) else done + step
        try:
            cur = _t_fixed_point(values, probs, ref, target, cur)
        except ValueError:
            step /= 2.0
            if abs(step) < 1e-9 * abs(t):
                raise
            continue
        done, step = target, step * 1.5
    return cur


def _llr_per_sample(probs: Sequence[float], p0: Sequence[float], p1: Sequence[float]) -> float:
    return sum(p * (math.log(b) - math.log(a)) for p, a, b in zip(probs, p0, p1))


def llr_logistic(elo0: float, elo1: float, results: Sequence[int]) -> float:
    """GSPRT LLR of H1: elo = elo1 against H0: elo = elo0 in logistic Elo (LLRcalc.LLR_logistic):
    the hypotheses fix the mean score per game at expected_score(elo)."""
    n, values, probs = _results_to_pdf(results)
    s0, s1 = expected_score(elo0), expected_score(elo1)
    return n * _llr_per_sample(probs, mle_expected(values, probs, s0), mle_expected(values, probs, s1))


def llr_normalized(nelo0: float, nelo1: float, results: Sequence[int]) -> float:
    """GSPRT LLR in normalized Elo (LLRcalc.LLR_normalized): the hypotheses fix the t-value
    (score - 1/2) / sd of a sample at nelo / (800 / ln 10), times sqrt(2) for game pairs
    (a pair's mean score has half the variance of one game's score)."""
    n, values, probs = _results_to_pdf(results)
    factor = math.sqrt(2.0) if len(values) == 5 else 1.0
    t0, t1 = (nelo / NELO_DIVIDED_BY_NT * factor for nelo in (nelo0, nelo1))
    p0 = mle_t_value(values, probs, 0.5, t0)
    p1 = mle_t_value(values, probs, 0.5, t1)
    return n * _llr_per_sample(probs, p0, p1)


def llr_approximation(elo0: float, elo1: float, results: Sequence[int], elo_model: str = "normalized") -> float:
    """Closed-form approximations, for cross-checks only: LLRcalc.LLR_alt2 (logistic,
    N (s1 - s0)(2 s - s0 - s1) / (2 var), GSPRT_approximation.pdf) and
    LLRcalc.LLR_normalized_alt (normalized, Sec. 4.2 of normalized_elo_practical.pdf)."""
    n, values, probs = _results_to_pdf(results)
    mu, var = _mean_var(values, probs)
    if elo_model == "logistic":
        s0, s1 = expected_score(elo0), expected_score(elo1)
        return n * (s1 - s0) * (2.0 * mu - s0 - s1) / var / 2.0
    if elo_model == "normalized":
        pentanomial = len(values) == 5
        sigma_pg = math.sqrt(2.0 * var) if pentanomial else math.sqrt(var)
        games = 2.0 * n if pentanomial else n
        nt0, nt1 = elo0 / NELO_DIVIDED_BY_NT, elo1 / NELO_DIVIDED_BY_NT
        nt = (mu - 0.5) / sigma_pg
        return games / 2.0 * math.log((1.0 + (nt - nt0) ** 2) / (1.0 + (nt - nt1) ** 2))
    raise ValueError(f"elo_model is one of {ELO_MODELS}, got {elo_model!r}")


@dataclass(frozen=True)
class SPRTResult:
    """An SPRT verdict: "accepted" (H1, elo >= elo1), "rejected" (H0, elo <= elo0) or "continue"."""

    llr: float
    lower: float
    upper: float
    state: str
    elo0: float
    elo1: float
    elo_model: str
    alpha: float
    beta: float
    samples: int  # game pairs (pentanomial) or games (trinomial)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sprt(
    pentanomial: Sequence[int],
    elo0: float,
    elo1: float,
    alpha: float = 0.05,
    beta: float = 0.05,
    elo_model: str = "normalized",
) -> SPRTResult:
    """SPRT of H0: elo = elo0 against H1: elo = elo1 (elo0 < elo1) on pentanomial counts (or
    [L, D, W]); bounds in `elo_model` units ("normalized" is fishtest's default, shown <a,b>;
    "logistic" is shown {a,b}). Accepted once LLR >= upper, rejected once LLR <= lower."""
    if elo_model not in ELO_MODELS:
        raise ValueError(f"elo_model is one of {ELO_MODELS}, got {elo_model!r}")
    if not elo0 < elo1:
        raise ValueError(f"need elo0 < elo1, got {elo0!r}, {elo1!r}")
    lower, upper = sprt_bounds(alpha, beta)
    llr = (llr_normalized if elo_model == "normalized" else llr_logistic)(elo0, elo1, pentanomial)
    state = "accepted" if llr >= upper else "rejected" if llr <= lower else "continue"
    return SPRTResult(
        llr=llr,
        lower=lower,
        upper=upper,
        state=state,
        elo0=float(elo0),
        elo1=float(elo1),
        elo_model=elo_model,
        alpha=float(alpha),
        beta=float(beta),
        samples=int(sum(pentanomial)),
    )
