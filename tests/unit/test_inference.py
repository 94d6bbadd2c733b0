"""The inference backends (engine/inference.py): every backend matches torch on 1,000 fixed
positions, refreshes to new weights (and only on refresh), fits the search's interface; `auto`
picks an available backend by a probe and caches its choice.

Parity tolerances (README "Inference backends" states the same), against the `torch` backend
(float32, folded, channels-last) on a trained-ish tiny net (tests/support/trained.py), over
all 1,858 policy logits and the 3 WDL probabilities of each position:
- `torch` itself at batch 1 and `onnxruntime` (float32, another kernel library): |logit| <= 1e-4, mean |logit| <= 1e-5,
  |WDL| <= 1e-5; the same best legal move on >= 99.9% of positions;
- `torch-bf16` (8-bit mantissa): |logit| <= 0.15, mean |logit| <= 0.02, |WDL| <= 0.02; the
  same best legal move on >= 99% (measured here: 99.4-99.6% on tiny and small, largest
  logit difference ~0.06-0.08, mean ~0.005).
"""

from __future__ import annotations

import json

import chess
import numpy as np
import pytest
import torch
from support.positions import random_positions
from support.trained import trained_ish

from service.engine import inference, mcts, network
from service.engine.encoding import POLICY_SIZE, encode_boards, legal_mask
from service.engine.inference import BACKENDS, InferenceBackend

pytestmark = pytest.mark.unit

POSITIONS = 1_000

TOLERANCES = {
    # backend: (max |d logit|, mean |d logit|, max |d WDL|, share of positions with the same best legal move)
    InferenceBackend.TORCH: (1e-4, 1e-5, 1e-5, 0.999),  # itself at another batch size: float32 rounding
    InferenceBackend.ONNXRUNTIME: (1e-4, 1e-5, 1e-5, 0.999),
    InferenceBackend.TORCH_BF16: (0.15, 0.02, 0.02, 0.99),
}
assert set(TOLERANCES) == set(BACKENDS), "a new backend needs its stated tolerances"


def needs(backend: InferenceBackend) -> None:
    """Skip, saying why, where this machine cannot run `backend` (bf16 needs AVX-512 BF16/AMX)."""
    reason = inference.unavailable(backend)
    if reason is not None:
        pytest.skip(f"{backend.value}: {reason}")


@pytest.fixture(scope="module")
def positions() -> tuple[list[chess.Board], np.ndarray, np.ndarray]:
    """1,000 fixed positions with legal moves (seeded random games), their planes and legal masks."""
    boards = [b for b in random_positions(POSITIONS + 100, seed=7) if any(b.generate_legal_moves())][:POSITIONS]
    assert len(boards) == POSITIONS
    return boards, encode_boards(boards), legal_mask(boards)


@pytest.fixture(scope="module")
def trained() -> network.ChessNet:
    return trained_ish("tiny")


def best_legal(logits: np.ndarray, legal: np.ndarray) -> np.ndarray:
    return np.where(legal, logits, -np.inf).argmax(axis=1)


