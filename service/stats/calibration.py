"""Does a value head's prediction match how games end? Pure math over (prediction, result)
pairs, both from the side to move: results are +1 (win), 0 (draw), -1 (loss); a prediction
is a win/draw/loss distribution (the value head's WDL) or an expected score in [0, 1] (a
scalar value v in [-1, 1] is the expected score (v + 1) / 2).

"Correlation with material" says only whether a value counts material; these figures say
whether it predicts results, and whether it does better than the trivial predictors:

- `log_loss` (cross-entropy, nats) of a WDL prediction, against `base_rates` (the constant
  prior: always predict the set's own W/D/L shares) and against `grouped_rates` keyed by
  material balance (the material-only predictor: the W/D/L shares of the positions with
  the same balance, fitted on the same positions, so an optimistic baseline);
- `brier`: mean squared error of the expected score;
- `calibration_table`: equal-width bins of predicted expected score with the mean actual
  score and count of each, and the ECE (expected calibration error: the count-weighted
  mean of |mean predicted - mean actual| over the bins).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EPS = 1e-6
"""Smallest probability a log loss takes the logarithm of (an outcome predicted as 0 would
cost an infinite loss)."""
DEFAULT_BINS = 10
"""Bins of the calibration table: 10 bins of 0.1 expected score."""


def _outcomes(outcomes: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(outcomes, dtype=float).reshape(-1)
    if not np.isin(arr, (-1.0, 0.0, 1.0)).all():
        raise ValueError("results are +1, 0 or -1 from the side to move")
    return arr


def _wdl(wdl: Sequence[Sequence[float]] | np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(wdl, dtype=float).reshape(-1, 3)
    if len(arr) != n:
        raise ValueError(f"{len(arr)} predictions for {n} results")
    if not (np.isfinite(arr).all() and (arr >= 0).all()):
        raise ValueError("WDL probabilities are finite and non-negative")
    return arr / arr.sum(axis=1, keepdims=True)


def scores(outcomes: Sequence[float] | np.ndarray) -> np.ndarray:
    """Actual scores of results +1/0/-1: 1, 0.5, 0."""
    return (_outcomes(outcomes) + 1.0) / 2.0


def expected_scores(wdl: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Expected score of each WDL row: P(win) + P(draw) / 2."""
    arr = np.asarray(wdl, dtype=float).reshape(-1, 3)
    arr = arr / arr.sum(axis=1, keepdims=True)
    return arr[:, 0] + arr[:, 1] / 2.0


def _index(outcomes: np.ndarray) -> np.ndarray:
    """Column of each result in a WDL row: win 0, draw 1, loss 2."""
    return (1 - outcomes).astype(int)


def log_loss(wdl: Sequence[Sequence[float]] | np.ndarray, outcomes: Sequence[float] | np.ndarray) -> float:
    """Mean -ln P(actual result) of WDL predictions (nats; 0 is perfect, ln 3 ~ 1.0986 is a
    uniform guess)."""
    res = _outcomes(outcomes)
    if not len(res):
        raise ValueError("no results")
    probs = _wdl(wdl, len(res))
    picked = probs[np.arange(len(res)), _index(res)]
    return float(-np.log(np.maximum(picked, EPS)).mean())


def base_rates(outcomes: Sequence[float] | np.ndarray) -> np.ndarray:
    """The W/D/L shares of the results: the constant prior."""
    res = _outcomes(outcomes)
    if not len(res):
        raise ValueError("no results")
    return np.bincount(_index(res), minlength=3) / len(res)


