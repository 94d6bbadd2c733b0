"""replay.py: ring-buffer eviction, dense batches, recency weighting, seeded sampling."""

from __future__ import annotations

import chess
import numpy as np
import pytest
from support.positions import random_positions

from service.engine.encoding import (
    POLICY_SIZE,
    board_features,
    encode_boards,
    legal_mask,
    move_indices,
    planes_from_features,
)
from service.engine.replay import Batch, ReplayBuffer, Sample, wdl_target

pytestmark = pytest.mark.unit


def _sample(board: chess.Board, rng: np.random.Generator, result: float | None = None) -> Sample:
    idx = np.asarray(move_indices(list(board.legal_moves), board.turn), dtype=np.int16)
    policy = rng.dirichlet(np.full(len(idx), 0.3)).astype(np.float32)
    if result is None:
        result = float(rng.choice([-1.0, 0.0, 1.0]))
    return Sample(board_features(board), idx, policy, result)


def _tagged(n: int) -> list[Sample]:
    """n samples of one position told apart by the halfmove clock (plane 19 = clock / 100)."""
    board = chess.Board()
    base = board_features(board)
    idx = np.asarray(move_indices(list(board.legal_moves), board.turn), dtype=np.int16)
    policy = np.full(len(idx), 1.0 / len(idx), dtype=np.float32)
    return [Sample(base[:14] + (i,) + base[15:], idx, policy, 0.0) for i in range(n)]


def _tags(batch: Batch) -> np.ndarray:
    return np.rint(batch.planes[:, 19, 0, 0] * 100).astype(int)


def test_batch_shapes_and_targets() -> None:
    rng = np.random.default_rng(0)
    boards = random_positions(40)
    samples = [_sample(b, rng) for b in boards]
    buf = ReplayBuffer(100, seed=1)
    buf.add(samples)
    batch = buf.sample(32)
    assert len(batch) == 32
    assert batch.planes.shape == (32, 22, 8, 8) and batch.planes.dtype == np.float32
    assert batch.policy.shape == (32, POLICY_SIZE) and batch.policy.dtype == np.float32
    assert batch.legal.shape == (32, POLICY_SIZE) and batch.legal.dtype == bool
    assert batch.wdl.shape == (32, 3) and batch.wdl.dtype == np.float32
    np.testing.assert_allclose(batch.policy.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(batch.policy[~batch.legal] == 0)
    assert np.all(batch.policy >= 0)

    # Each sampled row is one of the stored positions, with its own legal moves, target and result.
    all_planes = encode_boards(boards)
    masks = legal_mask(boards)
    for row in range(32):
        matches = np.flatnonzero((all_planes == batch.planes[row]).all(axis=(1, 2, 3)))
        assert matches.size >= 1
        k = matches[0]
        np.testing.assert_array_equal(batch.legal[row], masks[k])
        s = samples[k]
        np.testing.assert_allclose(batch.policy[row, s.move_indices], s.policy, atol=2e-3)
        np.testing.assert_array_equal(batch.wdl[row], {1.0: [1, 0, 0], 0.0: [0, 1, 0], -1.0: [0, 0, 1]}[s.result])


def test_policy_weight_marks_the_policy_targets() -> None:
    samples = _tagged(6)
    for i, sample in enumerate(samples):
        sample.policy_target = i % 3 == 0
    buf = ReplayBuffer(10, seed=0)
    buf.add(samples)
    batch = buf.sample(64)
    assert batch.policy_weight.dtype == np.float32
    np.testing.assert_array_equal(batch.policy_weight, (_tags(batch) % 3 == 0).astype(np.float32))
    assert 0 < batch.policy_weight.sum() < len(batch)


def test_capacity_eviction_and_total_added() -> None:
    buf = ReplayBuffer(5, seed=0)
    assert len(buf) == 0 and buf.total_added == 0
    samples = _tagged(8)
    buf.add(samples[:3])
    assert len(buf) == 3 and buf.total_added == 3
    assert set(_tags(buf.sample(300))) == {0, 1, 2}
    buf.add(samples[3:])
    assert len(buf) == 5 and buf.total_added == 8
    assert set(_tags(buf.sample(500))) == {3, 4, 5, 6, 7}  # the oldest three were dropped
    buf.add(samples[:1])
    assert set(_tags(buf.sample(500))) == {0, 4, 5, 6, 7}
    buf.clear()
    assert len(buf) == 0 and buf.total_added == 9
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4)


