"""Self-play: `parallel_games` games in flight, one batched network call per step.

A finished game's slot is refilled at once so the batch stays full. Per move the game
records the search's policy over the legal moves (in python-chess's generation order,
so storage can recover the moves by replaying), the root value and whether the move got
the full search budget (playout-cap randomisation, KataGo): only full searches become
policy targets, every position is a value target. At the move cap, material adjudication
scores a clear lead as a win; without it an untrained net's games are all draws and its
value head learns nothing.

Exploration (issue #24): a game may follow a start line of a book for its first moves
(`SelfPlayConfig.openings`, picked by the game's RNG; those positions are searched and
recorded all the same, so a stored game is still its moves from the initial position);
the temperature of the first plies samples among the moves the root search visited only;
root noise (Gumbel or Dirichlet) goes on full searches only, as KataGo's.

A watcher may follow one game as it is played (`SelfPlay.move_hook`, for the live feed):
the featured game is the lowest-numbered one in flight, so the next one takes over when
it ends. The hook is a plain callable; what it does with the moves (rate limits, sending)
is the caller's business.

Over 500 lines: one class stepping many games through one batched search (openings,
budgets, temperature, targets, game ends); each part is a short method on the same state.
"""

from __future__ import annotations

import io
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import chess
import chess.pgn
import numpy as np

from . import mcts, movegen
from .encoding import board_features, move_indices
from .replay import Sample

MoveHook = Callable[[int, int, str, str, str], None]
"""Called with (game number, ply after the move, uci, san, fen after the move)."""

PIECE_VALUES = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9}


@dataclass(frozen=True)
class SelfPlayConfig:
    """How games are played; built from the session's settings (`worker.selfplay_config`).
    A default with a matching setting is that setting's default (tests/unit/test_engine_defaults.py)."""

    search: mcts.SearchConfig = mcts.SearchConfig()
    simulations: int = 32
    fast_simulations: int = 8
    late_search_generation: int | None = 100
    """From this generation on both budgets are `late_search_scale` times larger (None: never)."""
    late_search_scale: float = 2.0
    full_search_prob: float = 0.25
    parallel_games: int = 64
    temperature_plies: int = 30
    max_plies: int = 300
    adjudication: str = "material"  # material | none
    adjudication_margin: int = 1
    resign_threshold: float | None = None
    resign_playout_share: float = 0.1
    openings: tuple[tuple[chess.Move, ...], ...] = ()
    """Start lines (SELFPLAY_OPENINGS, `openings.selfplay_openings`): a game's first moves
    follow one its RNG picks; empty: the search chooses from the initial position."""


