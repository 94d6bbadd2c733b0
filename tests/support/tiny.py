"""The one tiny session config of the tests, and the settings, config and environment built
from it.

TINY is small enough for a session to play a game in about a second on a loaded 2-core
machine and still do everything a session does: self-play (three games in flight, a few
simulations per move), learning from game 2 on, a checkpoint every 2 games, and one
evaluation at its end (against the random anchor: the interval is never reached by a test).

A test that needs something else takes TINY and overrides the few keys it needs
(`{**TINY, "max_games": 4}`, `tiny_settings(tmp_path, eval_interval_games=4)`), so the
difference is visible where it matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.config import SessionConfig, Settings

TINY: dict[str, Any] = {
    "chess_preset": "tiny",
    "torch_threads": 1,
    "selfplay_parallel_games": 3,
    "max_moves_per_game": 24,
    "selfplay_simulations": 4,
    "fast_simulations": 2,
    "gumbel_considered": 4,
    "min_games_before_learning": 2,
    "learn_every_n_games": 2,
    "learning_batch_size": 16,
    "checkpoint_interval": 2,
    "eval_interval_games": 1000,
    "eval_games": 2,
    "eval_opponents": ["random"],
    "eval_simulations": 2,
    "inference_backend": "torch",
}
"""Session fields (keys of SessionConfig, and so of Settings and of POST /v1/sessions).
`inference_backend` is torch, not `auto`: a probe times the backends anew in each test's
fresh CHECKPOINT_DIR (seconds), and its choice may differ between runs; tests/unit/
test_inference.py and the worker tests that name `auto` cover it."""


def folder_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with no .env file: the tiny preset, checkpoints and reports under tmp_path,
    one session at a time; `overrides` win."""
    values: dict[str, Any] = {
        "chess_preset": "tiny",
        "inference_backend": "torch",  # as in TINY
        "checkpoint_dir": tmp_path / "checkpoints",
        "report_dir": tmp_path / "reports",
        "max_concurrent_sessions": 1,
    }
    return Settings(_env_file=None, **(values | overrides))


def app_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with no .env file for the app or a headless run that reach nothing outside
    tmp_path: an SQLite database and the folders under it, the tiny preset, the inline worker,
    no API keys, no CORS origins; `overrides` win."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "checkpoint_dir": tmp_path / "checkpoints",
        "report_dir": tmp_path / "reports",
        "chess_preset": "tiny",
        "inference_backend": "torch",  # as in TINY
        "worker_backend": "inline",
        "api_keys": [],
        "cors_origins": [],
    }
    return Settings(_env_file=None, **(values | overrides))


def tiny_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """folder_settings with TINY as the session defaults and metrics every 0.5 s (the
    settings of an orchestrator test); `overrides` win."""
    return folder_settings(tmp_path, **{**TINY, "metrics_export_interval": 0.5, **overrides})


def tiny_config(**overrides: Any) -> SessionConfig:
    """TINY as a SessionConfig; `overrides` win."""
    return SessionConfig(**{**TINY, **overrides})


def tiny_env(**overrides: Any) -> dict[str, str]:
    """TINY as environment variables (upper-case names, lists comma-separated), for a
    `continuous-play` subprocess; `overrides` (named as variables: MAX_GAMES=4) win."""
    values = {name.upper(): value for name, value in TINY.items()} | overrides
    return {name: _env_value(value) for name, value in values.items()}


def _env_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
