"""Evaluation matches: a candidate against an opponent over paired openings, batched.

Every game of the match is in flight at once. Sides that search (network + MCTS) keep
one tree per game on their own copy of the board and advance it with every move played,
so trees are reused; in each step all waiting searches of one network share one call,
as in self-play. Sides that answer at once (random, material-greedy, a UCI engine) just
move. Each opening is played twice with colours swapped: the pair's total score gives
the pentanomial counts fishtest-style statistics need.

Every match plays by the same rules, whatever the session's self-play settings: a game is
cut `EVAL_MAX_PLIES` plies after its opening and adjudicated there (by default on material:
a lead of `EVAL_ADJUDICATION_MARGIN` pawns wins, else a draw; the evaluation passes
Stockfish's verdict as an `adjudicator`, built outside so this module starts no process).
Self-play's move cap and margin are training levers; were the yardstick to follow them, a
session with shorter games or a smaller margin would score more against the same anchors,
and one rating list over several sessions (GET /v1/ratings) would mix incomparable results
(`yardstick.Yardstick` names the rules each result was made under).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import chess

from . import mcts
from .openings import opening_board, suite
from .players import Player
from .selfplay import adjudicate, game_over


@dataclass(frozen=True)
class SearchSide:
    """A side that plays by searching with a network (no root noise: evaluation plays its best)."""

    evaluator: Any
    simulations: int
    algorithm: str = "gumbel"
    gumbel_considered: int = 16

    def config(self) -> mcts.SearchConfig:
        return mcts.SearchConfig(
            algorithm=self.algorithm,
            simulations=self.simulations,
            gumbel_considered=self.gumbel_considered,
            gumbel_scale=0.0,
            dirichlet_epsilon=0.0,
        )


Side = SearchSide | Player

Adjudicator = Callable[[chess.Board], str]
"""Scores a game cut at the cap: its final board -> 1-0 | 0-1 | 1/2-1/2."""

EVAL_MAX_PLIES = 150
"""Plies an evaluation game may last after its opening before it is adjudicated."""
EVAL_ADJUDICATION_MARGIN = 3
"""Pawns (P1 N3 B3 R5 Q9) of material lead that win an adjudicated evaluation game."""


@dataclass
class GameOutcome:
    """One match game, from the candidate's side."""

    opening: str
    candidate_white: bool
    result: str
    termination: str
    moves: list[str]

    @property
    def score(self) -> float:
        """The candidate's points: 1, 0.5 or 0."""
        if self.result == "1/2-1/2":
            return 0.5
        return 1.0 if (self.result == "1-0") == self.candidate_white else 0.0

    @property
    def adjudicated(self) -> bool:
        return self.termination == "move_cap"


@dataclass
class MatchResult:
    """A finished match; games 2k and 2k+1 share an opening with colours swapped."""

    games: list[GameOutcome] = field(default_factory=list)

    @property
    def wins(self) -> int:
        return sum(g.score == 1.0 for g in self.games)

    @property
    def draws(self) -> int:
        return sum(g.score == 0.5 for g in self.games)

    @property
    def losses(self) -> int:
        return sum(g.score == 0.0 for g in self.games)

    def pentanomial(self) -> list[int]:
        """Counts of pair scores 0, 0.5, 1, 1.5, 2 (fishtest's order: LL, LD, DD+WL, WD, WW)."""
        counts = [0] * 5
        for a, b in zip(self.games[::2], self.games[1::2]):
            counts[int(round((a.score + b.score) * 2))] += 1
        return counts


class _Game:
    __slots__ = ("index", "opening", "board", "sides", "searches", "thinking", "outcome")

    def __init__(
        self, index: int, opening: str, candidate_white: bool, candidate: Side, opponent: Side, rng: random.Random
    ) -> None:
        self.index = index
        self.opening = opening
        self.board = opening_board(opening)
        white, black = (candidate, opponent) if candidate_white else (opponent, candidate)
        self.sides = {chess.WHITE: white, chess.BLACK: black}
        self.searches: dict[bool, mcts.Search] = {
            colour: mcts.Search(self.board.copy(), side.config(), rng)
            for colour, side in self.sides.items()
            if isinstance(side, SearchSide)
        }
        self.thinking = False
        self.outcome: GameOutcome | None = None


def play_match(
    candidate: Side,
    opponent: Side,
    *,
    pairs: int,
    max_plies: int = EVAL_MAX_PLIES,
    adjudication: str = "material",
    margin: int = EVAL_ADJUDICATION_MARGIN,
    adjudicator: Adjudicator | None = None,
    seed: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
) -> MatchResult | None:
    """Play `pairs` openings twice each (colours swapped); `max_plies` counts from the opening.
    At the cap `adjudication` (material | none, with `margin`) scores a game, or `adjudicator`
    when given (the rule `stockfish` needs one). Returns None when `should_stop()` (asked once
    per step) interrupts the match."""
    if adjudicator is None:
        if adjudication not in ("material", "none"):
            raise ValueError(f"adjudication {adjudication!r} needs an adjudicator")
        rule = adjudication

        def by_rule(board: chess.Board) -> str:
            return adjudicate(board, rule, margin)

        adjudicator = by_rule
    rng = random.Random(seed)
    games = [
        _Game(i, name, i % 2 == 0, candidate, opponent, rng)
        for i, name in enumerate(n for n in suite(pairs) for _ in range(2))
    ]
    start_ply = {g.index: g.board.ply() for g in games}
    active = [g for g in games if not _maybe_over(g, start_ply[g.index], max_plies, adjudicator)]
    while active:
        if should_stop():
            return None
        waiting: dict[int, tuple[Any, list[mcts.Search]]] = {}
        for game in active:
            turn = game.board.turn
            side = game.sides[turn]
            if not isinstance(side, SearchSide):
                _play(game, side.choose(game.board))
                continue
            search = game.searches[turn]
            if not game.thinking:
                search.start(side.simulations)
                game.thinking = True
            if search.done:
                game.thinking = False
                _play(game, search.best_move())
                continue
            waiting.setdefault(id(side.evaluator), (side.evaluator, []))[1].append(search)
        for evaluator, searches in waiting.values():
            mcts.step(searches, evaluator)
        active = [g for g in active if not _maybe_over(g, start_ply[g.index], max_plies, adjudicator)]
    outcomes: list[GameOutcome] = []
    for g in games:
        assert g.outcome is not None  # a game leaves `active` only with its outcome
        outcomes.append(g.outcome)
    return MatchResult(outcomes)


def _play(game: _Game, move: chess.Move) -> None:
    game.board.push(move)
    for search in game.searches.values():
        search.advance(move)


def _maybe_over(game: _Game, start: int, max_plies: int, adjudicator: Adjudicator) -> bool:
    if game.outcome is not None:
        return True
    if game.thinking:
        return False
    board = game.board
    over = game_over(board, list(board.legal_moves))
    if over is None and board.ply() - start >= max_plies:
        over = (adjudicator(board), "move_cap")
    if over is None:
        return False
    game.outcome = GameOutcome(game.opening, game.index % 2 == 0, over[0], over[1], [m.uci() for m in board.move_stack])
    return True
