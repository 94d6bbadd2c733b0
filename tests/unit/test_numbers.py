"""Numbers as strict JSON carries them (service.stats.numbers): NaN and infinities become None."""

import pytest

from service.stats.numbers import finite

pytestmark = pytest.mark.unit


def test_finite_replaces_nan_and_infinities():
    assert finite({"a": [float("nan"), 1.5, {"b": float("-inf")}], 2: (1, 2)}) == {
        "a": [None, 1.5, {"b": None}],
        "2": [1, 2],
    }


def test_finite_keeps_every_other_value():
    assert finite(float("inf")) is None and finite(2.5) == 2.5 and finite(None) is None
    assert finite(3) == 3 and finite(True) is True and finite("nan") == "nan"
