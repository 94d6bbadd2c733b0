"""The security review of the API, as tests (issue #12 item 5).

- Downloads go by identifier, never by path: every GET route with a path parameter (weights,
  games, PGN, reports, dashboard files) answers traversal attempts (`..%2f`, double- and
  overlong-encoded, backslashes, absolute paths, literal `../` in the raw path, NUL) with a
  4xx problem and never a byte of a file outside CHECKPOINT_DIR/REPORT_DIR; a checkpoint row
  whose stored file name leaves CHECKPOINT_DIR (absolute, `..` inside, a symbolic link out,
  the directory itself, a NUL) is not served, as weights or as ONNX (nor exported).
- The request body limit holds on every mutating route, at its exact boundary, and stores
  nothing (Content-Length and chunked bodies; over real HTTP in tests/e2e/test_api_fuzz.py).
- Keys: compared with `hmac.compare_digest` against every configured key (no early exit, no
  `==`), never in a log line (the app's log at DEBUG, uvicorn's access log through the
  redaction filter `serve` installs; a real server's output in tests/e2e/test_api_fuzz.py),
  never in `repr(settings)`; a body that cannot be parsed still gets the 401 first.
- `/metrics` with keys: 401 without one unless METRICS_PUBLIC=true, which opens nothing else
  (more in tests/integration/telemetry/test_metrics_endpoint.py).
- CORS off unless CORS_ORIGINS is set; then only for a listed origin, and a refused preflight
  is a problem+json (the basic cases are in test_api_health_auth_errors.py).
- `serve` refuses a non-loopback HOST without API_KEYS (exit 2, one line).
- A request cannot make the server run a program: `eval_uci_engine` other than the server's
  own EVAL_UCI_ENGINE is refused.
"""

from __future__ import annotations

import ast
import hmac
import logging
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from api_support import API_KEY, count_rows, get_scope, make_settings, running_api, seed_checkpoint, seed_session
from support.cli import CONSOLE_SCRIPT, clean_env

from service.api import auth
from service.api.errors import MAX_BODY_BYTES
from service.app import create_app
from service.config import Settings
from service.storage import models

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

ROOT = Path(__file__).resolve().parents[3]
PROBLEM = "application/problem+json"
SENTINEL = b"sentinel-outside-the-served-folders-7f3a"


