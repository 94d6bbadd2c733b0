"""The learned engine as a UCI engine: `continuous-play uci --checkpoint FILE`
(or `python -m service.uci --checkpoint FILE`), for any chess GUI, cutechess or lichess-bot.

Three threads share the work, so `stop`, `isready` and `quit` are answered while a search runs:

- a reader turns the input stream into lines (raw `os.read` on a real file descriptor, so no
  buffered-reader lock is held at interpreter exit; undecodable bytes become U+FFFD);
- the main thread handles one command at a time (`UciEngine.handle`);
- a search worker first loads the network (in the background: `uci` is answered at once, the
  way lc0 does it, and `isready` waits for the load as the protocol intends), then runs one
  search per `go`, a few leaves per network call, checking its stop flag and deadline between
  calls, with `info` lines every `INFO_INTERVAL` seconds and at the end, then `bestmove`.

The search is the one evaluation uses (`engine.mcts`, no root noise), with tree reuse between
moves. Gumbel search (the default, `Algorithm`) is a sequential halving over a fixed number of
simulations; searches without a fixed count (clock, `movetime`, `infinite`, `ponder`) run it in
rounds of doubling size on the same tree, and answer with the last round that got further than
the one before it. `go` without limits (and `go depth`/`go mate`, which an MCTS has no exact
meaning for) searches `Simulations` simulations; `depth D` also stops once the average depth
reaches D.

Reported figures: `nodes` counts the simulations of this `go`; `depth` is the average and
`seldepth` the largest depth of the leaves evaluated; `score cp` maps the search's value
q in [-1, 1] of the best move as lc0 does, cp = 111.714640912 * tan(1.5620688421 * q)
(|cp| <= 12,800), and a mate in one is `score mate 1`; `hashfull` is the tree's estimated
share of the `Hash` budget (the tree's memory, in MB: at the budget a timed search ends and an
infinite one waits for `stop`).

Malformed input (unknown commands, a bad FEN, an illegal move in `position`, a non-numeric `go`
parameter, undecodable bytes) is answered with an `info string` and otherwise ignored: a bad
`position` leaves the previous position in place, a bad `go` parameter is dropped and the
search still runs (a GUI waiting for `bestmove` is never left hanging). `go` in a position
without legal moves answers `bestmove 0000`. A `position`, `go`, `ucinewgame` or `quit` during
a search first stops it (its `bestmove` is sent). End of input acts as `quit`, after letting a
search with a finite budget finish (so `printf 'position startpos\\ngo nodes 200\\n' | ...` works).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import chess

from .engine import mcts
from .engine.weights_header import peek_header

ENGINE_NAME = "continuous-play"
AUTHOR = "the continuous-play developers"

DEFAULT_SIMULATIONS = 400
MAX_SIMULATIONS = 1_000_000
MAX_THREADS = 512
DEFAULT_MOVE_OVERHEAD_MS = 30
DEFAULT_HASH_MB = 2048
MAX_HASH_MB = 1_048_576
# Tree memory per simulation, measured with tracemalloc on 4,000-simulation searches from an
# opening position: ~1.8 kB (Gumbel) and ~5.9 kB (PUCT; most leaves keep their 1858 logits).
BYTES_PER_SIMULATION = 6_000
LEAVES_PER_STEP = 8  # leaves of one tree per network call (virtual loss keeps them apart)
GUMBEL_CONSIDERED = 16  # as MCTSPlayer, the evaluation player
INFO_INTERVAL = 0.5  # seconds between periodic info lines
DEFAULT_MOVES_TO_GO = 30  # the time manager's guess of the moves left without `movestogo`
INCREMENT_SHARE = 0.8  # share of the increment spent per move
FIRST_ROUND = 64  # simulations of the first round of a timed search when no speed is known yet
CP_SCALE = 111.714640912  # lc0's centipawn mapping of q
Q_SCALE = 1.5620688421
PV_MAX = 40

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


# -- options ---------------------------------------------------------------------------------


@dataclass
class Option:
    name: str
    kind: str  # spin | check | combo
    default: Any
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()

    def line(self) -> str:
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


# -- search helpers --------------------------------------------------------------------------


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
class _Stats:
    depth_sum: int = 0
    leaves: int = 0
    seldepth: int = 0

    @property
    def depth(self) -> int:
        return max(1, round(self.depth_sum / self.leaves)) if self.leaves else 1


def _step(search: mcts.Search, evaluator, stats: _Stats) -> None:
    """mcts.step for one search, recording the depth of every evaluated leaf."""
    for leaf in mcts.step([search], evaluator):
        depth = len(leaf.path)
        stats.depth_sum += depth
        stats.leaves += 1
        stats.seldepth = max(stats.seldepth, depth)


@dataclass
class _Job:
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
        return not (self.go.infinite or self.pondering)


_EOF = object()
_LOAD_FAILED = object()
_FORGET = object()  # ucinewgame, to the worker (which owns the tree)


class UciEngine:
    """A UCI engine over text streams. `evaluator` is an object with `evaluate(planes)` (as
    engine.network.Evaluator) or a no-argument callable returning one, called on the search
    thread before the first search (so a slow load does not delay `uci`)."""

    def __init__(
        self,
        evaluator: Any | Callable[[], Any],
        *,
        output: TextIO | None = None,
        simulations: int = DEFAULT_SIMULATIONS,
        threads: int | None = None,
        algorithm: str = "gumbel",
        name: str | None = None,
        author: str = AUTHOR,
        seed: int = 0,
    ) -> None:
        if threads is None:
            try:
                threads = len(os.sched_getaffinity(0))
            except (AttributeError, OSError):
                threads = os.cpu_count() or 1
        self.output = output if output is not None else sys.stdout
        self.name = name or f"{ENGINE_NAME} {package_version()}"
        self.author = author
        self.options_spec = {
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
        self.options: dict[str, Any] = {o.name: o.default for o in self.options_spec.values()}
        self.board = chess.Board()
        self.quit_requested = False
        self.exit_code = 0
        self.load_error: str | None = None
        self._source = evaluator
        self._evaluator = None if self._is_factory(evaluator) else evaluator
        self._loaded = threading.Event()
        self._out_lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._events: queue.Queue = queue.Queue()
        self._job: _Job | None = None
        self._rng = random.Random(seed)
        self._threads_set: int | None = None
        self._nps: float | None = None  # measured simulations per second, for timed searches
        self._tree: tuple[str, list[chess.Move], mcts.Node] | None = None  # owned by the worker
        self._worker = threading.Thread(target=self._work, name="uci-search", daemon=True)
        self._worker.start()

    @staticmethod
    def _is_factory(source: Any) -> bool:
        return callable(source) and not hasattr(source, "evaluate")

    # -- output --------------------------------------------------------------------------
    def send(self, line: str) -> None:
        with self._out_lock:
            try:
                self.output.write(line + "\n")
                self.output.flush()
            except (OSError, ValueError):  # the GUI went away: finish as on quit
                self._events.put(_EOF)

    def info_string(self, text: str) -> None:
        self.send("info string " + printable(text, 200))

    # -- the loop ------------------------------------------------------------------------
    def run(self, input: TextIO | None = None) -> int:
        """Read commands from `input` (stdin) until `quit` or its end; the exit status."""
        input = input if input is not None else sys.stdin
        reader = threading.Thread(target=self._read, args=(input,), name="uci-input", daemon=True)
        reader.start()
        while not self.quit_requested:
            item = self._events.get()
            if item is _LOAD_FAILED:
                self._fail_load()
                break
            if item is _EOF:
                self._finish(wait_finite=True)
                break
            self.handle(item)
        self.close()
        return self.exit_code

    def _read(self, stream: TextIO) -> None:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        try:
            if fd is None:
                for line in iter(stream.readline, ""):
                    self._events.put(line)
            else:
                pending = b""
                while True:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._events.put(raw.decode("utf-8", errors="replace"))
                if pending:
                    self._events.put(pending.decode("utf-8", errors="replace"))
        except (OSError, ValueError):
            pass
        self._events.put(_EOF)

    def _fail_load(self) -> None:
        self.info_string(f"error: {self.load_error}")
        print(f"continuous-play uci: {self.load_error}", file=sys.stderr, flush=True)
        self.exit_code = 2
        self.quit_requested = True

    def handle(self, line: str) -> None:
        """One input line. Unknown leading tokens are skipped, as the UCI protocol asks."""
        if self.load_error is not None:
            self._fail_load()
            return
        tokens = line.split()
        if not tokens:
            return
        for i, token in enumerate(tokens):
            if token.lower() in COMMANDS:
                if i:
                    self.info_string(f"ignored unknown token(s) before {token.lower()}: {' '.join(tokens[:i])}")
                try:
                    getattr(self, "_cmd_" + token.lower())(tokens[i + 1 :])
                except Exception as exc:  # noqa: BLE001 - an engine never dies of its input
                    self.info_string(f"error: {token.lower()}: {type(exc).__name__}: {exc}")
                return
        self.info_string(f"unknown command: {line.strip()}")

    def _finish(self, *, wait_finite: bool) -> None:
        job = self._job
        if job is not None and not job.done.is_set() and not (wait_finite and job.finite):
            job.stop.set()
            job.wake.set()
        self._wait(job)
        self.quit_requested = True

    def close(self) -> None:
        """Stop any search and the worker thread."""
        job = self._job
        if job is not None:
            job.stop.set()
            job.wake.set()
            self._wait(job, timeout=30)
        self._jobs.put(None)
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=30)

    def _wait(self, job: _Job | None, timeout: float | None = None) -> None:
        """Wait for `job` to end (it ends at once if the network failed to load)."""
        if job is None:
            return
        end = None if timeout is None else time.monotonic() + timeout
        while not job.done.wait(0.05):
            if self.load_error is not None or (end is not None and time.monotonic() > end):
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current search (if any) to send its bestmove; False on timeout."""
        job = self._job
        return job is None or job.done.wait(timeout)

    def _stop_search(self) -> None:
        job = self._job
        if job is not None and not job.done.is_set():
            job.stop.set()
            job.wake.set()
            self._wait(job)

    # -- commands ------------------------------------------------------------------------
    def _cmd_uci(self, args: list[str]) -> None:
        self.send(f"id name {self.name}")
        self.send(f"id author {self.author}")
        for option in self.options_spec.values():
            self.send(option.line())
        self.send("uciok")

    def _cmd_debug(self, args: list[str]) -> None:
        pass

    def _cmd_register(self, args: list[str]) -> None:
        pass

    def _cmd_isready(self, args: list[str]) -> None:
        while not self._loaded.wait(0.05):
            pass
        if self.load_error is not None:
            self._fail_load()
            return
        self.send("readyok")

    def _cmd_setoption(self, args: list[str]) -> None:
        lowered = [a.lower() for a in args]
        if not args or lowered[0] != "name" or len(args) < 2:
            self.info_string("setoption: expected setoption name <id> [value <x>]")
            return
        if "value" in lowered[1:]:
            at = lowered.index("value", 1)
            name, value = " ".join(args[1:at]), " ".join(args[at + 1 :])
        else:
            name, value = " ".join(args[1:]), None
        spec = self.options_spec.get(name.lower())
        if spec is None:
            self.info_string(f"setoption: unknown option {name}")
            return
        if value is None:
            self.info_string(f"setoption {spec.name}: needs a value")
            return
        try:
            self.options[spec.name] = spec.parse(value)
        except ValueError as exc:
            self.info_string(f"setoption {spec.name} {value}: {exc}; ignored")

    def _cmd_ucinewgame(self, args: list[str]) -> None:
        self._stop_search()
        self._jobs.put(_FORGET)

    def _cmd_position(self, args: list[str]) -> None:
        self._stop_search()
        lowered = [a.lower() for a in args]
        if not args or lowered[0] not in ("startpos", "fen"):
            self.info_string("position: expected position startpos|fen <fen> [moves ...]; ignored")
            return
        at = lowered.index("moves") if "moves" in lowered else len(args)
        try:
            if lowered[0] == "startpos":
                if at != 1:
                    raise ValueError(f"unexpected {' '.join(args[1:at])} after startpos")
                board = chess.Board()
            else:
                fen = " ".join(args[1:at])
                if not fen:
                    raise ValueError("no FEN")
                board = chess.Board(fen)
                if not board.is_valid():
                    raise ValueError(f"impossible position ({board.status().name or board.status()})")
            for raw in args[at + 1 :]:
                move = board.parse_uci(raw)
                if not move:
                    raise ValueError("null move")
                board.push(move)
        except (ValueError, IndexError, AssertionError) as exc:
            self.info_string(f"position: {exc}; ignored")
            return
        self.board = board

    def _cmd_go(self, args: list[str]) -> None:
        self._stop_search()
        go, warnings = parse_go(args, self.board)
        for warning in warnings:
            self.info_string(warning)
        job = _Job(self.board.copy(), go, dict(self.options), pondering=go.ponder, timer_start=time.monotonic())
        self._job = job
        self._jobs.put(job)

    def _cmd_stop(self, args: list[str]) -> None:
        job = self._job
        if job is not None:
            job.stop.set()
            job.wake.set()

    def _cmd_ponderhit(self, args: list[str]) -> None:
        job = self._job
        if job is not None and job.pondering and not job.done.is_set():
            job.timer_start = time.monotonic()
            job.pondering = False
            job.wake.set()

    def _cmd_quit(self, args: list[str]) -> None:
        self._finish(wait_finite=False)

    # -- the search worker ---------------------------------------------------------------
    def _work(self) -> None:
        try:
            if self._evaluator is None:
                self._evaluator = self._source()
        except BaseException as exc:  # noqa: BLE001 - any load failure ends the engine
            self.load_error = f"could not load the network: {exc}"
            self._loaded.set()
            self._events.put(_LOAD_FAILED)
            return
        self._loaded.set()
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
                self.info_string(f"error: search failed: {type(exc).__name__}: {exc}")
                legal = list(job.board.legal_moves)
                self.send(f"bestmove {legal[0].uci() if legal else '0000'}")
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
            self.info_string(f"Threads {threads}: {exc}")
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

    def _search(self, job: _Job) -> None:
        board, go, opts = job.board, job.go, job.options
        legal = list(board.legal_moves)
        if not legal:
            self.send(f"info depth 0 score {'mate 0' if board.is_check() else 'cp 0'}")
            self.send("bestmove 0000")
            return
        self._apply_threads(opts["Threads"])
        gumbel = opts["Algorithm"] == "gumbel"
        hash_sims = opts["Hash"] * 1_000_000 // BYTES_PER_SIMULATION
        overhead = opts["MoveOverhead"] / 1000.0
        budget = time_budget(go, board.turn, overhead)
        allowed = [m for m in go.searchmoves if m in legal]

        root = None if allowed else self._reusable_root(board)
        self._tree = None
        reused = root.visits if root is not None else 0
        if reused and reused >= hash_sims // 2:  # over the memory budget: start afresh
            root, reused = None, 0
        cfg = mcts.SearchConfig(
            algorithm=opts["Algorithm"],
            simulations=opts["Simulations"],
            gumbel_considered=GUMBEL_CONSIDERED,
            gumbel_scale=0.0,
            dirichlet_epsilon=0.0,
            leaves_per_step=LEAVES_PER_STEP,
        )
        search = mcts.Search(board.copy(), cfg, self._rng, root=root)

        def cap() -> int | None:
            """The simulations this search may run (None: until time or stop)."""
            if go.nodes is not None:
                return go.nodes
            if go.infinite or job.pondering or budget is not None:
                return None
            return opts["Simulations"]

        limit = cap()
        if limit is not None and budget is None and not job.pondering and not go.infinite:
            target = limit
        elif budget is not None and self._nps and not job.pondering:
            target = int(self._nps * budget)
        elif go.infinite or job.pondering:
            target = opts["Simulations"]
        else:
            target = FIRST_ROUND
        target = max(target, 16) if limit is None else min(max(target, 16), limit)
        search.start(target)

        stats = _Stats()
        done_before = 0  # simulations of the finished rounds
        completed: tuple[int, chess.Move] | None = None  # (simulations, best move) of the last finished round
        pruned = not allowed
        warned_memory = False
        start = time.monotonic()
        last_info = start
        last_sent: tuple[int, chess.Move] | None = None
        idle_since: float | None = None  # when an infinite search ran out of budget (nps ignores the wait)
        last_pv: list[chess.Move] = []

        def best() -> chess.Move:
            if gumbel and completed is not None and search.finished < completed[0]:
                return completed[1]
            return search.best_move()

        while True:
            ready = search.root is not None and search.root.expanded  # a move can be named
            if ready and not pruned:
                assert search.root is not None  # ready
                if not prune_root(search.root, allowed):
                    self.info_string("go searchmoves: none of them is legal here; searching all moves")
                search.start(search.target)
                pruned = True
            if ready and job.stop.is_set():
                break
            total = done_before + search.finished
            now = time.monotonic()
            if ready:
                enough = False
                if not job.pondering and budget is not None and now - job.timer_start >= budget:
                    enough = True
                limit = cap()
                if limit is not None and total >= limit:
                    enough = True
                if go.depth is not None and stats.depth >= go.depth and stats.leaves:
                    enough = True
                if budget is not None and len(legal) == 1:
                    enough = True  # nothing to think about
                if reused + total >= hash_sims:
                    if not warned_memory:
                        self.info_string(f"tree memory budget of {opts['Hash']} MB (Hash) reached")
                        warned_memory = True
                    enough = True
                if enough:
                    if job.finite:
                        break
                    if idle_since is None:
                        idle_since = now
                    job.wake.wait(0.1)  # infinite or pondering: a bestmove must wait for stop/ponderhit
                    job.wake.clear()
                    continue
                idle_since = None
                if search.done:  # a round ended below the budget: another, twice as long
                    done_before = total
                    if gumbel:
                        completed = (search.finished, search.best_move())
                    nxt = search.target * 2
                    if limit is not None:
                        nxt = min(nxt, limit - total)
                    search.start(max(nxt, 1))
            _step(search, self._evaluator, stats)
            now = time.monotonic()
            if now - last_info >= INFO_INTERVAL:
                last_info = now
                last_pv = self._send_info(
                    search, best(), stats, done_before + search.finished, reused, now - start, opts
                )
                last_sent = (done_before + search.finished, last_pv[0])

        total = done_before + search.finished
        end = time.monotonic()
        active = (idle_since or end) - start
        if active > 0.05 and total >= 16:
            nps = total / active
            self._nps = nps if self._nps is None else 0.5 * (self._nps + nps)
        move = best()
        if last_sent == (total, move):  # the periodic line just said it all
            pv = last_pv
        else:
            pv = self._send_info(search, move, stats, total, reused, end - start, opts, active=active)
        if not allowed:
            assert search.root is not None  # a move was named: the search has its root
            self._tree = (board.root().fen(), list(board.move_stack), search.root)
        self.send(f"bestmove {move.uci()}" + (f" ponder {pv[1].uci()}" if len(pv) > 1 else ""))

    def _send_info(
        self,
        search: mcts.Search,
        first: chess.Move,
        stats: _Stats,
        nodes: int,
        reused: int,
        elapsed: float,
        opts: dict[str, Any],
        active: float | None = None,
    ) -> list[chess.Move]:
        """Send one info line; `active` is the searching part of `elapsed` (for nps). Returns the PV."""
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
        hashfull = min(1000, (reused + nodes) * BYTES_PER_SIMULATION * 1000 // (opts["Hash"] * 1_000_000))
        depth = stats.depth
        self.send(
            f"info depth {depth} seldepth {max(stats.seldepth, depth)} time {ms} nodes {nodes} "
            f"nps {nps} hashfull {hashfull} score {score} pv {' '.join(m.uci() for m in pv)}"
        )
        return pv


# -- entry points ----------------------------------------------------------------------------


def main(
    checkpoint: Path | str | None = None,
    *,
    seed: int = 0,
    preset: str = "small",
    simulations: int = DEFAULT_SIMULATIONS,
    threads: int | None = None,
    algorithm: str = "gumbel",
    device: str = "cpu",
    input: TextIO | None = None,
    output: TextIO | None = None,
) -> int:
    """Speak UCI on `input`/`output` (stdin/stdout) with the network of `checkpoint`, or without
    one generation 0 of `seed` (`preset`, CHESS_PRESET). Returns the exit status: 0, or 2 when the
    network cannot be loaded (one line on stderr naming why)."""
    output = output if output is not None else sys.stdout
    version = package_version()
    if checkpoint is not None:
        try:
            header = peek_header(checkpoint)
        except ValueError as exc:
            print(f"continuous-play uci: {exc}", file=sys.stderr, flush=True)
            return 2
        name = (
            f"{ENGINE_NAME} {version} {header.get('preset', '?')} "
            f"gen {header.get('generation', '?')} seed {header.get('seed', '?')}"
        )
    else:
        name = f"{ENGINE_NAME} {version} {preset} gen 0 seed {seed}"

    def load():
        import torch

        from .engine import network

        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or torch has already run
            pass
        if checkpoint is not None:
            net, _ = network.load_weights(checkpoint, device)
        else:
            net = network.build_network(preset, seed).to(device)
        return network.Evaluator(net, device)

    engine = UciEngine(
        load, output=output, simulations=simulations, threads=threads, algorithm=algorithm, name=name, seed=seed
    )
    return engine.run(input)


def cli(argv: list[str] | None = None) -> int:
    """`python -m service.uci [--checkpoint FILE] [--seed N] [--preset P] ...`"""
    parser = argparse.ArgumentParser(prog="python -m service.uci", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="weights file (safetensors); default: generation 0 of --seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generation-0 net without --checkpoint")
    parser.add_argument(
        "--preset",
        default="small",
        choices=("tiny", "small", "medium", "large"),
        help="network preset without --checkpoint",
    )
    parser.add_argument(
        "--simulations", type=int, default=DEFAULT_SIMULATIONS, help="default of the Simulations option"
    )
    parser.add_argument("--threads", type=int, default=None, help="default of the Threads option (torch threads)")
    parser.add_argument("--algorithm", default="gumbel", choices=("gumbel", "puct"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    return main(
        args.checkpoint,
        seed=args.seed,
        preset=args.preset,
        simulations=args.simulations,
        threads=args.threads,
        algorithm=args.algorithm,
        device=args.device,
    )


if __name__ == "__main__":
    raise SystemExit(cli())
