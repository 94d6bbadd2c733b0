"""The settings load with nothing set: the service starts with DESIGN.md's defaults."""

import os

import pytest

from service.config import Settings

pytestmark = pytest.mark.smoke


def test_settings_load_in_a_clean_environment(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.lower() in Settings.model_fields:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    settings = Settings()
    assert settings.max_games == 100
    assert settings.session_config().max_games == 100
