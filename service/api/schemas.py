"""Request and response bodies of the REST API (pydantic), as they appear in OpenAPI."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Annotated, Any, Generic, Optional, TypeVar, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, field_validator

from service.config import SessionConfig

T = TypeVar("T")
INT64_MAX = 2**63 - 1


class ProblemDetails(BaseModel):
    """An RFC 9457 problem (`application/problem+json`); extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="The request path that had the problem.")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: body|query|path, then the field (and index).")
    field: str = Field(description="The field's name (dotted, with list indexes).")
    msg: str
    type: str


class ValidationProblem(ProblemDetails):
    """422: the request did not validate; `errors` names every bad field."""

    errors: list[FieldError]


class IllegalTransitionProblem(ProblemDetails):
    """409: the action is not allowed in the session's state."""

    session_id: str
    state: str
    action: str


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next (null: the end)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Opaque cursor of the next page; null on the last page.")


def _is(tp: Any, kind: type) -> bool:
    return tp is kind or (get_origin(tp) in (Union, types.UnionType) and kind in get_args(tp))


def _optional_overrides() -> dict[str, Any]:
    """Every SessionConfig field, optional, with its type and bounds (so OpenAPI shows them
    and a wrong type fails here, located in the body). Integers without an upper bound get
    int64's: a number no column or tensor can hold is refused up front. Numbers and
    booleans are strict, as the schema says: `true` is no integer, `1` no boolean, `3.0`
    no integer. The full checks (cross-field ones included) run on the merged config
    (`Settings.session_config`)."""
    fields: dict[str, Any] = {}
    for name, info in SessionConfig.model_fields.items():
        metadata = list(info.metadata)
        if _is(info.annotation, int) and not any(isinstance(m, (at.Le, at.Lt)) for m in metadata):
            metadata.append(at.Le(INT64_MAX))
        if any(_is(info.annotation, kind) for kind in (int, float, bool)):
            metadata.append(Strict())
        tp = Annotated[(info.annotation, *metadata)] if metadata else info.annotation
        fields[name] = (Optional[tp], Field(None, description=info.description))
    return fields


_SessionOverrides = create_model(
    "SessionOverrides",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    **_optional_overrides(),
)


class CreateSession(_SessionOverrides):
    """Body of POST /v1/sessions: any per-session setting as an override (omitted: the
    service's value), plus the checkpoint to start from. Unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"max_games": 200, "chess_preset": "tiny", "seed": 7}]},
    )

    init_checkpoint_id: Annotated[int, Strict()] | None = Field(
        None, ge=1, le=INT64_MAX, description="Start from this stored checkpoint's weights (its id)."
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """NUL characters fit no text column (PostgreSQL refuses them): a 422, not a 500."""
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "\x00" in v for v in items):
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("selfplay_openings")
    @classmethod
    def _no_book_path(cls, value: str | None) -> str | None:
        """A book file is the operator's (SELFPLAY_OPENINGS in the environment): a client may
        not make the server read a path of its choosing, nor learn whether one exists."""
        if value is not None and value.strip() not in ("", "book"):
            raise ValueError("must be 'book' or empty over the API; a book file is set in the server's environment")
        return value

    def overrides(self) -> dict[str, Any]:
        """The settings the client gave, by name (explicit nulls included: they clear an
        optional setting such as resign_threshold)."""
        return self.model_dump(exclude_unset=True, exclude={"init_checkpoint_id"})


class Scorecard(BaseModel):
    """Self-play results of a session, by colour (not a strength measure: see `elo`)."""

    games: int
    white_wins: int
    black_wins: int
    draws: int
    adjudicated: int = Field(description="Games decided by the ply cap (ADJUDICATION).")
    adjudicated_decisive: int
    white_win_rate: float | None
    black_win_rate: float | None
    draw_rate: float | None
    white_score: float | None = Field(description="White's points per game (wins + draws/2).")
    mean_plies: float | None
    min_plies: int | None
    max_plies: int | None
    total_duration_s: float
    terminations: dict[str, int]


class Elo(BaseModel):
    """The rating of the session's newest evaluated checkpoint, with its 95% interval."""

    rating: float
    low: float | None
    high: float | None
    checkpoint_id: int
    generation: int | None
    opponent: str
    evaluated_at: datetime


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    state: str
    config: dict[str, Any]
    seed: int
    init_checkpoint_id: int | None
    games_done: int
    stop_reason: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SessionDetail(SessionOut):
    scorecard: Scorecard
    metrics: dict[str, Any] | None = Field(
        description="Latest metrics: the live worker's, else the newest stored snapshot; null if none."
    )
    metrics_at: datetime | None = Field(None, description="When `metrics` was recorded (null when live).")
    elo: Elo | None = Field(description="Null until the first evaluation.")


class GameOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: str
    number: int
    result: str
    termination: str
    adjudicated: bool
    plies: int
    moves: list[str] = Field(description="The moves in UCI.")
    temperature: float
    simulations: int
    duration_s: float
    material: int
    false_resign: bool | None
    generation: int = Field(description="The network generation that played the game's first move.")
    actor: int = Field(description="The self-play actor that played it (0: the learner's own, one-worker layout).")
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> "GameOut":
        """From a stored game: a GameRow, or a row of `repositories.GAME_SUMMARY_COLUMNS`."""
        data = {name: getattr(row, name) for name in cls.model_fields if name != "moves"}
        return cls(moves=row.moves.split(), **data)


class CheckpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: str
    generation: int
    games: int
    sha256: str
    created_at: datetime
    weights_url: str = Field(description="The safetensors weights.")
    onnx_url: str = Field(description="The network as ONNX (exported on the first request, then kept).")

    @classmethod
    def of(cls, row: Any) -> "CheckpointOut":
        data = {name: getattr(row, name) for name in cls.model_fields if not name.endswith("_url")}
        url = f"/v1/checkpoints/{row.id}/weights"
        return cls(weights_url=url, onnx_url=f"{url}.onnx", **data)


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: str
    checkpoint_id: int
    opponent: str
    generation: int | None = Field(None, description="The evaluated checkpoint's generation.")
    games: int
    wins: int
    draws: int
    losses: int
    pentanomial: list[Any] | None
    elo: float | None
    elo_low: float | None
    elo_high: float | None
    sprt: dict[str, Any] | None
    yardstick: str | None = Field(
        None, description="The rules the match was played under: cap and adjudication, e.g. cap150/stockfish300cp@d10."
    )
    created_at: datetime


class RatingOut(BaseModel):
    """One player of a rating list: maximum-likelihood rating with its 95% interval."""

    player: str = Field(
        description="gen<N> (a checkpoint; <session>/gen<N> across sessions), gen0, random, greedy, uci-<elo>, "
        "stockfish-s<SKILL>-d<DEPTH>"
    )
    rating: float
    low: float
    high: float
    games: int
    yardstick: str | None = Field(
        None,
        description="The yardstick of the list this rating belongs to (cap and adjudication rule); "
        "ratings of different yardsticks are fitted apart and never compared.",
    )


class EvaluationPage(Page[EvaluationOut]):
    """A session's evaluation matches, and its rating lists (generation 0 anchored at
    ELO_ANCHOR): one per yardstick, the newest evaluation's first."""

    ratings: list[RatingOut] = Field(default_factory=list)


class RatingList(BaseModel):
    """The rating lists of every evaluated checkpoint of the sessions sharing one generation 0:
    one per yardstick (each row names its own), the newest evaluation's first."""

    seed: int
    anchor: str
    anchor_rating: float
    ratings: list[RatingOut]


class MetricSnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    session_id: str
    ts: datetime
    data: dict[str, Any]
