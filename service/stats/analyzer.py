"""Improvement indicators of a session (seed plan 6.2), each with a significance verdict.

Pure functions over plain lists, in the manner of fishtest's statistics. Every indicator is an
`Indicator(name, value, trend, verdict, detail)`: `value` is the current level, `trend` the
change the verdict is about (a slope or a last-minus-first difference), `detail` the numbers
behind it. Verdicts are "improving" | "stable" | "worsening" | "insufficient data", decided by
a two-sided test at `ALPHA` (5%), never by eyeballing; value calibration uses
"calibrated" | "miscalibrated" | "insufficient data" instead.

Tests used (no scipy: Student's t and F distributions from the regularized incomplete beta
function, continued fraction as in Numerical Recipes 6.4):

- Elo progression: weighted least squares of rating vs games, weights 1 / variance from each
  rating's interval; the slope's interval is normal (known variances), its standard error
  scaled up by sqrt(chi2 / (n - 2)) when the points scatter more than their intervals say.
- Trends of series (loss, plies, policy entropy): ordinary least squares with a t-test on the
  slope; successive values are autocorrelated (the net changes slowly), so the sample size is
  reduced to n_eff = n (1 - r1) / (1 + r1) with r1 the lag-1 autocorrelation of the residuals
  (Santer et al. 2000, J. Geophys. Res. 105:7337, eq. 3-6).
- First vs last window of a rate (decisive games, white score, high-confidence moves): the
  two-proportion z-test with the pooled variance p (1 - p); a score with draws has a smaller
  variance than that, so the test is conservative there.
- Spread of the loss: variance of the last window over the first window, two-sided F-test
  (exact for independent normal values; approximate for a training loss).
- Value calibration: expected calibration error (ECE) over equal-width bins of the expected
  score, with a chi-square test of the bins' summed deviations (Wilson-Hilferty approximation).

Over 500 lines: eight indicators, each a short function over the same few distributions
and tests (t, F and chi-square from one incomplete beta function; the trend corrected for
autocorrelation; the two-proportion z-test) and the same verdict rules. Moving the
distributions out (about 60 lines) would not bring it under, and splitting the indicators
would spread one set of verdict rules over modules that share private helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from .numbers import finite
from .scorecard import DRAW, RESULTS

ALPHA = 0.05  # significance level of every verdict (two-sided)
IMPROVING, STABLE, WORSENING, INSUFFICIENT = "improving", "stable", "worsening", "insufficient data"
CALIBRATED, MISCALIBRATED = "calibrated", "miscalibrated"

MIN_ELO_POINTS = 3  # evaluated checkpoints before the Elo slope gets a verdict
MIN_ELO_STDERR = 1.0  # Elo; a zero-width interval (the anchor itself) weighs as +- 1 Elo
MIN_TREND_POINTS = 5  # values of a series before its slope gets a verdict
DEFAULT_WIN_RATE_WINDOW = 10  # games; the seed's "rolling 10-game average"
MIN_SPREAD_WINDOW = 5  # losses per window of the spread F-test
MIN_MOVES_WINDOW = 20  # moves per window of the high-confidence comparison
HIGH_CONFIDENCE = 0.6  # policy max probability of a "high-confidence" move (seed: > 60% of moves)
HIGH_CONFIDENCE_TARGET = 0.6  # the seed's target share of such moves
CALIBRATION_BINS = 10
ECE_THRESHOLD = 0.05  # score units: calibrated when the expected calibration error is below
MIN_CALIBRATION_SAMPLES = 100


@dataclass(frozen=True)
class Indicator:
    """One improvement indicator: current `value`, `trend`, a test's `verdict`, numbers in `detail`."""

    name: str
    value: float | None
    trend: float | None
    verdict: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trend:
    """Least-squares slope of a series with its t-test; `p_value` None when not testable."""

    slope: float
    stderr: float
    t: float | None
    df: float
    p_value: float | None
    n: int
    n_effective: float
    lag1_autocorrelation: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Distributions


