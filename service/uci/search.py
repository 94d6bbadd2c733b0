"""The search thread's work: loading the network, then one search per `go`, with its time
management, its `info` lines and its `bestmove`.

The search is the one evaluation uses (`engine.mcts`, no root noise), with tree reuse between
moves. Gumbel search (the default, `Algorithm`) is a sequential halving over a fixed number of
simulations; searches without a fixed count (clock, `movetime`, `infinite`, `ponder`) run it in
rounds of doubling size on the same tree, and answer with the last round that got further than
the one before it. `go` without limits (and `go depth`/`go mate`, which an MCTS has no exact
meaning for) searches `Simulations` simulations; `depth D` also stops once the average depth
reaches D. A search runs a few leaves per network call, checking its stop flag and deadline
between calls, with `info` lines every `INFO_INTERVAL` seconds and at the end.

Reported figures: `nodes` counts the simulations of this `go`; `depth` is the average and
`seldepth` the largest depth of the leaves evaluated; `score cp` maps the search's value
q in [-1, 1] of the best move as lc0 does, cp = 111.714640912 * tan(1.5620688421 * q)
(|cp| <= 12,800), and a mate in one is `score mate 1`; `hashfull` is the tree's estimated
share of the `Hash` budget (the tree's memory, in MB: at the budget a timed search ends and an
infinite one waits for `stop`).
"""

from __future__ import annotations

import gc
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import chess

from ..engine import mcts
from .protocol import GoParams, cp_from_value, info_string_line

# Tree memory per simulation, measured with tracemalloc on 4,000-simulation searches from an
# opening position: ~1.8 kB (Gumbel) and ~5.9 kB (PUCT; most leaves keep their 1858 logits).
BYTES_PER_SIMULATION = 6_000
LEAVES_PER_STEP = 8  # leaves of one tree per network call (virtual loss keeps them apart)
GUMBEL_CONSIDERED = 16  # as MCTSPlayer, the evaluation player
INFO_INTERVAL = 0.5  # seconds between periodic info lines
DEFAULT_MOVES_TO_GO = 30  # the time manager's guess of the moves left without `movestogo`
INCREMENT_SHARE = 0.8  # share of the increment spent per move
FIRST_ROUND = 64  # simulations of the first round of a timed search when no speed is known yet
PV_MAX = 40

_FORGET = object()  # ucinewgame: drop the kept tree


def time_budget(go: GoParams, turn: chess.Color, overhead_s: float) -> float | None:
    """Seconds to spend on this move from `movetime` and the clock (the smaller), or None.

    The clock's share is remaining / movestogo (30 when not sent) + 80% of the increment, at
    most half the remaining time (80% when one move is left), less the move overhead.
    """
    budgets = []
    if go.movetime is not None:
        mt = go.movetime / 1000.0
        budgets.append(mt - min(overhead_s, mt / 2))
    remaining = go.wtime if turn == chess.WHITE else go.btime
    if remaining is not None:
        remaining = max(remaining, 0.0) / 1000.0
        inc = (go.winc if turn == chess.WHITE else go.binc) or 0.0
        inc /= 1000.0
        mtg = go.movestogo or DEFAULT_MOVES_TO_GO
        share = remaining / mtg + INCREMENT_SHARE * inc
        cap = remaining * (0.8 if mtg <= 1 else 0.5)
        budgets.append(max(min(share, cap) - overhead_s, 0.005))
    return min(budgets) if budgets else None


def node_value(node: mcts.Node) -> float:
    """A node's search value for its side to move: the network's value averaged with its subtree."""
    if node.terminal is not None:
        return node.terminal
    if node.priors is None:
        return node.value
    return (node.value + sum(node.w)) / (1 + sum(node.n))


def prune_root(root: mcts.Node, allowed: list[chess.Move]) -> bool:
    """Keep only `allowed` of an expanded root's moves (`go searchmoves`); False if none is there."""
    keep = [i for i, m in enumerate(root.moves) if m in allowed]
    if not keep:
        return False
    assert root.priors is not None  # expanded
    total = sum(root.priors[i] for i in keep) or 1.0
    root.moves = [root.moves[i] for i in keep]
    root.priors = [root.priors[i] / total for i in keep]
    root.n = [root.n[i] for i in keep]
    root.w = [root.w[i] for i in keep]
    root.children = [root.children[i] for i in keep]
    root.visits = 1 + sum(root.n)
    return True


@dataclass
class Job:
    """One `go`: its position (a copy), parameters and the main thread's signals to it."""

    board: chess.Board
    go: GoParams
    options: dict[str, Any]
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)  # stop or ponderhit
    pondering: bool = False
    timer_start: float = 0.0  # when the clock started for this move (go, or ponderhit)

    @property
    def finite(self) -> bool:
        """Whether the search may answer on its own (neither `go infinite` nor pondering)."""
        return not (self.go.infinite or self.pondering)