def assert_problem(response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == response.status_code and body["title"] and body["type"] and body["detail"], body
    return body


def plant_sentinels(tmp_path: Path) -> list[Path]:
    """Files a traversal would reach: next to CHECKPOINT_DIR and REPORT_DIR, and above them."""
    files = []
    for folder in (tmp_path, tmp_path / "checkpoints" / "..", tmp_path / "reports" / ".."):
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("secret.safetensors", "secret", "passwd", "report.json", "report.html", "1.pgn"):
            path = (folder / name).resolve()
            path.write_bytes(SENTINEL)
            files.append(path)
    return files


async def raw_get(app, raw_path: bytes) -> tuple[int, dict[str, str], bytes]:
    """GET with this exact path (no client normalises its `../`), straight to the ASGI app."""
    from urllib.parse import unquote_to_bytes

    path = unquote_to_bytes(raw_path.split(b"?")[0]).decode("utf-8", "replace")
    scope = get_scope(path, raw_path.split(b"?")[0])
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


# -- identifiers, never paths ---------------------------------------------------------------

TRAVERSALS = [  # literal "." and ".." segments are normalised away by clients: raw_get sends those
    "...",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "..%2f..%2fsecret.safetensors",
    "%2e%2e%2f%2e%2e%2fsecret",
    "%2E%2E%2Fsecret",
    "%252e%252e%252fsecret",
    "..%5c..%5csecret",
    "%2Fetc%2Fpasswd",
    "%2F..%2Fsecret",
    "....%2F%2F....%2F%2Fsecret",
    "%c0%ae%c0%ae%2fsecret",
    "%e0%80%ae%e0%80%ae%2fsecret",
    "%00",
    "1%00",
    "1%2F..%2F..%2Fsecret",
    "1%2F..",
    "1;..%2Fsecret",
    "-1",
    "0",
    "1.5",
    "0x1",
    "1e3",
    "%EF%BC%91",
    "9" * 30,
    "file:%2F%2F%2Fetc%2Fpasswd",
    "~%2Fsecret",
    "%2A",
]
EXTRA_ROUTES = ["/dashboard/{asset}"]  # hidden from the spec, still a route with a path parameter


def download_routes(app) -> list[str]:
    """Every GET route with a path parameter: the spec's, and the hidden ones."""
    paths = [p for p, ops in app.openapi()["paths"].items() if "get" in ops and "{" in p]
    return paths + EXTRA_ROUTES


def fill(template: str, value: str) -> str:
    out = template
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + value + out[end + 1 :]
    return out


async def test_traversal_on_every_download_route_never_leaves_the_folders(api, tmp_path):
    sentinels = plant_sentinels(tmp_path)
    sid = await seed_session(api, games=2)
    checkpoint_id = await seed_checkpoint(api, sid)
    routes = download_routes(api.app)
    assert "/v1/checkpoints/{checkpoint_id}/weights" in routes and "/v1/games/{game_id}.pgn" in routes
    # the real ids are served (so "nothing leaked" below means something)
    assert (await api.client.get(f"/v1/checkpoints/{checkpoint_id}/weights")).status_code == 200
    assert (await api.client.get(f"/v1/sessions/{sid}/games.pgn")).status_code == 200

    for template in routes:
        for value in TRAVERSALS:
            url = fill(template, value)
            r = await api.client.get(url)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith(PROBLEM), (url, r.headers)
            assert SENTINEL not in r.content and b"root:" not in r.content, url
        # literal ../ in the raw path, as a raw HTTP client may send it
        for raw in (
            fill(template, "..") + "/../../secret",
            fill(template, "1") + "/../../../secret",
            fill(template, "../../../../../../etc/passwd"),
            fill(template, "..\\..\\secret"),
        ):
            status, headers, body = await raw_get(api.app, raw.encode())
            assert 400 <= status < 500, (raw, status, body[:300])
            assert headers["content-type"].startswith(PROBLEM), (raw, headers)
            assert SENTINEL not in body and b"root:" not in body, raw
    assert all(p.read_bytes() == SENTINEL for p in sentinels)


async def bad_row(api, session_id: str, generation: int, file_name: str) -> int:
    async with api.sessionmaker() as db, db.begin():
        row = models.CheckpointRow(
            session_id=session_id,
            generation=generation,
            games=0,
            file_name=file_name,
            state_file_name="x",
            sha256="0" * 64,
        )
        db.add(row)
        await db.flush()
        return row.id


async def test_a_stored_name_that_leaves_checkpoint_dir_is_not_served(api, tmp_path, caplog):
    plant_sentinels(tmp_path)
    root = Path(api.settings.checkpoint_dir)
    sid = await seed_session(api)
    await seed_checkpoint(api, sid)  # makes CHECKPOINT_DIR/<sid>/
    (root / sid / "link.safetensors").symlink_to(tmp_path / "secret.safetensors")
    (root / sid / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    (root / sid / "loop").symlink_to(root / sid / "loop")
    names = [
        str(tmp_path / "secret.safetensors"),
        "/etc/passwd",
        f"{sid}/../../secret.safetensors",
        f"{sid}/link.safetensors",
        f"{sid}/dirlink/secret.safetensors",
        "",
        ".",
        sid,
        f"{sid}/loop",
        "~/secret.safetensors",
        "..\\secret.safetensors",
    ]
    if api.backend == "sqlite":  # PostgreSQL cannot even store a NUL
        names.append(f"{sid}/gen-0000.safetensors\x00../../secret.safetensors")
    for generation, name in enumerate(names, start=1):
        checkpoint_id = await bad_row(api, sid, generation, name)
        for route in ("weights", "weights.onnx"):
            r = await api.client.get(f"/v1/checkpoints/{checkpoint_id}/{route}")
            assert_problem(r, 404)
            assert SENTINEL not in r.content and b"root:" not in r.content, name
            assert str(tmp_path) not in r.text, "the answer names no server path"
    assert not list(tmp_path.rglob("*.onnx")), "an export was written (or attempted) from a file outside"


# -- the body size limit --------------------------------------------------------------------


async def test_body_limit_on_every_mutating_route_stores_nothing(api):
    running = await seed_session(api, state="running", games=1)
    before = await count_rows(api)
    big = b"x" * (MAX_BODY_BYTES + 1)
    routes = [
        ("POST", "/v1/sessions"),
        ("POST", f"/v1/sessions/{running}/pause"),
        ("POST", f"/v1/sessions/{running}/resume"),
        ("POST", f"/v1/sessions/{running}/stop"),
        ("DELETE", f"/v1/sessions/{running}"),
    ]

    async def chunks():  # no Content-Length: counted as it is read
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"{" * 65536

    for method, url in routes:
        body = assert_problem(
            await api.client.request(method, url, content=big, headers={"content-type": "application/json"}), 413
        )
        assert str(MAX_BODY_BYTES) in body["detail"]
    # chunked (no Content-Length): counted as it is read; POST /v1/sessions is the route that reads one
    r = await api.client.post("/v1/sessions", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413)
    assert await count_rows(api) == before
    assert (await api.client.get(f"/v1/sessions/{running}")).json()["state"] == "running"

    # the boundary: MAX_BODY_BYTES itself is read (and refused as bad JSON), one more is not
    at_limit = b"[" + b" " * (MAX_BODY_BYTES - 2) + b"]"
    assert_problem(
        await api.client.post("/v1/sessions", content=at_limit, headers={"content-type": "application/json"}), 422
    )
    assert_problem(
        await api.client.post("/v1/sessions", content=at_limit + b" ", headers={"content-type": "application/json"}),
        413,
    )
    assert await count_rows(api) == before


async def test_an_oversized_body_without_a_key_is_401_first(keyed_api):
    """With API_KEYS set, a caller without a valid key learns nothing about the body limit."""
    api = keyed_api
    running = await seed_session(api, state="running")
    before = await count_rows(api)
    big = b"{" * (MAX_BODY_BYTES + 1)
    json_type = {"content-type": "application/json"}

    async def chunks():  # no Content-Length: counted as it is read
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"{" * 65536

    for method, url in [
        ("POST", "/v1/sessions"),
        ("POST", f"/v1/sessions/{running}/pause"),
        ("DELETE", f"/v1/sessions/{running}"),
    ]:
        for headers in ({}, api.auth("wrong")):
            r = await api.client.request(method, url, content=big, headers={**json_type, **headers})
            assert_problem(r, 401)
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(await api.client.request(method, url, content=big, headers={**json_type, **api.auth()}), 413)
    for headers in ({}, api.auth("wrong")):
        assert_problem(await api.client.post("/v1/sessions", content=chunks(), headers={**json_type, **headers}), 401)
    assert_problem(await api.client.post("/v1/sessions", content=chunks(), headers={**json_type, **api.auth()}), 413)
    assert await count_rows(api) == before
    assert (await api.client.get(f"/v1/sessions/{running}")).json()["state"] == "running"


# -- keys -----------------------------------------------------------------------------------


async def test_keys_are_compared_in_constant_time_against_every_key(keyed_api, monkeypatch):
    api = keyed_api
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = [k.encode() for k in api.settings.api_keys]
    assert len(keys) == 2 and keys[-1] == API_KEY.encode()
    for given, status in [(API_KEY, 201), (API_KEY[:-1] + "X", 401), ("k", 401), (API_KEY * 3, 401)]:
        calls.clear()
        r = await api.client.post("/v1/sessions", json={"max_games": 1}, headers=api.auth(given))
        assert r.status_code == status, r.text
        # every configured key is compared, whether or not an earlier one matched
        assert sorted(b for _, b in calls) == sorted(keys), calls
        assert all(a == given.encode() for a, _ in calls)
    calls.clear()
    assert (await api.client.get("/metrics", headers=api.auth("nope"))).status_code == 401
    assert len(calls) == len(keys)


def _compares_a_secret(node: ast.Compare) -> bool:
    unsafe = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)
    if not any(isinstance(op, unsafe) for op in node.ops):
        return False
    names = {n.id.lower() for part in [node.left, *node.comparators] for n in ast.walk(part) if isinstance(n, ast.Name)}
    return any(word in name for name in names for word in ("token", "key", "given"))


@pytest.mark.parametrize("module", ["service/api/auth.py", "service/api/live.py"])
async def test_no_timing_unsafe_comparison_of_keys(module):
    """`==`, `!=` and `in` stop at the first difference: no key is compared with them."""
    path = ROOT / module
    if not path.exists():
        pytest.skip(f"{module} is not there")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [
        f"{module}:{n.lineno}: {ast.unparse(n)}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Compare) and _compares_a_secret(n)
    ]
    assert not bad, bad
    assert "compare_digest" in path.read_text(encoding="utf-8") or "key_matches" in path.read_text(encoding="utf-8")


async def test_keys_never_reach_a_log_line(keyed_api, caplog):
    api = keyed_api
    caplog.set_level(logging.DEBUG)
    sid = await seed_session(api, games=1)
    wrong = "wrong-key-0f9e8d7c6b5a"

    async def explode():
        raise RuntimeError("boom")

    api.app.add_api_route("/v1/explode", explode, methods=["GET", "POST"])
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for key in (API_KEY, wrong):
            for method, url in [
                ("GET", f"/v1/sessions/{sid}"),
                ("GET", "/metrics"),
                ("GET", "/v1/explode"),
                ("POST", "/v1/explode"),
                ("POST", f"/v1/sessions/{sid}/pause"),
                ("POST", "/v1/sessions"),
                ("DELETE", f"/v1/sessions/{sid}x"),
            ]:
                await client.request(method, f"{url}?token={key}", headers={"Authorization": f"Bearer {key}"})
                await client.request(method, f"{url}?token={key}")
    # the service's log (the test's own HTTP client logs its URLs: not the server's)
    server_log = "\n".join(
        r.getMessage() + str(r.exc_info or "") for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "boom" in server_log  # the log was captured
    assert API_KEY not in server_log and wrong not in server_log
    assert API_KEY not in repr(api.settings) and API_KEY not in str(api.settings)


async def test_an_unparseable_body_without_a_key_is_401(keyed_api):
    api = keyed_api
    before = await count_rows(api)
    undecodable = [b'{"max_games": "\xff"}', b"[" * 100_000]  # FastAPI's 400: not UTF-8, too deep
    for body in (*undecodable, b"{not json", b'{"max_games": -1}'):
        r = await api.client.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
        assert_problem(r, 401)
        r = await api.client.post(
            "/v1/sessions", content=body, headers={"content-type": "application/json", **api.auth("wrong")}
        )
        assert_problem(r, 401)
    # with the key, the undecodable body is a documented 400
    for body in undecodable:
        r = await api.client.post(
            "/v1/sessions", content=body, headers={"content-type": "application/json", **api.auth()}
        )
        assert_problem(r, 400)
    assert await count_rows(api) == before


def access_line(path: str, logger: str = "uvicorn.access") -> str:
    """One uvicorn log line for `path`, through `serve`'s logging configuration's handlers."""
    import io
    import logging.config

    from service.cli import uvicorn_log_config

    config = uvicorn_log_config()
    stream = io.StringIO()
    handler_name = "access" if logger == "uvicorn.access" else "default"
    spec = dict(config["handlers"][handler_name])
    filters = [
        logging.config.DictConfigurator(config).configure_filter(config["filters"][name]) for name in spec["filters"]
    ]
    formatter_spec = dict(config["formatters"][spec["formatter"]])
    factory = formatter_spec.pop("()")
    module, _, name = factory.rpartition(".")
    formatter = getattr(__import__(module, fromlist=[name]), name)(**formatter_spec)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    for f in filters:
        handler.addFilter(f)
    if logger == "uvicorn.access":
        record = logging.LogRecord(
            logger,
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5000", "GET", path, "1.1", 200),
            None,
        )
    else:
        record = logging.LogRecord(
            logger, logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]', ("127.0.0.1:5000", path), None
        )
    handler.handle(record)
    return stream.getvalue()


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/live?token={API_KEY}",
        f"/v1/sessions/abc/live?since=3&token={API_KEY}&moves=true",
        f"/v1/live?%74oken={API_KEY}",
        f"/v1/live?TOKEN={API_KEY}",
        f"/v1/live?since=1;token={API_KEY}",
        f"/v1/sessions?access_token={API_KEY}",
        f"/v1/sessions?api_key={API_KEY}",
    ],
)
@pytest.mark.parametrize("logger", ["uvicorn.access", "uvicorn.error"])
async def test_uvicorn_logs_redact_query_tokens(path, logger):
    line = access_line(path, logger)
    assert line and API_KEY not in line, line
    assert "=***" in line and path.split("?")[0] in line, line  # the rest of the line stays