@dataclass
class GameRecord:
    """One finished self-play game with its training targets.

    The per-ply lists hold one entry per searched position: `plies` of them, plus one for
    the resigning side's last search when the game ended by resignation.
    """

    number: int
    moves: list[chess.Move]
    result: str  # 1-0 | 0-1 | 1/2-1/2
    termination: str  # checkmate|stalemate|insufficient_material|fifty_moves|threefold_repetition|move_cap|resignation
    adjudicated: bool
    temperature: float
    policies: list[np.ndarray] = field(default_factory=list)  # per ply, float32 over legal moves in generation order
    root_values: list[float] = field(default_factory=list)  # per ply, side to move's view
    full_search: list[bool] = field(default_factory=list)
    move_seconds: list[float] = field(default_factory=list)
    features: list[tuple[int, ...]] = field(default_factory=list)
    indices: list[list[int]] = field(default_factory=list)  # per ply, policy indices of the legal moves
    material: int = 0  # white minus black at the end
    false_resign: bool | None = None  # a played-out game one side would have resigned: did it wrongly?
    simulations: int = 0
    duration_s: float = 0.0
    ended_at: float = 0.0  # wall clock (time.time()) when the game ended
    started: int = 0  # the number it was started under (its RNG, its temperature, the featured game's id)
    generation: int = 0  # the network generation that played its first move (`SelfPlay.generation`)
    actor: int = 0  # the self-play actor that played it (0: the learner's own, one-worker layout)

    @property
    def plies(self) -> int:
        return len(self.moves)

    def samples(self, value_horizon: int, margin: int, scale: float, *, root_weight: float = 0.0) -> list[Sample]:
        """Training samples of every searched ply with its `value_targets`, its result target
        (mixed with the ply's root value by `root_weight`, VALUE_ROOT_WEIGHT) and its
        `material_targets`; only full-search plies are policy targets (playout-cap
        randomisation), every ply is a value target. No defaults for the session's
        VALUE_HORIZON_PLIES, ADJUDICATION_MARGIN, VALUE_MATERIAL_SCALE."""
        values, outcomes, materials = position_targets(
            self.moves, self.result, value_horizon, margin, scale, root_values=self.root_values, root_weight=root_weight
        )
        return [
            Sample(
                self.features[ply],
                np.asarray(self.indices[ply], dtype=np.int16),
                self.policies[ply],
                values[ply],
                policy_target=full,
                outcome=outcomes[ply],
                material=materials[ply],
            )
            for ply, full in enumerate(self.full_search)
        ]

    def pgn(self, headers: dict[str, str] | None = None) -> str:
        """The game as PGN, with termination and adjudication tags."""
        game = chess.pgn.Game()
        game.headers["Event"] = "continuous-play self-play"
        game.headers["Round"] = str(self.number)
        game.headers["White"] = game.headers["Black"] = "continuous-play"
        game.headers["Result"] = self.result
        game.headers["Termination"] = "adjudication" if self.termination == "move_cap" else "normal"
        game.headers["TerminationDetail"] = self.termination
        game.headers["Adjudicated"] = "true" if self.adjudicated else "false"
        game.headers["PlyCount"] = str(self.plies)
        game.headers["Generation"] = str(self.generation)
        game.headers["Actor"] = str(self.actor)
        for k, v in (headers or {}).items():
            game.headers[k] = v
        game.add_line(self.moves)
        out = io.StringIO()
        print(game, file=out, end="\n\n")
        return out.getvalue()


def material_balance(board: chess.Board) -> int:
    """White's material minus Black's, in pawns (P1 N3 B3 R5 Q9)."""
    total = 0
    for piece, value in PIECE_VALUES.items():
        total += value * (len(board.pieces(piece, chess.WHITE)) - len(board.pieces(piece, chess.BLACK)))
    return total


def value_targets(
    moves: list[chess.Move] | list[str], result: str, horizon: int, margin: int, scale: float
) -> list[float]:
    """Each position's value target under the material rule, from its side to move's view, in
    [-1, 1], for the positions before each move and the final one.

    With `horizon` 0 it is the game's result (AlphaZero: +1 win, 0 draw, -1 loss). With
    `horizon` H > 0, a position more than H plies from the end learns the material balance
    H plies later (`material_targets`); the last H positions get the result. A short horizon
    is a dense, learnable signal (a piece left hanging is usually lost within a few plies),
    where a result decided 100 plies later is mostly noise to a young value head; but a
    value taught only this converges to a material count (issue #24), so a session mixes
    in the result as it learns (`training.material_share_after`)."""
    return position_targets(moves, result, horizon, margin, scale)[0]


def position_targets(
    moves: list[chess.Move] | list[str],
    result: str,
    horizon: int,
    margin: int,
    scale: float,
    *,
    root_values: Sequence[float] = (),
    root_weight: float = 0.0,
) -> tuple[list[float], list[float], list[float]]:
    """(`value_targets`, the result target, `material_targets`) of each position, from its side
    to move's view: what a training sample keeps, computed with one replay of the game.

    The result target is the game's result (+1, 0, -1) or, with `root_weight` w > 0, that
    mixed with the position's own search value: (1 - w) * result + w * root value (lc0's
    q-ratio; KataGo's value targets also lean on the search). A result decided 100 plies
    later, or by the ply cap, says little about the position itself; the search's value is
    what the position looked like with some lookahead, a denser, less noisy signal that
    bootstraps the value head on its own improvement. Positions without a root value (the
    final one) keep the result."""
    plies = len(moves)
    final = {"1-0": 1.0, "0-1": -1.0}.get(result, 0.0)
    outcomes = [final if ply % 2 == 0 else -final for ply in range(plies + 1)]
    materials = material_targets(moves, horizon, margin, scale)
    values = list(outcomes)
    if horizon > 0 and plies > horizon:
        values[: plies - horizon] = materials[: plies - horizon]
    if root_weight > 0:
        for ply, root in enumerate(root_values[: plies + 1]):
            outcomes[ply] = (1.0 - root_weight) * outcomes[ply] + root_weight * max(-1.0, min(1.0, float(root)))
    return values, outcomes, materials


