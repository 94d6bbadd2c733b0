"""Every property test runs under the one hypothesis profile of tests/conftest.py:
derandomised (the same examples on every run and machine), with no wall-clock deadline."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

DRAWN: list[int] = []


def test_the_profile_is_loaded():
    current = settings()
    assert settings.get_current_profile_name() == "continuous-play"
    assert current.derandomize is True and current.database is None
    assert current.deadline is None and HealthCheck.too_slow in current.suppress_health_check


@settings(max_examples=15)
@given(st.integers(0, 10**9))
def _draw(n: int) -> None:
    DRAWN.append(n)


def test_examples_are_the_same_on_every_run():
    runs = []
    for _ in range(2):
        DRAWN.clear()
        _draw()
        runs.append(list(DRAWN))
    assert len(runs[0]) > 1 and runs[0] == runs[1]
