"""Players: anything that picks a move in a position, behind one `Player` protocol.

Evaluation matches play the learned engine against fixed anchors (a random mover, a
material-greedy mover, the Stockfish ladder, an external UCI engine), and the UCI mode drives
the learned engine from a GUI: both only need `choose(board) -> move`. `play_game` plays
one game between two players under the same rules and adjudication as self-play, so
evaluation games end the way self-play games do.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import chess
import chess.engine

from . import mcts
from .selfplay import PIECE_VALUES, adjudicate, game_over


@runtime_checkable
class Player(Protocol):
    """What evaluation and UCI need of an engine. `choose` must leave `board` as it found it."""

    name: str

    def choose(self, board: chess.Board) -> chess.Move: ...

    def close(self) -> None: ...


class _SeededPlayer:
    """An anchor with its own seeded RNG (its games repeat for a seed), and nothing to close."""

    def __init__(self, seed: int = 0, *, name: str) -> None:
        self.name = name
        self.rng = random.Random(seed)

    @staticmethod
    def legal(board: chess.Board) -> list[chess.Move]:
        """The legal moves; ValueError when there are none (the game is over)."""
        legal = list(board.legal_moves)
        if not legal:
            raise ValueError("no legal moves: the game is over")
        return legal

    def close(self) -> None:
        pass


class RandomPlayer(_SeededPlayer):
    """Uniform over the legal moves: the weakest anchor, with its own seeded RNG."""

    def __init__(self, seed: int = 0, *, name: str = "random") -> None:
        super().__init__(seed, name=name)

    def choose(self, board: chess.Board) -> chess.Move:
        return self.rng.choice(self.legal(board))


def material_gain(board: chess.Board, move: chess.Move) -> int:
    """Pawns won at once by `move`: the captured piece plus a promotion's gain over the pawn."""
    gain = 0
    if board.is_en_passant(move):
        gain = PIECE_VALUES[chess.PAWN]
    elif board.is_capture(move):
        captured = board.piece_type_at(move.to_square)
        gain = PIECE_VALUES.get(captured, 0) if captured is not None else 0
    if move.promotion:
        gain += PIECE_VALUES[move.promotion] - PIECE_VALUES[chess.PAWN]
    return gain


class GreedyPlayer(_SeededPlayer):
    """One ply of material greed: mate in one if there is one, else the move that wins the most
    material at once (ties at random), else a random move. It never looks at the reply, so it
    hangs pieces, which is what makes it a useful low anchor just above random."""

    def __init__(self, seed: int = 0, *, name: str = "greedy") -> None:
        super().__init__(seed, name=name)

    def choose(self, board: chess.Board) -> chess.Move:
        legal = self.legal(board)
        mates = []
        for move in legal:
            if board.gives_check(move):
                board.push(move)
                mate = board.is_checkmate()
                board.pop()
                if mate:
                    mates.append(move)
        if mates:
            return self.rng.choice(mates)
        gains = [material_gain(board, m) for m in legal]
        best = max(gains)
        if best > 0:
            return self.rng.choice([m for m, g in zip(legal, gains) if g == best])
        return self.rng.choice(legal)


