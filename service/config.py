"""Settings: every variable of DESIGN.md "Settings", from the environment and `.env`.

`SessionFields` holds the per-session variables once; `Settings` (the whole service) and
`SessionConfig` (the body of POST /v1/sessions) both inherit them, so their names,
defaults and constraints cannot drift apart. A bad value must stop start-up with one
line naming the variable and what it accepts: `load_settings` / `settings_or_exit`.

Over 500 lines: one field per setting of DESIGN.md "Settings", each with its bounds and
description (the start-up errors are written from them); split, the settings would be read
across files for no seam between them.
"""

from __future__ import annotations

import os
import re
import sys
import types
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

from .engine import inference
from .engine.inference import InferenceBackend
from .engine.players import OpponentKind, parse_opponent, stockfish_binary
from .engine.yardstick import Adjudication

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_HOST_NAME = re.compile(r"\*|\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
"""An ALLOWED_HOSTS entry: `*`, a bracketed IPv6 address, or a DNS name / IPv4 address."""


def _empty_to_none(value: Any) -> Any:
    """An optional variable set to an empty string (`RESIGN_THRESHOLD=`) means unset."""
    return None if isinstance(value, str) and not value.strip() else value


_NO_STOCKFISH = "not found on PATH nor at /usr/games/stockfish (Debian: apt-get install stockfish)"


def _opponent_entry(entry: str) -> str:
    """One EVAL_OPPONENTS entry, parsed as the evaluation parses it; a ladder rung needs Stockfish."""
    if parse_opponent(entry).kind is OpponentKind.STOCKFISH and stockfish_binary() is None:
        raise ValueError(f"{entry} needs Stockfish, {_NO_STOCKFISH}")
    return entry


OpponentEntry = Annotated[str, AfterValidator(_opponent_entry)]


def _split_csv(value: Any) -> Any:
    """Lists come from plain env strings (`a,b`), not JSON; empty means an empty list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")] if value.strip() else []
    return value


class SessionFields(BaseModel):
    """The per-session variables: Session, Learning, Temperature, Engine, Evaluation."""

    # allow_inf_nan: "inf" would pass every `> 0` bound and mean nothing here.
    # validate_default: cross-field checks (SPRT_ELO1 > SPRT_ELO0) must run on defaults too.
    model_config = ConfigDict(allow_inf_nan=False, validate_default=True)

    # Session
    session_duration_min: float = Field(
        20.0, gt=0, le=525_600, description="Wall-clock limit of a session, in minutes."
    )
    max_games: int = Field(100, ge=0, le=100_000_000, description="Stop after this many self-play games; 0 = no limit.")
    max_moves_per_game: int = Field(
        300,
        ge=2,
        le=10_000,
        description="Ply cap of a self-play game; at the cap ADJUDICATION decides the result "
        "(evaluation games keep fixed rules: 150 plies after the opening, a 3-pawn margin).",
    )
    checkpoint_interval: int = Field(10, ge=1, le=100_000_000, description="Save a checkpoint every this many games.")

    # Learning
    learn_every_n_games: int = Field(5, ge=1, le=100_000_000, description="Run a learning phase every this many games.")
    min_games_before_learning: int = Field(
        10, ge=0, le=100_000_000, description="Games played before the first learning phase (fills the replay buffer)."
    )
    learning_batch_size: int = Field(256, ge=1, le=65536, description="Positions per training step.")
    learning_rate: float = Field(0.001, gt=0, le=1, description="AdamW learning rate.")
    learning_rate_decay_positions: int | None = Field(
        None,
        ge=0,
        le=10**9,
        description="The learning rate falls linearly from LEARNING_RATE to LEARNING_RATE_FLOOR times it "
        "over this many positions learned, then stays there; empty = constant.",
    )
    learning_rate_floor: float = Field(
        0.1,
        gt=0,
        le=1,
        description="With LEARNING_RATE_DECAY_POSITIONS: the final learning rate as a share of LEARNING_RATE.",
    )

    # Temperature
    temperature_schedule: Literal["constant", "linear_decay", "exponential_decay", "step"] = Field(
        "linear_decay", description="How the move-sampling temperature changes over the games of a session."
    )
    initial_temperature: float = Field(1.0, ge=0, le=100, description="Temperature at the first game.")
    final_temperature: float = Field(
        0.5,
        ge=0,
        le=100,
        description="Temperature once the schedule has run out: the floor of the opening plies' temperature "
        "(0.5 measured: lower, a trained net's openings grow nearly deterministic, docs/strength.md).",
    )
    temperature_decay_games: int = Field(
        50, ge=1, le=100_000_000, description="Games over which the temperature decays."
    )

    # Engine
    chess_preset: Literal["tiny", "small", "medium", "large"] = Field(
        "small", description="Network size: tiny (CI), small (CPU default, about 6x64), medium, large."
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where the network runs.")
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Random seed; sessions with one seed share their generation 0 network."
    )
    search: Literal["gumbel", "puct"] = Field(
        "gumbel", description="Root search: Gumbel sequential halving (learns from few simulations) or PUCT."
    )
    selfplay_simulations: int = Field(32, ge=1, le=100_000, description="Simulations of a full search per move.")
    gumbel_considered: int = Field(
        16, ge=1, le=256, description="Root moves sampled by Gumbel search (16: measured, README)."
    )
    full_search_prob: float = Field(
        0.25, ge=0, le=1, description="Share of moves given the full search and kept as policy targets (playout cap)."
    )
    fast_simulations: int = Field(8, ge=1, le=100_000, description="Simulations of a fast search per move.")
    late_search_generation: int | None = Field(
        100,
        ge=0,
        le=10**6,
        description="From this generation on, self-play's full and fast searches use LATE_SEARCH_SCALE times "
        "SELFPLAY_SIMULATIONS and FAST_SIMULATIONS (KataGo raises its visits as the net learns; 100: measured, "
        "docs/strength.md); evaluation keeps SELFPLAY_SIMULATIONS; empty = never.",
    )
    late_search_scale: float = Field(
        2.0, ge=1, le=16, description="With LATE_SEARCH_GENERATION: how many times the simulations late searches use."
    )
    selfplay_parallel_games: int = Field(
        64, ge=1, le=4096, description="Games a worker keeps in flight, so network calls stay batched."
    )
    temperature_plies: int = Field(
        30,
        ge=0,
        le=10_000,
        description="Plies of a game whose moves are sampled with temperature; later ones take the best.",
    )
    selfplay_openings: str = Field(
        "book",
        max_length=4096,
        description="Where self-play games start: empty = the initial position; book = a line of the "
        "evaluation opening suite picked by the game's seed; or a path to a text file of opening lines "
        "(UCI or SAN moves from the initial position, one line per opening).",
    )
    adjudication: Literal["material", "none"] = Field(
        "material",
        description="Result of a self-play game at the ply cap: material lead of ADJUDICATION_MARGIN "
        "wins, else a draw.",
    )
    adjudication_margin: int = Field(
        1, ge=1, le=39, description="Material lead, in pawns, that wins at the cap (and at VALUE_HORIZON_PLIES)."
    )
    value_horizon_plies: int = Field(
        4,
        ge=0,
        le=10_000,
        description="Value target of a position more than this many plies from the game's end: "
        "the game adjudicated by material (ADJUDICATION_MARGIN) that many plies later; 0 = the game's result.",
    )
    value_material_scale: float = Field(
        5.0,
        ge=0,
        le=100,
        description="With VALUE_HORIZON_PLIES, the target is graded: tanh(material balance that "
        "many plies later / this many pawns); 0 = adjudicated win/draw/loss (ADJUDICATION_MARGIN).",
    )
    value_material_decay_positions: int | None = Field(
        600_000,
        ge=0,
        le=10**9,
        description="The material signal's share of the value target falls linearly from 1 to 0 over "
        "this many positions learned, leaving the game's result; 0 = the result from the start; "
        "empty = never (the value learns material only).",
    )
    aux_material_weight: float = Field(
        0.5,
        ge=0,
        le=100,
        description="Loss weight of a training-only auxiliary head that learns the material signal "
        "(VALUE_HORIZON_PLIES, VALUE_MATERIAL_SCALE) beside the value; 0 = no such head.",
    )
    value_root_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the search's root value in the result part of the value target: "
        "(1 - w) * the game's result + w * the position's root value (lc0's q-ratio); 0 = the result alone.",
    )
    resign_threshold: float | None = Field(
        None, ge=-1, lt=0, description="Resign when the root value falls below this; empty = never resign."
    )
    replay_buffer_positions: int = Field(
        50_000, ge=1, le=10_000_000, description="Positions kept in the replay buffer."
    )
    replay_window_positions: int = Field(
        2_000,
        ge=0,
        le=100_000_000,
        description="Training samples favour recent positions: a window of all positions up to this many, "
        "then growing ever more slowly than the data (KataGo's); 0 = uniform over the replay buffer.",
    )
    train_samples_per_position: float = Field(
        2.0, gt=0, le=1000, description="Training samples drawn per new position (training/self-play ratio)."
    )
    torch_threads: int | None = Field(
        None, ge=1, le=512, description="Torch threads per worker; empty = CPU cores / MAX_CONCURRENT_SESSIONS."
    )
    inference_backend: InferenceBackend = Field(
        InferenceBackend.AUTO,
        description="The network's runtime: torch (folded float32), torch-bf16 (where the CPU or GPU computes "
        "bfloat16), onnxruntime; auto = the fastest of those measured on this machine at the self-play batch "
        "(probed once, cached beside the checkpoints).",
    )

    # Fleet
    selfplay_actors: Annotated[int, at.Ge(1), at.Le(256)] | Literal["auto"] = Field(
        "auto",
        description="Self-play actors of a session: 1 plays in the learner's process, interleaved as one "
        "worker (deterministic under SEED); 2 or more run in processes of their own beside the learner; "
        "auto = the cores a session gets (CPU cores / MAX_CONCURRENT_SESSIONS) minus one for the learner, at least 1.",
    )
    max_generation_lag: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description="Drop a game in flight once the newest generation is more than this many ahead of the one "
        "that started it (it is never stored nor learned); empty = no bound (the lag is measured).",
    )

    # Evaluation (eval_uci_engine precedes eval_opponents: the latter's check reads it)
    eval_interval_games: int = Field(
        100, ge=1, le=100_000_000, description="Evaluate the newest checkpoint every this many games."
    )
    eval_games: int = Field(
        40,
        ge=2,
        le=100_000,
        description="Games per evaluation match; even: openings are played in colour-swapped pairs.",
    )
    eval_simulations: int | None = Field(
        None, ge=1, le=100_000, description="Simulations per move in evaluation; empty = SELFPLAY_SIMULATIONS."
    )
    eval_uci_engine: str | None = Field(
        None, description="Command of an external UCI engine opponent, e.g. stockfish; needed for 'uci'."
    )
    eval_uci_elo: int | None = Field(
        None,
        ge=1350,
        le=2850,
        description="UCI_Elo of the UCI opponent (Debian Stockfish 15's range); empty = full strength.",
    )
    eval_opponents: Annotated[list[OpponentEntry], NoDecode] = Field(
        ["gen0", "random", "greedy"],
        min_length=1,
        description="Evaluation anchors (in the environment: comma-separated): gen0, random, greedy, uci, "
        "stockfish-s{SKILL}-d{DEPTH} (Stockfish at that Skill Level, 0-20, and fixed depth, 1-30).",
    )
    eval_adjudication: Adjudication = Field(
        Adjudication.AUTO,
        description="Result of an evaluation game at its cap: stockfish (Stockfish's evaluation, "
        "EVAL_ADJUDICATION_CP at EVAL_ADJUDICATION_DEPTH), material (a 3-pawn lead wins), none (a draw); "
        "auto = stockfish when installed, else material.",
    )
    eval_adjudication_cp: int = Field(
        300, ge=1, le=10_000, description="Stockfish adjudication: a lead of this many centipawns wins, else a draw."
    )
    eval_adjudication_depth: int = Field(
        10,
        ge=1,
        le=30,
        description="Stockfish adjudication: search depth (10: agreed with depth 18 as often as 12 and 14 did, "
        "at about 12 ms a position; README, bench/adjudication_depth.py).",
    )
    elo_anchor: float = Field(1500.0, description="Rating given to generation 0 in the rating list.")
    gating: bool = Field(False, description="Only an SPRT-accepted checkpoint becomes the self-play network.")
    sprt_elo0: float = Field(0.0, description="SPRT null hypothesis: Elo gain over the last accepted checkpoint.")
    sprt_elo1: float = Field(50.0, description="SPRT alternative hypothesis: Elo gain; above SPRT_ELO0.")
    sprt_alpha: float = Field(0.05, gt=0, lt=0.5, description="SPRT false-positive rate.")
    sprt_beta: float = Field(0.05, gt=0, lt=0.5, description="SPRT false-negative rate.")

    @field_validator(
        "resign_threshold",
        "torch_threads",
        "max_generation_lag",
        "value_material_decay_positions",
        "learning_rate_decay_positions",
        "late_search_generation",
        "eval_simulations",
        "eval_uci_engine",
        "eval_uci_elo",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return _empty_to_none(value)

    @field_validator("selfplay_openings")
    @classmethod
    def _check_openings(cls, value: str) -> str:
        from .engine.openings import selfplay_openings

        selfplay_openings(value)  # a bad book stops start-up, not the first game
        return value.strip()

    @field_validator("eval_opponents", mode="before")
    @classmethod
    def _split_opponents(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("eval_opponents")
    @classmethod
    def _check_opponents(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if OpponentKind.UCI in value and not info.data.get("eval_uci_engine"):
            raise ValueError("'uci' needs EVAL_UCI_ENGINE (a UCI engine command, e.g. stockfish)")
        return list(dict.fromkeys(value))

    @field_validator("eval_adjudication")
    @classmethod
    def _check_adjudication(cls, value: Adjudication) -> Adjudication:
        if value is Adjudication.STOCKFISH and stockfish_binary() is None:
            raise ValueError(f"stockfish needs Stockfish, {_NO_STOCKFISH}; auto falls back to material")
        return value

    @field_validator("inference_backend")
    @classmethod
    def _check_backend(cls, value: InferenceBackend, info: ValidationInfo) -> InferenceBackend:
        reason = inference.unavailable(value, info.data.get("device", "cpu"))
        if reason is not None:
            raise ValueError(f"{value.value} cannot run here: {reason}; auto picks among those that can")
        return value

    @field_validator("eval_games")
    @classmethod
    def _check_even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("expected an even integer >= 2 (games are played in colour-swapped pairs)")
        return value

    @field_validator("sprt_elo1")
    @classmethod
    def _check_sprt(cls, value: float, info: ValidationInfo) -> float:
        elo0 = info.data.get("sprt_elo0")
        if elo0 is not None and value <= elo0:
            raise ValueError(f"expected a number > SPRT_ELO0 ({elo0:g})")
        return value


class SessionConfig(SessionFields):
    """One session's configuration; the body of POST /v1/sessions, so unknown fields are errors.
    Also what a worker reads (`WorkerSpec.config`): typed, validated and picklable."""

    model_config = ConfigDict(extra="forbid")


ADDED_SESSION_FIELDS: dict[str, Any] = {
    "value_horizon_plies": 0,
    "value_material_scale": 0.0,
    "selfplay_actors": 1,
    "value_material_decay_positions": None,
    "learning_rate_decay_positions": None,
    "late_search_generation": None,
    "aux_material_weight": 0.0,
    "eval_adjudication": Adjudication.MATERIAL,
    "selfplay_openings": "",
    "replay_window_positions": 0,
    "inference_backend": InferenceBackend.TORCH,
    "value_root_weight": 0.0,
}
"""Session fields added after sessions were first stored, each with the value that keeps an
older stored session doing what it did when it resumes (it learned the game's result, or
the material rule alone with no auxiliary head; one worker played and learned; its games
started at the initial position; it sampled the replay buffer uniformly; its evaluations
were adjudicated on material, so its rating list goes on under one yardstick and, under
GATING, its SPRT decides as before; its network ran in float32 torch, so its games go on
rounding as they did)."""


def stored_session_config(stored: dict[str, Any]) -> SessionConfig:
    """A stored session's config as its worker reads it: fields it predates take their
    `ADDED_SESSION_FIELDS` value, not today's default, so an upgrade never changes a running
    session's training (nor fails it on a missing key); a key no field has any more (a
    setting removed by a later version) is left out rather than refused."""
    known = {key: value for key, value in stored.items() if key in SessionConfig.model_fields}
    return SessionConfig.model_validate({**ADDED_SESSION_FIELDS, **known})


class Settings(SessionFields, BaseSettings):
    """The service's settings: environment variables (any case) over `.env` over defaults."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", case_sensitive=False, extra="ignore")

    # Metrics
    enable_prometheus: bool = Field(True, description="Export Prometheus metrics.")
    enable_wandb: bool = Field(False, description="Send metrics to Weights & Biases.")
    enable_braintrust: bool = Field(False, description="Send metrics to Braintrust.")
    metrics_export_interval: float = Field(30.0, gt=0, description="Seconds between metric exports to sinks.")
    prometheus_port: int = Field(8000, ge=1, le=65535, description="Port of the metrics endpoint of a headless `run`.")

    # Output
    report_dir: Path = Field(Path("./reports"), description="Where reports (HTML + JSON) are written.")
    checkpoint_dir: Path = Field(Path("./checkpoints"), description="Where checkpoint files are stored.")

    # Alerts
    alert_elo_regression: float = Field(
        -100.0, lt=0, description="Alert when the rating falls by more than this many Elo (negative)."
    )
    alert_loss_spike_factor: float = Field(
        3.0, gt=1, description="Alert when the training loss exceeds its recent mean by this factor."
    )
    alert_memory_growth_mb: float = Field(
        500.0, gt=0, description="Alert when a worker's memory grows by this many MB."
    )
    alert_timeout_rate: float = Field(0.1, ge=0, le=1, description="Alert when this share of worker calls times out.")

    # Service
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/continuous-play.db",
        min_length=1,
        repr=False,
        description="SQLAlchemy async URL: SQLite (default) or postgresql+asyncpg://.",
    )
    worker_backend: Literal["process", "ray", "inline"] = Field(
        "process", description="Worker pool: spawned processes, a Ray cluster, or inline (unit tests only)."
    )
    workers: int | None = Field(None, ge=1, le=256, description="Worker processes; empty = MAX_CONCURRENT_SESSIONS.")
    ray_address: str = Field("local", min_length=1, description="Ray cluster address when WORKER_BACKEND=ray.")
    api_keys: Annotated[list[NonEmptyStr], NoDecode] = Field(
        [],
        repr=False,
        description="Comma-separated bearer keys; when set, mutating routes and WebSockets need one.",
    )
    max_concurrent_sessions: int = Field(2, ge=1, le=64, description="Sessions running at once.")
    host: str = Field("127.0.0.1", min_length=1, description="Address the API binds; only loopback without API_KEYS.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the API.")
    ws_queue_size: int = Field(
        1000, ge=1, le=10_000_000, description="Events queued per WebSocket client before a slow one is closed (4008)."
    )
    metrics_public: bool = Field(False, description="Serve /metrics without a key when API_KEYS is set.")
    cors_origins: Annotated[list[NonEmptyStr], NoDecode] = Field(
        [], description="Comma-separated allowed CORS origins; empty = CORS off."
    )
    allowed_hosts: Annotated[list[NonEmptyStr], NoDecode] = Field(
        [],
        description="Comma-separated Host names served beyond the loopback names and HOST (DNS rebinding "
        "guard); * = any.",
    )

    @field_validator("api_keys", "cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        """Names as a Host header carries them, compared without case and port."""
        names = [name.lower() for name in value]
        for name in names:
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a host name: give names or addresses without scheme or port "
                    "(chess.example.org, 10.0.0.5, [fd00::5]), or * for any"
                )
        return names

    @field_validator("workers", mode="before")
    @classmethod
    def _empty_workers(cls, value: Any) -> Any:
        return _empty_to_none(value)

    def resolved_torch_threads(self) -> int:
        """TORCH_THREADS, or the cores shared evenly among the concurrent sessions."""
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, (os.cpu_count() or 1) // self.max_concurrent_sessions)

    def resolved_workers(self) -> int:
        """WORKERS, or one worker per concurrent session."""
        return self.workers if self.workers is not None else self.max_concurrent_sessions

    def session_config(self, **overrides: Any) -> SessionConfig:
        """This service's per-session values with `overrides` applied and validated."""
        values = self.model_dump(include=set(SessionConfig.model_fields))
        return SessionConfig.model_validate({**values, **overrides})


class SettingsError(Exception):
    """A bad setting; str() is one line naming the variable and what it accepts."""


# What a variable accepts beyond its type and bounds, for the error line.
_NOTES = {
    "max_games": "0 = no limit",
    "max_moves_per_game": "plies",
    "adjudication_margin": "pawns",
    "value_material_scale": "pawns; 0 = win/draw/loss",
    "replay_window_positions": "0 = uniform over the buffer",
    "resign_threshold": "empty = off",
    "value_material_decay_positions": "positions; 0 = the result only; empty = never",
    "learning_rate_decay_positions": "positions; empty = a constant learning rate",
    "late_search_generation": "empty = never",
    "value_root_weight": "0 = the game's result alone, 1 = the root value alone",
    "torch_threads": "empty = derive from cores",
    "eval_simulations": "empty = SELFPLAY_SIMULATIONS",
    "eval_uci_elo": "empty = full strength",
    "workers": "empty = MAX_CONCURRENT_SESSIONS",
}
_SECRET = {"api_keys", "database_url"}  # never echo their values
_ACCEPTS = {
    "selfplay_actors": "an integer from 1 to 256, or auto",
    "selfplay_openings": "empty, book, or the path of a text file of opening lines (UCI or SAN moves)",
}
"""What a variable whose type reads badly in words (a union) accepts."""


def _type_phrase(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        return _type_phrase(get_args(tp)[0])
    if origin is Literal:
        return "one of " + "|".join(map(str, get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + "|".join(str(member.value) for member in tp)
    if origin is list:
        item = get_args(tp)[0]
        inner = "|".join(get_args(item)) if get_origin(item) is Literal else "non-empty strings"
        return "a comma-separated list of " + inner
    return {bool: "true or false", int: "an integer", float: "a number", Path: "a path"}.get(tp, "a string")


def _accepts(name: str) -> str:
    if name in _ACCEPTS:
        return _ACCEPTS[name]
    field = Settings.model_fields[name]
    tp, optional = field.annotation, False
    if get_origin(tp) in (Union, types.UnionType):
        tp, optional = next(a for a in get_args(tp) if a is not type(None)), True
    bounds = {}
    for meta in field.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if isinstance(meta, getattr(at, key.capitalize())):
                bounds[key] = getattr(meta, key)
    text = _type_phrase(tp)
    if "ge" in bounds and "le" in bounds:
        text += f" from {bounds['ge']} to {bounds['le']}"
    elif bounds:
        ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        text += " " + " and ".join(f"{ops[k]} {v}" for k, v in bounds.items())
    if any(isinstance(meta, at.MinLen) for meta in field.metadata):
        text = "a non-empty string" if tp is str else text + ", at least one"
    notes = [_NOTES[name]] if name in _NOTES else []
    if optional and name not in _NOTES:
        notes.append("or empty")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _describe(error: ErrorDetails) -> str:
    loc = error.get("loc") or ()
    name = loc[0] if loc and isinstance(loc[0], str) else None
    if name not in Settings.model_fields:
        return f"invalid settings: {error.get('msg', 'invalid value')}"
    shown = "" if name in _SECRET else "=" + repr(error.get("input"))[:80]
    if len(loc) > 1 and isinstance(loc[1], int) and name not in _SECRET:  # one entry of a list
        shown = f" (entry {error.get('input')!r})"
    if error.get("type") == "value_error":
        reason = str(error["ctx"]["error"])
    else:
        reason = "expected " + _accepts(name)
    return f"invalid setting {name.upper()}{shown}: {reason}"


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad variable and what it accepts (settings, CLI overrides)."""
    return "; ".join(dict.fromkeys(_describe(e) for e in exc.errors(include_url=False)))  # a union: once


def session_config_from(settings: Settings, assignments: list[str], **overrides: Any) -> SessionConfig:
    """`settings`' session config with `NAME=VALUE` overrides (the CLI's and benches' `--set`)
    and keyword overrides applied; SettingsError names what is wrong, on one line."""
    values = dict(overrides)
    for item in assignments:
        name, sep, value = item.partition("=")
        key = name.strip().lower()
        if not sep or key not in SessionConfig.model_fields:
            raise SettingsError(
                f"--set {item!r}: expected NAME=VALUE with NAME a per-session setting, e.g. MAX_GAMES=10"
            )
        values[key] = value
    try:
        return settings.session_config(**values)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def load_settings(**kwargs: Any) -> Settings:
    """Settings from the environment and `.env` (kwargs override both), or SettingsError."""
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    except _SourceError as exc:  # a source could not be read or decoded
        raise SettingsError("invalid settings: " + " ".join(str(exc).split())) from None


def settings_or_exit(**kwargs: Any) -> Settings:
    """For the CLI: a bad setting prints its one line on stderr and exits with status 2."""
    try:
        return load_settings(**kwargs)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
