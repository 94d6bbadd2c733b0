"""The dashboard's routes (service/api/dashboard.py) through the app: the page, its own
files (a fixed list of names), plotly.js from the installed package, boards as SVG, and
nothing on the page that comes from another host.

These routes touch no database, so the app is built without running its lifespan.
"""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from service.api.dashboard import ASSETS, plotly_path
from service.app import _version, create_app
from service.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD_DIR = ROOT / "service" / "dashboard"
PROBLEM = "application/problem+json"
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.IGNORECASE)


def make_app(**settings):
    values = dict(api_keys=[], cors_origins=[], chess_preset="tiny")
    values.update(settings)
    return create_app(Settings(_env_file=None, **values), migrate=False)


@pytest_asyncio.fixture(loop_scope="function")
async def client():
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        yield c


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


class _Links(HTMLParser):
    """Every src/href of a page, and its meta tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "action"):
            if attrs.get(name) is not None:
                self.urls.append((tag, name, attrs[name]))
        if tag == "meta" and "name" in attrs:
            self.meta[attrs["name"]] = attrs.get("content", "")


def links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


# -- the page ------------------------------------------------------------------------------


async def test_page_is_served_with_version_and_a_strict_policy(client):
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    page = links(r.text)
    assert page.meta["cp-version"] == _version()
    assert page.meta["cp-api-keys"] == "off"
    assert "{{" not in r.text


async def test_page_says_when_keys_are_on_and_needs_none_itself():
    app = make_app(api_keys=["k-0123456789"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        r = await c.get("/")
        assert r.status_code == 200 and links(r.text).meta["cp-api-keys"] == "on"
        assert "k-0123456789" not in r.text
        for path in ("/dashboard/dashboard.js", "/dashboard/dashboard.css", "/dashboard/board.svg"):
            assert (await c.get(path)).status_code == 200, path


async def test_nothing_on_the_page_comes_from_another_host(client):
    r = await client.get("/")
    page = links(r.text)
    assert page.urls, "the page loads its script and style"
    for tag, attr, url in page.urls:
        assert not EXTERNAL.match(url), f"<{tag} {attr}={url!r}> points at another host"
        if url.startswith("data:"):
            continue
        fetched = await client.get("/" + url.lstrip("/"))
        assert fetched.status_code == 200, f"<{tag} {attr}={url!r}>: {fetched.status_code}"
    loaded = {url for tag, attr, url in page.urls if tag in ("script", "link")}
    assert {"dashboard/plotly.min.js", "dashboard/dashboard.js", "dashboard/dashboard.css"} <= loaded
    for name in ASSETS:
        text = (await client.get(f"/dashboard/{name}")).text
        assert not re.search(r"https?://", text), f"{name} names a URL of another host"
        assert "@import" not in text and "innerHTML" not in text and "eval(" not in text, name


# -- the page's files ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_assets_are_served_with_etags(client, name):
    r = await client.get(f"/dashboard/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == ASSETS[name]
    assert r.content == (DASHBOARD_DIR / name).read_bytes()
    etag = r.headers["etag"]
    again = await client.get(f"/dashboard/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/index.html",  # the page is served at / only
        "/dashboard/__init__.py",
        "/dashboard/nothing.js",
        "/dashboard/..%2Fapi%2Fauth.py",
        "/dashboard/%2E%2E%2Fconfig.py",
        "/dashboard/..%5Cconfig.py",
        "/dashboard/dashboard.js%00.css",
    ],
)
async def test_only_listed_names_are_served(client, path):
    r = await client.get(path)
    assert_problem(r, 404)
    assert "import" not in r.text


async def test_plotly_comes_from_the_installed_package(client):
    body = plotly_path().read_bytes()
    r = await client.get("/dashboard/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in r.headers and r.content == body
    assert b"plotly.js" in body[:200]
    assert "max-age=" in r.headers["cache-control"] and r.headers["vary"] == "Accept-Encoding"

    zipped = await client.get("/dashboard/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == body  # httpx decodes it
    assert int(zipped.headers["content-length"]) < len(body) / 2

    cached = await client.get("/dashboard/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert cached.status_code == 304


async def test_the_files_ship_in_a_non_editable_install():
    """pyproject's package-data names every file of service/dashboard that is not Python."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service.dashboard"]
    files = [p for p in DASHBOARD_DIR.iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.name for p in files} >= {"index.html", "dashboard.js", "dashboard.css"}
    for path in files:
        assert any(path.match(pattern) for pattern in patterns), f"{path.name} is not package data"


# -- boards --------------------------------------------------------------------------------


async def test_board_svg_of_a_position(client):
    r = await client.get("/dashboard/board.svg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.text.startswith("<svg") and 'viewBox="0 0 390 390"' in r.text and 'width="400"' in r.text
    assert "immutable" in r.headers["cache-control"]

    after_e4 = "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1"
    r = await client.get("/dashboard/board.svg", params={"fen": after_e4, "lastmove": "e2e4", "size": 360})
    assert r.status_code == 200 and 'width="360"' in r.text
    assert "lastmove" in r.text  # the move is highlighted
    assert 'class="check"' not in r.text

    fools_mate = "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3"
    r = await client.get("/dashboard/board.svg", params={"fen": fools_mate, "lastmove": "d8h4", "orientation": "black"})
    assert r.status_code == 200 and 'class="check"' in r.text


@pytest.mark.parametrize(
    "params",
    [
        {"fen": "not a fen"},
        {"fen": "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP w KQkq - 0 1"},  # 7 ranks
        {"fen": "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR x KQkq - 0 1"},
        {"fen": "<script>alert(1)</script>"},
        {"lastmove": "e2e9"},
        {"lastmove": "zz"},
    ],
)
async def test_a_bad_board_is_a_400_problem(client, params):
    body = assert_problem(await client.get("/dashboard/board.svg", params=params), 400)
    assert body["type"].endswith("bad-board") and body["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"fen": "8/" * 200},
        {"size": "5"},
        {"size": "100000"},
        {"orientation": "sideways"},
    ],
)
async def test_out_of_range_board_parameters_are_422(client, params):
    body = assert_problem(await client.get("/dashboard/board.svg", params=params), 422)
    assert body["errors"]


async def test_routes_are_in_the_openapi_document(client):
    doc = (await client.get("/openapi.json")).json()
    assert "/" in doc["paths"] and "/dashboard/board.svg" in doc["paths"]
    board = doc["paths"]["/dashboard/board.svg"]["get"]
    assert {"400", "422"} <= set(board["responses"])
    assert "/dashboard/{asset}" not in doc["paths"]  # static files are not API