def assert_parity(backend: InferenceBackend, got, want, legal: np.ndarray) -> None:
    """`got` matches `want` (torch's) within `backend`'s tolerances; value = P(win) - P(loss)."""
    max_logit, mean_logit, max_wdl, agree = TOLERANCES[backend]
    logits, value, wdl = got
    assert logits.shape == (len(legal), POLICY_SIZE) and value.shape == (len(legal),) and wdl.shape == (len(legal), 3)
    assert logits.dtype == value.dtype == wdl.dtype == np.float32
    diff = np.abs(logits - want[0])
    assert diff.max() <= max_logit and diff.mean() <= mean_logit, (diff.max(), diff.mean())
    assert np.abs(wdl - want[2]).max() <= max_wdl
    np.testing.assert_allclose(value, wdl[:, 0] - wdl[:, 2], atol=1e-6)
    np.testing.assert_allclose(wdl.sum(axis=1), 1.0, atol=1e-5)
    same = (best_legal(logits, legal) == best_legal(want[0], legal)).mean()
    assert same >= agree, f"{backend.value}: the same best legal move on {same:.1%} of positions"


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.value for b in BACKENDS])
def test_every_backend_matches_torch_on_1000_positions(backend, positions, trained):
    needs(backend)
    _, planes, legal = positions
    want = network.Evaluator(trained).evaluate(planes)
    assert np.abs(want[0][legal]).std() > 1.0, "the net's logits must spread as a trained net's do"
    evaluator = inference.make(trained, backend)
    assert evaluator.backend == backend.value
    got = evaluator.evaluate(planes)
    assert_parity(backend, got, want, legal)
    assert all(np.array_equal(a, b) for a, b in zip(got, evaluator.evaluate(planes)))  # repeats bit for bit
    assert_parity(backend, evaluator.evaluate(planes[:1]), tuple(a[:1] for a in want), legal[:1])  # batch 1


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.value for b in BACKENDS])
def test_refresh_takes_the_new_weights_and_only_refresh_does(backend, positions, trained):
    needs(backend)
    _, planes, legal = positions
    planes, legal = planes[:200], legal[:200]
    net = network.build_network("tiny", seed=0)
    evaluator = inference.make(net, backend)
    before = evaluator.evaluate(planes)
    net.load_state_dict(trained.state_dict())  # what a learning phase does to the training net
    np.testing.assert_array_equal(evaluator.evaluate(planes)[0], before[0])  # a snapshot until refreshed
    evaluator.refresh()
    assert_parity(backend, evaluator.evaluate(planes), network.Evaluator(net).evaluate(planes), legal)


def test_the_interfaces_fit_every_evaluator():
    net = network.build_network("tiny", seed=0)
    for backend in inference.available():
        evaluator = inference.make(net, backend)
        assert isinstance(evaluator, inference.SnapshotEvaluator) and evaluator.backend == backend.value
    assert isinstance(network.Evaluator(net), inference.SnapshotEvaluator)
    assert isinstance(mcts.UniformEvaluator(), inference.Evaluator)  # the search needs `evaluate` only


def test_auto_is_resolved_before_an_evaluator_is_made():
    net = network.build_network("tiny", seed=0)
    with pytest.raises(ValueError, match="resolved by inference.choose"):
        inference.make(net, "auto")
    with pytest.raises(ValueError, match="'fast' is not a valid InferenceBackend"):
        inference.make(net, "fast")
    assert inference.runnable("auto") is InferenceBackend.TORCH
    assert inference.runnable("onnxruntime") is InferenceBackend.ONNXRUNTIME


def test_a_named_backend_is_taken_as_it_is(tmp_path):
    choice = inference.choose("onnxruntime", "tiny", batch=8, cache_dir=tmp_path)
    assert (choice.backend, choice.source) == (InferenceBackend.ONNXRUNTIME, "setting")
    assert not (tmp_path / inference.PROBE_FILE).exists()  # no probe, nothing cached