def grouped_rates(
    keys: Sequence[int] | np.ndarray, outcomes: Sequence[float] | np.ndarray, smoothing: float = 1.0
) -> np.ndarray:
    """Per row, the W/D/L shares of the rows with the same key, shrunk toward the base rates
    by `smoothing` pseudo-results: (counts + smoothing * base) / (n + smoothing). With the
    material balance as key, the material-only predictor."""
    res = _outcomes(outcomes)
    keys_arr = np.asarray(keys).reshape(-1)
    if len(keys_arr) != len(res):
        raise ValueError(f"{len(keys_arr)} keys for {len(res)} results")
    base = base_rates(res)
    out = np.empty((len(res), 3))
    for key in np.unique(keys_arr):
        mask = keys_arr == key
        counts = np.bincount(_index(res[mask]), minlength=3)
        out[mask] = (counts + smoothing * base) / (mask.sum() + smoothing)
    return out


def brier(expected: Sequence[float] | np.ndarray, outcomes: Sequence[float] | np.ndarray) -> float:
    """Mean squared error of the expected scores against the actual scores (0 is perfect)."""
    actual = scores(outcomes)
    e = np.asarray(expected, dtype=float).reshape(-1)
    if len(e) != len(actual) or not len(e):
        raise ValueError(f"{len(e)} predictions for {len(actual)} results")
    return float(((e - actual) ** 2).mean())


def calibration_table(
    expected: Sequence[float] | np.ndarray, outcomes: Sequence[float] | np.ndarray, bins: int = DEFAULT_BINS
) -> tuple[list[dict[str, Any]], float]:
    """(rows, ECE): the non-empty bins of equal width over expected score [0, 1], each
    {low, high, count, predicted (mean expected score), actual (mean actual score)}; an
    expected score of exactly 1 falls in the last bin."""
    if bins < 1:
        raise ValueError(f"bins is at least 1, got {bins}")
    actual = scores(outcomes)
    e = np.asarray(expected, dtype=float).reshape(-1)
    if len(e) != len(actual) or not len(e):
        raise ValueError(f"{len(e)} predictions for {len(actual)} results")
    if not (np.isfinite(e).all() and (e >= 0).all() and (e <= 1).all()):
        raise ValueError("expected scores lie in [0, 1]")
    index = np.minimum((e * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        if not count:
            continue
        predicted, mean_actual = float(e[mask].mean()), float(actual[mask].mean())
        ece += count / len(e) * abs(predicted - mean_actual)
        rows.append(
            {"low": b / bins, "high": (b + 1) / bins, "count": count, "predicted": predicted, "actual": mean_actual}
        )
    return rows, float(ece)


def summary(
    outcomes: Sequence[float] | np.ndarray,
    *,
    expected: Sequence[float] | np.ndarray | None = None,
    wdl: Sequence[Sequence[float]] | np.ndarray | None = None,
    material: Sequence[int] | np.ndarray | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Every figure of the module for one set of positions (`wdl`, or else `expected`, is the
    prediction; log losses only with `wdl`; the material predictor only with `material`, the
    side to move's material balance). `positions` 0: the figures are None."""
    res = _outcomes(outcomes)
    out: dict[str, Any] = {"positions": int(len(res))}
    if not len(res):
        return {**out, "base_rates": None, "brier": None, "brier_prior": None, "ece": None, "bins": []}
    if wdl is not None:
        expected = expected_scores(_wdl(wdl, len(res)))
    if expected is None:
        raise ValueError("a prediction is needed: wdl or expected")
    rates = base_rates(res)
    prior_score = float(rates[0] + rates[1] / 2)
    table, ece = calibration_table(expected, res, bins)
    out.update(
        base_rates={"win": float(rates[0]), "draw": float(rates[1]), "loss": float(rates[2])},
        brier=brier(expected, res),
        brier_prior=brier(np.full(len(res), prior_score), res),
    )
    if material is not None:
        out["brier_material"] = brier(expected_scores(grouped_rates(material, res)), res)
    if wdl is not None:
        out["log_loss"] = log_loss(wdl, res)
        out["log_loss_prior"] = log_loss(np.tile(rates, (len(res), 1)), res)
        if material is not None:
            out["log_loss_material"] = log_loss(grouped_rates(material, res), res)
    out.update(ece=ece, bins=table)
    return out
