"""Every module of the package imports, the pure core stays pure, and the CLI starts."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import service

pytestmark = pytest.mark.smoke

MODULES = sorted(m.name for m in pkgutil.walk_packages(service.__path__, "service."))
CONSOLE_SCRIPT = Path(sys.executable).with_name("continuous-play")


def test_the_package_has_its_layers():
    for name in (
        "service.config",
        "service.cli",
        "service.engine.network",
        "service.engine.mcts",
        "service.stats.scorecard",
        "service.sessions.worker",
    ):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


# The pure core (DESIGN.md "Layout"): engine/ and stats/ import nothing of the service and
# none of FastAPI, SQLAlchemy or asyncio. torch and python-chess's chess.engine (the UCI
# player) import asyncio themselves, so "asyncio not in sys.modules" cannot hold for any
# program that uses torch: asyncio is checked as (a) no engine/stats module imports it
# itself (an __import__ spy sees every import statement, cached or not), and (b) nothing
# beyond what the third-party libraries already load appears once the service's modules
# are imported. fastapi and sqlalchemy are checked plainly in sys.modules.
_PURITY_PROBE = textwrap.dedent("""
    import builtins, importlib, json, pkgutil, sys

    FORBIDDEN = ("fastapi", "sqlalchemy", "asyncio")
    PURE = ("service.engine", "service.stats")
    direct = []
    real_import = builtins.__import__

    def spy(name, globals=None, locals=None, fromlist=(), level=0):
        caller = (globals or {}).get("__name__") or ""
        if level == 0 and caller.startswith(PURE) and name.split(".")[0] in FORBIDDEN:
            direct.append([caller, name])
        return real_import(name, globals, locals, fromlist, level)

    import chess, chess.engine, chess.pgn, numpy, safetensors, safetensors.torch, torch  # third party
    baseline = set(sys.modules)
    builtins.__import__ = spy
    import service.engine, service.stats
    names = []
    for pkg in (service.engine, service.stats):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)
            names.append(info.name)
    builtins.__import__ = real_import
    new = sorted(set(sys.modules) - baseline)
    print(json.dumps({
        "imported": names,
        "direct": direct,
        "forbidden_loaded": [m for m in ("fastapi", "sqlalchemy") if m in sys.modules],
        "forbidden_new": [m for m in new if m.split(".")[0] in FORBIDDEN],
        "service_modules": sorted(m for m in sys.modules if m == "service" or m.startswith("service.")),
    }))
""")


def test_engine_and_stats_are_pure():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [sys.executable, "-c", _PURITY_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "service.engine.mcts" in found["imported"] and "service.stats.scorecard" in found["imported"]
    assert found["direct"] == [], f"engine/stats import {found['direct']}"
    assert found["forbidden_loaded"] == []
    assert found["forbidden_new"] == []
    outside = [
        m for m in found["service_modules"] if m != "service" and not m.startswith(("service.engine", "service.stats"))
    ]
    assert outside == [], f"engine/stats pull in service modules {outside}"


def test_cli_help_lists_run():
    assert CONSOLE_SCRIPT.exists(), f"console script missing at {CONSOLE_SCRIPT}"
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    commands = [line.strip("│ ").split()[0] for line in proc.stdout.splitlines() if line.strip("│ ")]
    assert "run" in commands, proc.stdout
    assert "Traceback" not in proc.stderr
