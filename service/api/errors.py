"""RFC 9457 problem details (`application/problem+json`) for every error the API answers.

Every handler here answers with the members of RFC 9457 (`type`, `title`, `status`,
`detail`, `instance`) plus extension members where they help a client: `errors` (one
entry per invalid field: `loc`, `field`, `msg`, `type`) on 422, `state`/`action`/
`session_id` on 409. An unexpected exception is logged with its traceback and answered
with a bare 500 problem that names nothing of the server's internals; one that means the
database does not answer (`storage.database.is_connection_error`) is a 503 with
`Retry-After`, since the same request will work once it is back.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Iterable, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from service.sessions.errors import IllegalTransition, SessionNotFound
from service.storage.database import DatabaseUnavailable, asyncpg_connection_errors, is_connection_error
from service.storage.repositories import NotFound, StateConflict

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:continuous-play:problem:"
"""Prefix of this API's problem types (names, not pages to fetch); generic errors use about:blank."""
MAX_BODY_BYTES = 1024 * 1024


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


class Problem(Exception):
    """Raise from a route for an error answer; `extra` become extension members."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.title = title
        self.type_ = type_
        self.headers = headers
        self.extra = extra

    def response(self, instance: str | None = None) -> ProblemResponse:
        """This problem as an answer, where no exception handler runs (middleware)."""
        body = problem_body(
            self.status, title=self.title, detail=self.detail, type_=self.type_, instance=instance, **self.extra
        )
        return ProblemResponse(body, status_code=self.status, headers=self.headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str | None = None,
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    title = title or _phrase(status)
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,  # always there: clients may show it as is
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem(
    status: int, *, request: Request | None = None, headers: dict[str, str] | None = None, **fields: Any
) -> ProblemResponse:
    """A problem+json response; `instance` defaults to the request's path."""
    if request is not None:
        fields.setdefault("instance", request.url.path)
    return ProblemResponse(problem_body(status, **fields), status_code=status, headers=headers)


def _loc_name(loc: Iterable[Any]) -> str:
    """`("body", "max_games")` -> `max_games`; `("query", "limit")` -> `limit`."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _clean_msg(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid value"))
    # pydantic prefixes custom validator messages with "Value error, "
    return msg.removeprefix("Value error, ")


def validation_errors(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors reduced to what a client needs; never the (possibly huge) input."""
    out = []
    for error in errors:
        loc = list(error.get("loc") or ())
        out.append(
            {
                "loc": [p if isinstance(p, (str, int)) else str(p) for p in loc],
                "field": _loc_name(loc),
                "msg": _clean_msg(error),
                "type": str(error.get("type", "value_error")),
            }
        )
    return out


def validation_problem(request: Request, errors: Iterable[dict[str, Any]]) -> ProblemResponse:
    items = validation_errors(errors)
    detail = "; ".join(f"{e['field']}: {e['msg']}" for e in items)[:2000] or "invalid request"
    return problem(
        422,
        request=request,
        title="Request validation failed",
        detail=detail,
        type_=PROBLEM_BASE + "validation",
        errors=items,
    )


async def _on_validation(request: Request, exc: RequestValidationError) -> ProblemResponse:
    # FastAPI reads and validates a body before it runs a route's dependencies: without
    # this check, an unauthenticated caller of a mutating route would get a 422 (and learn
    # about the body) instead of the 401 it must get.
    from service.api.auth import auth_problem

    denied = auth_problem(request)
    if denied is not None:
        return await _on_problem(request, denied)
    return validation_problem(request, exc.errors())


async def _on_http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    status = exc.status_code
    if status in (400, 413):
        # A body FastAPI could not decode, or one over the limit as it is read, is refused
        # before the route's dependencies run: an unauthenticated caller of a mutating route
        # gets its 401 first (as on a 422).
        from service.api.auth import auth_problem

        denied = auth_problem(request)
        if denied is not None:
            return await _on_problem(request, denied)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != _phrase(status) else None
    if status == 404 and detail is None:
        detail = f"nothing at {request.url.path}"
    if status == 405 and detail is None:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(status, request=request, detail=detail, headers=dict(exc.headers or {}) or None)


async def _on_problem(request: Request, exc: Problem) -> ProblemResponse:
    return problem(
        exc.status,
        request=request,
        title=exc.title,
        detail=exc.detail,
        type_=exc.type_,
        headers=exc.headers,
        **exc.extra,
    )


async def _on_not_found(request: Request, exc: SessionNotFound) -> ProblemResponse:
    return problem(
        404, request=request, title="Not Found", detail=str(exc), type_=PROBLEM_BASE + "not-found", resource=exc.what
    )


def _illegal_transition(request: Request, exc: Exception, session_id: str, state: str, action: str) -> ProblemResponse:
    """409 for an action the session's state does not allow (checked first, or lost in a race)."""
    return problem(
        409,
        request=request,
        title="Illegal session transition",
        detail=str(exc),
        type_=PROBLEM_BASE + "illegal-transition",
        session_id=session_id,
        state=state,
        action=action,
    )


async def _on_illegal(request: Request, exc: IllegalTransition) -> ProblemResponse:
    return _illegal_transition(request, exc, exc.session_id, str(exc.state), exc.action)


async def _on_repo_not_found(request: Request, exc: NotFound) -> ProblemResponse:
    return problem(404, request=request, title="Not Found", detail=str(exc), type_=PROBLEM_BASE + "not-found")


