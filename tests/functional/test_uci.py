"""The UCI engine (`python -m service.uci`, behind `continuous-play uci`) driven as a real
subprocess: by python-chess's `chess.engine` as a GUI would, and by raw lines for what a GUI
should never send. A tiny generation-0 checkpoint keeps every search cheap."""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import chess
import chess.engine
import pytest

from service.engine import network
from service.uci import entry, protocol, search

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
MATE_IN_ONE = "6k1/5ppp/8/8/8/8/8/R6K w - - 0 1"  # Ra8#; 16 legal moves, all of them searched
CHECKMATED = "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3"  # fool's mate
# No test here bounds how long the engine takes (DESIGN.md "Tests": no wall-clock assertion):
# each waits for the line that proves the claim (a bestmove that only a deadline, `stop` or
# `ponderhit` can produce), and a hang fails by these generous timeouts instead.


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("uci") / "tiny-gen0.safetensors"
    network.save_weights(network.build_network("tiny", 0), path, generation=0, seed=0)
    return path


def command(checkpoint: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "service.uci", "--checkpoint", str(checkpoint), "--threads", "1", *extra]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def engine(checkpoint):
    eng = chess.engine.SimpleEngine.popen_uci(command(checkpoint), timeout=60, cwd=ROOT, env=env())
    yield eng
    eng.quit()