def test_recency_favours_new_positions() -> None:
    n = 1000
    buf = ReplayBuffer(n, seed=42)
    buf.add(_tagged(n))  # tag == insertion order: n-1 is the newest
    uniform = _tags(buf.sample(4000))
    recent = _tags(buf.sample(4000, recency=0.25))
    assert abs(uniform.mean() - (n - 1) / 2) < 25  # uniform: mean age ~ n/2 (sd of mean ~4.6)
    assert recent.mean() > n - 1 - 0.25 * n * 1.15  # truncated exponential, mean age ~ 0.23 n
    # weight exp(-age / 250) over ages 0..999: the newer half holds (1 - e^-2) / (1 - e^-4) = 0.881
    assert abs((recent >= n // 2).mean() - 0.881) < 0.02  # sd ~0.005
    assert 0 <= recent.min() and recent.max() <= n - 1


def test_recency_after_wraparound() -> None:
    buf = ReplayBuffer(100, seed=3)
    buf.add(_tagged(250))  # slots hold 150..249, the write pointer sits mid-array
    recent = _tags(buf.sample(3000, recency=0.2))
    assert recent.min() >= 150 and recent.max() <= 249
    assert recent.mean() > 249 - 0.2 * 100 * 1.2


def test_sampling_is_deterministic_under_seed() -> None:
    samples = [_sample(b, np.random.default_rng(1)) for b in random_positions(30)]
    a, b, c = ReplayBuffer(50, seed=9), ReplayBuffer(50, seed=9), ReplayBuffer(50, seed=10)
    for buf in (a, b, c):
        buf.add(samples)
    ba, bb, bc = a.sample(16, recency=0.5), b.sample(16, recency=0.5), c.sample(16, recency=0.5)
    for field in ("planes", "policy", "legal", "wdl"):
        np.testing.assert_array_equal(getattr(ba, field), getattr(bb, field))
    assert not np.array_equal(ba.planes, bc.planes)

    state = a.state_dict()
    first = a.sample(16)
    a.load_state_dict(state)
    np.testing.assert_array_equal(a.sample(16).planes, first.planes)


def test_invalid_samples_are_refused() -> None:
    board = chess.Board()
    good = _sample(board, np.random.default_rng(0), result=1.0)
    buf = ReplayBuffer(4)
    for bad in (1.5, -1.01, float("nan")):
        with pytest.raises(ValueError, match="result"):
            buf.add([Sample(good.features, good.move_indices, good.policy, bad)])
    with pytest.raises(ValueError):
        buf.add([Sample(good.features, good.move_indices, good.policy[:-1], 1.0)])
    with pytest.raises(ValueError):
        buf.add([Sample(good.features, good.move_indices, np.zeros_like(good.policy), 1.0)])
    with pytest.raises(ValueError):
        buf.add([Sample(good.features[:5], good.move_indices, good.policy, 1.0)])
    with pytest.raises(ValueError):
        ReplayBuffer(0)
    assert len(buf) == 0


def test_a_graded_value_becomes_wdl_probabilities_with_that_expected_score() -> None:
    """A material target of 0.6 is a win 60% of the time and a draw otherwise; -0.25 a loss
    25% of the time: rows sum to 1 and P(win) - P(loss) is the value the head learns."""
    values = np.array([1.0, 0.6, 0.0, -0.25, -1.0], dtype=np.float32)
    wdl = wdl_target(values)
    np.testing.assert_allclose(wdl, [[1, 0, 0], [0.6, 0.4, 0], [0, 1, 0], [0, 0.75, 0.25], [0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(wdl.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(wdl[:, 0] - wdl[:, 2], values, atol=1e-6)
    buf = ReplayBuffer(1)
    s = _sample(chess.Board(), np.random.default_rng(0), result=0.6)
    buf.add([s])
    np.testing.assert_allclose(buf.sample(2).wdl, [[0.6, 0.4, 0.0]] * 2, atol=1e-6)


def test_stored_compactly() -> None:
    board = chess.Board()
    buf = ReplayBuffer(3)
    s = _sample(board, np.random.default_rng(0), result=-1.0)
    buf.add([s])
    assert buf._features.dtype == np.uint64 and buf._features.shape == (3, 16)
    assert buf._value.dtype == np.float32 and buf._value[0] == -1.0
    assert len(buf._policies[0]) == 4 * len(s.move_indices)  # int16 index + float16 prob per move
    np.testing.assert_array_equal(planes_from_features([s.features]), buf.sample(1).planes)
