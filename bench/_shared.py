"""Helpers the session benches share (not a bench: `make bench` does not run it).

A bench script imports it as `_shared` (its own folder is first on sys.path when it runs
as `python bench/NAME.py`).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from service.config import SessionConfig, Settings


def fail(script: str, message: str) -> NoReturn:
    """A bad argument or setting: one line on stderr, exit status 2."""
    print(f"bench/{script}: {message}", file=sys.stderr)
    raise SystemExit(2)


def add_set_option(
    parser: argparse.ArgumentParser, example: str = "SELFPLAY_PARALLEL_GAMES=32", defaults: list[str] | None = None
) -> None:
    """The benches' `--set NAME=VALUE` option (repeatable, into `args.sets`), which
    `session_config` applies to the session config; `defaults`: the bench's own, applied first."""
    note = f" (defaults here: {' '.join(defaults)})" if defaults else ""
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a per-session setting, e.g. --set {example}{note}",
    )


def session_config(
    script: str, sets: list[str], settings: Settings | None = None, **overrides: Any
) -> tuple[Settings, SessionConfig]:
    """The settings (from the environment / `.env` unless given) and the session config with
    the `--set NAME=VALUE` assignments and keyword overrides applied; a bad one fails."""
    from service.config import SettingsError, load_settings, session_config_from

    try:
        if settings is None:
            settings = load_settings()
        return settings, session_config_from(settings, sets, **overrides)
    except SettingsError as exc:
        fail(script, str(exc))


def kept_session(folder: Path) -> tuple[dict[int, Path], SessionConfig, str]:
    """The checkpoint files (by generation), config and id of the one session in a folder kept
    by `strength.py --keep`; fails (exit 2) when the folder holds another number of sessions."""
    import asyncio

    from service.config import stored_session_config
    from service.storage import repositories as repo
    from service.storage.database import create_engine, session_factory

    async def read() -> tuple[dict[int, Path], SessionConfig, str]:
        engine = create_engine(f"sqlite+aiosqlite:///{folder / 'strength.db'}")
        try:
            async with session_factory(engine)() as db:
                sessions, _ = await repo.list_sessions(db)
                if len(sessions) != 1:
                    fail("kept_session", f"{folder} holds {len(sessions)} sessions, not 1")
                row = sessions[0]
                checkpoints = await repo.list_checkpoints(db, row.id)
        finally:
            await engine.dispose()
        weights = {c.generation: c.weights_path(folder / "checkpoints") for c in checkpoints}
        return weights, stored_session_config(row.config), row.id

    return asyncio.run(read())


def evenly_spaced(newest: int, points: int, available: set[int]) -> list[int]:
    """`points` generations evenly spaced up to `newest` (the last is `newest`), each the
    nearest stored one at or below its target; duplicates dropped, in order."""
    targets = [round(newest * (i + 1) / points) for i in range(points)]
    return sorted({max(g for g in available if g <= target) for target in targets})


def per_minute_second_half(times: list[float]) -> float | None:
    """Events per minute over the second half of them: events half+1..n over the time since
    event `half` (`times`: seconds from the start, in order). Excludes the warm-up; None
    with fewer than two events or no time between them."""
    n = len(times)
    half = n // 2
    if n >= 2 and times[-1] > times[half - 1]:
        return (n - half) / ((times[-1] - times[half - 1]) / 60)
    return None


def cpu_model() -> str | None:
    """`lscpu`'s model name (/proc/cpuinfo's without it), or None."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return value.strip()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