class RawEngine:
    """The engine under plain pipes: send lines (or bytes), wait for an answer with a timeout."""

    def __init__(self, checkpoint: Path) -> None:
        self.proc = subprocess.Popen(
            command(checkpoint),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def send(self, data: str | bytes) -> None:
        self.proc.stdin.write(data.encode() if isinstance(data, str) else data)
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next line starting with `prefix` (lines before it are kept in `seen`)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line starting with {prefix!r} in {timeout}s; got {self.seen[-20:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def close(self) -> int:
        if self.proc.poll() is None:
            try:
                self.send("quit\n")
            except OSError:
                pass
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def raw(checkpoint):
    eng = RawEngine(checkpoint)
    yield eng
    if eng.proc.poll() is None:
        eng.proc.kill()
        eng.proc.wait()


def bestmove(line: str) -> str:
    return line.split()[1]


# -- python-chess as the client --------------------------------------------------------------


def test_identifies_itself_and_lists_its_options(engine):
    assert engine.id["name"].startswith("continuous-play ")
    assert "tiny gen 0 seed 0" in engine.id["name"]
    assert engine.id["author"]
    sims = engine.options["Simulations"]
    assert (sims.type, sims.default, sims.min, sims.max) == ("spin", protocol.DEFAULT_SIMULATIONS, 1, 1_000_000)
    threads = engine.options["Threads"]
    assert threads.type == "spin" and threads.default == 1 and threads.min == 1
    algorithm = engine.options["Algorithm"]
    assert algorithm.type == "combo" and algorithm.default == "gumbel" and set(algorithm.var) == {"gumbel", "puct"}
    assert engine.options["MoveOverhead"].type == "spin"
    assert engine.options["Hash"].type == "spin"
    assert engine.options["Ponder"].type == "check"


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_plays_legal_moves(engine, algorithm):
    positions = [
        chess.Board(),
        chess.Board("r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"),
        chess.Board("8/P6k/8/8/8/8/6K1/8 w - - 0 1"),  # promotion
        chess.Board("4k3/8/8/8/8/8/4q3/4K3 w - - 0 1"),  # in check, one legal move
    ]
    for board in positions:
        result = engine.play(board, chess.engine.Limit(nodes=50), options={"Algorithm": algorithm})
        assert result.move in board.legal_moves
        if result.ponder is not None:
            after = board.copy()
            after.push(result.move)
            assert result.ponder in after.legal_moves


def test_plays_a_game_against_itself(engine):
    board = chess.Board()
    game = object()  # one game: python-chess sends ucinewgame once, and the tree is reused
    while not board.is_game_over() and board.ply() < 60:
        result = engine.play(board, chess.engine.Limit(nodes=16), game=game)
        assert result.move in board.legal_moves, f"illegal {result.move} in {board.fen()}"
        board.push(result.move)
    assert board.ply() == 60 or board.is_game_over()


def test_analyse_reports_depth_nodes_score_and_pv(engine):
    board = chess.Board()
    info = engine.analyse(board, chess.engine.Limit(nodes=100), game=object())
    assert info["nodes"] == 100
    assert info["depth"] >= 1 and info["seldepth"] >= info["depth"]
    assert info["nps"] > 0 and "time" in info
    assert isinstance(info["score"], chess.engine.PovScore) and info["score"].relative.score() is not None
    pv = info["pv"]
    assert pv, info
    line = board.copy()
    for move in pv:
        assert move in line.legal_moves
        line.push(move)


def test_finds_and_reports_a_mate_in_one(engine):
    board = chess.Board(MATE_IN_ONE)
    info = engine.analyse(board, chess.engine.Limit(nodes=200), game=object(), options={"Algorithm": "gumbel"})
    assert info["pv"][0] == chess.Move.from_uci("a1a8")
    assert info["score"].relative == chess.engine.Mate(1)


@pytest.mark.timeout(180)  # a timed search that ignored its deadline would run 1,000,000 simulations
def test_move_time_and_clock_are_respected(engine):
    """A timed search ends by its deadline: with a simulation budget it cannot reach (1,000,000
    simulations, no node or depth limit) and a tree memory budget it cannot fill, the deadline
    is the only thing that can end it, so its bestmove (fewer nodes than the budget) is the
    proof. How long it took is bench/ material, not asserted."""
    board = chess.Board()
    options = {"Simulations": protocol.MAX_SIMULATIONS, "Hash": protocol.MAX_HASH_MB}
    engine.play(board, chess.engine.Limit(nodes=8))  # warm
    result = engine.play(board, chess.engine.Limit(time=0.3), options=options, info=chess.engine.INFO_ALL)
    assert result.move in board.legal_moves
    assert 0 < result.info["nodes"] < protocol.MAX_SIMULATIONS, result.info
    # 3 s each, 0.1 s increment: the time manager's budget (3/30 + 0.08 s) ends it the same way
    result = engine.play(
        board,
        chess.engine.Limit(white_clock=3, black_clock=3, white_inc=0.1, black_inc=0.1),
        options=options,
        info=chess.engine.INFO_ALL,
    )
    assert result.move in board.legal_moves
    assert 0 < result.info["nodes"] < protocol.MAX_SIMULATIONS, result.info


@pytest.mark.timeout(180)  # an infinite search that ignored `stop` would never answer
def test_infinite_analysis_runs_until_stop(engine):
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
    with engine.analysis(board, game=object()) as analysis:
        infos = []
        for info in analysis:  # periodic info lines arrive while it searches
            if "pv" in info:
                infos.append(info)
            if len(infos) >= 2:
                break
        assert infos[-1]["nodes"] > infos[0]["nodes"]
        analysis.stop()
        best = analysis.wait()  # an infinite search has no other way to its bestmove than `stop`
    assert best.move in board.legal_moves


# -- raw lines -------------------------------------------------------------------------------


def test_survives_garbage_and_still_plays(raw):
    raw.send("uci\n")
    raw.expect("uciok")
    raw.send(b"\n\n   \t \n")
    raw.send("position fen this is not a fen\n")
    raw.send("position fen 8/8/8/8/8/8/8/8 w - - 0 1\n")  # no kings
    raw.send("position startpos moves e2e5\n")  # illegal move
    raw.send("position startpos moves e2e4 zz99\n")
    raw.send("position\n")
    raw.send("go nodes abc movetime -5 wtime\n")  # still a search: parameters dropped
    raw.expect("bestmove")
    raw.send("go depth\n")
    raw.expect("bestmove")
    raw.send("setoption name Simulations value lots\n")
    raw.send("setoption name NoSuchOption value 3\n")
    raw.send("setoption garbage\n")
    raw.send(bytes(range(256)) + b"\n")
    raw.send(b"\xff\xfe\x00\x01 go? \x80\x81\n")
    raw.send("xyzzy\n")
    raw.send("stop\n")  # nothing to stop
    raw.send("ponderhit\n")
    raw.send("isready\n")
    raw.expect("readyok")
    strings = [line for line in raw.seen if line.startswith("info string")]
    assert len(strings) >= 10, raw.seen
    assert all(line.isprintable() for line in raw.seen)
    raw.send("position startpos moves e2e4\ngo nodes 20\n")
    move = chess.Move.from_uci(bestmove(raw.expect("bestmove")))
    board = chess.Board()
    board.push_uci("e2e4")
    assert move in board.legal_moves
    assert raw.close() == 0


def test_stop_isready_and_new_commands_during_a_search(raw):
    raw.send("uci\nisready\n")
    raw.expect("readyok")
    raw.send("position startpos\ngo infinite\n")
    raw.expect("info depth")  # it is searching
    raw.send("isready\n")
    raw.expect("readyok")
    # answered while the search goes on: an infinite search sends no bestmove until told to
    assert not any(line.startswith("bestmove") for line in raw.seen), raw.seen
    raw.send("go nodes 10\n")  # stops the infinite search (its bestmove first), then a new one
    first = raw.expect("bestmove")
    second = raw.expect("bestmove")
    for line in (first, second):
        assert chess.Move.from_uci(bestmove(line)) in chess.Board().legal_moves
    raw.send("position startpos moves e2e4\ngo infinite\n")
    raw.expect("info depth")
    raw.send("stop\n")
    line = raw.expect("bestmove")  # only `stop` ends an infinite search
    board = chess.Board()
    board.push_uci("e2e4")
    assert chess.Move.from_uci(bestmove(line)) in board.legal_moves
    raw.send("ucinewgame\nposition fen " + CHECKMATED + "\ngo nodes 10\n")
    assert raw.expect("bestmove") == "bestmove 0000"
    raw.send("quit\n")
    assert raw.proc.wait(timeout=60) == 0


def test_ponder_then_ponderhit(raw):
    raw.send("uci\nsetoption name Ponder value true\nisready\n")
    raw.expect("readyok")
    raw.send("position startpos moves e2e4 e7e5\ngo ponder wtime 2000 btime 2000 movestogo 10\n")
    # Pondering: no bestmove before ponderhit however long it takes. Wait until the engine
    # itself reports having searched well past what the clock would give this move (2000/10
    # ms less the overhead), then check that it still has not answered.
    budget_ms = 1000 * search.time_budget(protocol.GoParams(wtime=2000, btime=2000, movestogo=10), chess.WHITE, 0.03)
    while True:
        info = raw.expect("info depth")
        assert not any(line.startswith("bestmove") for line in raw.seen), raw.seen
        if int(info.split(" time ")[1].split()[0]) > 2 * budget_ms:
            break
    raw.send("ponderhit\n")
    line = raw.expect("bestmove")
    board = chess.Board()
    board.push_uci("e2e4")
    board.push_uci("e7e5")
    assert chess.Move.from_uci(bestmove(line)) in board.legal_moves
    assert raw.close() == 0


def test_end_of_input_finishes_the_search_and_exits(checkpoint):
    done = subprocess.run(
        command(checkpoint),
        input=b"uci\nposition startpos\ngo nodes 30\n",
        capture_output=True,
        cwd=ROOT,
        env=env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[-1].startswith("bestmove ") and chess.Move.from_uci(bestmove(lines[-1])) in chess.Board().legal_moves
    assert any(line.startswith("info depth") and " nodes 30 " in line for line in lines)


def test_an_unreadable_checkpoint_exits_with_status_2(tmp_path):
    missing = subprocess.run(
        command(tmp_path / "missing.safetensors"), input=b"uci\n", capture_output=True, cwd=ROOT, env=env(), timeout=60
    )
    assert missing.returncode == 2 and b"no weights file" in missing.stderr
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(512))
    done = subprocess.run(command(junk), input=b"uci\nisready\n", capture_output=True, cwd=ROOT, env=env(), timeout=60)
    assert done.returncode == 2 and b"not a continuous-play/1 weights file" in done.stderr


def test_a_damaged_checkpoint_is_reported_at_isready(tmp_path, checkpoint):
    # A valid header in front of truncated tensors: found when the network loads.
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(checkpoint.read_bytes()[:-1000])
    done = subprocess.run(
        command(damaged), input=b"uci\nisready\n", capture_output=True, cwd=ROOT, env=env(), timeout=120
    )
    assert done.returncode == 2, done
    out = done.stdout.decode()
    assert "uciok" in out and "readyok" not in out and "info string error: could not load the network" in out
    assert b"could not load the network" in done.stderr


# -- in process ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_main_without_checkpoint_plays_generation_zero(backend):
    import torch

    out = io.StringIO()
    threads = torch.get_num_threads()
    try:
        code = entry.main(
            None,
            seed=0,
            preset="tiny",
            threads=1,
            backend=backend,
            input=io.StringIO("uci\nisready\nposition startpos moves d2d4\ngo nodes 12\n"),
            output=out,
        )
    finally:
        torch.set_num_threads(threads)  # the engine set this process's torch threads
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[0] == f"id name continuous-play {protocol.package_version()} tiny gen 0 seed 0"
    assert "readyok" in lines
    board = chess.Board()
    board.push_uci("d2d4")
    assert chess.Move.from_uci(bestmove(lines[-1])) in board.legal_moves


def test_auto_probes_once_at_the_engines_batch_and_caches_the_choice(tmp_path):
    import torch

    from service.engine import inference

    threads = torch.get_num_threads()
    try:
        for _ in range(2):
            out = io.StringIO()
            code = entry.main(
                None,
                preset="tiny",
                threads=1,
                backend="auto",
                probe_dir=tmp_path,
                input=io.StringIO("uci\nisready\ngo nodes 8\n"),
                output=out,
            )
            assert code == 0 and out.getvalue().splitlines()[-1].startswith("bestmove ")
    finally:
        torch.set_num_threads(threads)
    choice = inference.choose("auto", "tiny", batch=search.LEAVES_PER_STEP, threads=1, cache_dir=tmp_path)
    if len(inference.available()) > 1:  # probed by the first run, read back here
        assert (tmp_path / inference.PROBE_FILE).is_file() and choice.source is inference.ChoiceSource.CACHE


def test_a_backend_that_cannot_run_here_exits_with_status_2(monkeypatch, capsys):
    monkeypatch.setattr(entry, "unavailable", lambda backend, device="cpu": "not on this test machine")
    assert entry.main(None, preset="tiny", backend="torch-bf16", input=io.StringIO("uci\n"), output=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backend torch-bf16: not on this test machine" in err


def test_time_manager_and_score_mapping():
    go = protocol.GoParams(wtime=60_000, btime=3_000, winc=2_000, binc=0)
    white = search.time_budget(go, chess.WHITE, 0.03)
    assert white == pytest.approx(60 / 30 + 0.8 * 2 - 0.03)
    assert search.time_budget(go, chess.BLACK, 0.03) == pytest.approx(3 / 30 - 0.03)
    assert search.time_budget(protocol.GoParams(btime=-50), chess.BLACK, 0.03) == pytest.approx(0.005)
    assert search.time_budget(protocol.GoParams(wtime=10_000, movestogo=1), chess.WHITE, 0.0) == pytest.approx(8.0)
    assert search.time_budget(protocol.GoParams(movetime=500, wtime=60_000), chess.WHITE, 0.03) == pytest.approx(0.47)
    assert search.time_budget(protocol.GoParams(nodes=5), chess.WHITE, 0.03) is None
    assert protocol.cp_from_value(0.0) == 0
    assert protocol.cp_from_value(0.5) == -protocol.cp_from_value(-0.5) > 100
    assert protocol.cp_from_value(1.0) == protocol.cp_from_value(2.0) == 12_800
    _, warnings = protocol.parse_go(["nodes", "x", "searchmoves", "e2e4", "e2e5", "bogus"], chess.Board())
    assert len(warnings) == 3
