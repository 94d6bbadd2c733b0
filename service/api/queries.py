"""Read-side queries the API needs beyond the repositories: aggregates, not row loads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.api.schemas import Elo, Scorecard
from service.storage.models import CheckpointRow, EvaluationRow, GameRow


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def scorecard(db: AsyncSession, session_id: str) -> Scorecard:
    """A session's self-play scorecard from two aggregate queries (no game is loaded)."""
    totals = (await db.execute(
        select(
            func.count(GameRow.id),
            _count_if(GameRow.result == "1-0"),
            _count_if(GameRow.result == "0-1"),
            _count_if(GameRow.result == "1/2-1/2"),
            _count_if(GameRow.adjudicated.is_(True)),
            _count_if(GameRow.adjudicated.is_(True) & (GameRow.result != "1/2-1/2")),
            func.avg(GameRow.plies),
            func.min(GameRow.plies),
            func.max(GameRow.plies),
            func.coalesce(func.sum(GameRow.duration_s), 0.0),
        ).where(GameRow.session_id == session_id)
    )).one()
    games, white, black, draws, adjudicated, adjudicated_decisive, mean_plies, min_plies, max_plies, duration = totals
    games, white, black, draws = int(games), int(white), int(black), int(draws)
    terminations = {
        str(name): int(count)
        for name, count in (await db.execute(
            select(GameRow.termination, func.count(GameRow.id))
            .where(GameRow.session_id == session_id)
            .group_by(GameRow.termination)
            .order_by(GameRow.termination)
        )).all()
    }
    return Scorecard(
        games=games,
        white_wins=white,
        black_wins=black,
        draws=draws,
        adjudicated=int(adjudicated),
        adjudicated_decisive=int(adjudicated_decisive),
        white_win_rate=_rate(white, games),
        black_win_rate=_rate(black, games),
        draw_rate=_rate(draws, games),
        white_score=_rate(white + draws / 2, games),
        mean_plies=float(mean_plies) if mean_plies is not None else None,
        min_plies=int(min_plies) if min_plies is not None else None,
        max_plies=int(max_plies) if max_plies is not None else None,
        total_duration_s=float(duration or 0.0),
        terminations=terminations,
    )


async def latest_elo(db: AsyncSession, session_id: str) -> Elo | None:
    """The rating of the session's newest evaluated checkpoint (highest generation with a
    rated evaluation; its newest rated row), or None before the first evaluation."""
    row = (await db.execute(
        select(EvaluationRow, CheckpointRow.generation)
        .join(CheckpointRow, EvaluationRow.checkpoint_id == CheckpointRow.id)
        .where(EvaluationRow.session_id == session_id, EvaluationRow.elo.is_not(None))
        .order_by(CheckpointRow.generation.desc(), EvaluationRow.id.desc())
        .limit(1)
    )).first()
    if row is None:
        return None
    evaluation, generation = row
    return Elo(rating=evaluation.elo, low=evaluation.elo_low, high=evaluation.elo_high,
               checkpoint_id=evaluation.checkpoint_id, generation=generation,
               opponent=evaluation.opponent, evaluated_at=evaluation.created_at)