@dataclass
class _Depths:
    """The depths of the leaves a search evaluated, for `depth` and `seldepth`."""

    depth_sum: int = 0
    leaves: int = 0
    seldepth: int = 0

    @property
    def depth(self) -> int:
        return max(1, round(self.depth_sum / self.leaves)) if self.leaves else 1


class SearchRun:
    """One `go`'s search, from its first round to its last `info` line: `run()` searches until
    a limit, the deadline, the memory budget or `stop` ends it, `conclude()` names the move.

    `root` is the kept subtree of the position (or None); `nps` the speed measured so far, which
    sizes a timed search's first round. `run()` blocks; `job`'s events are set by the main thread.
    """

    def __init__(
        self,
        job: Job,
        legal: list[chess.Move],
        root: mcts.Node | None,
        evaluator: Any,
        rng: random.Random,
        nps: float | None,
        send: Callable[[str], None],
    ) -> None:
        board, go, opts = job.board, job.go, job.options
        self.job, self.go, self.legal = job, go, legal
        self._evaluator = evaluator
        self._send = send
        self._simulations: int = opts["Simulations"]
        self._hash_mb: int = opts["Hash"]
        self._gumbel = opts["Algorithm"] == "gumbel"
        self._hash_sims = opts["Hash"] * 1_000_000 // BYTES_PER_SIMULATION
        self._budget = time_budget(go, board.turn, opts["MoveOverhead"] / 1000.0)
        self.allowed = [m for m in go.searchmoves if m in legal]  # go searchmoves: no tree is kept
        if self.allowed:
            root = None
        self.reused = root.visits if root is not None else 0
        if self.reused and self.reused >= self._hash_sims // 2:  # over the memory budget: start afresh
            root, self.reused = None, 0
        cfg = mcts.SearchConfig(
            algorithm=opts["Algorithm"],
            simulations=opts["Simulations"],
            gumbel_considered=GUMBEL_CONSIDERED,
            gumbel_scale=0.0,
            dirichlet_epsilon=0.0,
            leaves_per_step=LEAVES_PER_STEP,
        )
        self.search = mcts.Search(board.copy(), cfg, rng, root=root)
        self.search.start(self._first_round(nps))

        self._depths = _Depths()
        self._done_before = 0  # simulations of the finished rounds
        self._completed: tuple[int, chess.Move] | None = None  # (simulations, best move) of the last finished round
        self._pruned = not self.allowed
        self._warned_memory = False
        self._start = time.monotonic()
        self._last_info = self._start
        self._last_sent: tuple[int, chess.Move] | None = None
        self._idle_since: float | None = None  # when an infinite search ran out of budget (nps ignores the wait)
        self._last_pv: list[chess.Move] = []
        self.nps: float | None = None  # the speed this search measured (set by conclude)

    # -- limits and time management ------------------------------------------------------
    def _limit(self) -> int | None:
        """The simulations this search may run (None: until time or stop)."""
        if self.go.nodes is not None:
            return self.go.nodes
        if self.go.infinite or self.job.pondering or self._budget is not None:
            return None
        return self._simulations

    def _first_round(self, nps: float | None) -> int:
        """The first round's simulations: the whole count when one is fixed, else what the
        measured speed fits in the time budget (`FIRST_ROUND` before any is known)."""
        go, job, budget = self.go, self.job, self._budget
        limit = self._limit()
        if limit is not None and budget is None and not job.pondering and not go.infinite:
            target = limit
        elif budget is not None and nps and not job.pondering:
            target = int(nps * budget)
        elif go.infinite or job.pondering:
            target = self._simulations
        else:
            target = FIRST_ROUND
        return max(target, 16) if limit is None else min(max(target, 16), limit)

    def _over_memory(self, total: int) -> bool:
        """Whether the tree reached the `Hash` budget (said once in an `info string`)."""
        if self.reused + total < self._hash_sims:
            return False
        if not self._warned_memory:
            self._send(info_string_line(f"tree memory budget of {self._hash_mb} MB (Hash) reached"))
            self._warned_memory = True
        return True

    def _enough(self, total: int, now: float, limit: int | None) -> bool:
        """Whether the search has done what this `go` asks (`total` simulations so far)."""
        over_memory = self._over_memory(total)
        budget = self._budget
        return (
            over_memory
            or (not self.job.pondering and budget is not None and now - self.job.timer_start >= budget)
            or (limit is not None and total >= limit)
            or (self.go.depth is not None and self._depths.depth >= self.go.depth and self._depths.leaves > 0)
            or (budget is not None and len(self.legal) == 1)  # nothing to think about
        )

    def _next_round(self, total: int, limit: int | None) -> None:
        """A round ended below the budget: start another on the same tree, twice as long."""
        search = self.search
        self._done_before = total
        if self._gumbel:
            self._completed = (search.finished, search.best_move())
        nxt = search.target * 2
        if limit is not None:
            nxt = min(nxt, limit - total)
        search.start(max(nxt, 1))

    def _idle(self, now: float) -> None:
        """Infinite or pondering at its limits: a bestmove must wait for stop or ponderhit."""
        if self._idle_since is None:
            self._idle_since = now
        self.job.wake.wait(0.1)
        self.job.wake.clear()

    def _prune(self) -> None:
        """Once the root is expanded, keep only the `go searchmoves` moves."""
        if self._pruned:
            return
        assert self.search.root is not None  # expanded
        if not prune_root(self.search.root, self.allowed):
            self._send(info_string_line("go searchmoves: none of them is legal here; searching all moves"))
        self.search.start(self.search.target)
        self._pruned = True

    # -- the search ----------------------------------------------------------------------
    def run(self) -> None:
        """Search until this `go` is answered: a limit, the deadline, the memory budget or
        `stop` (an infinite or pondering search waits at its limits for stop or ponderhit)."""
        search = self.search
        while True:
            ready = search.root is not None and search.root.expanded  # a move can be named
            if ready:
                self._prune()
                if self.job.stop.is_set():
                    break
                total = self._done_before + search.finished
                now = time.monotonic()
                limit = self._limit()
                if self._enough(total, now, limit):
                    if self.job.finite:
                        break
                    self._idle(now)
                    continue
                self._idle_since = None
                if search.done:
                    self._next_round(total, limit)
            self._step()
            now = time.monotonic()
            if now - self._last_info >= INFO_INTERVAL:
                self._last_info = now
                nodes = self._done_before + search.finished
                self._last_pv = self._info(self._best(), nodes, now - self._start)
                self._last_sent = (nodes, self._last_pv[0])

    def _step(self) -> None:
        """One network call's worth of simulations (mcts.step), recording each evaluated leaf's depth."""
        for leaf in mcts.step([self.search], self._evaluator):
            depth = len(leaf.path)
            self._depths.depth_sum += depth
            self._depths.leaves += 1
            self._depths.seldepth = max(self._depths.seldepth, depth)

    def _best(self) -> chess.Move:
        """The move to name now: a Gumbel round cut short answers with the last finished one."""
        if self._gumbel and self._completed is not None and self.search.finished < self._completed[0]:
            return self._completed[1]
        return self.search.best_move()

    def conclude(self) -> tuple[chess.Move, list[chess.Move]]:
        """The move and its PV, after the final `info` line (unless the periodic one just said
        it all); measures `nps` over the searching part of the time."""
        total = self._done_before + self.search.finished
        end = time.monotonic()
        active = (self._idle_since or end) - self._start
        if active > 0.05 and total >= 16:
            self.nps = total / active
        move = self._best()
        if self._last_sent == (total, move):  # the periodic line just said it all
            return move, self._last_pv
        return move, self._info(move, total, end - self._start, active=active)

    def _info(self, first: chess.Move, nodes: int, elapsed: float, active: float | None = None) -> list[chess.Move]:
        """Send one info line; `active` is the searching part of `elapsed` (for nps). Returns the PV."""
        search = self.search
        root = search.root
        assert root is not None  # a move was named: the search has its root
        pv = [first]
        child = root.children[root.moves.index(first)] if first in root.moves else None
        if child is not None and child.evaluated:
            q = -node_value(child)
        else:
            q = search.root_value()
        node = child
        while node is not None and node.expanded and node.n and len(pv) < PV_MAX:
            top = max(node.n)
            if top <= 0:
                break
            i = node.n.index(top)
            pv.append(node.moves[i])
            node = node.children[i]
        board = search.board
        board.push(first)
        mate = board.is_checkmate()
        board.pop()
        score = "mate 1" if mate else f"cp {cp_from_value(q)}"
        ms = int(elapsed * 1000)
        active = elapsed if active is None else active
        nps = int(nodes / active) if active > 0 else 0
        hashfull = min(1000, (self.reused + nodes) * BYTES_PER_SIMULATION * 1000 // (self._hash_mb * 1_000_000))
        depth = self._depths.depth
        self._send(
            f"info depth {depth} seldepth {max(self._depths.seldepth, depth)} time {ms} nodes {nodes} "
            f"nps {nps} hashfull {hashfull} score {score} pv {' '.join(m.uci() for m in pv)}"
        )
        return pv


class SearchWorker:
    """The search thread: loads the network (in the background, so `uci` is answered at once,
    the way lc0 does it), then runs one `SearchRun` per submitted `Job` and sends its `bestmove`.
    It owns what carries over between searches: the kept tree, the measured speed, the rng.

    `evaluator` is an object with `evaluate(planes)` (as engine.network.Evaluator) or a
    no-argument callable returning one; `send` writes one output line; `on_load_failed` is
    called (after `load_error` is set) when the evaluator cannot be had.
    """

    def __init__(
        self,
        evaluator: Any | Callable[[], Any],
        send: Callable[[str], None],
        on_load_failed: Callable[[], None],
        seed: int,
    ) -> None:
        self.load_error: str | None = None
        self.loaded = threading.Event()  # set once the load succeeded or failed
        self._source = evaluator
        self._evaluator = None if callable(evaluator) and not hasattr(evaluator, "evaluate") else evaluator
        self._send = send
        self._on_load_failed = on_load_failed
        self._jobs: queue.Queue = queue.Queue()
        self._rng = random.Random(seed)
        self._threads_set: int | None = None
        self._nps: float | None = None  # measured simulations per second, for timed searches
        self._tree: tuple[str, list[chess.Move], mcts.Node] | None = None  # position (root FEN, moves) and its tree
        self._thread = threading.Thread(target=self._work, name="uci-search", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Search `job` once the searches before it are done; `job.done` is set when it has answered."""
        self._jobs.put(job)

    def forget(self) -> None:
        """Drop the kept tree (`ucinewgame`), after the searches already submitted."""
        self._jobs.put(_FORGET)

    def close(self, timeout: float) -> None:
        """End the thread after the submitted searches (waiting up to `timeout` seconds)."""
        self._jobs.put(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout)

    def _info_string(self, text: str) -> None:
        self._send(info_string_line(text))

    def _work(self) -> None:
        try:
            if self._evaluator is None:
                self._evaluator = self._source()
        except BaseException as exc:  # noqa: BLE001 - any load failure ends the engine
            self.load_error = f"could not load the network: {exc}"
            self.loaded.set()
            self._on_load_failed()
            return
        self.loaded.set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job is _FORGET:
                self._tree = None
                continue
            gc_was_enabled = gc.isenabled()
            gc.disable()  # trees have no reference cycles: the cyclic GC only costs time here
            try:
                self._search(job)
            except Exception as exc:  # noqa: BLE001 - a GUI must still get a move
                self._tree = None
                self._info_string(f"error: search failed: {type(exc).__name__}: {exc}")
                legal = list(job.board.legal_moves)
                self._send(f"bestmove {legal[0].uci() if legal else '0000'}")
            finally:
                if gc_was_enabled:
                    gc.enable()
                job.done.set()

    def _apply_threads(self, threads: int) -> None:
        if threads == self._threads_set:
            return
        try:
            import torch

            torch.set_num_threads(threads)
        except Exception as exc:  # noqa: BLE001
            self._info_string(f"Threads {threads}: {exc}")
        self._threads_set = threads

    def _reusable_root(self, board: chess.Board) -> mcts.Node | None:
        """The kept subtree for `board`, if `board` continues (or repeats) the last searched position."""
        if self._tree is None:
            return None
        fen, stack, node = self._tree
        moves = board.move_stack
        if len(moves) < len(stack) or moves[: len(stack)] != stack or board.root().fen() != fen:
            return None
        for move in moves[len(stack) :]:
            if not node.expanded or move not in node.moves:
                return None
            child = node.children[node.moves.index(move)]
            if child is None or not child.evaluated:
                return None
            node = child
        return node

    def _search(self, job: Job) -> None:
        """Answer one `go`: its search, its final `info` line and its `bestmove`."""
        board = job.board
        legal = list(board.legal_moves)
        if not legal:
            self._send(f"info depth 0 score {'mate 0' if board.is_check() else 'cp 0'}")
            self._send("bestmove 0000")
            return
        self._apply_threads(job.options["Threads"])
        root = self._reusable_root(board)
        self._tree = None
        run = SearchRun(job, legal, root, self._evaluator, self._rng, self._nps, self._send)
        run.run()
        move, pv = run.conclude()
        if run.nps is not None:
            self._nps = run.nps if self._nps is None else 0.5 * (self._nps + run.nps)
        if not run.allowed:
            assert run.search.root is not None  # a move was named: the search has its root
            self._tree = (board.root().fen(), list(board.move_stack), run.search.root)
        self._send(f"bestmove {move.uci()}" + (f" ponder {pv[1].uci()}" if len(pv) > 1 else ""))
