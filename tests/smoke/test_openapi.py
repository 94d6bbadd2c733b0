"""The committed OpenAPI document (openapi/openapi.json) is the app's, and it describes
the REST contract of DESIGN.md: every route built so far, errors as problem+json."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.openapi import DEFAULT_PATH, REGENERATE, render, spec

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_JSON = "application/problem+json"

# DESIGN.md "REST" routes implemented so far: (method, path).
EXPECTED = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/v1/sessions"),
    ("get", "/v1/sessions"),
    ("get", "/v1/sessions/{session_id}"),
    ("post", "/v1/sessions/{session_id}/pause"),
    ("post", "/v1/sessions/{session_id}/resume"),
    ("post", "/v1/sessions/{session_id}/stop"),
    ("delete", "/v1/sessions/{session_id}"),
    ("get", "/v1/sessions/{session_id}/games"),
    ("get", "/v1/sessions/{session_id}/games.pgn"),
    ("get", "/v1/games/{game_id}"),
    ("get", "/v1/games/{game_id}.pgn"),
    ("get", "/v1/sessions/{session_id}/scorecard"),
    ("get", "/v1/sessions/{session_id}/metrics"),
    ("get", "/v1/sessions/{session_id}/evaluations"),
    ("get", "/v1/sessions/{session_id}/checkpoints"),
    ("get", "/v1/checkpoints/{checkpoint_id}/weights"),
    ("get", "/v1/checkpoints/{checkpoint_id}/weights.onnx"),
    ("get", "/v1/sessions/{session_id}/report.json"),
    ("get", "/v1/sessions/{session_id}/report.html"),
}


@pytest.fixture(scope="module")
def document() -> dict:
    return spec()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_committed_file_is_current(document):
    assert DEFAULT_PATH == ROOT / "openapi" / "openapi.json"
    assert DEFAULT_PATH.is_file(), f"{DEFAULT_PATH} is missing: run `{REGENERATE}` and commit it"
    committed = DEFAULT_PATH.read_text(encoding="utf-8")
    assert committed == render(document), (
        f"openapi/openapi.json is stale (the API changed): run `{REGENERATE}` and commit the result"
    )


def test_spec_ignores_the_environment(tmp_path):
    """Settings from the environment or a .env file never leak into the document."""
    (tmp_path / ".env").write_text("CHESS_PRESET=tiny\nMAX_GAMES=3\nCORS_ORIGINS=http://example.org\n")
    env = {**os.environ, "SEED": "9", "API_KEYS": "k", "SELFPLAY_SIMULATIONS": "5"}
    out = tmp_path / "openapi.json"
    proc = subprocess.run(
        [sys.executable, "-m", "service.openapi", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == DEFAULT_PATH.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "openapi.json"], "building the app made files"


def test_check_mode_reports_a_stale_file(tmp_path):
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "service.openapi", "--check", str(stale)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "stale" in lines[0] and REGENERATE in lines[0], proc.stderr


def test_every_implemented_route_is_listed(document):
    listed = {(method, path) for method, path, _ in operations(document)}
    missing = EXPECTED - listed
    assert not missing, f"routes of DESIGN.md missing from the OpenAPI document: {sorted(missing)}"


def test_errors_are_problem_json(document):
    errors = 0
    for method, path, operation in operations(document):
        for code, response in operation["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            errors += 1
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], f"{method.upper()} {path} {code}: {list(content)}"
            ref = content[PROBLEM_JSON]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in {"ProblemDetails", "ValidationProblem", "IllegalTransitionProblem"}
    assert errors > len(EXPECTED)  # every route documents at least one error answer
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 body is never sent
    assert {"type", "title", "status", "detail", "instance"} <= set(schemas["ProblemDetails"]["properties"])
    assert "errors" in schemas["ValidationProblem"]["properties"]


def test_mutating_routes_document_401_and_422(document):
    for method, path, operation in operations(document):
        if method in ("post", "delete"):
            assert "401" in operation["responses"], f"{method.upper()} {path} does not document 401"
    create = document["paths"]["/v1/sessions"]["post"]
    assert "201" in create["responses"] and "422" in create["responses"]
    assert document["paths"]["/readyz"]["get"]["responses"]["503"]["content"].keys() == {PROBLEM_JSON}
