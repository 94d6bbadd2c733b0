"""Alert checks with the seed's thresholds (seed plan 6.3), the `ALERT_*` settings.

Pure checks, each returning an `Alert` or None. As in the seed, a check fires when the value
is strictly beyond its threshold (`elo_delta < -100`, `loss > 3 * mean`, `growth > 500`,
`rate > 0.1`); a value exactly at the threshold does not fire, so `ALERT_TIMEOUT_RATE=0`
means "any timeout". Severity is "warning", or "critical" when the value is at least twice
as far beyond the baseline as the threshold (a drop of 2 |threshold|, a loss of
2 * factor * mean, twice the memory growth or timeout rate). `AlertTracker` raises each
condition once per episode (until it clears), for the `alert.raised` events.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

WARNING, CRITICAL = "warning", "critical"
ALERT_NAMES = ("elo_regression", "loss_spike", "memory_growth", "timeout_rate")
LOSS_SPIKE_MIN_WINDOW = 5  # recent losses needed before a spike can be judged


@dataclass(frozen=True)
class AlertThresholds:
    """The `ALERT_*` settings: ELO_REGRESSION (Elo, negative), LOSS_SPIKE_FACTOR,
    MEMORY_GROWTH_MB, TIMEOUT_RATE (share of worker calls)."""

    elo_regression: float = -100.0
    loss_spike_factor: float = 3.0
    memory_growth_mb: float = 500.0
    timeout_rate: float = 0.1


@dataclass(frozen=True)
class Alert:
    """A fired check: `value` is what was measured, `threshold` the limit it went beyond."""

    name: str
    severity: str
    message: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _t(t: AlertThresholds | None) -> AlertThresholds:
    return AlertThresholds() if t is None else t


def elo_drop(ratings: Sequence[float]) -> float | None:
    """The newest rating minus the best so far (<= 0; 0 when the newest is the best): the
    `elo_delta` that `elo_regression` judges. None without ratings."""
    return float(ratings[-1]) - max(float(r) for r in ratings) if len(ratings) else None


def elo_regression(elo_delta: float, t: AlertThresholds | None = None) -> Alert | None:
    """Fires when `elo_delta`, the newest checkpoint's rating minus the BEST rating so far
    (`elo_drop`), is below `t.elo_regression` (default -100): a drawdown from the peak, so a
    slow slide over several checkpoints is caught as well as a sudden drop."""
    limit = -abs(_t(t).elo_regression)
    if not elo_delta < limit:
        return None
    severity = CRITICAL if elo_delta <= 2 * limit else WARNING
    return Alert(
        "elo_regression",
        severity,
        f"rating fell {-elo_delta:.0f} Elo below the best checkpoint (limit {-limit:.0f})",
        float(elo_delta),
        limit,
    )


def loss_spike(
    loss: float,
    recent_losses: Sequence[float],
    t: AlertThresholds | None = None,
    min_window: int = LOSS_SPIKE_MIN_WINDOW,
) -> Alert | None:
    """Fires when `loss` > factor * mean(recent_losses), `recent_losses` being the window
    BEFORE this loss (not including it); None while the window has fewer than `min_window`
    values or its mean is not positive. A NaN or infinite loss (divergence) fires critical."""
    factor = _t(t).loss_spike_factor
    if not math.isfinite(loss):
        return Alert("loss_spike", CRITICAL, f"training loss is {loss}", float(loss), factor)
    if len(recent_losses) < min_window:
        return None
    mean = statistics.fmean(float(x) for x in recent_losses)
    if not (math.isfinite(mean) and mean > 0) or not loss > factor * mean:
        return None
    severity = CRITICAL if loss >= 2 * factor * mean else WARNING
    return Alert(
        "loss_spike",
        severity,
        f"training loss {loss:.4g} is {loss / mean:.1f}x its recent mean {mean:.4g} (limit {factor:g}x)",
        float(loss),
        factor * mean,
    )


def memory_growth(growth_mb: float, t: AlertThresholds | None = None) -> Alert | None:
    """Fires when memory grew by more than `t.memory_growth_mb` (default 500 MB)."""
    limit = _t(t).memory_growth_mb
    if not growth_mb > limit:
        return None
    severity = CRITICAL if growth_mb >= 2 * limit else WARNING
    return Alert(
        "memory_growth", severity, f"memory grew by {growth_mb:.0f} MB (limit {limit:.0f} MB)", float(growth_mb), limit
    )


def timeout_rate(rate: float, t: AlertThresholds | None = None) -> Alert | None:
    """Fires when the share of timed-out worker calls (or games) is above `t.timeout_rate`."""
    limit = _t(t).timeout_rate
    if not rate > limit:
        return None
    severity = CRITICAL if rate >= 2 * limit else WARNING
    return Alert("timeout_rate", severity, f"{rate:.1%} of calls timed out (limit {limit:.1%})", float(rate), limit)


_timeout_rate = timeout_rate  # check_all's keyword shadows the function


def check_all(
    t: AlertThresholds | None = None,
    *,
    elo_delta: float | None = None,
    loss: float | None = None,
    recent_losses: Sequence[float] = (),
    memory_growth_mb: float | None = None,
    timeout_rate: float | None = None,
) -> list[Alert]:
    """Every check whose input is given (None: not checked), in ALERT_NAMES order."""
    found = [
        elo_regression(elo_delta, t) if elo_delta is not None else None,
        loss_spike(loss, recent_losses, t) if loss is not None else None,
        memory_growth(memory_growth_mb, t) if memory_growth_mb is not None else None,
        _timeout_rate(timeout_rate, t) if timeout_rate is not None else None,
    ]
    return [a for a in found if a is not None]


class AlertTracker:
    """Remembers the active alerts so each condition is raised once per episode: an alert is
    new when its name was not active, or when it escalates from warning to critical; a name
    that was checked and did not fire clears, and may be raised again later."""

    def __init__(self, thresholds: AlertThresholds | None = None) -> None:
        self.thresholds = _t(thresholds)
        self.active: dict[str, Alert] = {}

    def update(self, fired: Iterable[Alert], checked: Iterable[str] = ALERT_NAMES) -> list[Alert]:
        """The alerts to raise now, from the ones `fired` in a round that `checked` these names."""
        fired = list(fired)
        names = {a.name for a in fired}
        for name in set(checked) - names:
            self.active.pop(name, None)
        new = []
        for a in fired:
            before = self.active.get(a.name)
            if before is None or (before.severity == WARNING and a.severity == CRITICAL):
                new.append(a)
            self.active[a.name] = a
        return new

    def check(self, **inputs: Any) -> list[Alert]:
        """check_all(self.thresholds, **inputs), then update; only given inputs count as checked."""
        keys = {
            "elo_delta": "elo_regression",
            "loss": "loss_spike",
            "memory_growth_mb": "memory_growth",
            "timeout_rate": "timeout_rate",
        }
        checked = [keys[k] for k, v in inputs.items() if k in keys and v is not None]
        return self.update(check_all(self.thresholds, **inputs), checked)

    def clear(self) -> None:
        self.active.clear()