def material_targets(moves: list[chess.Move] | list[str], horizon: int, margin: int, scale: float) -> list[float]:
    """Each position's material signal, from its side to move's view, in [-1, 1]: the balance
    `horizon` plies later (or at the game's end, when that comes first), graded as
    tanh(balance / `scale`) so a queen up is worth more than a pawn up, or, with `scale` 0,
    adjudicated (a lead of `margin` pawns wins, else a draw). What the auxiliary material
    head learns, and the value target before results take over."""
    board = chess.Board()
    balance = [0]
    for move in moves:
        board.push(move if isinstance(move, chess.Move) else chess.Move.from_uci(move))
        balance.append(material_balance(board))
    out = []
    for ply in range(len(balance)):
        later = balance[min(ply + max(horizon, 0), len(balance) - 1)]
        if scale > 0:
            white = math.tanh(later / scale)
        else:
            white = 1.0 if later >= margin else -1.0 if later <= -margin else 0.0
        out.append(white if ply % 2 == 0 else -white)
    return out


def adjudicate(board: chess.Board, rule: str, margin: int) -> str:
    """Result of a game cut at the move cap: a lead of `margin` pawns wins under `material`, else a draw."""
    if rule == "material":
        balance = material_balance(board)
        if balance >= margin:
            return "1-0"
        if balance <= -margin:
            return "0-1"
    return "1/2-1/2"


def game_over(board: chess.Board, legal: list[chess.Move]) -> tuple[str, str] | None:
    """(result, termination) when the rules end the game at `board` (threefold and fifty-move
    draws are claimed at once), else None."""
    if not legal:
        if board.is_check():
            return ("0-1" if board.turn else "1-0"), "checkmate"
        return "1/2-1/2", "stalemate"
    if movegen.is_insufficient_material(board):
        return "1/2-1/2", "insufficient_material"
    if board.halfmove_clock >= 100:
        return "1/2-1/2", "fifty_moves"
    if board.halfmove_clock >= 8 and movegen.is_repetition(board, 3):
        return "1/2-1/2", "threefold_repetition"
    return None


def sample_move(
    moves: list[chess.Move],
    probs: list[float],
    temperature: float,
    rng: random.Random,
    visits: list[int] | None = None,
) -> chess.Move:
    """A move drawn from probs ** (1 / temperature), among the moves the search visited
    when `visits` (per move) is given: Gumbel's improved policy gives every legal move some
    weight, and a move no simulation tried is a guess of the prior, not a searched choice."""
    if visits is not None and any(visits):
        moves = [m for m, n in zip(moves, visits) if n]
        probs = [p for p, n in zip(probs, visits) if n]
    weights = [p ** (1.0 / temperature) for p in probs]
    if sum(weights) <= 0:
        return rng.choice(moves)
    return rng.choices(moves, weights=weights)[0]


class _Game:
    __slots__ = (
        "record",
        "board",
        "search",
        "rng",
        "started",
        "move_started",
        "full",
        "may_resign",
        "resign_candidate",
        "book",
    )

    def __init__(self, record: GameRecord, cfg: SelfPlayConfig, rng: random.Random) -> None:
        self.record = record
        self.board = chess.Board()
        self.rng = rng
        self.search = mcts.Search(self.board, cfg.search, rng)
        self.started = time.perf_counter()
        self.move_started = self.started
        self.full = True
        self.may_resign = cfg.resign_threshold is not None and rng.random() >= cfg.resign_playout_share
        self.resign_candidate: chess.Color | None = None
        # Drawn last, and only with a book: without one the game's random stream is what it was.
        self.book: tuple[chess.Move, ...] = rng.choice(cfg.openings) if cfg.openings else ()


