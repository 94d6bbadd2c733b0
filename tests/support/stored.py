"""What the database holds for a session, read through the repositories: its row, its
state, the numbers of its stored games, whether it has ended. `db_sessions` is an
async_sessionmaker (the `db_sessions` fixture of tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.lifecycle import FINAL
from service.storage import models
from service.storage import repositories as repo


async def session_row(db_sessions: Any, session_id: str) -> Any:
    """The session's row (None once it is deleted)."""
    async with db_sessions() as db:
        return await repo.get_session(db, session_id)


async def state_of(db_sessions: Any, session_id: str) -> str:
    return (await session_row(db_sessions, session_id)).state


async def ended(db_sessions: Any, session_id: str) -> bool:
    """Whether the session is in a final state (completed, stopped, failed)."""
    return await state_of(db_sessions, session_id) in FINAL


async def game_numbers(db_sessions: Any, session_id: str) -> list[int]:
    """The numbers of the session's stored games, in order."""
    async with db_sessions() as db:
        rows = await db.scalars(
            select(models.GameRow.number).where(models.GameRow.session_id == session_id).order_by(models.GameRow.number)
        )
        return list(rows)
