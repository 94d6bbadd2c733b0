"""/v1/sessions: create, list, inspect, pause/resume/stop, delete, and per-session reads."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

from service.api import caches
from service.api.auth import require_key
from service.api.deps import DEFAULT_LIMIT, MAX_CHECKPOINT_ID, Cursor, Db, Limit, Orch, SessionId, SettingsDep
from service.api.errors import PROBLEM_BASE, Problem, problem_responses
from service.api.schemas import (
    CheckpointOut,
    CreateSession,
    EvaluationOut,
    EvaluationPage,
    GameOut,
    MetricSnapshotOut,
    Page,
    Scorecard,
    SessionDetail,
    SessionOut,
)
from service.lifecycle import State
from service.sessions.errors import SessionNotFound
from service.stats.ratings import lists_out, rating_lists
from service.storage import repositories as repo

PGN_CHUNK_GAMES = 100
"""Games read per database session while games.pgn is streamed (about 130 KB of PGN)."""

router = APIRouter(prefix="/sessions", tags=["sessions"])

if TYPE_CHECKING:  # a type checker cannot read a Literal built at run time
    StateFilter = str
else:
    StateFilter = Literal[tuple(state.value for state in State)]
"""The `state` query parameter: one of `State`'s values, in order (a Literal rather than
`State` itself, so the OpenAPI schema is inlined and a bad value is a `literal_error`)."""
PROBLEMS = problem_responses(404, 422)
PAGED = problem_responses(400, 404, 422)
MUTATING = problem_responses(401, 404, 413, 422)
CREATE = problem_responses(400, 401, 404, 413, 422)  # 400: a body that is not UTF-8 JSON


def bad_cursor() -> Problem:
    return Problem(
        400,
        "the cursor is malformed: pass back a next_cursor exactly as received",
        title="Bad Request",
        type_=PROBLEM_BASE + "bad-cursor",
    )


def _out_of_range(exc: BaseException) -> bool:
    """Whether a database error comes from a value the column cannot hold (a forged cursor's
    number beyond INTEGER, a date out of range, a NUL character: OverflowError, or a
    DataError of the driver)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OverflowError) or any(c.__name__ == "DataError" for c in type(seen).__mro__):
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


async def paged(db, call, cursor: str | None):
    """Run a cursor query; a malformed cursor is a 400 problem, never a 500."""
    try:
        return await call()
    except ValueError:
        raise bad_cursor() from None
    except (OverflowError, StatementError) as exc:
        if cursor is None or not _out_of_range(exc):
            raise
        await db.rollback()
        raise bad_cursor() from None


async def require_session(db, session_id: str):
    row = await repo.get_session(db, session_id)
    if row is None:
        raise SessionNotFound("session", session_id)
    return row


def scorecards(request: Request) -> caches.ScorecardCache:
    """The app's scorecard cache (see `caches.ScorecardCache`)."""
    return caches.ScorecardCache.for_app(request.app)


async def session_detail(request: Request, db, session_id: str) -> SessionDetail:
    """One query for the session's row and the ids of its newest rated evaluation and metric
    snapshot; the scorecard, evaluation and snapshot come from the app's caches, which read
    only what changed since (see service/api/caches.py) and are at least as new as the row."""
    found = await repo.session_and_newest(db, session_id)
    if found is None:
        raise SessionNotFound("session", session_id)
    row, evaluation_id, snapshot_id = found
    newest = caches.NewestRows.for_app(request.app)
    live = request.app.state.orchestrator.live(session_id) if request.app.state.orchestrator else None
    metrics, metrics_at = live, None
    if metrics is None:
        snapshot = await newest.snapshot(db, session_id, snapshot_id)
        if snapshot is not None:
            metrics, metrics_at = snapshot
    return SessionDetail(
        **SessionOut.model_validate(row).model_dump(),
        scorecard=await scorecards(request).get(db, session_id, row.games_done),
        metrics=metrics,
        metrics_at=metrics_at,
        elo=await newest.elo(db, session_id, evaluation_id),
    )


