"""A web page cannot drive the service: Host, Origin and Content-Type checks (pure ASGI).

Any page a user visits may send "simple" requests to 127.0.0.1 (a form, a body-less or
text/plain POST: no CORS preflight) and open WebSockets there (CORS does not cover them);
by DNS rebinding it even reads the answers, under a name of its own resolved to 127.0.0.1.
A keyless service (loopback only) has nothing else to stop that, so `WebGuard`, the
outermost layer of the app, refuses:

- any request (HTTP or WebSocket) whose `Host` is not one of the service's names: the
  loopback names (`localhost`, `127.0.0.1`, `[::1]`, any port), HOST when it is one
  address, and ALLOWED_HOSTS (`*`: any, for a proxy in front that checks Host): 400;
- a mutating request (POST, PUT, PATCH, DELETE) or a WebSocket handshake whose `Origin`
  is neither the service's own (the same host:port as its `Host`, the scheme aside: a TLS
  proxy may be in front) nor one of CORS_ORIGINS: 403. `Origin: null` (sandboxed frames,
  files) is refused; a request without `Origin` is no browser's (curl, Python) and passes;
- a mutating request with a body, or a Content-Type, that is not `application/json`: 415
  (or the 401 first, with API_KEYS set and no valid key). A body-less request without
  Content-Type (the dashboard's and curl's pause/stop) passes.

A refused WebSocket is never accepted: its handshake gets the problem as an HTTP answer
where the server supports ASGI's websocket.http.response extension (uvicorn does), else it
is closed before accept (the server then answers 403).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.auth import auth_problem
from service.api.errors import PROBLEM_BASE, Problem
from service.config import Settings

FOREIGN_HOST = PROBLEM_BASE + "foreign-host"
"""Problem type of a request whose Host is not a name of this service (400)."""
FOREIGN_ORIGIN = PROBLEM_BASE + "foreign-origin"
"""Problem type of a mutating request or WebSocket from a page of another origin (403)."""
NOT_JSON = PROBLEM_BASE + "not-json"
"""Problem type of a mutating request whose body is not application/json (415)."""

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
"""Host names always served: only this machine reaches the service by them."""
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]*)(?::\d{1,5})?")


def host_names(settings: Settings) -> frozenset[str] | None:
    """The Host names `settings` serve (compared without port and case); None: any."""
    names = set(LOOPBACK_HOSTS) | set(settings.allowed_hosts)
    if "*" in names:
        return None
    host = settings.host.strip().lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        names.add(host)  # a name HOST binds by
    else:
        if not address.is_unspecified:  # 0.0.0.0 and :: are no name a client uses
            names.add(f"[{host}]" if address.version == 6 else host)
    return frozenset(names)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class WebGuard:
    """The checks of this module's docstring, before anything else of the app runs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.names = host_names(settings)
        self.cors_origins = frozenset(o.lower().rstrip("/") for o in settings.cors_origins)

    def _host_problem(self, host: str | None) -> Problem | None:
        match = _HOST.fullmatch((host or "").strip().lower())
        if match and match.group(1) and (self.names is None or match.group(1) in self.names):
            return None
        return Problem(
            400,
            "this service is not served under that Host name: reach it by a loopback name or one in ALLOWED_HOSTS",
            title="Unknown Host",
            type_=FOREIGN_HOST,
        )

    def _origin_problem(self, origin: str, host: str) -> Problem | None:
        given = origin.strip().lower().rstrip("/")
        if given in self.cors_origins or urlsplit(given).netloc == host.strip().lower():
            return None
        return Problem(
            403,
            "requests that change something, and WebSockets, are only taken from this "
            "service's own pages and CORS_ORIGINS",
            title="Origin Not Allowed",
            type_=FOREIGN_ORIGIN,
        )

    @staticmethod
    def _body_problem(scope: Scope) -> Problem | None:
        content_type = _header(scope, b"content-type")
        length = _header(scope, b"content-length")
        has_body = (length is not None and length.strip() != "0") or _header(scope, b"transfer-encoding") is not None
        if content_type is None and not has_body:
            return None
        if content_type is not None and content_type.split(";")[0].strip().lower() == JSON:
            return None
        denied = auth_problem(Request(scope))  # a caller without a key learns nothing of the body
        return denied or Problem(
            415, f"a request body must be sent as Content-Type: {JSON}", title="Unsupported Media Type", type_=NOT_JSON
        )

    def _problem(self, scope: Scope) -> Problem | None:
        host = _header(scope, b"host")
        problem = self._host_problem(host)
        if problem is not None:
            return problem
        websocket = scope["type"] == "websocket"
        if not websocket and scope["method"] not in MUTATING:
            return None
        origin = _header(scope, b"origin")
        if origin is not None:
            problem = self._origin_problem(origin, host or "")
        if problem is None and not websocket:
            problem = self._body_problem(scope)
        return problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self._problem(scope) if scope["type"] in ("http", "websocket") else None
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
        else:
            await problem.response(scope.get("path"))(scope, receive, send)
