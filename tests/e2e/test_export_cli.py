"""`continuous-play export --checkpoint FILE --format onnx --output FILE` as installed, in a
subprocess with a clean environment: the file it writes runs in onnxruntime with the
checkpoint's outputs and metadata, and it says so in one line; bad input (a format other
than onnx, a checkpoint that is missing or not weights, an output it cannot write) is one
line on stderr naming what is wrong, exit status 2, and no file written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import chess
import numpy as np
import onnxruntime as ort
import pytest
from support.cli import CONSOLE_SCRIPT, clean_env

from service.engine import encoding, network

pytestmark = pytest.mark.e2e


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
