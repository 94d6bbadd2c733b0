"""Small `Depends` helpers: everything a route needs comes from `request.app.state`.

They are `async def` although none awaits: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop on every request (a fifth of a session read's CPU time)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, AsyncIterator

from fastapi import Depends, Path, Query, Request
from sqlalchemy import BigInteger
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.sessions.errors import SessionNotFound
from service.storage.models import CheckpointRow, GameRow

if TYPE_CHECKING:  # the orchestrator imports the engine side; routes only need its methods
    from service.sessions.orchestrator import Orchestrator

INT64_MAX = 2**63 - 1


def _max_id(model) -> int:
    """The largest id the model's integer primary key can hold on every backend
    (INTEGER is 32-bit on PostgreSQL): a larger one names no row, so it is a 404."""
    return INT64_MAX if isinstance(model.__table__.c.id.type, BigInteger) else 2**31 - 1


MAX_GAME_ID = _max_id(GameRow)
MAX_CHECKPOINT_ID = _max_id(CheckpointRow)
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_orchestrator(request: Request) -> "Orchestrator":
    return request.app.state.orchestrator


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's database session, on the API's read pool (never the writer's)."""
    async with request.app.state.sessionmaker() as db:
        yield db


async def session_id_path(session_id: Annotated[str, Path(description="Session id: 32 lowercase hex digits.")]) -> str:
    """A path's session id; anything but 32 hex digits cannot name a session: 404."""
    if not _SESSION_ID.fullmatch(session_id):
        raise SessionNotFound("session", session_id[:64])
    return session_id


Db = Annotated[AsyncSession, Depends(get_db, scope="function")]
"""Closed when the route function returns, before the response is sent: a slow client never
holds a pooled connection (the default scope would keep it until the last byte is taken)."""
Orch = Annotated[Any, Depends(get_orchestrator)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionId = Annotated[str, Depends(session_id_path)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1..500).")]
Cursor = Annotated[str | None, Query(max_length=512, description="Opaque cursor from a previous page's next_cursor.")]


async def game_id_path(game_id: Annotated[int, Path(ge=1, le=INT64_MAX, description="Game id.")]) -> int:
    if game_id > MAX_GAME_ID:
        raise SessionNotFound("game", game_id)
    return game_id


async def checkpoint_id_path(
    checkpoint_id: Annotated[int, Path(ge=1, le=INT64_MAX, description="Checkpoint id.")],
) -> int:
    if checkpoint_id > MAX_CHECKPOINT_ID:
        raise SessionNotFound("checkpoint", checkpoint_id)
    return checkpoint_id


GameId = Annotated[int, Depends(game_id_path)]
CheckpointId = Annotated[int, Depends(checkpoint_id_path)]
