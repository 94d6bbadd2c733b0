"""API fuzzing: schemathesis over `openapi/openapi.json` against a running server.

`continuous-play serve` runs as a real subprocess (uvicorn, a process worker pool, SQLite),
once without API_KEYS and once with them, seeded with a completed session that has games,
checkpoints, metric snapshots and evaluations (so routes with ids have real targets: the
fuzzer's ids are mixed with the stored ones), a paused session (a target for pause, resume
and stop) and a stopped one (a target for DELETE). schemathesis generates, per operation,
the spec's examples, its coverage cases (boundary and invalid values) and a bounded number
of fuzzed cases (valid and invalid), and every answer must:

- never be a 5xx (`not_a_server_error`);
- have a status code, a content type, headers and a body that the spec declares
  (`status_code_conformance`, `content_type_conformance`, `response_headers_conformance`,
  `response_schema_conformance`); invalid input must be refused (`negative_data_rejection`);
- when it is an error (4xx/5xx), be `application/problem+json` with the RFC 9457 members
  `type`, `title`, `status` (the response's own) and `detail` (`problem_details`);
- with API_KEYS set: every case is sent with a valid key, and a mutating one (and
  `/metrics`, METRICS_PUBLIC being false) is sent again without a key and with a wrong
  one, each answered 401 problem+json with a Bearer challenge (`needs_a_key`).

Cost: POST /v1/sessions bodies that validate start real sessions, so a valid body's
work-sizing settings are clamped to a tiny session (`cheap_session`) and the server's own
defaults are tiny (MAX_GAMES=2, SESSION_DURATION_MIN=1); MAX_CONCURRENT_SESSIONS is 1 and
the paused session holds the slot until the fuzz of /stop ends it. The
number of fuzzed cases per operation is FUZZ_EXAMPLES (default 25); set it higher for a
deeper run, e.g. `FUZZ_EXAMPLES=500 pytest tests/e2e/test_api_fuzz.py`.

One backend (SQLite): the fuzz is about the HTTP surface (validation, error mapping, the
spec); the storage-level edge cases that differ between the backends (out-of-range
integers, NUL characters, dates) are pinned on both in tests/integration/api, and the
server e2e tests run on both.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_support import serving, sqlite_url, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
PROBLEM = "application/problem+json"
API_KEY = "fuzz-key-5b0e0d3c9a"
WRONG_KEY = "fuzz-key-5b0e0d3c9b"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
KEYED_GETS = {"/metrics"}  # needs a key with API_KEYS set (METRICS_PUBLIC is false)


@dataclass
class Target:
    """A running server under fuzz and the ids stored in it."""

    server: Any
    keyed: bool
    reader: str  # completed session with games, checkpoints, metrics, evaluations
    paused: str  # paused session (holds the only session slot)
    victim: str  # stopped session, offered to DELETE
    game_ids: list[int] = field(default_factory=list)
    checkpoint_ids: list[int] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"} if self.keyed else {}

    def ids_for(self, method: str, name: str) -> list[Any]:
        if name == "session_id":
            return [self.victim] if method == "DELETE" else [self.reader, self.paused]
        if name == "game_id":
            return self.game_ids
        if name == "checkpoint_id":
            return self.checkpoint_ids
        return []


def seed(server, keyed: bool) -> Target:
    """Real stored data, made through the API by real (tiny) sessions."""
    headers = {"Authorization": f"Bearer {API_KEY}"} if keyed else {}
    with server.client() as c:
        c.headers.update(headers)

        def create(**config: Any) -> str:
            r = c.post("/v1/sessions", json=config)
            assert r.status_code == 201, r.text
            return r.json()["id"]

        reader = create(max_games=2)
        wait_for(c, reader, lambda b: b["state"] == "completed", "the seed session to complete", server)
        victim = create(max_games=0)
        assert c.post(f"/v1/sessions/{victim}/stop").status_code == 202
        wait_for(c, victim, lambda b: b["state"] == "stopped", "the victim session to stop", server)
        paused = create(max_games=0, session_duration_min=60)
        wait_for(c, paused, lambda b: b["state"] == "running", "the slot session to run", server)
        r = c.post(f"/v1/sessions/{paused}/pause")
        assert r.status_code == 202, r.text
        games = c.get(f"/v1/sessions/{reader}/games").json()["items"]
        checkpoints = c.get(f"/v1/sessions/{reader}/checkpoints").json()["items"]
        evaluations = c.get(f"/v1/sessions/{reader}/evaluations").json()["items"]
        assert games and checkpoints and evaluations
        for checkpoint in checkpoints:  # the first ONNX export takes seconds of CPU (more on a loaded
            # machine than the fuzzer's 10 s read timeout); later downloads are the kept file
            r = c.get(f"/v1/checkpoints/{checkpoint['id']}/weights.onnx", timeout=180)
            assert r.status_code == 200, r.text
    return Target(server, keyed, reader, paused, victim, [g["id"] for g in games], [k["id"] for k in checkpoints])


@pytest.fixture(scope="module", params=["open", "keyed"])
def target(request, tmp_path_factory) -> Iterator[Target]:
    keyed = request.param == "keyed"
    tmp_path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = {"MAX_GAMES": "2", "SESSION_DURATION_MIN": "1"}  # what a created session gets by default
    if keyed:
        env["API_KEYS"] = f"another-key,{API_KEY}"
    with serving(tmp_path, sqlite_url(tmp_path), **env) as server:
        CURRENT.append(seed(server, keyed))
        try:
            yield CURRENT[-1]
        finally:
            CURRENT.clear()
        assert server.running, server.output()
        # the log names no key, whatever was sent
        assert API_KEY not in server.output(10**7) and WRONG_KEY not in server.output(10**7)


# -- checks -------------------------------------------------------------------------------


def problem_details(ctx, response, case) -> bool | None:
    """Every 4xx/5xx is problem+json with the RFC 9457 members."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith(PROBLEM), f"{response.status_code} answered as {content_type!r}, not {PROBLEM}"
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    for member, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(body.get(member), kind), f"problem member {member!r} missing or not a {kind.__name__}: {body}"
    assert body["status"] == response.status_code, body
    return True


