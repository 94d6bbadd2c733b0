"""The yardstick of an evaluation: the rules its results were made under, and Stockfish's
adjudication of a game cut at the cap.

A rating means something only beside the rules that produced it. Material adjudication at
150 plies rewards a net that wins a pawn and shuffles; Stockfish's evaluation at the cap does
not, so the same games score differently under the two. Every stored evaluation therefore
carries its yardstick (`str(Yardstick)`, e.g. `cap150/stockfish300cp@d10`), and rating lists
are fitted per yardstick, never over a mix. The opponent is not part of it: each opponent is
its own player in the list, and a ladder entry's name (`stockfish-s0-d1`) already says how it
plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import chess
import chess.engine

from .arena import EVAL_ADJUDICATION_MARGIN
from .players import stockfish_binary


class Adjudication(StrEnum):
    """EVAL_ADJUDICATION: how an evaluation game cut at the cap is scored."""

    AUTO = "auto"  # stockfish when installed, else material
    STOCKFISH = "stockfish"  # Stockfish's evaluation: EVAL_ADJUDICATION_CP at EVAL_ADJUDICATION_DEPTH
    MATERIAL = "material"  # a lead of EVAL_ADJUDICATION_MARGIN pawns wins
    NONE = "none"  # a draw


def resolve(rule: Adjudication | str) -> Adjudication:
    """`auto` as the rule it stands for on this machine; any other rule as it is."""
    rule = Adjudication(rule)
    if rule is Adjudication.AUTO:
        return Adjudication.STOCKFISH if stockfish_binary() else Adjudication.MATERIAL
    return rule


LEGACY = "cap150/material3"
"""The yardstick of every evaluation stored before yardsticks were recorded (migration 0004)."""


@dataclass(frozen=True)
class Yardstick:
    """The rules of an evaluation: the cap (plies after the opening) and how a game cut there
    is scored; `str()` is its canonical name, stored with every evaluation. `auto` must be
    resolved first: the name says what was done, not what was asked for."""

    max_plies: int
    adjudication: Adjudication
    margin: int = EVAL_ADJUDICATION_MARGIN  # pawns, under material
    cp: int = 300  # centipawns, under stockfish
    depth: int = 10  # Stockfish's search depth, under stockfish

    def __post_init__(self) -> None:
        if self.adjudication is Adjudication.AUTO:
            raise ValueError("resolve 'auto' before naming a yardstick")

    def __str__(self) -> str:
        if self.adjudication is Adjudication.STOCKFISH:
            rule = f"stockfish{self.cp}cp@d{self.depth}"
        elif self.adjudication is Adjudication.MATERIAL:
            rule = f"material{self.margin}"
        else:
            rule = "none"
        return f"cap{self.max_plies}/{rule}"


def score_result(score: chess.engine.PovScore, cp: int) -> str:
    """A game's result from Stockfish's score of its final position: a mate for either side
    wins for the mating side; else a lead of at least `cp` centipawns wins; else a draw."""
    white = score.white()
    mate = white.mate()
    if mate is not None:
        return "1-0" if mate > 0 else "0-1"  # mate 0 (side to move is mated) cannot reach here: game_over
    value = white.score()
    assert value is not None  # not a mate score
    if value >= cp:
        return "1-0"
    if value <= -cp:
        return "0-1"
    return "1/2-1/2"


class StockfishAdjudicator:
    """Scores a game cut at the cap by Stockfish's evaluation (full strength, one thread, a
    fixed depth). The process starts at the first game it scores, so a match whose games all
    end before the cap starts none; one adjudicator per match, closed after it."""

    def __init__(self, cp: int, depth: int, binary: str | None = None) -> None:
        self.cp = cp
        self.limit = chess.engine.Limit(depth=depth)
        self.binary = binary
        self._engine: chess.engine.SimpleEngine | None = None

    def __call__(self, board: chess.Board) -> str:
        if self._engine is None:
            binary = self.binary or stockfish_binary()
            if binary is None:
                raise RuntimeError("Stockfish adjudication needs Stockfish (Debian: apt-get install stockfish)")
            self._engine = chess.engine.SimpleEngine.popen_uci(binary)
            self._engine.configure({"Threads": 1})
        info = self._engine.analyse(board, self.limit)
        return score_result(info["score"], self.cp)

    def close(self) -> None:
        """Quit the process, if one started; safe to call twice."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.quit()
