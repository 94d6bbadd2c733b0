"""/v1/games/{game_id} and its PGN."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from service.api.deps import Db, GameId
from service.api.errors import problem_responses
from service.api.schemas import GameOut
from service.sessions.errors import SessionNotFound
from service.storage import repositories as repo

router = APIRouter(prefix="/games", tags=["games"])


class PGNResponse(PlainTextResponse):
    media_type = "application/x-chess-pgn"


PROBLEMS = problem_responses(404, 422)


async def _game(db, game_id: int):
    row = await repo.get_game(db, game_id)
    if row is None:
        raise SessionNotFound("game", game_id)
    return row


# Declared before /{game_id}: "/v1/games/7.pgn" must not reach the JSON route as "7.pgn".
@router.get(
    "/{game_id}.pgn",
    response_class=PGNResponse,
    responses={**PROBLEMS, 200: {"description": "The game as PGN"}},
    summary="One game as PGN",
)
async def game_pgn(game_id: GameId, db: Db) -> PGNResponse:
    row = await _game(db, game_id)
    name = f"{row.session_id}-game-{row.number:04d}.pgn"
    return PGNResponse(row.pgn.rstrip("\n") + "\n", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{game_id}", response_model=GameOut, responses=PROBLEMS, summary="One game: result, moves (UCI), ...")
async def get_game(game_id: GameId, db: Db) -> GameOut:
    return GameOut.of(await _game(db, game_id))