class MCTSPlayer:
    """The learned engine: a network-guided search from the given position, no root noise.

    One game alone cannot fill a batch, so each network call evaluates `leaves_per_step`
    leaves of the same tree (kept apart by virtual loss). With `reuse_tree`, when the new
    position is the last searched one plus one or two moves (our move and the reply), the
    matching subtree becomes the new root, as self-play does.
    """

    def __init__(
        self,
        evaluator,
        *,
        simulations: int,
        algorithm: str = "gumbel",
        seed: int = 0,
        leaves_per_step: int = 8,
        name: str = "mcts",
        gumbel_considered: int = 16,
        reuse_tree: bool = True,
    ) -> None:
        if simulations < 1:
            raise ValueError("simulations must be at least 1")
        if algorithm not in ("gumbel", "puct"):
            raise ValueError(f"unknown search algorithm {algorithm!r}; expected gumbel or puct")
        self.name = name
        self.evaluator = evaluator
        self.simulations = simulations
        self.reuse_tree = reuse_tree
        self.rng = random.Random(seed)
        self.config = mcts.SearchConfig(
            algorithm=algorithm,
            simulations=simulations,
            gumbel_considered=gumbel_considered,
            gumbel_scale=0.0,
            dirichlet_epsilon=0.0,
            leaves_per_step=max(1, leaves_per_step),
        )
        self.last_value: float | None = None  # root value of the last search, side to move's view
        self.last_policy: dict[chess.Move, float] = {}  # the search's policy over the root's moves
        self.last_simulations = 0  # simulations the last search backed up
        self.last_reused = False  # whether the last search started from a kept subtree
        self._tree: tuple[str, list[chess.Move], mcts.Node] | None = None  # (root fen, moves, root)

    def _reusable(self, board: chess.Board) -> mcts.Node | None:
        """The kept subtree for `board`, if it continues the last searched position by one or two moves."""
        if not self.reuse_tree or self._tree is None:
            return None
        fen, stack, node = self._tree
        extra = len(board.move_stack) - len(stack)
        if extra not in (1, 2) or board.move_stack[: len(stack)] != stack or board.root().fen() != fen:
            return None
        for move in board.move_stack[len(stack) :]:
            try:
                child = node.children[node.moves.index(move)]
            except ValueError:
                return None
            if child is None or not child.evaluated:
                return None
            node = child
        return node

    def choose(self, board: chess.Board) -> chess.Move:
        if not board.legal_moves:
            raise ValueError("no legal moves: the game is over")
        root = self._reusable(board)
        self.last_reused = root is not None
        work = board.copy()  # keeps the move stack: the search needs it for repetitions
        search = mcts.Search(work, self.config, self.rng, root=root)
        search.start(self.simulations)
        mcts.run([search], self.evaluator)
        move = search.best_move()
        moves, probs = search.policy()
        self.last_policy = dict(zip(moves, probs))
        self.last_value = search.root_value()
        self.last_simulations = search.finished
        assert search.root is not None  # a move was named: the search has its root
        self._tree = (board.root().fen(), list(board.move_stack), search.root) if self.reuse_tree else None
        return move

    def reset(self) -> None:
        """Forget the kept tree (a new game)."""
        self._tree = None

    def close(self) -> None:
        self._tree = None


class UciPlayer:
    """An external UCI engine (e.g. Debian's stockfish with UCI_LimitStrength) as an anchor."""

    def __init__(
        self,
        command: str | list[str],
        *,
        options: dict | None = None,
        limit: chess.engine.Limit,
        name: str | None = None,
    ) -> None:
        self.limit = limit
        self.engine = chess.engine.SimpleEngine.popen_uci(command)
        try:
            if options:
                self.engine.configure(options)
        except BaseException:
            self.engine.quit()
            raise
        self.name = name or self.engine.id.get("name") or (command if isinstance(command, str) else command[0])
        self._closed = False

    def choose(self, board: chess.Board) -> chess.Move:
        move = self.engine.play(board, self.limit).move
        if move is None:
            raise RuntimeError(f"{self.name} returned no move")
        return move

    def close(self) -> None:
        """Quit the engine process; safe to call twice."""
        if not self._closed:
            self._closed = True
            self.engine.quit()

    def __enter__(self) -> "UciPlayer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


DEBIAN_STOCKFISH = Path("/usr/games/stockfish")
"""Where Debian's `stockfish` package installs the engine (/usr/games is often not on PATH)."""


def stockfish_binary() -> str | None:
    """Stockfish's path: `stockfish` on PATH, else Debian's; None when it is not installed."""
    found = shutil.which("stockfish")
    if found:
        return found
    return str(DEBIAN_STOCKFISH) if DEBIAN_STOCKFISH.is_file() else None


