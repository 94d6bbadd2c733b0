"""Every module of the package imports, the pure core stays pure, no import cycle joins the
service's packages, and the CLI starts."""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.cli import CONSOLE_SCRIPT

import service

pytestmark = pytest.mark.smoke

MODULES = sorted(m.name for m in pkgutil.walk_packages(service.__path__, "service."))


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


# No import cycle between the service's parts (DESIGN.md "Layout": dependencies point
# inward): each package (service.api, .sessions, .storage, .telemetry, .reports, .stats,
# .engine, ...) and each top-level module (service.app, .cli, .runtime, ...) is one node; a
# module's import of another part is an edge. Every import statement counts, those inside
# functions and under TYPE_CHECKING too: a lazy import is still a dependency, only a later one.
PACKAGE_DIR = Path(service.__file__).resolve().parent


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = ("service", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imported(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(service module, line) for every import statement of `module` (file `path`)."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:  # `from service import config` imports the module service.config
                name = f"{base}.{alias.name}"
                found.append((name if name in modules else base, node.lineno))
    return [(name, line) for name, line in found if name.startswith("service.")]


def _part(module: str) -> str:
    """The node a module belongs to: its package under service/, or itself at the top level."""
    return ".".join(module.split(".")[:2])


def package_graph() -> dict[str, dict[str, str]]:
    """part -> {part it imports: the first import that says so, as `module:line -> module`}."""
    modules = _module_names()
    graph: dict[str, dict[str, str]] = {}
    for module, path in sorted(modules.items()):
        for name, line in _imported(module, path, modules):
            source, target = _part(module), _part(name)
            if source != target and target != "service":
                graph.setdefault(source, {}).setdefault(target, f"{module}:{line} -> {name}")
    return graph


def find_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Each elementary cycle once, as the list of its nodes (starting with the smallest)."""
    cycles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, {})):
            if target == start:
                cycles.append([*path, start])
            elif target > start and target not in path:
                walk(start, target, [*path, target])

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def test_find_cycles_names_each_cycle_once():
    graph = {"a": {"b": ""}, "b": {"c": "", "a": ""}, "c": {"a": ""}, "d": {"a": ""}}
    assert find_cycles(graph) == [["a", "b", "a"], ["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": ""}, "b": {}}) == []


def test_no_import_cycle_between_packages():
    graph = package_graph()
    assert "service.engine" in graph["service.sessions"], "the walk found no imports"
    described = [
        " -> ".join(cycle) + "\n    " + "\n    ".join(graph[a][b] for a, b in zip(cycle, cycle[1:]))
        for cycle in find_cycles(graph)
    ]
    assert described == [], "import cycles between packages:\n" + "\n".join(described)


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
