"""The live dashboard: `GET /` and the files it loads, all served by the app (no CDN).

- `GET /`: the page (service/dashboard/index.html), with the service's version and whether
  API keys are on written into two `<meta>` tags (escaped);
- `GET /dashboard/dashboard.js|dashboard.css`: the page's script and style (a fixed list of
  names: a request never names a path);
- `GET /dashboard/plotly.min.js`: plotly.js from the installed `plotly` package, gzipped when
  the client accepts it, cached for a day (its ETag is the file's sha256);
- `GET /dashboard/board.svg?fen=&lastmove=&orientation=&size=`: a position drawn by
  `chess.svg.board` (400 problem+json on a bad FEN or move).

Every answer carries a Content-Security-Policy that lets the page load nothing but this
origin's files (the charts' inline styles and the boards' `data:` images aside).
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import chess
import chess.svg
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from service.api.errors import PROBLEM_BASE, Problem, problem_responses

router = APIRouter(tags=["dashboard"])

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
"""The page's own files: the only names `GET /dashboard/{asset}` serves."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only this origin (`connect-src 'self'` covers its WebSockets). Plotly sets inline styles."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
REVALIDATE = "no-cache"  # the page and its own files change with the service: always revalidate
PLOTLY_CACHE = "public, max-age=86400"
BOARD_CACHE = "public, max-age=86400, immutable"  # a board depends on its query only
MAX_FEN = 100


@dataclass(frozen=True)
class _File:
    body: bytes
    etag: str
    gzipped: bytes | None = None


def _read_asset(name: str) -> bytes:
    return resources.files("service.dashboard").joinpath(name).read_bytes()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@lru_cache(maxsize=len(ASSETS) + 1)
def _asset(name: str) -> _File:
    body = _read_asset(name)
    return _File(body, _etag(body))


def plotly_path() -> Path:
    """plotly.min.js of the installed plotly package (the Python one ships plotly.js)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


@lru_cache(maxsize=1)
def _plotly() -> _File:
    body = plotly_path().read_bytes()
    return _File(body, _etag(body), gzip.compress(body, compresslevel=6, mtime=0))


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return any(tag.strip().removeprefix("W/") == etag for tag in given.split(",")) if given else False


def _file_response(request: Request, file: _File, media_type: str, cache: str) -> Response:
    headers = {"ETag": file.etag, "Cache-Control": cache, **SECURITY_HEADERS}
    if file.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if _not_modified(request, file.etag):
        return Response(status_code=304, headers=headers)
    body = file.body
    if file.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = file.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "/",
    response_class=HTMLResponse,
    summary="The live dashboard (HTML): sessions, the featured game, charts, ratings, events",
    responses={200: {"content": {"text/html": {}}, "description": "The dashboard page"}},
)
async def dashboard_page(request: Request) -> Response:
    page = _asset("index.html").body.decode("utf-8")
    keys = "on" if request.app.state.settings.api_keys else "off"
    page = page.replace("{{version}}", html.escape(str(request.app.version), quote=True))
    page = page.replace("{{api_keys}}", keys)
    return HTMLResponse(page, headers={"Cache-Control": REVALIDATE, **SECURITY_HEADERS})


def bad_board(detail: str) -> Problem:
    return Problem(400, detail, title="Bad Request", type_=PROBLEM_BASE + "bad-board")


# Declared before /dashboard/{asset}, which would otherwise answer for these names.
@router.get(
    "/dashboard/board.svg",
    summary="A chess position as SVG (python-chess), for the dashboard's boards",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The board"}, **problem_responses(400, 422)},
)
async def board_svg(
    fen: Annotated[
        str, Query(max_length=MAX_FEN, description="The position (FEN); default: the start.")
    ] = chess.STARTING_FEN,
    lastmove: Annotated[str | None, Query(max_length=5, description="The move just played (UCI), highlighted.")] = None,
    orientation: Annotated[Literal["white", "black"], Query(description="The side at the bottom.")] = "white",
    size: Annotated[int, Query(ge=64, le=1024, description="Width and height in pixels.")] = 400,
) -> Response:
    try:
        board = chess.Board(fen.strip())
    except ValueError as exc:
        raise bad_board(f"not a valid FEN: {exc}"[:300]) from None
    move = None
    if lastmove:
        try:
            move = chess.Move.from_uci(lastmove)
        except ValueError:
            raise bad_board("lastmove is not a move in UCI (e.g. e2e4, e7e8q)") from None
    check = board.king(board.turn) if board.is_check() else None
    svg = chess.svg.board(
        board,
        orientation=orientation == "white",
        lastmove=move,
        check=check,
        size=size,
        colors={"margin": "#1b1f27", "coord": "#9aa4b2"},
    )
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={
            "Cache-Control": BOARD_CACHE,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@router.get("/dashboard/plotly.min.js", include_in_schema=False)
async def plotly_js(request: Request) -> Response:
    # the first call reads and gzips ~5 MB: not on the event loop
    return _file_response(request, await run_in_threadpool(_plotly), "text/javascript; charset=utf-8", PLOTLY_CACHE)


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(request: Request, asset: str) -> Response:
    media_type = ASSETS.get(asset)
    if media_type is None:  # only the names above: never a path from the request
        raise Problem(
            404, f"no dashboard file named {asset[:64]!r}", title="Not Found", type_=PROBLEM_BASE + "not-found"
        )
    return _file_response(request, _asset(asset), media_type, REVALIDATE)
