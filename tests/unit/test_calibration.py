"""Value calibration math (service/stats/calibration.py) against numbers worked by hand.

The set: four positions, results win, draw, loss, win (side to move), predicted
WDL (.5 .25 .25), (.2 .6 .2), (.1 .1 .8), (.25 .5 .25); expected scores .625 .5 .15 .5,
actual scores 1 .5 0 1; material balances 1 0 -1 1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.stats import calibration as cal

pytestmark = pytest.mark.unit

RESULTS = [1, 0, -1, 1]
WDL = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.25, 0.5, 0.25]]
MATERIAL = [1, 0, -1, 1]


def test_expected_and_actual_scores():
    assert cal.expected_scores(WDL) == pytest.approx([0.625, 0.5, 0.15, 0.5])
    assert cal.scores(RESULTS) == pytest.approx([1.0, 0.5, 0.0, 1.0])


def test_log_loss_by_hand():
    # -(ln .5 + ln .6 + ln .8 + ln .25) / 4
    assert cal.log_loss(WDL, RESULTS) == pytest.approx(0.703353, abs=1e-6)
    assert cal.log_loss([[1 / 3] * 3], [0]) == pytest.approx(math.log(3))


def test_log_loss_of_a_certain_wrong_prediction_is_bounded_by_eps():
    assert cal.log_loss([[1.0, 0.0, 0.0]], [-1]) == pytest.approx(-math.log(cal.EPS))


def test_base_rates_and_prior_log_loss():
    assert cal.base_rates(RESULTS) == pytest.approx([0.5, 0.25, 0.25])
    prior = np.tile(cal.base_rates(RESULTS), (4, 1))
    # -(2 ln .5 + 2 ln .25) / 4
    assert cal.log_loss(prior, RESULTS) == pytest.approx(1.039721, abs=1e-6)


def test_grouped_rates_shrink_toward_the_base_rates():
    rates = cal.grouped_rates(MATERIAL, RESULTS)
    # key 1: two wins, ([2, 0, 0] + [.5, .25, .25]) / 3; key 0: one draw, ([0, 1, 0] + base) / 2
    assert rates[0] == pytest.approx([2.5 / 3, 0.25 / 3, 0.25 / 3])
    assert rates[3] == pytest.approx(rates[0])
    assert rates[1] == pytest.approx([0.25, 0.625, 0.125])
    assert rates[2] == pytest.approx([0.25, 0.125, 0.625])
    assert cal.log_loss(rates, RESULTS) == pytest.approx(0.326163, abs=1e-6)


def test_brier_by_hand():
    # (.375^2 + 0 + .15^2 + .5^2) / 4
    assert cal.brier(cal.expected_scores(WDL), RESULTS) == pytest.approx(0.10328125)
    assert cal.brier([0.625] * 4, RESULTS) == pytest.approx(0.171875)


def test_calibration_table_by_hand():
    rows, ece = cal.calibration_table(cal.expected_scores(WDL), RESULTS, bins=2)
    assert [r["count"] for r in rows] == [1, 3]
    assert rows[0] == pytest.approx({"low": 0.0, "high": 0.5, "count": 1, "predicted": 0.15, "actual": 0.0})
    assert rows[1]["predicted"] == pytest.approx(1.625 / 3)
    assert rows[1]["actual"] == pytest.approx(2.5 / 3)
    # 1/4 * .15 + 3/4 * |1.625/3 - 2.5/3|
    assert ece == pytest.approx(0.25625)


def test_calibration_table_puts_a_certain_win_in_the_last_bin_and_skips_empty_bins():
    rows, ece = cal.calibration_table([1.0, 1.0], [1, 1], bins=10)
    assert rows == [{"low": 0.9, "high": 1.0, "count": 2, "predicted": 1.0, "actual": 1.0}]
    assert ece == 0.0


def test_summary_joins_the_figures():
    out = cal.summary(RESULTS, wdl=WDL, material=MATERIAL, bins=2)
    assert out["positions"] == 4
    assert out["base_rates"] == pytest.approx({"win": 0.5, "draw": 0.25, "loss": 0.25})
    assert out["log_loss"] == pytest.approx(0.703353, abs=1e-6)
    assert out["log_loss_prior"] == pytest.approx(1.039721, abs=1e-6)
    assert out["log_loss_material"] == pytest.approx(0.326163, abs=1e-6)
    assert out["brier"] == pytest.approx(0.10328125)
    assert out["brier_prior"] == pytest.approx(0.171875)
    assert out["ece"] == pytest.approx(0.25625)
    assert len(out["bins"]) == 2


def test_summary_of_a_scalar_prediction_has_no_log_loss():
    out = cal.summary(RESULTS, expected=[0.625, 0.5, 0.15, 0.5], bins=2)
    assert "log_loss" not in out and "brier_material" not in out
    assert out["brier"] == pytest.approx(0.10328125)
    assert cal.summary([], expected=[])["brier"] is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: cal.scores([2]),
        lambda: cal.log_loss(WDL[:2], RESULTS),
        lambda: cal.calibration_table([1.5], [1]),
        lambda: cal.calibration_table([0.5], [1], bins=0),
        lambda: cal.summary(RESULTS),
    ],
)
def test_bad_input_is_refused(call):
    with pytest.raises(ValueError):
        call()
