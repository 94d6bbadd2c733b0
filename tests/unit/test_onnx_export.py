"""The ONNX file of a net: same outputs as the torch evaluator, self-describing metadata, and
usable by a Python that has onnxruntime and numpy but none of the project's code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import chess
import numpy as np
import onnxruntime as ort
import pytest

from service.engine import encoding, network, onnx_export

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def net() -> network.ChessNet:
    return network.build_network("tiny", 3)


@pytest.fixture(scope="module")
def model(net: network.ChessNet) -> bytes:
    return onnx_export.onnx_bytes(net, {"preset": "tiny", "generation": 7, "seed": 3, "encoding_version": 1})


def _boards() -> list[chess.Board]:
    boards = [chess.Board()]
    for fen in (
        "r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3",
        "8/P7/8/8/8/8/k6K/8 w - - 0 1",
        "rnbqkbnr/ppp1pppp/8/3pP3/8/8/PPPP1PPP/RNBQKBNR b KQkq d6 0 2",
    ):
        boards.append(chess.Board(fen))
    return boards


def test_outputs_match_the_torch_evaluator(net: network.ChessNet, model: bytes) -> None:
    planes = encoding.encode_boards(_boards())
    logits, value, wdl = network.Evaluator(net).evaluate(planes)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [onnx_export.INPUT_NAME]
    assert tuple(o.name for o in session.get_outputs()) == onnx_export.OUTPUT_NAMES
    o_logits, o_wdl, o_value = session.run(None, {"planes": planes})
    assert o_logits.shape == (4, encoding.POLICY_SIZE) and o_wdl.shape == (4, 3) and o_value.shape == (4,)
    np.testing.assert_allclose(o_logits, logits, atol=1e-4)
    np.testing.assert_allclose(o_wdl, wdl, atol=1e-5)
    np.testing.assert_allclose(o_value, value, atol=1e-5)


def test_metadata_describes_the_net_and_the_move_table(model: bytes) -> None:
    meta = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["preset"] == "tiny" and meta["generation"] == "7" and meta["encoding_version"] == "1"
    table = json.loads(meta["move_table"])
    assert len(table) == encoding.POLICY_SIZE
    # The table's entries are the policy indices python-chess moves map to (White to move).
    for uci in ("e2e4", "g1f3", "a7a8", "a7a8n", "e1g1"):
        move = chess.Move.from_uci(uci)
        assert table[encoding.move_index(move, chess.WHITE)] == uci.rstrip("q")
    assert "22" in meta["input_planes"]


def test_runs_with_onnxruntime_alone(tmp_path, model: bytes) -> None:
    """A clean interpreter (no project on the path, isolated mode) loads it and picks e2e4's
    logit from the move table: what a user outside the project does."""
    path = tmp_path / "net.onnx"
    path.write_bytes(model)
    planes = encoding.encode_boards([chess.Board()])
    np.save(tmp_path / "start.npy", planes)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["service"] = None  # the project's package cannot be imported from here on
        import json, numpy as np, onnxruntime as ort
        s = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        logits, wdl, value = s.run(None, {{"planes": np.load({str(tmp_path / "start.npy")!r})}})
        table = json.loads(s.get_modelmeta().custom_metadata_map["move_table"])
        print(json.dumps({{"e2e4": float(logits[0, table.index("e2e4")]), "wdl_sum": float(wdl.sum())}}))
        """
    )
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    result = json.loads(out.stdout)
    logits, _, _ = network.Evaluator(network.build_network("tiny", 3)).evaluate(planes)
    assert result["e2e4"] == pytest.approx(
        float(logits[0, encoding.move_index(chess.Move.from_uci("e2e4"), True)]), abs=1e-4
    )
    assert result["wdl_sum"] == pytest.approx(1.0, abs=1e-5)


def test_export_checkpoint_writes_the_file(tmp_path, net: network.ChessNet) -> None:
    weights = tmp_path / "g5.safetensors"
    network.save_weights(net, weights, generation=5, seed=3)
    meta = onnx_export.export_checkpoint(weights, tmp_path / "g5.onnx")
    assert meta["generation"] == "5"
    session = ort.InferenceSession(str(tmp_path / "g5.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["generation"] == "5"