def assert_needs_a_key(case, base_url: str) -> None:
    """With API_KEYS set, a mutating request (or /metrics) without a key or with a wrong one
    is a 401 problem with a Bearer challenge."""
    method = case.method.upper()  # the coverage phase also sends methods the route lacks: 405
    if method != case.operation.method.upper():
        return
    if method not in MUTATING and case.operation.path not in KEYED_GETS:
        return
    for headers in ({}, {"Authorization": f"Bearer {WRONG_KEY}"}):
        probe = case.call(base_url=base_url, headers=headers)
        what = f"{method} {case.formatted_path} with {'a wrong key' if headers else 'no key'}"
        assert probe.status_code == 401, f"{what}: {probe.status_code} {probe.text[:300]}"
        assert probe.headers.get("content-type", [""])[0].startswith(PROBLEM), (what, probe.headers)
        assert probe.headers.get("www-authenticate", [""])[0].startswith("Bearer"), (what, probe.headers)
        body = json.loads(probe.content)
        assert body["status"] == 401 and body["title"] and body["detail"], (what, body)


# -- a created session must stay small ---------------------------------------------------

CHEAP = {
    "chess_preset": "tiny",
    "device": "cpu",
    "torch_threads": 1,
    "eval_uci_engine": None,
}
CAPS = {  # setting -> largest value allowed through (a valid value stays valid)
    "max_games": 2,
    "session_duration_min": 0.5,
    "max_moves_per_game": 16,
    "selfplay_simulations": 4,
    "fast_simulations": 2,
    "selfplay_parallel_games": 2,
    "replay_buffer_positions": 2000,
    "learning_batch_size": 16,
    "train_samples_per_position": 1.0,
    "eval_games": 2,
    "eval_simulations": 2,
}


def cheap_session(case) -> None:
    """Clamp the work-sizing settings of a POST /v1/sessions body that would validate."""
    body = case.body
    if not isinstance(body, dict) or case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    for name, value in CHEAP.items():
        if name in body:
            body[name] = value
    for name, cap in CAPS.items():
        value = body.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (value > cap or value == 0):
            body[name] = cap
    if "eval_opponents" in body and isinstance(body["eval_opponents"], list):
        body["eval_opponents"] = [o for o in body["eval_opponents"] if o != "uci"] or ["random"]


# -- the fuzz -----------------------------------------------------------------------------

schema = schemathesis.openapi.from_path(SPEC)
CURRENT: list[Target] = []  # the server under fuzz now (the `target` fixture sets it)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """The fuzzer's ids, or a stored one (a real target) for each id parameter."""
    choices = [st.just(path_parameters)]
    if CURRENT and path_parameters:
        method = context.operation.method.upper()
        for name in path_parameters:
            for real in CURRENT[-1].ids_for(method, name):
                choices.append(st.just({**path_parameters, name: real}))
    return st.one_of(*choices)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,  # derandomised, no deadline: the profile in tests/conftest.py
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz(case, target: Target):
    if case.operation.method.upper() == "POST" and case.operation.path == "/v1/sessions":
        cheap_session(case)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
        problem_details,
    ]
    response = case.call(base_url=target.server.base_url, headers=target.headers)
    case.validate_response(response, checks=checks, headers=target.headers)
    if target.keyed:
        assert_needs_a_key(case, target.server.base_url)


# -- what only a real server shows ---------------------------------------------------------


def test_real_server_logs_no_token_and_limits_chunked_bodies(target: Target):
    """uvicorn's access and error logs write request paths with their query strings: the
    `?token=` a WebSocket client may send (and any other credential parameter) is redacted.
    A chunked body (no Content-Length) over the limit is refused by the real server too."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    server = target.server
    tokens = [API_KEY, WRONG_KEY] if target.keyed else ["open-token-31d1f6"]
    ws_base = server.base_url.replace("http://", "ws://")
    with server.client() as c:
        for token in tokens:
            assert c.get(f"/v1/sessions?limit=1&token={token}", headers=target.headers).status_code == 200
            c.get(f"/healthz?access_token={token}")
            for path in (f"/v1/live?token={token}", f"/v1/sessions/{target.reader}/live?since=0&token={token}"):
                try:
                    with connect(ws_base + path, open_timeout=10, close_timeout=2) as ws:
                        ws.close()
                except (WebSocketException, OSError):
                    pass  # a refused key: the handshake or the first frame says so

        before = len(c.get("/v1/sessions", params={"limit": 500}).json()["items"])

        def chunks():
            for _ in range(40):
                yield b"[" * 65536

        r = c.post("/v1/sessions", content=chunks(), headers={"content-type": "application/json", **target.headers})
        assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM), r.text[:300]
        assert r.json()["status"] == 413
        assert len(c.get("/v1/sessions", params={"limit": 500}).json()["items"]) == before

    deadline = time.monotonic() + 5
    while "token=***" not in server.output(10**7) and time.monotonic() < deadline:
        time.sleep(0.1)  # the log lines land
    output = server.output(10**7)
    assert "GET /v1/sessions?limit=1&token=*** HTTP/1.1" in output, output[-3000:]
    assert "/live?token=***" in output and "access_token=***" in output, output[-3000:]
    for token in tokens:
        assert token not in output, f"{token} in the server's log"
