"""`continuous-play export --checkpoint FILE --format onnx --output FILE` as installed, in a
subprocess with a clean environment: the file it writes runs in onnxruntime with the
checkpoint's outputs and metadata, and it says so in one line; bad input (a format other
than onnx, a checkpoint that is missing or not weights, an output it cannot write) is one
line on stderr naming what is wrong, exit status 2, and no file written. README's "ONNX
export" example runs on the exported file in a Python with no project code, and its planes
are the engine's."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import chess
import numpy as np
import onnxruntime as ort
import pytest
from support.cli import CONSOLE_SCRIPT, clean_env

from service.engine import encoding, network

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def export(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "export", *args],
        cwd=cwd,
        env=clean_env(TORCH_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "gen-0007.safetensors"
    network.save_weights(network.build_network("tiny", 5), path, generation=7, seed=5)
    return path


@pytest.mark.timeout(300)
def test_export_writes_an_onnx_file_that_onnxruntime_runs(tmp_path, weights):
    output = tmp_path / "out" / "net.onnx"
    output.parent.mkdir()
    proc = export(tmp_path, "--checkpoint", str(weights), "--format", "onnx", "--output", str(output))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"onnx {output} (preset tiny, generation 7)"]
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert (meta["preset"], meta["generation"], meta["seed"]) == ("tiny", "7", "5")
    planes = encoding.encode_boards([chess.Board()])
    logits, wdl, value = session.run(None, {"planes": planes})
    t_logits, t_value, t_wdl = network.Evaluator(network.build_network("tiny", 5)).evaluate(planes)
    np.testing.assert_allclose(logits, t_logits, atol=1e-4)
    np.testing.assert_allclose(wdl, t_wdl, atol=1e-5)
    np.testing.assert_allclose(value, t_value, atol=1e-5)
    assert sorted(p.name for p in output.parent.iterdir()) == ["net.onnx"]

    # --format defaults to onnx; an existing output is replaced whole
    proc = export(tmp_path, "--checkpoint", str(weights), "--output", str(output))
    assert proc.returncode == 0, proc.stderr
    assert (
        ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map["generation"]
        == "7"
    )


@pytest.mark.timeout(300)
def test_bad_input_is_one_line_and_exit_2(tmp_path, weights):
    not_weights = tmp_path / "notes.safetensors"
    not_weights.write_text("not a safetensors file")
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    w = str(weights)
    cases = [
        (["--checkpoint", w, "--format", "tflite", "--output", "x.onnx"], "--format 'tflite'"),
        (["--checkpoint", w, "--format", "ONNX ", "--output", "x.onnx"], "--format 'ONNX '"),
        (["--checkpoint", str(tmp_path / "nope.safetensors"), "--output", "x.onnx"], "--checkpoint"),
        (["--checkpoint", str(not_weights), "--output", "x.onnx"], "--checkpoint"),
        (["--checkpoint", str(tmp_path), "--output", "x.onnx"], "--checkpoint"),
        (["--checkpoint", w, "--output", str(tmp_path / "missing" / "x.onnx")], "--output"),
        (["--checkpoint", w, "--output", str(a_file / "x.onnx")], "--output"),
        (["--checkpoint", w, "--output", str(tmp_path)], "--output"),
        (["--checkpoint", w, "--output", w], "--output"),
        (["--checkpoint", w, "--output", "/proc/x.onnx"], "--output"),  # no file can be created there
        (["--output", "x.onnx"], None),  # no --checkpoint: typer's own usage error, exit 2 as well
    ]
    for args, named in cases:
        proc = export(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == "" and "Traceback" not in proc.stderr, args
        if named is not None:
            lines = proc.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("continuous-play: ") and named in lines[0], (args, lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen-0007.safetensors", "notes.safetensors", "plain.txt"]
    assert network.read_header(weights)["generation"] == 7  # never overwritten


def readme_example() -> str:
    """The Python block of README's "ONNX export" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## ONNX export") :]
    section = section[: section.index("\n## ", 1)]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


def positions(count: int, seed: int = 0) -> list[chess.Board]:
    """Positions of random games: both sides to move, castling rights lost, en-passant squares."""
    rng, boards = random.Random(seed), []
    while len(boards) < count:
        board = chess.Board()
        for _ in range(rng.randrange(1, 80)):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
            boards.append(board.copy(stack=False))
    return boards[:count]


@pytest.mark.timeout(300)
def test_the_readme_example_runs_on_an_exported_file(tmp_path, weights):
    proc = export(tmp_path, "--checkpoint", str(weights), "--output", str(tmp_path / "gen7.onnx"))
    assert proc.returncode == 0, proc.stderr
    example = readme_example()
    readme_fen = "r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3"
    assert readme_fen in example
    evaluator = network.Evaluator(network.build_network("tiny", 5))
    # README's position, and Black to move with promotions (the mirrored move lookup)
    for fen in (readme_fen, "8/8/8/8/8/k7/p2p4/2K5 b - - 0 1"):
        # as a user runs it: a clean interpreter in isolated mode that cannot import the project
        script = 'import sys\nsys.modules["service"] = None\n' + example.replace(readme_fen, fen)
        out = subprocess.run(
            [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        board = chess.Board(fen)
        logits, value, wdl = evaluator.evaluate(encoding.encode_boards([board]))
        expected = max(board.legal_moves, key=lambda m: logits[0, encoding.move_index(m, board.turn)])
        assert out.stdout.split(" ", 1)[0] == expected.uci(), (fen, out.stdout)
        printed = json.loads(re.search(r"\[.*?\]", out.stdout).group(0))  # P(win, draw, loss): [w, d, l]
        np.testing.assert_allclose(printed, wdl[0], atol=2e-3)

    # its planes are the engine's (repetitions aside) on positions with either side to move
    namespace: dict = {}
    exec(compile(example.split("\nnet = ")[0], "README.md", "exec"), namespace)
    boards = positions(300) + [chess.Board("rnbqkbnr/ppp1pppp/8/3pP3/8/8/PPPP1PPP/RNBQKBNR b KQkq d6 0 2")]
    assert any(not b.turn for b in boards) and any(b.ep_square is not None for b in boards)
    ours = np.concatenate([namespace["planes"](b) for b in boards])
    np.testing.assert_array_equal(ours, encoding.encode_boards(boards))
