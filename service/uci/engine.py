"""The UCI engine's command loop: `UciEngine` reads commands, answers them and hands each `go`
to the search thread (`search.SearchWorker`).

Three threads share the work, so `stop`, `isready` and `quit` are answered while a search runs:

- a reader turns the input stream into lines (raw `os.read` on a real file descriptor, so no
  buffered-reader lock is held at interpreter exit; undecodable bytes become U+FFFD);
- the main thread handles one command at a time (`UciEngine.handle`);
- the search worker first loads the network, then runs one search per `go` and sends its
  `bestmove` (`isready` waits for the load, as the protocol intends).

Malformed input (unknown commands, a bad FEN, an illegal move in `position`, a non-numeric `go`
parameter, undecodable bytes) is answered with an `info string` and otherwise ignored: a bad
`position` leaves the previous position in place, a bad `go` parameter is dropped and the
search still runs (a GUI waiting for `bestmove` is never left hanging). `go` in a position
without legal moves answers `bestmove 0000`. A `position`, `go`, `ucinewgame` or `quit` during
a search first stops it (its `bestmove` is sent). End of input acts as `quit`, after letting a
search with a finite budget finish (so `printf 'position startpos\\ngo nodes 200\\n' | ...` works).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Any, Callable, TextIO

import chess

from .protocol import (
    AUTHOR,
    COMMANDS,
    DEFAULT_SIMULATIONS,
    ENGINE_NAME,
    engine_options,
    info_string_line,
    package_version,
    parse_go,
)
from .search import Job, SearchWorker

_EOF = object()  # end of input, or the output went away
_LOAD_FAILED = object()


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
        self.options_spec = engine_options(simulations, threads, algorithm)
        self.options: dict[str, Any] = {o.name: o.default for o in self.options_spec.values()}
        self.board = chess.Board()
        self.quit_requested = False
        self.exit_code = 0
        self._out_lock = threading.Lock()
        self._events: queue.Queue = queue.Queue()
        self._job: Job | None = None
        self._worker = SearchWorker(evaluator, self.send, lambda: self._events.put(_LOAD_FAILED), seed)

    @property
    def load_error(self) -> str | None:
        """Why the network could not be loaded (None while it loads or once it has)."""
        return self._worker.load_error

    # -- output --------------------------------------------------------------------------
    def send(self, line: str) -> None:
        """Write one line (from either thread); a closed output ends the engine as `quit` does."""
        with self._out_lock:
            try:
                self.output.write(line + "\n")
                self.output.flush()
            except (OSError, ValueError):  # the GUI went away: finish as on quit
                self._events.put(_EOF)

    def info_string(self, text: str) -> None:
        """Tell the GUI `text` in an `info string` line."""
        self.send(info_string_line(text))

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
        self._worker.close(timeout=30)

    def _wait(self, job: Job | None, timeout: float | None = None) -> None:
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
        while not self._worker.loaded.wait(0.05):
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
        self._worker.forget()

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
        job = Job(self.board.copy(), go, dict(self.options), pondering=go.ponder, timer_start=time.monotonic())
        self._job = job
        self._worker.submit(job)

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