async def _on_state_conflict(request: Request, exc: StateConflict) -> ProblemResponse:
    return _illegal_transition(request, exc, exc.session_id, exc.state, exc.wanted)


async def _on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, request=request, detail="internal error; the server log has the details")


async def _on_database_error(request: Request, exc: Exception) -> ProblemResponse:
    if not (isinstance(exc, DatabaseUnavailable) or is_connection_error(exc)):
        return await _on_unexpected(request, exc)
    log.warning("database unreachable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    if isinstance(exc, PoolTimeout):  # every read connection busy (the writer has its own)
        detail = "every database connection for requests is busy; retry later (sessions go on playing)"
    else:
        detail = (
            "the database does not answer; retry later (sessions go on playing and hold "
            "their finished games until it is back)"
        )
    return problem(
        503,
        request=request,
        title="Database Unavailable",
        type_=PROBLEM_BASE + "database-unavailable",
        detail=detail,
        headers={"Retry-After": "5"},
    )


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    OSError,
    DBAPIError,
    PoolTimeout,
    *asyncpg_connection_errors(),
)
"""Exception classes that may mean an unreachable database; `_on_database_error` sorts them."""


_DESCRIPTIONS = {
    400: "Malformed request, e.g. a cursor not received from this API",
    401: "Missing or wrong API key",
    403: "Sent by a web page of another origin (neither this service's own nor in CORS_ORIGINS)",
    404: "No such resource",
    409: "Not allowed in the session's current state",
    413: "Request body too large",
    415: "The body is not sent as Content-Type: application/json",
    422: "Invalid input; `errors` names each field",
    503: "Not ready, or the database does not answer (retry after `Retry-After` seconds)",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error codes, as problem+json (see `install_problem_openapi`)."""
    from service.api.schemas import IllegalTransitionProblem, ProblemDetails, ValidationProblem

    models = {422: ValidationProblem, 409: IllegalTransitionProblem}
    return {
        code: {"model": models.get(code, ProblemDetails), "description": _DESCRIPTIONS.get(code, _phrase(code))}
        for code in codes
    }


def install_problem_openapi(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API does: every error answer is
    `application/problem+json` (FastAPI files response models under application/json, and
    adds its own 422 body, which this API never sends)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        problem_refs = ("/ProblemDetails", "/ValidationProblem", "/IllegalTransitionProblem")
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.get("responses", {})
                added = []  # answered by middleware (service.api.origin), not by the route
                if path.startswith("/v1/"):  # every /v1 route reads the database
                    added.append("503")
                if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                    added.append("403")
                if "requestBody" in operation:
                    added.append("415")
                for code in added:
                    responses.setdefault(
                        code,
                        {
                            "description": _DESCRIPTIONS[int(code)],
                            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
                        },
                    )
                for response in responses.values():
                    content = response.get("content", {})
                    refs = [media.get("schema", {}).get("$ref", "") for media in content.values()]
                    ref = next((r for r in refs if r.endswith((*problem_refs, "/HTTPValidationError"))), None)
                    if ref is None:
                        continue
                    if ref.endswith("/HTTPValidationError"):
                        ref = "#/components/schemas/ValidationProblem"
                        response["description"] = _DESCRIPTIONS[422]
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": ref}}}
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_E = TypeVar("_E", bound=Exception)


def _add_handler(app: FastAPI, cls: type[_E], handler: Callable[[Request, _E], Awaitable[Response]]) -> None:
    """`app.add_exception_handler(cls, handler)`, checked: `handler` takes what `cls` raises
    (Starlette types every handler as taking any Exception, hence the cast)."""
    app.add_exception_handler(cls, cast(ExceptionHandler, handler))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""
    _add_handler(app, RequestValidationError, _on_validation)
    _add_handler(app, StarletteHTTPException, _on_http)
    _add_handler(app, Problem, _on_problem)
    _add_handler(app, SessionNotFound, _on_not_found)
    _add_handler(app, IllegalTransition, _on_illegal)
    _add_handler(app, NotFound, _on_repo_not_found)
    _add_handler(app, StateConflict, _on_state_conflict)
    for cls in DATABASE_ERRORS:  # handled here, so a database outage is not re-raised as a crash
        _add_handler(app, cls, _on_database_error)
    _add_handler(app, Exception, _on_unexpected)
    install_problem_openapi(app)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a 413 problem (a 401 first for a
    mutating request without a valid key, when API_KEYS is set).

    A declared Content-Length over the limit is refused before the app runs; a body sent
    without one (chunked) is counted as it is read and refused at the first byte over.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from service.api.auth import auth_problem

        # with API_KEYS set, a mutating request without a valid key gets its 401 first
        denied = auth_problem(Request(scope))
        answer = denied or Problem(413, f"request body larger than {self.max_bytes} bytes")
        await answer.response(scope.get("path"))(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                if declared is None or declared < 0:
                    body = problem_body(400, detail="malformed Content-Length", instance=scope.get("path"))
                    await ProblemResponse(body, status_code=400)(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware (on only when CORS_ORIGINS is set), except that a refused
    preflight request (an origin, method or header not allowed) is a 400 problem+json
    rather than Starlette's plain text. A refused origin never gets an
    Access-Control-Allow-Origin header."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        detail = bytes(response.body).decode("utf-8", "replace") or "CORS preflight refused"
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in ("content-length", "content-type")
        }
        body = problem_body(
            response.status_code, title="CORS preflight refused", detail=detail, type_=PROBLEM_BASE + "cors"
        )
        return ProblemResponse(body, status_code=response.status_code, headers=headers)