async def test_serve_installs_the_redaction_on_every_uvicorn_handler():
    from service.cli import uvicorn_log_config

    config = uvicorn_log_config()
    assert config["filters"]["redact_secrets"]["()"] == "service.api.auth.RedactSecrets"
    assert config["handlers"] and all("redact_secrets" in h["filters"] for h in config["handlers"].values())
    assert auth.redact(f"Authorization: Bearer {API_KEY}") == "Authorization: Bearer ***"
    assert auth.redact("/v1/sessions?limit=5&cursor=abc") == "/v1/sessions?limit=5&cursor=abc"


# -- /metrics and CORS ----------------------------------------------------------------------


async def test_metrics_public_opens_metrics_only(database, tmp_path):
    async with running_api(database, tmp_path, api_keys=[API_KEY], metrics_public=True) as api:
        assert (await api.client.get("/metrics")).status_code == 200
        sid = await seed_session(api, state="running")
        for method, url in [
            ("POST", "/v1/sessions"),
            ("POST", f"/v1/sessions/{sid}/pause"),
            ("DELETE", f"/v1/sessions/{sid}"),
        ]:
            assert_problem(await api.client.request(method, url, json={}), 401)
    async with running_api(database, tmp_path, api_keys=[API_KEY]) as api:  # the default: false
        assert api.settings.metrics_public is False
        r = await api.client.get("/metrics")
        assert_problem(r, 401)
        assert "mcts_continuous_play" not in r.text
        assert (await api.client.get("/metrics", headers=api.auth())).status_code == 200