def _config_errors(exc: ValidationError) -> RequestValidationError:
    """Errors of the merged session configuration, located in the request body."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = tuple(error.get("loc") or ())
        errors.append({**error, "loc": ("body", *loc)})
    return RequestValidationError(errors)


def refuse_program(overrides: dict, settings) -> None:
    """EVAL_UCI_ENGINE is a command the worker runs: only the operator chooses it (the
    server's setting). A request may repeat it or clear it, never name another program."""
    if "eval_uci_engine" not in overrides:
        return
    given = (overrides["eval_uci_engine"] or "").strip()
    if given and given != (settings.eval_uci_engine or "").strip():
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "eval_uci_engine"),
                    "msg": "a request cannot choose the program the server runs: only the server's "
                    "EVAL_UCI_ENGINE (or null) is accepted",
                }
            ]
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionDetail,
    dependencies=[Depends(require_key)],
    responses=CREATE,
    summary="Create a session (any per-session setting may be overridden)",
)
async def create_session(
    request: Request,
    response: Response,
    settings: SettingsDep,
    orchestrator: Orch,
    db: Db,
    body: Annotated[CreateSession, Body()] = None,  # type: ignore[assignment]
) -> SessionDetail:
    body = body or CreateSession()
    overrides = body.overrides()
    refuse_program(overrides, settings)
    try:
        config = settings.session_config(**overrides)
    except ValidationError as exc:
        raise _config_errors(exc) from None
    if body.init_checkpoint_id is not None and body.init_checkpoint_id > MAX_CHECKPOINT_ID:
        raise SessionNotFound("checkpoint", body.init_checkpoint_id)
    session_id = await orchestrator.create_session(config, body.init_checkpoint_id)
    response.headers["Location"] = str(request.url_for("get_session", session_id=session_id).path)
    return await session_detail(request, db, session_id)


