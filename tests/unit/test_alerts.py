"""Alert checks: the seed's thresholds, strict at the boundary, and one raise per episode."""

from __future__ import annotations

import json
import math

import pytest

from service.stats.alerts import (
    ALERT_NAMES,
    CRITICAL,
    WARNING,
    Alert,
    AlertThresholds,
    AlertTracker,
    check_all,
    elo_drop,
    elo_regression,
    loss_spike,
    memory_growth,
    timeout_rate,
)

pytestmark = pytest.mark.unit

T = AlertThresholds()


def test_defaults_are_the_settings_defaults():
    from service.config import Settings

    fields = Settings.model_fields
    assert T.elo_regression == fields["alert_elo_regression"].default == -100.0
    assert T.loss_spike_factor == fields["alert_loss_spike_factor"].default == 3.0
    assert T.memory_growth_mb == fields["alert_memory_growth_mb"].default == 500.0
    assert T.timeout_rate == fields["alert_timeout_rate"].default == 0.1


def test_elo_drop_is_from_the_best_so_far():
    assert elo_drop([1500, 1700, 1650, 1590]) == -110.0
    assert elo_drop([1500, 1600]) == 0.0
    assert elo_drop([]) is None


def test_elo_regression_boundary():
    assert elo_regression(-100.0, T) is None  # at the threshold: the seed's `< -100`
    assert elo_regression(-99.0, T) is None
    assert elo_regression(50.0, T) is None
    a = elo_regression(-100.5, T)
    assert (a.name, a.severity, a.value, a.threshold) == ("elo_regression", WARNING, -100.5, -100.0)
    assert elo_regression(-200.0, T).severity == CRITICAL
    assert elo_regression(-60.0, AlertThresholds(elo_regression=-50.0)) is not None
    assert elo_regression(-60.0) is None  # default thresholds
    assert elo_regression(math.nan, T) is None


def test_loss_spike_boundary():
    recent = [1.0, 2.0, 1.0, 2.0, 1.5]  # mean 1.5: limit 4.5
    assert loss_spike(4.5, recent, T) is None
    assert loss_spike(4.0, recent, T) is None
    a = loss_spike(4.6, recent, T)
    assert (a.severity, a.value, a.threshold) == (WARNING, 4.6, pytest.approx(4.5))
    assert loss_spike(9.0, recent, T).severity == CRITICAL
    assert loss_spike(2.1, recent, AlertThresholds(loss_spike_factor=1.4)) is not None


def test_loss_spike_needs_a_window_and_catches_divergence():
    assert loss_spike(100.0, [1.0] * 4, T) is None  # fewer than LOSS_SPIKE_MIN_WINDOW
    assert loss_spike(100.0, [1.0] * 4, T, min_window=4) is not None
    assert loss_spike(100.0, [0.0] * 5, T) is None  # no positive mean to compare with
    for bad in (math.nan, math.inf):
        a = loss_spike(bad, [], T)
        assert a is not None and a.severity == CRITICAL


def test_memory_and_timeout_boundaries():
    assert memory_growth(500.0, T) is None
    assert memory_growth(499.0, T) is None
    assert memory_growth(500.1, T).severity == WARNING
    assert memory_growth(1000.0, T).severity == CRITICAL
    assert timeout_rate(0.1, T) is None
    assert timeout_rate(0.05, T) is None
    assert timeout_rate(0.11, T).severity == WARNING
    assert timeout_rate(0.2, T).severity == CRITICAL
    zero = AlertThresholds(timeout_rate=0.0)  # any timeout
    assert timeout_rate(0.0, zero) is None
    assert timeout_rate(0.01, zero) is not None


def test_check_all():
    assert check_all(T) == []
    assert check_all(T, elo_delta=-50, loss=1.0, recent_losses=[1.0] * 5, memory_growth_mb=10, timeout_rate=0) == []
    got = check_all(T, elo_delta=-150, loss=10.0, recent_losses=[1.0] * 5, memory_growth_mb=600, timeout_rate=0.5)
    assert [a.name for a in got] == list(ALERT_NAMES)
    assert [a.name for a in check_all(timeout_rate=0.5)] == ["timeout_rate"]
    json.dumps([a.to_dict() for a in got], allow_nan=False)


def test_tracker_raises_once_per_episode():
    tr = AlertTracker(T)
    assert tr.check(memory_growth_mb=600) != []
    assert tr.check(memory_growth_mb=650) == []  # same episode
    assert tr.check(memory_growth_mb=700) == []
    assert "memory_growth" in tr.active
    assert tr.check(memory_growth_mb=100) == []  # cleared
    assert tr.active == {}
    again = tr.check(memory_growth_mb=600)
    assert [a.name for a in again] == ["memory_growth"]  # a new episode


def test_tracker_escalation_and_unchecked_names():
    tr = AlertTracker(T)
    assert [a.severity for a in tr.check(timeout_rate=0.15)] == [WARNING]
    assert [a.severity for a in tr.check(timeout_rate=0.3)] == [CRITICAL]  # escalated: raised again
    assert tr.check(timeout_rate=0.15) == []  # back to warning: same episode
    # a round that does not check the timeout rate leaves it active
    assert [a.name for a in tr.check(elo_delta=-150)] == ["elo_regression"]
    assert set(tr.active) == {"timeout_rate", "elo_regression"}
    assert tr.check(timeout_rate=0.15, elo_delta=-150) == []
    tr.clear()
    assert len(tr.check(timeout_rate=0.15, elo_delta=-150)) == 2


def test_tracker_update_with_explicit_alerts():
    tr = AlertTracker()
    a = Alert("loss_spike", WARNING, "spike", 10.0, 3.0)
    assert tr.update([a], checked=["loss_spike"]) == [a]
    assert tr.update([a], checked=["loss_spike"]) == []
    assert tr.update([], checked=["memory_growth"]) == []
    assert "loss_spike" in tr.active  # not checked, not cleared
    assert tr.update([]) == [] and tr.active == {}  # default: every name checked