def app_without_storage(tmp_path, **overrides):
    class Db:  # never opened: these requests are answered before any route touches storage
        url = f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"

    return create_app(make_settings(Db, tmp_path, **overrides))


async def test_cors_is_off_without_origins_and_exact_with_them(tmp_path):
    origin = "https://grafana.example"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    app = app_without_storage(tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        for headers in ({"Origin": origin}, {"Origin": origin, **preflight}, {"Origin": "null", **preflight}):
            for method in ("GET", "OPTIONS"):
                r = await client.request(method, "/healthz", headers=headers)
                assert not any(h.startswith("access-control-") for h in r.headers), (method, headers, r.headers)
        r = await client.options("/v1/sessions", headers={"Origin": origin, **preflight})
        assert_problem(r, 405)
        assert "access-control-allow-origin" not in r.headers

    app = app_without_storage(tmp_path, cors_origins=[origin])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        r = await client.get("/healthz", headers={"Origin": origin})
        assert r.headers["access-control-allow-origin"] == origin  # the origin, never "*"
        assert "access-control-allow-credentials" not in r.headers
        r = await client.options("/v1/sessions", headers={"Origin": origin, **preflight})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        for other in ("https://evil.example", "null", origin + ".evil.example", "http://grafana.example"):
            r = await client.get("/healthz", headers={"Origin": other})
            assert "access-control-allow-origin" not in r.headers, other
            r = await client.options("/v1/sessions", headers={"Origin": other, **preflight})
            assert_problem(r, 400)  # a refused preflight is a problem too, and grants nothing
            assert "access-control-allow-origin" not in r.headers, other
        r = await client.options("/v1/sessions", headers={"Origin": origin, "Access-Control-Request-Method": "PUT"})
        assert_problem(r, 400)


# -- binding --------------------------------------------------------------------------------


async def test_serve_refuses_a_public_host_without_keys(tmp_path):
    env = clean_env(HOST="0.0.0.0", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "HOST" in lines[0] and "API_KEYS" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.db").exists(), "refused before touching the database"


@pytest.mark.parametrize(
    "host, keys, refused",
    [
        ("0.0.0.0", "", True),
        ("::", "", True),
        ("10.1.2.3", "", True),
        ("example.com", "", True),
        ("127.0.0.1", "", False),
        ("127.0.0.2", "", False),
        ("::1", "", False),
        ("localhost", "", False),
        ("0.0.0.0", "k1,k2", False),
        ("::", "k1", False),
    ],
)
async def test_serve_binds_a_public_host_only_with_keys(monkeypatch, tmp_path, host, keys, refused):
    import uvicorn
    from typer.testing import CliRunner

    from service import cli
    from service.storage import database

    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOST", host)
    monkeypatch.setenv("API_KEYS", keys)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    ran: list[dict] = []
    monkeypatch.setattr(database, "upgrade", lambda url: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.append(kwargs))
    result = CliRunner().invoke(cli.app, ["serve"])
    if refused:
        assert result.exit_code == 2 and not ran
        assert "refusing to bind" in result.output and result.output.strip().count("\n") == 0
    else:
        assert result.exit_code == 0, result.output
        assert ran and ran[0]["host"] == host
        # SIGTERM: one slow client cannot hold the shutdown (sessions checkpoint after it) for long
        assert ran[0]["timeout_graceful_shutdown"] == cli.GRACEFUL_SHUTDOWN_S and 0 < cli.GRACEFUL_SHUTDOWN_S <= 30
        assert "redact_secrets" in ran[0]["log_config"]["filters"]  # the access log redacts ?token=


# -- no program chosen by a request ---------------------------------------------------------


async def test_a_request_cannot_choose_the_program_the_server_runs(database, tmp_path):
    async with running_api(database, tmp_path) as api:
        before = await count_rows(api)
        for command in ("touch /tmp/pwned", "stockfish", "/usr/games/stockfish", "python3 -c 'print(1)'"):
            r = await api.client.post("/v1/sessions", json={"eval_uci_engine": command, "eval_opponents": ["uci"]})
            body = assert_problem(r, 422)
            assert body["errors"][0]["field"] == "eval_uci_engine", body
        assert await count_rows(api) == before
        r = await api.client.post("/v1/sessions", json={"eval_uci_engine": None, "max_games": 1})
        assert r.status_code == 201, r.text
    async with running_api(database, tmp_path, eval_uci_engine="stockfish") as api:
        r = await api.client.post("/v1/sessions", json={"eval_uci_engine": "stockfish", "eval_opponents": ["uci"]})
        assert r.status_code == 201, r.text  # the operator's own command may be repeated
        assert r.json()["config"]["eval_uci_engine"] == "stockfish"
        r = await api.client.post("/v1/sessions", json={"eval_opponents": ["uci", "random"]})
        assert r.status_code == 201 and r.json()["config"]["eval_uci_engine"] == "stockfish"
        assert_problem(await api.client.post("/v1/sessions", json={"eval_uci_engine": "stockfish --evil"}), 422)