@router.get(
    "", response_model=Page[SessionOut], responses=problem_responses(400, 422), summary="List sessions, newest first"
)
async def list_sessions(
    db: Db,
    state: Annotated[StateFilter | None, Query(description="Only sessions in this state.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[SessionOut]:
    rows, next_cursor = await paged(db, lambda: repo.list_sessions(db, state=state, limit=limit, cursor=cursor), cursor)
    return Page[SessionOut](items=[SessionOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{session_id}",
    response_model=SessionDetail,
    responses=PROBLEMS,
    summary="A session: config, state, scorecard, latest metrics, elo",
)
async def get_session(request: Request, session_id: SessionId) -> Response:
    # The route dashboards poll: answered from caches.SessionViews while nothing it shows
    # changed. Its database session is opened here, not through `Db`: FastAPI's machinery
    # for a generator dependency costs a tenth of this route's CPU time.
    async with request.app.state.sessionmaker() as db:
        version = await repo.session_version(db, session_id)
        if version is None:
            raise SessionNotFound("session", session_id)
        orchestrator = request.app.state.orchestrator
        live = orchestrator.live(session_id) if orchestrator else None
        views = caches.SessionViews.for_app(request.app)
        body = views.get(session_id, version, live)
        if body is None:  # built after reading the version: at least as new as it
            body = (await session_detail(request, db, session_id)).model_dump_json().encode()
            views.put(session_id, version, live, body)
    return Response(body, media_type="application/json")


async def _act(request: Request, db, orchestrator, session_id: str, action: str) -> SessionDetail:
    await getattr(orchestrator, action)(session_id)
    db.expire_all()
    return await session_detail(request, db, session_id)


_ACTION: dict[str, Any] = dict(
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SessionDetail,
    dependencies=[Depends(require_key)],
    responses={**MUTATING, **problem_responses(409)},
)


@router.post("/{session_id}/pause", summary="Pause a running session", **_ACTION)
async def pause_session(request: Request, session_id: SessionId, db: Db, orchestrator: Orch) -> SessionDetail:
    return await _act(request, db, orchestrator, session_id, "pause")


@router.post("/{session_id}/resume", summary="Resume a paused session", **_ACTION)
async def resume_session(request: Request, session_id: SessionId, db: Db, orchestrator: Orch) -> SessionDetail:
    return await _act(request, db, orchestrator, session_id, "resume")


@router.post("/{session_id}/stop", summary="Stop a session (it checkpoints and ends as stopped)", **_ACTION)
async def stop_session(request: Request, session_id: SessionId, db: Db, orchestrator: Orch) -> SessionDetail:
    return await _act(request, db, orchestrator, session_id, "stop")


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_key)],
    responses={**MUTATING, **problem_responses(409)},
    summary="Delete a session that is not active, with its games, checkpoints and events",
)
async def delete_session(request: Request, session_id: SessionId, orchestrator: Orch) -> Response:
    await orchestrator.delete(session_id)
    scorecards(request).forget(session_id)
    caches.GamePages.for_app(request.app).forget(session_id)
    caches.NewestRows.for_app(request.app).forget(session_id)
    caches.SessionViews.for_app(request.app).forget(session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{session_id}/games", response_model=Page[GameOut], responses=PAGED, summary="A session's games by number")
async def list_games(
    request: Request, session_id: SessionId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response:
    # A page is served again until the session's games_done changes (caches.GamePages); the
    # database session is opened here rather than through `Db` (see get_session).
    async with request.app.state.sessionmaker() as db:
        games_done = await repo.session_games_done(db, session_id)
        if games_done is None:
            raise SessionNotFound("session", session_id)
        pages = caches.GamePages.for_app(request.app)
        body = pages.get(session_id, limit, cursor, games_done)
        if body is None:
            rows, next_cursor = await paged(
                db, lambda: repo.list_game_summaries(db, session_id, limit=limit, cursor=cursor), cursor
            )
            body = (
                Page[GameOut](items=[GameOut.of(r) for r in rows], next_cursor=next_cursor).model_dump_json().encode()
            )
            pages.put(session_id, limit, cursor, games_done, body)
    return Response(body, media_type="application/json")


@router.get(
    "/{session_id}/games.pgn",
    response_class=StreamingResponse,
    responses={**PROBLEMS, 200: {"content": {"application/x-chess-pgn": {}}, "description": "All games as PGN"}},
    summary="All of a session's games as one PGN file (streamed)",
)
async def games_pgn(request: Request, session_id: SessionId, db: Db) -> StreamingResponse:
    await require_session(db, session_id)
    maker = request.app.state.sessionmaker

    async def stream():
        # One short database session per chunk, released before the chunk is sent: a client
        # that reads slowly (or never) holds no pooled connection while it waits.
        after = 0
        while True:
            async with maker() as reader:
                rows = await repo.game_pgns_after(reader, session_id, after, PGN_CHUNK_GAMES)
            if not rows:
                return
            after = rows[-1][0]
            yield "".join(pgn.rstrip("\n") + "\n\n" for _, pgn in rows)

    return StreamingResponse(
        stream(),
        media_type="application/x-chess-pgn",
        headers={"Content-Disposition": f'attachment; filename="{session_id}.pgn"'},
    )


@router.get(
    "/{session_id}/scorecard",
    response_model=Scorecard,
    responses=PROBLEMS,
    summary="Self-play results by colour, adjudications, lengths, terminations",
)
async def get_scorecard(request: Request, session_id: SessionId, db: Db) -> Scorecard:
    games_done = await repo.session_games_done(db, session_id)
    if games_done is None:
        raise SessionNotFound("session", session_id)
    return await scorecards(request).get(db, session_id, games_done)


@router.get(
    "/{session_id}/metrics",
    response_model=Page[MetricSnapshotOut],
    responses=PROBLEMS,
    summary="A session's stored metric snapshots in time order (the newest `limit`)",
)
async def list_metrics(
    session_id: SessionId,
    db: Db,
    since: Annotated[datetime | None, Query(description="Only snapshots after this time (RFC 3339).")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many, the newest.")] = 1000,
) -> Page[MetricSnapshotOut]:
    await require_session(db, session_id)
    if since is not None:
        if since.tzinfo is None:
            raise RequestValidationError(
                [
                    {
                        "type": "timezone_aware",
                        "loc": ("query", "since"),
                        "msg": "needs a time zone (e.g. 2024-01-01T00:00:00Z)",
                    }
                ]
            )
        try:
            since = since.astimezone(timezone.utc)
        except OverflowError:
            raise RequestValidationError(
                [{"type": "datetime_range", "loc": ("query", "since"), "msg": "out of the range of dates"}]
            ) from None
    rows = await repo.list_metric_snapshots(db, session_id, since=since, limit=limit)
    return Page[MetricSnapshotOut](items=[MetricSnapshotOut.model_validate(r) for r in rows])


@router.get(
    "/{session_id}/evaluations",
    response_model=EvaluationPage,
    responses=PROBLEMS,
    summary="A session's evaluation matches (W/D/L, pentanomial, SPRT) and its rating list",
)
async def list_evaluations(request: Request, session_id: SessionId, db: Db, settings: SettingsDep) -> EvaluationPage:
    # The page is kept until the session's next evaluation (caches.RatingFits); the rating
    # fit, a dense Newton solve, runs in a thread.
    await require_session(db, session_id)
    fits = caches.RatingFits.for_app(request.app)
    newest = await repo.newest_evaluation_id(db, session_id)  # read first: the page is at least as new
    page = fits.get(("session", session_id), newest)
    if page is None:
        rows = await repo.list_evaluations(db, session_id)
        generation = {c.id: c.generation for c in await repo.list_checkpoints(db, session_id)}

        def fit() -> EvaluationPage:
            fitted = rating_lists([(r, generation[r.checkpoint_id], None) for r in rows], settings.elo_anchor)
            items = [
                EvaluationOut.model_validate(r).model_copy(update={"generation": generation[r.checkpoint_id]})
                for r in rows
            ]
            return EvaluationPage(items=items, ratings=lists_out(fitted))

        page = await fits.compute(("session", session_id), newest, fit)
    return page


@router.get(
    "/{session_id}/checkpoints",
    response_model=Page[CheckpointOut],
    responses=PROBLEMS,
    summary="A session's checkpoints by generation",
)
async def list_checkpoints(session_id: SessionId, db: Db) -> Page[CheckpointOut]:
    await require_session(db, session_id)
    rows = await repo.list_checkpoints(db, session_id)
    return Page[CheckpointOut](items=[CheckpointOut.of(r) for r in rows])