class OpponentKind(StrEnum):
    """The kinds of EVAL_OPPONENTS entry."""

    GEN0 = "gen0"
    RANDOM = "random"
    GREEDY = "greedy"
    UCI = "uci"  # EVAL_UCI_ENGINE at EVAL_UCI_ELO
    STOCKFISH = "stockfish"  # a rung of the ladder: stockfish-s{SKILL}-d{DEPTH}


_LADDER = re.compile(r"stockfish-s(\d{1,2})-d(\d{1,2})")
SKILL_LEVELS = range(0, 21)
"""Stockfish's `Skill Level` option."""
LADDER_DEPTHS = range(1, 31)


@dataclass(frozen=True)
class Opponent:
    """One parsed EVAL_OPPONENTS entry; `entry` is also its name in ratings and reports."""

    entry: str
    kind: OpponentKind
    skill: int | None = None
    depth: int | None = None


def parse_opponent(entry: str) -> Opponent:
    """An EVAL_OPPONENTS entry (gen0, random, greedy, uci, stockfish-s{SKILL}-d{DEPTH} with SKILL
    0..20 and DEPTH 1..30), or ValueError saying what is accepted. The one parser both the
    settings' check and the evaluation use."""
    if entry in (OpponentKind.GEN0, OpponentKind.RANDOM, OpponentKind.GREEDY, OpponentKind.UCI):
        return Opponent(entry, OpponentKind(entry))
    found = _LADDER.fullmatch(entry)
    if found:
        skill, depth = int(found.group(1)), int(found.group(2))
        if skill in SKILL_LEVELS and depth in LADDER_DEPTHS:
            return Opponent(entry, OpponentKind.STOCKFISH, skill, depth)
    raise ValueError(
        f"{entry!r} is not an opponent: expected gen0, random, greedy, uci or stockfish-s{{SKILL}}-d{{DEPTH}} "
        "(SKILL 0 to 20, DEPTH 1 to 30, e.g. stockfish-s0-d1)"
    )


def ladder_player(opponent: Opponent, binary: str | None = None) -> UciPlayer:
    """A rung of the Stockfish ladder: Stockfish at `Skill Level` SKILL searching to a fixed
    DEPTH, one thread (one process: close it after the match). RuntimeError when Stockfish is
    not installed."""
    if opponent.kind is not OpponentKind.STOCKFISH:
        raise ValueError(f"{opponent.entry!r} is not a rung of the Stockfish ladder")
    binary = binary or stockfish_binary()
    if binary is None:
        raise RuntimeError(f"{opponent.entry} needs Stockfish (Debian: apt-get install stockfish)")
    return UciPlayer(
        binary,
        options={"Skill Level": opponent.skill, "Threads": 1},
        limit=chess.engine.Limit(depth=opponent.depth),
        name=opponent.entry,
    )


class GameResult(NamedTuple):
    """How a game between two players ended; `moves` are those played from the start position."""

    result: str  # 1-0 | 0-1 | 1/2-1/2
    termination: str  # as selfplay.game_over, or move_cap (adjudicated)
    moves: list[chess.Move]


def play_game(
    white: Player,
    black: Player,
    *,
    board: chess.Board | None = None,
    max_plies: int = 300,
    adjudication: str = "material",
    margin: int = 3,
) -> GameResult:
    """Play one game from `board` (an opening position, with its move stack; not modified) or
    the start position. `max_plies` counts the plies played here; at the cap the game is
    adjudicated as self-play does (`termination` "move_cap"). An illegal move raises ValueError."""
    board = chess.Board() if board is None else board.copy()
    moves: list[chess.Move] = []
    while True:
        legal = list(board.legal_moves)
        over = game_over(board, legal)
        if over is not None:
            return GameResult(over[0], over[1], moves)
        if len(moves) >= max_plies:
            return GameResult(adjudicate(board, adjudication, margin), "move_cap", moves)
        player = white if board.turn == chess.WHITE else black
        ply = board.ply()
        move = player.choose(board)
        if board.ply() != ply:
            raise RuntimeError(f"{player.name} changed the board it was given")
        if move not in legal:
            raise ValueError(f"{player.name} played an illegal move {move} in {board.fen()}")
        board.push(move)
        moves.append(move)