class SelfPlay:
    """Keeps games in flight and advances them together; `step()` returns the games it finished.

    `temperature_for(n)` gives the temperature of the session's n-th game (0-based);
    `max_new_games` (settable) stops new games from starting, to end a session cleanly;
    `generation` (settable) names the network the evaluator holds: a game records the one
    it started under, and `drop_started_before` abandons games older than a bound.
    """

    def __init__(
        self,
        cfg: SelfPlayConfig,
        evaluator,
        *,
        seed: int | str = 0,
        first_game: int = 1,
        actor: int = 0,
        temperature_for: Callable[[int], float] = lambda n: 1.0,
    ) -> None:
        self.cfg = cfg
        self.evaluator = evaluator
        self.seed = seed
        self.next_number = first_game  # by start: seeds a game and names it while in flight
        self.next_finished = first_game  # by finish: the number a game keeps (see `step`)
        self.temperature_for = temperature_for
        self.max_new_games: int | None = None  # None: no limit
        self.generation = 0
        self.actor = actor
        self.games: list[_Game] = []
        self.simulations = 0
        self.leaves = 0
        self.move_hook: MoveHook | None = None  # sees each move of the featured game
        self._featured: int | None = None

    @property
    def featured(self) -> int | None:
        """The number of the game the move hook follows: the lowest-numbered in flight."""
        return min((g.record.number for g in self.games), default=None)

    @property
    def in_flight(self) -> int:
        return len(self.games)

    def _new_game(self) -> _Game:
        number = self.next_number
        self.next_number += 1
        if self.max_new_games is not None:
            self.max_new_games -= 1
        rng = random.Random(f"{self.seed}:{number}")
        record = GameRecord(number, [], "*", "", False, self.temperature_for(number - 1))
        record.generation, record.actor = self.generation, self.actor
        game = _Game(record, self.cfg, rng)
        self._start_search(game)
        return game

    def _start_search(self, game: _Game) -> None:
        cfg = self.cfg
        game.full = cfg.full_search_prob >= 1.0 or game.rng.random() < cfg.full_search_prob
        # Root noise on full searches only (KataGo): a fast search is no policy target.
        game.search.start(self.budget(game.full), noise=game.full)
        game.move_started = time.perf_counter()

    def budget(self, full: bool) -> int:
        """A full or a fast search's budget under the generation playing now: the late budget
        from LATE_SEARCH_GENERATION on (a policy that already matches its few-simulation targets
        learns from deeper ones)."""
        cfg = self.cfg
        budget = cfg.simulations if full else cfg.fast_simulations
        if cfg.late_search_generation is not None and self.generation >= cfg.late_search_generation:
            budget = round(budget * cfg.late_search_scale)
        return budget

    def play_generation(self, generation: int, max_lag: int | None) -> None:
        """The evaluator now holds `generation`: new games record it, and with a bound
        (MAX_GENERATION_LAG) the games in flight started more than `max_lag` before it are
        abandoned (`drop_started_before`)."""
        self.generation = generation
        if max_lag is not None:
            self.drop_started_before(generation - max_lag)

    def drop_started_before(self, generation: int) -> int:
        """Abandon the games in flight that started under a generation older than `generation`
        (MAX_GENERATION_LAG): they are never finished nor numbered, and their slots refill at
        the next step. Returns how many were dropped."""
        kept = [g for g in self.games if g.record.generation >= generation]
        dropped = len(self.games) - len(kept)
        if dropped and self.max_new_games is not None:
            self.max_new_games += dropped  # a dropped game does not count against the limit
        self.games = kept
        return dropped

    def _refill(self) -> None:
        while len(self.games) < self.cfg.parallel_games and (self.max_new_games is None or self.max_new_games > 0):
            self.games.append(self._new_game())

    def step(self) -> list[GameRecord]:
        """Play every finished search's move, refill free slots, then run one batched search step."""
        finished: list[GameRecord] = []
        still: list[_Game] = []
        self._featured = self.featured if self.move_hook is not None else None
        for game in self.games:
            if game.search.done:
                record = self._play_move(game)
                if record is not None:
                    # Games finish out of order and the ones in flight at a stop are dropped:
                    # numbering by finish keeps the numbers kept 1..N with no gap.
                    record.started, record.number = record.number, self.next_finished
                    self.next_finished += 1
                    finished.append(record)
                    continue
            still.append(game)
        self.games = still
        self._refill()
        if self.games:
            self.leaves += len(mcts.step([g.search for g in self.games], self.evaluator))
        return finished

    def _play_move(self, game: _Game) -> GameRecord | None:
        cfg, rec, board, search = self.cfg, game.record, game.board, game.search
        now = time.perf_counter()
        moves, probs = search.policy()
        ply = board.ply()
        temp = rec.temperature if ply < cfg.temperature_plies else 0.0
        if ply < len(game.book):  # searched all the same: the position's targets are recorded
            move = game.book[ply]
        elif temp > 0 and search.mate is None:  # a mate in one is played, not sampled
            assert search.root is not None  # a finished search has its root
            move = sample_move(moves, probs, temp, game.rng, search.root.n)
        else:
            move = search.best_move()
        legal, where = search.legal_moves()  # generation order, and each policy move's place in it
        policy = np.zeros(len(legal), dtype=np.float32)
        policy[where] = probs
        value = search.root_value()
        rec.policies.append(policy)
        rec.root_values.append(value)
        rec.full_search.append(game.full)
        rec.move_seconds.append(now - game.move_started)
        rec.features.append(board_features(board, mcts.repetitions(board)))
        rec.indices.append(move_indices(legal, board.turn))
        rec.simulations += search.finished
        self.simulations += search.finished
        if cfg.resign_threshold is not None and value < cfg.resign_threshold:
            if game.may_resign:
                return self._finish(game, "0-1" if board.turn else "1-0", "resignation", False)
            if game.resign_candidate is None:
                game.resign_candidate = board.turn
        san = board.san(move) if rec.number == self._featured else None
        rec.moves.append(move)
        search.advance(move)
        if san is not None:
            assert self.move_hook is not None  # a game is featured only while there is a hook (step())
            self.move_hook(rec.number, board.ply(), move.uci(), san, board.fen())
        root = search.root
        over = game_over(board, root.moves if root is not None and root.expanded else list(board.legal_moves))
        if over is not None:
            return self._finish(game, over[0], over[1], False)
        if board.ply() >= cfg.max_plies:
            return self._finish(game, adjudicate(board, cfg.adjudication, cfg.adjudication_margin), "move_cap", True)
        self._start_search(game)
        return None

    def _finish(self, game: _Game, result: str, termination: str, adjudicated: bool) -> GameRecord:
        rec = game.record
        rec.result, rec.termination, rec.adjudicated = result, termination, adjudicated
        rec.material = material_balance(game.board)
        rec.duration_s = time.perf_counter() - game.started
        rec.ended_at = time.time()
        if game.resign_candidate is not None:
            loser = "0-1" if game.resign_candidate == chess.WHITE else "1-0"
            rec.false_resign = result != loser
        return rec


def replay_samples(
    moves: list[str],
    policies: list[np.ndarray],
    full_search: list[bool],
    result: str,
    value_horizon: int,
    margin: int,
    scale: float,
    *,
    root_values: Sequence[float] = (),
    root_weight: float = 0.0,
) -> list[Sample]:
    """Training samples of a stored game, rebuilt by replaying its moves (after a restart the
    replay buffer is refilled from the database, which keeps no board features): the same as
    `GameRecord.samples` gave (its root values, stored as float16, to about 3 digits)."""
    values, outcomes, materials = position_targets(
        moves, result, value_horizon, margin, scale, root_values=root_values, root_weight=root_weight
    )
    board = chess.Board()
    out = []
    for ply, (policy, full) in enumerate(zip(policies, full_search)):
        legal = list(board.generate_legal_moves())
        out.append(
            Sample(
                board_features(board, mcts.repetitions(board)),
                np.asarray(move_indices(legal, board.turn), dtype=np.int16),
                np.asarray(policy, dtype=np.float32),
                values[ply],
                policy_target=bool(full),
                outcome=outcomes[ply],
                material=materials[ply],
            )
        )
        if ply < len(moves):
            board.push_uci(moves[ply])
    return out
