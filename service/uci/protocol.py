"""The UCI protocol's vocabulary: the commands, the engine's options, `go` and its parameters,
and the forms of what the engine prints (`info string` text, `score cp`).

Pure parsing and formatting: nothing here runs a search or touches a stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import chess

ENGINE_NAME = "continuous-play"
AUTHOR = "the continuous-play developers"

DEFAULT_SIMULATIONS = 400
MAX_SIMULATIONS = 1_000_000
MAX_THREADS = 512
DEFAULT_MOVE_OVERHEAD_MS = 30
DEFAULT_HASH_MB = 2048
MAX_HASH_MB = 1_048_576
CP_SCALE = 111.714640912  # lc0's centipawn mapping of q
Q_SCALE = 1.5620688421

COMMANDS = (
    "uci",
    "debug",
    "isready",
    "setoption",
    "register",
    "ucinewgame",
    "position",
    "go",
    "stop",
    "ponderhit",
    "quit",
)
GO_NUMBERS = ("wtime", "btime", "winc", "binc", "movestogo", "depth", "nodes", "mate", "movetime")
GO_FLAGS = ("infinite", "ponder")
GO_KEYWORDS = GO_NUMBERS + GO_FLAGS + ("searchmoves",)


def package_version() -> str:
    """The installed package's version, for `id name` ("dev" in a source tree)."""
    try:
        from importlib.metadata import version

        return version("continuous-play")
    except Exception:  # not installed: running from a source tree
        return "dev"


def cp_from_value(q: float) -> int:
    """lc0's mapping of a value in [-1, 1] (side to move's view) to centipawns."""
    q = max(-1.0, min(1.0, float(q)))
    return int(round(CP_SCALE * math.tan(Q_SCALE * q)))


def printable(text: str, limit: int = 80) -> str:
    """`text` made safe for one `info string` line: printable ASCII, at most `limit` characters."""
    clean = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def info_string_line(text: str) -> str:
    """The `info string` line that carries `text` to the GUI (made printable, at most 200 characters)."""
    return "info string " + printable(text, 200)


# -- options ---------------------------------------------------------------------------------


@dataclass
class Option:
    """One UCI option: how `uci` announces it and how `setoption` reads its value."""

    name: str
    kind: str  # spin | check | combo
    default: Any
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()

    def line(self) -> str:
        """The `option name ...` line `uci` sends."""
        default = str(self.default).lower() if self.kind == "check" else self.default
        text = f"option name {self.name} type {self.kind} default {default}"
        if self.kind == "spin":
            text += f" min {self.min} max {self.max}"
        if self.kind == "combo":
            text += "".join(f" var {c}" for c in self.choices)
        return text

    def parse(self, raw: str) -> Any:
        """The value `raw` stands for; ValueError naming what the option accepts."""
        raw = raw.strip()
        if self.kind == "spin":
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"expected an integer from {self.min} to {self.max}") from None
            assert self.min is not None and self.max is not None  # a spin option is declared with its bounds
            if not self.min <= value <= self.max:
                raise ValueError(f"expected an integer from {self.min} to {self.max}")
            return value
        if self.kind == "check":
            if raw.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return raw.lower() == "true"
        for choice in self.choices:
            if raw.lower() == choice.lower():
                return choice
        raise ValueError("expected one of " + ", ".join(self.choices))


def engine_options(simulations: int, threads: int, algorithm: str) -> dict[str, Option]:
    """The engine's options by lower-case name (`setoption` names are case-insensitive), in the
    order `uci` announces them; the arguments are defaults, clamped to what the options accept."""
    return {
        o.name.lower(): o
        for o in (
            Option("Simulations", "spin", min(max(int(simulations), 1), MAX_SIMULATIONS), 1, MAX_SIMULATIONS),
            Option("Threads", "spin", min(max(int(threads), 1), MAX_THREADS), 1, MAX_THREADS),
            Option(
                "Algorithm",
                "combo",
                algorithm if algorithm in ("gumbel", "puct") else "gumbel",
                choices=("gumbel", "puct"),
            ),
            Option("MoveOverhead", "spin", DEFAULT_MOVE_OVERHEAD_MS, 0, 10_000),
            Option("Hash", "spin", DEFAULT_HASH_MB, 16, MAX_HASH_MB),
            Option("Ponder", "check", False),
        )
    }


# -- go --------------------------------------------------------------------------------------


@dataclass
class GoParams:
    """A parsed `go` command; times in milliseconds as sent."""

    wtime: float | None = None
    btime: float | None = None
    winc: float | None = None
    binc: float | None = None
    movestogo: int | None = None
    depth: int | None = None
    nodes: int | None = None
    mate: int | None = None
    movetime: float | None = None
    infinite: bool = False
    ponder: bool = False
    searchmoves: list[chess.Move] = field(default_factory=list)


def parse_go(tokens: list[str], board: chess.Board) -> tuple[GoParams, list[str]]:
    """`go`'s parameters (the tokens after `go`) and a warning per token that was dropped."""
    go = GoParams()
    warnings: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i].lower()
        i += 1
        if token in GO_FLAGS:
            setattr(go, token, True)
        elif token in GO_NUMBERS:
            if i >= len(tokens) or tokens[i].lower() in GO_KEYWORDS:
                warnings.append(f"go {token} needs a number; ignored")
                continue
            raw = tokens[i]
            i += 1
            try:
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError
            except ValueError:
                warnings.append(f"go {token} {printable(raw, 20)}: not a number; ignored")
                continue
            if token in ("wtime", "btime"):
                setattr(go, token, value)  # may be negative when a clock ran out: read as 0
            elif value < 0 or (token in ("depth", "nodes", "movestogo", "mate") and value < 1):
                warnings.append(f"go {token} {printable(raw, 20)}: out of range; ignored")
            elif token in ("depth", "nodes", "movestogo", "mate"):
                setattr(go, token, min(int(value), 10**12))
            else:
                setattr(go, token, value)
        elif token == "searchmoves":
            while i < len(tokens) and tokens[i].lower() not in GO_KEYWORDS:
                raw = tokens[i]
                i += 1
                try:
                    move = board.parse_uci(raw)
                    if not move:
                        raise ValueError("null move")
                    go.searchmoves.append(move)
                except ValueError:
                    warnings.append(f"go searchmoves {printable(raw, 20)}: not a legal move; ignored")
        else:
            warnings.append(f"go: unknown token {printable(tokens[i - 1], 20)}; ignored")
    if go.mate is not None:
        warnings.append("go mate is not supported: searching the Simulations budget")
    return go, warnings