def _betacf(a: float, b: float, x: float) -> float:
    # Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4).
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` (> 0, may be fractional) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def f_cdf(f: float, d1: float, d2: float) -> float:
    """P(F <= f) for the F distribution with (d1, d2) degrees of freedom."""
    if f <= 0.0:
        return 0.0
    return betainc(d1 / 2.0, d2 / 2.0, d1 * f / (d1 * f + d2))


def chi2_sf_wilson_hilferty(x: float, k: float) -> float:
    """P(X >= x) for chi-square with k degrees of freedom, Wilson-Hilferty normal approximation."""
    if x <= 0.0:
        return 1.0
    s = 2.0 / (9.0 * k)
    return 1.0 - NormalDist().cdf(((x / k) ** (1.0 / 3.0) - (1.0 - s)) / math.sqrt(s))


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _normal_two_sided_p(z: float) -> float:
    return 2.0 * (1.0 - NormalDist().cdf(abs(z)))


def _direction(estimate: float, significant: bool, higher_is_better: bool) -> str:
    if not significant or estimate == 0:
        return STABLE
    return IMPROVING if (estimate > 0) == higher_is_better else WORSENING


# ---------------------------------------------------------------------------------------------
# Tests


def linear_trend(y: Sequence[float], x: Sequence[float] | None = None) -> Trend | None:
    """OLS slope of y vs x (default 0, 1, 2, ...) with a t-test corrected for lag-1
    autocorrelation of the residuals (n_eff, Santer et al. 2000); None with fewer than 3 values
    or when x does not vary. `p_value` is None when n_eff leaves no degree of freedom."""
    yv = np.asarray(y, dtype=float)
    xv = np.arange(len(yv), dtype=float) if x is None else np.asarray(x, dtype=float)
    if xv.shape != yv.shape:
        raise ValueError(f"x and y differ in length: {len(xv)} vs {len(yv)}")
    if not (np.isfinite(xv).all() and np.isfinite(yv).all()):
        raise ValueError("a trend takes finite numbers")
    n = len(yv)
    if n < 3:
        return None
    xc = xv - xv.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        return None
    slope = float(xc @ (yv - yv.mean())) / sxx
    resid = yv - yv.mean() - slope * xc
    ss = float(resid @ resid)
    r1 = float(resid[:-1] @ resid[1:]) / ss if ss > 0 else 0.0
    n_eff = n * (1.0 - r1) / (1.0 + r1) if r1 > 0 else float(n)
    df = n_eff - 2.0
    if df <= 0:
        return Trend(slope, math.inf, None, df, None, n, n_eff, r1)
    stderr = math.sqrt(ss / df / sxx)
    if stderr == 0.0:
        t, p = (math.inf if slope else 0.0), (0.0 if slope else 1.0)
    else:
        t = slope / stderr
        p = t_two_sided_p(t, df)
    return Trend(slope, stderr, finite(t), df, p, n, n_eff, r1)


def two_proportion_z(successes_1: float, n_1: int, successes_2: float, n_2: int) -> tuple[float, float]:
    """(z, two-sided p) of the change from proportion 1 to proportion 2, pooled variance.
    Successes may be fractional (a score: draws count half); z = 0, p = 1 without variance."""
    if n_1 <= 0 or n_2 <= 0:
        raise ValueError("both samples need at least one trial")
    p1, p2 = successes_1 / n_1, successes_2 / n_2
    pooled = (successes_1 + successes_2) / (n_1 + n_2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_1 + 1.0 / n_2))
    if se == 0.0:
        return 0.0, 1.0
    z = (p2 - p1) / se
    return z, _normal_two_sided_p(z)


def _trend_indicator(
    name: str, y: Sequence[float], x: Sequence[float] | None, higher_is_better: bool, alpha: float, unit: str
) -> Indicator:
    values = [float(v) for v in y]
    last = values[-1] if values else None
    trend = linear_trend(values, x) if len(values) >= MIN_TREND_POINTS else None
    if trend is None or trend.p_value is None:
        detail = {"n": len(values), "min_points": MIN_TREND_POINTS, "unit": unit}
        if trend is not None:
            detail["reason"] = "too few independent values (autocorrelation)"
            detail.update(trend.to_dict())
        return Indicator(name, finite(last), finite(trend.slope) if trend else None, INSUFFICIENT, finite(detail))
    verdict = _direction(trend.slope, trend.p_value < alpha, higher_is_better)
    detail = {**trend.to_dict(), "unit": unit, "mean": float(np.mean(values)), "alpha": alpha}
    return Indicator(name, last, trend.slope, verdict, finite(detail))


# ---------------------------------------------------------------------------------------------
# Elo progression


def _elo_arrays(points: Sequence[Sequence[float]], confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(games, rating, stderr) sorted by games; stderr = interval half-width / z."""
    rows = []
    for p in points:
        games, rating, low, high = (float(v) for v in p)
        if not all(map(math.isfinite, (games, rating, low, high))) or not low <= rating <= high or games < 0:
            raise ValueError(f"an Elo point is (games >= 0, rating, low <= rating, high >= rating), got {p!r}")
        rows.append((games, rating, (high - low) / 2.0 / _z(confidence)))
    rows.sort(key=lambda r: r[0])
    arr = np.array(rows, dtype=float).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def _elo_fit(points, confidence):
    games, rating, se = _elo_arrays(points, confidence)
    if len(games) < 2 or games.max() == games.min():
        return None
    w = 1.0 / np.maximum(se, MIN_ELO_STDERR) ** 2
    xbar = float(w @ games / w.sum())
    ybar = float(w @ rating / w.sum())
    xc = games - xbar
    sxx = float(w @ xc**2)
    slope = float(w @ (xc * (rating - ybar))) / sxx
    stderr = 1.0 / math.sqrt(sxx)
    chi2 = float(w @ (rating - ybar - slope * xc) ** 2)
    dof = len(games) - 2
    scale = math.sqrt(chi2 / dof) if dof > 0 and chi2 > dof else 1.0
    return slope, stderr * scale, chi2, dof, scale, games, rating, se


def elo_delta_per_10_games(points: Sequence[Sequence[float]], confidence: float = 0.95) -> tuple[float, float] | None:
    """(slope, stderr) of the rating per 10 self-play games over evaluated checkpoints.

    `points`: (games, rating, low, high), the interval at `confidence`. Weighted least squares
    with weights 1 / stderr^2, stderr = half-width / z (at least MIN_ELO_STDERR). The slope's
    standard error is that of known variances, times sqrt(chi2 / (n - 2)) when the points
    scatter more than their intervals allow. None with fewer than 2 distinct game counts.
    """
    fit = _elo_fit(points, confidence)
    if fit is None:
        return None
    return 10.0 * fit[0], 10.0 * fit[1]


def elo_progression(points: Sequence[Sequence[float]], confidence: float = 0.95) -> Indicator:
    """Rating of the evaluated checkpoints: slope per 10 games (verdict when its interval at
    `confidence` excludes 0, from MIN_ELO_POINTS checkpoints) and first -> last delta with its
    interval (sqrt of the summed variances). value: newest rating; trend: slope per 10 games."""
    games, rating, se = _elo_arrays(points, confidence)
    z = _z(confidence)
    detail: dict[str, Any] = {"points": len(games), "confidence": confidence, "min_points": MIN_ELO_POINTS}
    if len(games):
        delta = float(rating[-1] - rating[0])
        delta_se = math.sqrt(float(se[0] ** 2 + se[-1] ** 2))
        detail.update(
            delta=delta,
            delta_stderr=delta_se,
            delta_low=delta - z * delta_se,
            delta_high=delta + z * delta_se,
            games_first=float(games[0]),
            games_last=float(games[-1]),
        )
    fit = _elo_fit(points, confidence)
    newest = float(rating[-1]) if len(rating) else None
    if fit is None:
        return Indicator("elo_progression", newest, None, INSUFFICIENT, detail)
    slope, stderr, chi2, dof, scale = fit[:5]
    per10, se10 = 10.0 * slope, 10.0 * stderr
    low, high = per10 - z * se10, per10 + z * se10
    detail.update(
        slope_per_10_games=per10,
        slope_stderr=se10,
        slope_low=low,
        slope_high=high,
        chi2=chi2,
        dof=dof,
        stderr_scale=scale,
    )
    if len(games) < MIN_ELO_POINTS:
        return Indicator("elo_progression", newest, per10, INSUFFICIENT, detail)
    verdict = IMPROVING if low > 0 else WORSENING if high < 0 else STABLE
    return Indicator("elo_progression", newest, per10, verdict, detail)


# ---------------------------------------------------------------------------------------------
# Self-play games


def _scores(results: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(decisive 0/1, white score 0/0.5/1) per game."""
    for r in results:
        if r not in RESULTS:
            raise ValueError(f"unknown game result {r!r}; expected one of {RESULTS}")
    decisive = np.array([r != DRAW for r in results], dtype=float)
    white = np.array([1.0 if r == "1-0" else 0.5 if r == DRAW else 0.0 for r in results], dtype=float)
    return decisive, white


def rolling_mean(values: Sequence[float] | np.ndarray, window: int) -> list[float]:
    """Means of every `window` consecutive values (len - window + 1 of them; [] if too few)."""
    if window < 1:
        raise ValueError(f"window is at least 1, got {window}")
    v = np.asarray(values, dtype=float)
    if len(v) < window:
        return []
    c = np.concatenate(([0.0], np.cumsum(v)))
    return [float(m) for m in (c[window:] - c[:-window]) / window]


def rolling_win_rates(results: Sequence[str], window: int = DEFAULT_WIN_RATE_WINDOW) -> dict[str, list[float]]:
    """Rolling decisive rate and white score over self-play results ("1-0", "0-1", "1/2-1/2")."""
    decisive, white = _scores(results)
    return {"decisive_rate": rolling_mean(decisive, window), "white_score": rolling_mean(white, window)}


def win_rate_trend(results: Sequence[str], window: int = DEFAULT_WIN_RATE_WINDOW, alpha: float = ALPHA) -> Indicator:
    """Rolling `window`-game rates of self-play, first vs last window (two-proportion z-test).

    Both sides of a self-play game are the same net, so the verdict is about the decisive rate
    (rising = improving: an untrained net draws by the move cap, a learning one converts its
    advantages); the white score's change is in `detail`, with its own z-test, for information.
    value: decisive rate of the last window; trend: last minus first window. Needs 2 windows.
    """
    if window < 1:
        raise ValueError(f"window is at least 1, got {window}")
    decisive, white = _scores(results)
    n = len(decisive)
    detail: dict[str, Any] = {"games": n, "window": window}
    if n < 2 * window:
        last = float(decisive.mean()) if n else None
        return Indicator("win_rate_trend", last, None, INSUFFICIENT, {**detail, "min_games": 2 * window})
    first_d, last_d = decisive[:window].sum(), decisive[-window:].sum()
    first_w, last_w = white[:window].sum(), white[-window:].sum()
    z_d, p_d = two_proportion_z(first_d, window, last_d, window)
    z_w, p_w = two_proportion_z(first_w, window, last_w, window)
    change = float((last_d - first_d) / window)
    detail.update(
        decisive_first=float(first_d / window),
        decisive_last=float(last_d / window),
        decisive_z=z_d,
        decisive_p=p_d,
        white_score_first=float(first_w / window),
        white_score_last=float(last_w / window),
        white_score_z=z_w,
        white_score_p=p_w,
        decisive_overall=float(decisive.mean()),
        white_score_overall=float(white.mean()),
        alpha=alpha,
    )
    return Indicator("win_rate_trend", float(last_d / window), change, _direction(change, p_d < alpha, True), detail)


def game_length_trend(plies: Sequence[float], alpha: float = ALPHA) -> Indicator:
    """Slope of plies vs game number (t-test). The seed's target is "stable or increasing", so
    a significant rise reads as improving and a fall as worsening. value: last game's plies."""
    return _trend_indicator("game_length", plies, None, True, alpha, "plies per game")


# ---------------------------------------------------------------------------------------------
# Learning


def loss_trend(losses: Sequence[float], steps: Sequence[float] | None = None, alpha: float = ALPHA) -> Indicator:
    """Slope of the total training loss vs step (default: index), t-test with n_eff; falling =
    improving. value: newest loss; trend: slope per step."""
    return _trend_indicator("loss_trend", losses, steps, False, alpha, "loss per step")


def loss_spread(losses: Sequence[float], window: int | None = None, alpha: float = ALPHA) -> Indicator:
    """Standard deviation of the loss in the last `window` values vs the first (default: a
    quarter of the series each), two-sided F-test on the variance ratio. Each window's spread
    is about its own mean, so a steep fall inside the first window counts as spread too (the
    seed's "training loss stddev: decreasing"). value: last window's std; trend: its ratio to
    the first window's std (< 1 = narrower = improving)."""
    v = np.asarray(losses, dtype=float)
    if not np.isfinite(v).all():
        raise ValueError("losses are finite numbers")
    n = len(v)
    w = n // 4 if window is None else int(window)
    detail: dict[str, Any] = {"n": n, "window": w, "min_window": MIN_SPREAD_WINDOW}
    if w < MIN_SPREAD_WINDOW or 2 * w > n:
        last = float(v[-w:].std(ddof=1)) if MIN_SPREAD_WINDOW <= w <= n else None
        return Indicator("loss_spread", last, None, INSUFFICIENT, detail)
    sd_first, sd_last = float(v[:w].std(ddof=1)), float(v[-w:].std(ddof=1))
    detail.update(std_first=sd_first, std_last=sd_last, alpha=alpha)
    if sd_first == 0.0 or sd_last == 0.0:
        ratio = None if sd_first == 0.0 else 0.0
        verdict = STABLE if sd_first == sd_last else (IMPROVING if sd_last == 0.0 else WORSENING)
        return Indicator("loss_spread", sd_last, ratio, verdict, detail)
    f = (sd_last / sd_first) ** 2
    cdf = f_cdf(f, w - 1, w - 1)
    p = min(1.0, 2.0 * min(cdf, 1.0 - cdf))
    detail.update(f=f, p_value=p)
    ratio = sd_last / sd_first
    return Indicator("loss_spread", sd_last, ratio, _direction(1.0 - ratio, p < alpha, True), detail)


def policy_entropy_trend(
    entropies: Sequence[float], steps: Sequence[float] | None = None, alpha: float = ALPHA
) -> Indicator:
    """Slope of the learning steps' policy entropy (t-test with n_eff); decreasing = sharper
    policy = improving (a collapse to one move would also read so: pair it with the Elo)."""
    return _trend_indicator("policy_entropy", entropies, steps, False, alpha, "nats per step")


def high_confidence_moves(
    max_probabilities: Sequence[float],
    threshold: float = HIGH_CONFIDENCE,
    window: int | None = None,
    alpha: float = ALPHA,
) -> Indicator:
    """Share of moves whose policy max probability is >= `threshold` (seed target: > 60% of
    moves), first vs last `window` moves (default a quarter each), two-proportion z-test (moves
    of one game are not independent: approximate). value: share in the last window; trend:
    last minus first window; `detail["meets_target"]`: last share > HIGH_CONFIDENCE_TARGET."""
    v = np.asarray(max_probabilities, dtype=float)
    if not (np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()):
        raise ValueError("policy max probabilities lie in [0, 1]")
    hit = (v >= threshold).astype(float)
    n = len(hit)
    w = n // 4 if window is None else int(window)
    detail: dict[str, Any] = {
        "moves": n,
        "window": w,
        "threshold": threshold,
        "target": HIGH_CONFIDENCE_TARGET,
        "share_overall": float(hit.mean()) if n else None,
        "min_window": MIN_MOVES_WINDOW,
    }
    if w < MIN_MOVES_WINDOW or 2 * w > n:
        share = float(hit.mean()) if n else None
        detail["meets_target"] = None if share is None else share > HIGH_CONFIDENCE_TARGET
        return Indicator("high_confidence_moves", share, None, INSUFFICIENT, detail)
    first, last = float(hit[:w].sum()), float(hit[-w:].sum())
    z, p = two_proportion_z(first, w, last, w)
    change = (last - first) / w
    detail.update(
        share_first=first / w,
        share_last=last / w,
        z=z,
        p_value=p,
        alpha=alpha,
        meets_target=last / w > HIGH_CONFIDENCE_TARGET,
    )
    return Indicator("high_confidence_moves", last / w, change, _direction(change, p < alpha, True), detail)


def value_calibration(
    pairs: Sequence[tuple[float, float]],
    bins: int = CALIBRATION_BINS,
    ece_threshold: float = ECE_THRESHOLD,
    min_samples: int = MIN_CALIBRATION_SAMPLES,
    alpha: float = ALPHA,
) -> Indicator:
    """Calibration of the value head from (root value in [-1, 1], final result +1/0/-1), both
    from the side to move. Expected score e = (v + 1) / 2, actual a = (result + 1) / 2.

    Bins of equal width over e; ECE = sum_b n_b / N |mean e_b - mean a_b|; Brier = mean (e - a)^2
    (with `brier_reference`, that of always predicting the mean score). Verdicts:
    "insufficient data" below `min_samples`; "calibrated" when ECE < `ece_threshold` (0.05 =
    5 points of score); "miscalibrated" when ECE >= threshold and the test rejects calibration:
    H = sum_b (sum_i (a_i - e_i))^2 / sum_i e_i (1 - e_i), chi-square with one degree of
    freedom per non-empty bin (e (1 - e) bounds a score's variance, so draws make it
    conservative); otherwise "insufficient data" (the ECE is within noise). value: ECE.
    """
    if bins < 1:
        raise ValueError(f"bins is at least 1, got {bins}")
    arr = np.asarray(pairs, dtype=float).reshape(-1, 2)
    v, r = arr[:, 0], arr[:, 1]
    if not (np.isfinite(v).all() and (np.abs(v) <= 1).all()):
        raise ValueError("root values lie in [-1, 1]")
    if not np.isin(r, (-1.0, 0.0, 1.0)).all():
        raise ValueError("results are +1, 0 or -1 from the side to move")
    n = len(v)
    detail: dict[str, Any] = {"samples": n, "min_samples": min_samples, "ece_threshold": ece_threshold, "bins": []}
    if n == 0:
        return Indicator("value_calibration", None, None, INSUFFICIENT, detail)
    e, a = (v + 1.0) / 2.0, (r + 1.0) / 2.0
    idx = np.minimum((e * bins).astype(int), bins - 1)
    ece, h, k = 0.0, 0.0, 0
    for b in range(bins):
        m = idx == b
        nb = int(m.sum())
        if not nb:
            continue
        me, ma = float(e[m].mean()), float(a[m].mean())
        ece += nb / n * abs(me - ma)
        var = float((e[m] * (1.0 - e[m])).sum())
        dev = float((a[m] - e[m]).sum())
        h += dev * dev / var if var > 0 else (0.0 if dev == 0 else math.inf)
        k += 1
        detail["bins"].append({"low": b / bins, "high": (b + 1) / bins, "count": nb, "expected": me, "actual": ma})
    brier = float(((e - a) ** 2).mean())
    p = 0.0 if math.isinf(h) else chi2_sf_wilson_hilferty(h, k)
    detail.update(
        brier=brier,
        brier_reference=float(((a - a.mean()) ** 2).mean()),
        ece=ece,
        chi2=finite(h),
        dof=k,
        p_value=p,
        alpha=alpha,
    )
    if n < min_samples:
        verdict = INSUFFICIENT
    elif ece < ece_threshold:
        verdict = CALIBRATED
    else:
        verdict = MISCALIBRATED if p < alpha else INSUFFICIENT
    return Indicator("value_calibration", ece, None, verdict, detail)


# ---------------------------------------------------------------------------------------------


def analyze(
    *,
    elo_points: Sequence[Sequence[float]] | None = None,
    results: Sequence[str] | None = None,
    losses: Sequence[float] | None = None,
    loss_steps: Sequence[float] | None = None,
    plies: Sequence[float] | None = None,
    move_max_probabilities: Sequence[float] | None = None,
    policy_entropies: Sequence[float] | None = None,
    entropy_steps: Sequence[float] | None = None,
    value_pairs: Sequence[tuple[float, float]] | None = None,
    window: int = DEFAULT_WIN_RATE_WINDOW,
    alpha: float = ALPHA,
) -> list[Indicator]:
    """The indicators of whatever inputs are given (None: left out), in the seed's order:
    elo_progression, win_rate_trend, loss_trend, loss_spread, game_length,
    high_confidence_moves, policy_entropy, value_calibration."""
    out: list[Indicator] = []
    if elo_points is not None:
        out.append(elo_progression(elo_points, confidence=1.0 - alpha))
    if results is not None:
        out.append(win_rate_trend(results, window, alpha))
    if losses is not None:
        out.append(loss_trend(losses, loss_steps, alpha))
        out.append(loss_spread(losses, alpha=alpha))
    if plies is not None:
        out.append(game_length_trend(plies, alpha))
    if move_max_probabilities is not None:
        out.append(high_confidence_moves(move_max_probabilities, alpha=alpha))
    if policy_entropies is not None:
        out.append(policy_entropy_trend(policy_entropies, entropy_steps, alpha))
    if value_pairs is not None:
        out.append(value_calibration(value_pairs, alpha=alpha))
    return out
