"""network.py: shapes, seeded generation 0, the evaluator, weights files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from support.positions import random_positions

from service.engine.encoding import AZ_PLANES, ENCODING_VERSION, POLICY_SIZE, POLICY_TO_PLANE, encode_boards
from service.engine.network import (
    FORMAT,
    PRESETS,
    ChessNet,
    Evaluator,
    NetConfig,
    build_network,
    load_weights,
    parameter_count,
    read_header,
    save_weights,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def planes() -> np.ndarray:
    return encode_boards(random_positions(12))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_output_shapes(planes: np.ndarray) -> None:
    net = build_network("tiny", seed=0)
    with torch.no_grad():
        policy, wdl = net(torch.from_numpy(planes))
    assert policy.shape == (len(planes), POLICY_SIZE)
    assert wdl.shape == (len(planes), 3)
    assert net.preset == "tiny" and net.config == PRESETS["tiny"]


def test_policy_head_gathers_the_1858_moves_from_the_73_planes(planes: np.ndarray) -> None:
    net = build_network("tiny", seed=1)
    captured = {}
    net.policy_out.register_forward_hook(lambda m, i, o: captured.setdefault("planes", o))
    with torch.no_grad():
        policy, _ = net(torch.from_numpy(planes))
    full = captured["planes"]
    assert full.shape == (len(planes), AZ_PLANES, 8, 8)
    expected = full.flatten(1)[:, torch.as_tensor(POLICY_TO_PLANE)]
    assert torch.equal(policy, expected)


def test_parameter_counts_of_presets() -> None:
    counts = {name: parameter_count(ChessNet(cfg, name)) for name, cfg in PRESETS.items()}
    # tiny is dominated by the value head's 2048x128 linear layer (~262k)
    assert 200_000 < counts["tiny"] < 500_000, counts
    assert 600_000 < counts["small"] < 1_200_000, counts  # "about 6x64", roughly 0.8M
    assert 2_000_000 < counts["medium"] < 5_000_000, counts
    assert 15_000_000 < counts["large"] < 40_000_000, counts
    assert counts["tiny"] < counts["small"] < counts["medium"] < counts["large"]


def test_build_network_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    a = build_network("tiny", seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    b = build_network("tiny", seed=7)
    c = build_network("tiny", seed=8)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)
    assert not a.training


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown network preset"):
        build_network("huge", seed=0)


@pytest.mark.parametrize("optimize", [True, False])
def test_evaluator_matches_eager_and_is_deterministic(planes: np.ndarray, optimize: bool) -> None:
    net = build_network("tiny", seed=3)
    with torch.no_grad():
        ref_policy, ref_wdl = net(torch.from_numpy(planes))
    ref_probs = torch.softmax(ref_wdl, dim=1).numpy()
    ev = Evaluator(net, optimize=optimize)
    assert ev.backend == "torch" and ev.layout == ("folded-channels-last" if optimize else "folded")
    logits, value, probs = ev.evaluate(planes)
    assert logits.dtype == value.dtype == probs.dtype == np.float32
    assert logits.shape == (len(planes), POLICY_SIZE) and value.shape == (len(planes),)
    assert probs.shape == (len(planes), 3)
    np.testing.assert_allclose(logits, ref_policy.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(value, probs[:, 0] - probs[:, 2])
    assert np.all(value >= -1) and np.all(value <= 1)
    for _ in range(3):  # bit-identical on every call, TorchScript's profiling runs included
        again = ev.evaluate(planes)
        for x, y in zip((logits, value, probs), again):
            np.testing.assert_array_equal(x, y)


def test_evaluator_single_position_and_snapshot_refresh(planes: np.ndarray) -> None:
    net = build_network("tiny", seed=4)
    ev = Evaluator(net)
    before = ev.evaluate(planes[:1])[0]
    with torch.no_grad():
        net.policy_out.bias.add_(1.0)  # the training net moves on...
    np.testing.assert_array_equal(ev.evaluate(planes[:1])[0], before)  # ...the snapshot does not
    ev.refresh()
    np.testing.assert_allclose(ev.evaluate(planes[:1])[0], before + 1.0, atol=1e-4)


def _trained_looking(net: ChessNet, planes: np.ndarray) -> ChessNet:
    """Move BatchNorm running stats and num_batches_tracked off their initial values."""
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(planes))
    return net.eval()


def test_save_load_round_trip(tmp_path, planes: np.ndarray) -> None:
    net = _trained_looking(build_network("tiny", seed=5), planes)
    path = tmp_path / "gen3.safetensors"
    digest = save_weights(net, path, generation=3, seed=5, extra={"session_id": "abc", "elo": 12.5})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded, header = load_weights(path)
    assert header["preset"] == "tiny" and header["generation"] == 3 and header["seed"] == 5
    assert header["encoding_version"] == ENCODING_VERSION and header["format"] == FORMAT
    assert header["session_id"] == "abc" and header["elo"] == 12.5
    assert read_header(path) == header
    assert isinstance(loaded, ChessNet) and loaded.preset == "tiny" and not loaded.training
    assert _same_weights(net, loaded)
    assert int(loaded.input_bn.num_batches_tracked) == 1
    assert loaded.input_bn.num_batches_tracked.dtype == torch.long
    with torch.no_grad():
        a, b = net(torch.from_numpy(planes)), loaded(torch.from_numpy(planes))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, no leftovers


def test_custom_config_round_trips(tmp_path) -> None:
    net = ChessNet(NetConfig(1, 8, value_channels=4, value_hidden=16), "custom")
    save_weights(net, tmp_path / "w.safetensors", generation=0, seed=0)
    loaded, _ = load_weights(tmp_path / "w.safetensors")
    assert loaded.config == net.config and _same_weights(net, loaded)


def test_not_our_files_raise_value_error(tmp_path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError):
        load_weights(junk)

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="header"):
        load_weights(foreign)

    good = tmp_path / "good.safetensors"
    save_weights(build_network("tiny", seed=0), good, generation=0, seed=0)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError):
        load_weights(truncated)

    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "missing.safetensors")


def test_other_encoding_version_is_refused(tmp_path) -> None:
    net = build_network("tiny", seed=0)
    header = {"preset": "tiny", "generation": 0, "encoding_version": ENCODING_VERSION + 1, "seed": 0, "format": FORMAT}
    path = tmp_path / "future.safetensors"
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()},
        str(path),
        metadata={"continuous-play": json.dumps(header)},
    )
    assert read_header(path)["encoding_version"] == ENCODING_VERSION + 1
    with pytest.raises(ValueError, match="encoding version"):
        load_weights(path)


def test_mismatched_tensors_raise_value_error(tmp_path) -> None:
    net = build_network("tiny", seed=0)
    path = tmp_path / "liar.safetensors"
    save_weights(net, path, generation=0, seed=0)
    header = read_header(path)
    header["config"] = {"blocks": 3, "channels": 32, "value_channels": 32, "value_hidden": 128}
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()},
        str(path),
        metadata={"continuous-play": json.dumps(header)},
    )
    with pytest.raises(ValueError, match="does not match"):
        load_weights(path)
