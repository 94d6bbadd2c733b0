"""How a session's roles share its cores: SELFPLAY_ACTORS=auto, threads per role, where the
evaluator plays."""

from __future__ import annotations

import os

import pytest

from service.config import Settings, SettingsError, load_settings
from service.sessions.fleet import FleetLayout, fleet_layout

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cores", "sessions", "actors", "expected"),
    [
        (2, 2, "auto", FleetLayout(1, 1, 1, False)),  # this machine: one worker, as before
        (2, 1, "auto", FleetLayout(1, 2, 1, False)),
        (16, 2, "auto", FleetLayout(7, 1, 1, True)),  # 8 cores a session: 7 actors and the learner
        (16, 1, "auto", FleetLayout(15, 1, 1, True)),
        (16, 2, 3, FleetLayout(3, 5, 1, True)),  # the learner takes what the actors leave
        (2, 2, 2, FleetLayout(2, 1, 1, True)),
    ],
)
def test_the_layout_follows_the_cores(monkeypatch, cores, sessions, actors, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    settings = Settings(_env_file=None, max_concurrent_sessions=sessions, selfplay_actors=actors)
    assert fleet_layout(settings, settings.session_config()) == expected


def test_torch_threads_and_gating_are_honoured(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    settings = Settings(_env_file=None, max_concurrent_sessions=1, torch_threads=4, selfplay_actors=4)
    assert fleet_layout(settings, settings.session_config()) == FleetLayout(4, 4, 1, True)
    gated = settings.session_config(gating=True)
    assert fleet_layout(settings, gated).separate_evaluator is False  # promotion needs the verdict first


@pytest.mark.parametrize("value", ["0", "x", "-1", "257"])
def test_a_bad_selfplay_actors_is_refused(value):
    with pytest.raises(ValueError):
        Settings(_env_file=None, selfplay_actors=value)


def test_a_bad_selfplay_actors_is_one_line_naming_it():
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, selfplay_actors="x")
    assert str(caught.value) == "invalid setting SELFPLAY_ACTORS='x': expected an integer from 1 to 256, or auto"