def test_auto_probes_picks_an_available_backend_and_caches_the_choice(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    first = inference.choose("auto", "tiny", batch=8, threads=1, cache_dir=tmp_path)
    assert torch.get_num_threads() == threads  # the probe's thread count is put back
    candidates = inference.available()
    assert first.source == "probe" and first.backend in candidates
    assert set(first.positions_per_s) == {b.value for b in candidates}
    assert first.backend.value == max(first.positions_per_s, key=lambda b: first.positions_per_s[b])
    stored = json.loads((tmp_path / inference.PROBE_FILE).read_text())
    key = inference.probe_key("tiny", 8, "cpu", 1, candidates)
    assert stored["entries"][key] == first.positions_per_s
    assert json.loads(key)["cpu"] == inference.cpu_model()

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again although the choice was cached")

    monkeypatch.setattr(inference, "probe", no_probe)
    again = inference.choose("auto", "tiny", batch=8, threads=1, cache_dir=tmp_path)
    assert (again.backend, again.source, again.positions_per_s) == (first.backend, "cache", first.positions_per_s)
    assert again.to_dict() == {
        "backend": first.backend.value,
        "requested": "auto",
        "source": "cache",
        "positions_per_s": first.positions_per_s,
    }


def test_auto_takes_the_fastest_cached_figure_and_reprobes_a_new_batch(tmp_path, monkeypatch):
    candidates = inference.available()
    if len(candidates) < 2:
        pytest.skip("one backend only on this machine: auto takes it without a probe")
    slowest_first = {b.value: float(i + 1) for i, b in enumerate(reversed(candidates))}
    key = inference.probe_key("tiny", 8, "cpu", 1, candidates)
    (tmp_path / inference.PROBE_FILE).write_text(json.dumps({"entries": {key: slowest_first}}))
    assert inference.choose("auto", "tiny", batch=8, threads=1, cache_dir=tmp_path).backend is candidates[0]

    probed: list[int] = []

    def fake_probe(net, backends, *, batch, device, threads):
        probed.append(batch)
        return {b.value: 1.0 for b in backends}  # a tie: the first of BACKENDS' order

    monkeypatch.setattr(inference, "probe", fake_probe)
    choice = inference.choose("auto", "tiny", batch=16, threads=1, cache_dir=tmp_path)
    assert probed == [16] and (choice.source, choice.backend) == ("probe", candidates[0])
    entries = json.loads((tmp_path / inference.PROBE_FILE).read_text())["entries"]
    assert len(entries) == 2  # the batch-8 entry is kept beside the new one


def test_an_unreadable_cache_is_probed_over(tmp_path, monkeypatch):
    (tmp_path / inference.PROBE_FILE).write_text("{not json")
    monkeypatch.setattr(inference, "probe", lambda net, backends, **kw: {b.value: 1.0 for b in backends})
    choice = inference.choose("auto", "tiny", batch=4, threads=1, cache_dir=tmp_path)
    assert choice.source == ("probe" if len(inference.available()) > 1 else "only")


def test_on_a_gpu_auto_keeps_torch_unless_onnxruntime_has_cuda(tmp_path, monkeypatch):
    """DEVICE=cuda: bf16 is never `auto`'s pick there, and ONNX Runtime only with its CUDA
    provider; with torch alone left nothing is probed."""
    monkeypatch.setattr(inference, "probe", lambda *a, **kw: pytest.fail("probed with one candidate"))
    monkeypatch.setattr(
        inference, "unavailable", lambda b, device="cpu": None if b is InferenceBackend.TORCH else "not here"
    )
    choice = inference.choose("auto", "tiny", batch=8, device="cuda", cache_dir=tmp_path)
    assert (choice.backend, choice.source) == (InferenceBackend.TORCH, "only")
    assert inference.runnable("onnxruntime", "cuda") is InferenceBackend.TORCH  # a role's fallback


def test_what_a_backend_needs_is_said_in_words():
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "CUDA provider" in inference.unavailable(InferenceBackend.ONNXRUNTIME, "cuda")
    if not torch.cuda.is_available():
        assert inference.unavailable(InferenceBackend.TORCH_BF16, "cuda") == "no bfloat16 GPU"
    assert inference.unavailable(InferenceBackend.TORCH, "cuda") is None
    assert inference.unavailable(InferenceBackend.AUTO) is None


def test_bf16_is_offered_only_where_the_cpu_computes_it_natively(monkeypatch):
    """oneDNN emulates bfloat16 on plain AVX-512 (slower than float32): such a CPU is not offered it."""
    monkeypatch.setattr(inference, "_cpu_info", lambda: ("Skylake-X", frozenset({"avx2", "avx512f", "avx512bw"})))
    assert "no native bfloat16" in inference.unavailable(InferenceBackend.TORCH_BF16)
    assert InferenceBackend.TORCH_BF16 not in inference.available()
    assert inference.runnable("torch-bf16") is InferenceBackend.TORCH  # an actor landing on such a node
    monkeypatch.setattr(inference, "_cpu_info", lambda: ("Sapphire Rapids", frozenset({"avx512_bf16", "amx_bf16"})))
    if torch.backends.mkldnn.is_available():
        assert inference.unavailable(InferenceBackend.TORCH_BF16) is None
