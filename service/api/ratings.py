"""/v1/ratings: the rating lists of every session that shares a generation 0 (a seed), one
per yardstick (results made under different rules are never fitted together), fitted in a
thread and kept until the seed's evaluations change (`caches.RatingFits`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.api.caches import RatingFits
from service.api.deps import Db, SettingsDep
from service.api.errors import problem_responses
from service.api.schemas import RatingList
from service.stats.ratings import ANCHOR, lists_out, rating_lists
from service.storage import repositories as repo

router = APIRouter(tags=["ratings"])


@router.get(
    "/ratings",
    response_model=RatingList,
    responses=problem_responses(422),
    summary="Rating lists (one per yardstick) of all evaluated checkpoints of the sessions sharing SEED's generation 0",
)
async def ratings(
    request: Request,
    db: Db,
    settings: SettingsDep,
    seed: Annotated[int | None, Query(ge=0, le=2**32 - 1, description="Default: SEED")] = None,
) -> RatingList:
    seed = settings.seed if seed is None else seed
    fits = RatingFits.for_app(request.app)
    version = await repo.seed_evaluations_version(db, seed)  # read first: the list is at least as new
    found = fits.get(("seed", seed), version)
    if found is None:
        rows = await repo.evaluations_for_seed(db, seed)

        def fit() -> RatingList:
            fitted = rating_lists([(e, c.generation, e.session_id) for e, c in rows], settings.elo_anchor)
            return RatingList(seed=seed, anchor=ANCHOR, anchor_rating=settings.elo_anchor, ratings=lists_out(fitted))

        found = await fits.compute(("seed", seed), version, fit)
    return found
