"""Bearer-key auth for mutating routes: `Depends(require_key)`.

With `API_KEYS` empty it does nothing. Otherwise the request needs
`Authorization: Bearer <key>`; the key is compared with `hmac.compare_digest` against
every configured key (no early exit, so timing says nothing about which key or how much
of it matched). Keys are never logged nor echoed in an answer: `RedactSecrets` takes a
`?token=` (the WebSocket's key) and a bearer key out of every line uvicorn logs (its access
log writes the request's path with its query string).
"""

from __future__ import annotations

import hmac
import logging
import re
from urllib.parse import unquote_plus

from fastapi import Request
from starlette.requests import HTTPConnection

from service.api.errors import Problem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="continuous-play"'}


def key_matches(given: str, keys: list[str]) -> bool:
    """Whether `given` (a header value as Starlette decodes it: latin-1) equals one of
    `keys` (UTF-8), in time independent of where they differ."""
    try:
        given_bytes = given.encode("latin-1")  # the header's raw bytes again
    except UnicodeEncodeError:
        given_bytes = given.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_bytes, key.encode("utf-8"))
    return found


def bearer_token(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_key(request: Request) -> Problem | None:
    """None when keys are off or the request carries a valid one, else the 401 problem."""
    keys = request.app.state.settings.api_keys
    if not keys:
        return None
    token = bearer_token(request)
    if token is None:
        return Problem(401, "this route needs 'Authorization: Bearer <key>'", title="Unauthorized", headers=_CHALLENGE)
    if not key_matches(token, keys):
        return Problem(
            401,
            "the bearer key is not valid",
            title="Unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="continuous-play", error="invalid_token"'},
        )
    return None


def auth_problem(request: Request) -> Problem | None:
    """For error handlers: the 401 a mutating request without a valid key must get first."""
    if request.method in SAFE_METHODS:
        return None
    return check_key(request)


async def require_key(request: Request) -> None:
    """401 problem+json unless the request carries one of the configured API keys."""
    denied = check_key(request)
    if denied is not None:
        raise denied


SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key"})
_QUERY = re.compile(r"\?([^\s\"'#]*)")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+")
REDACTED = "***"


def _redact_query(match: re.Match) -> str:
    parts = []
    for part in re.split(r"([&;])", match.group(1)):
        name, eq, _ = part.partition("=")
        if eq and unquote_plus(name).strip().lower() in SECRET_PARAMS:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return "?" + "".join(parts)


def redact(text: str) -> str:
    """`text` without bearer keys and the values of credential query parameters (`token`,
    `access_token`, `api_key`, `apikey`, `key`; names percent-decoded, any case)."""
    return _BEARER.sub(r"\1" + REDACTED, _QUERY.sub(_redact_query, text))


class RedactSecrets(logging.Filter):
    """A logging filter that redacts credentials (see `redact`) from a record's message and
    string arguments; it never drops a record. `continuous-play serve` puts it on every
    handler of uvicorn's logging configuration (access and error logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True
