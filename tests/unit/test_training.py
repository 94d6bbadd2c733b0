"""training.py: the loss falls on real positions, checkpoints round-trip, steps are seeded."""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import chess
import numpy as np
import pytest
import torch

from service.engine.encoding import board_features, move_indices
from service.engine.network import build_network
from service.engine.replay import Batch, ReplayBuffer, Sample
from service.engine.training import Trainer, TrainStats, steps_for

pytestmark = pytest.mark.unit


def _buffer(n: int = 64, seed: int = 0, one_hot: bool = True) -> ReplayBuffer:
    """Positions from seeded random playouts; one-hot (or uniform) targets, random results."""
    rng = random.Random(seed)
    buf = ReplayBuffer(n, seed=seed)
    board, samples = chess.Board(), []
    while len(samples) < n:
        moves = list(board.legal_moves)
        if not moves or board.ply() > 80:
            board = chess.Board()
            continue
        idx = np.asarray(move_indices(moves, board.turn), dtype=np.int16)
        if one_hot:
            policy = np.zeros(len(idx), dtype=np.float32)
            policy[rng.randrange(len(idx))] = 1.0
        else:
            policy = np.full(len(idx), 1.0 / len(idx), dtype=np.float32)
        samples.append(Sample(board_features(board), idx, policy, float(rng.choice([-1, 0, 1]))))
        board.push(rng.choice(moves))
    buf.add(samples)
    return buf


@pytest.fixture(scope="module")
def fixed_batch() -> Batch:
    return _buffer(64).sample(64)


def _weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_loss_falls_on_a_fixed_batch(fixed_batch: Batch) -> None:
    net = build_network("tiny", seed=0)
    trainer = Trainer(net, lr=3e-3, seed=0)
    first = trainer.train_batch(fixed_batch)
    for _ in range(48):
        last = trainer.train_batch(fixed_batch)
    assert trainer.step == 49
    assert not net.training  # left in eval mode
    assert all(math.isfinite(v) for v in (first.total_loss, last.total_loss, last.grad_norm, last.policy_entropy))
    assert last.total_loss < 0.7 * first.total_loss, (first, last)
    assert last.policy_loss < first.policy_loss and last.value_loss < first.value_loss
    # Untrained policy ~ uniform over ~30 legal moves: entropy near log(30); memorising one-hot targets lowers it.
    assert 2.0 < first.policy_entropy < 4.5
    assert last.policy_entropy < first.policy_entropy
    assert first.lr == pytest.approx(3e-3) and first.samples == 64 and first.steps == 1


def test_policy_loss_is_masked_cross_entropy(fixed_batch: Batch) -> None:
    net = build_network("tiny", seed=1)
    with torch.no_grad():  # a training step sees BatchNorm in train mode (batch statistics)
        logits, wdl_logits = copy.deepcopy(net).train()(torch.from_numpy(fixed_batch.planes))
    expected_policy, expected_value = 0.0, 0.0
    for row in range(len(fixed_batch)):
        legal = np.flatnonzero(fixed_batch.legal[row])
        logp = torch.log_softmax(logits[row, legal], dim=0).numpy()
        expected_policy -= float((fixed_batch.policy[row, legal] * logp).sum())
        log_wdl = torch.log_softmax(wdl_logits[row], dim=0)
        expected_value -= float((log_wdl * torch.from_numpy(fixed_batch.wdl[row])).sum())
    stats = Trainer(net, lr=0.0, weight_decay=0.0).train_batch(fixed_batch)  # lr 0: the net stays put
    assert stats.policy_loss == pytest.approx(expected_policy / len(fixed_batch), rel=1e-4)
    assert stats.value_loss == pytest.approx(expected_value / len(fixed_batch), rel=1e-4)
    assert stats.total_loss == pytest.approx(stats.policy_loss + stats.value_loss, rel=1e-5)


def test_only_policy_target_rows_count_in_the_policy_loss(fixed_batch: Batch) -> None:
    """A fast search's position teaches the value head only: its row adds nothing to the
    policy loss, nor to its gradient, but counts in the value loss."""
    net = build_network("tiny", seed=1)
    weight = np.zeros(len(fixed_batch), dtype=np.float32)
    weight[: len(weight) // 4] = 1.0
    masked = dataclasses.replace(fixed_batch, policy_weight=weight)
    with torch.no_grad():
        logits, _ = copy.deepcopy(net).train()(torch.from_numpy(masked.planes))
    expected = 0.0
    for row in np.flatnonzero(weight):
        legal = np.flatnonzero(masked.legal[row])
        logp = torch.log_softmax(logits[row, legal], dim=0).numpy()
        expected -= float((masked.policy[row, legal] * logp).sum())
    full = Trainer(copy.deepcopy(net), lr=0.0, weight_decay=0.0).train_batch(fixed_batch)
    stats = Trainer(net, lr=0.0, weight_decay=0.0).train_batch(masked)
    assert stats.policy_loss == pytest.approx(expected / weight.sum(), rel=1e-4)
    assert stats.value_loss == pytest.approx(full.value_loss, rel=1e-5)

    value_only = dataclasses.replace(masked, policy_weight=np.zeros_like(weight))
    probe = build_network("tiny", seed=1)
    Trainer(probe, lr=0.0, weight_decay=0.0).train_batch(value_only)
    assert all(
        p.grad is None or float(p.grad.abs().sum()) == 0.0
        for name, p in probe.named_parameters()
        if name.startswith("policy")
    )


def test_train_from_buffer_aggregates_and_is_deterministic() -> None:
    torch.manual_seed(99)
    expected_next = torch.rand(2)
    torch.manual_seed(99)
    runs = []
    for _ in range(2):
        net = build_network("tiny", seed=2)
        stats = Trainer(net, lr=1e-3, seed=5).train(_buffer(48, seed=1), steps=4, batch_size=16)
        runs.append((stats, _weights(net)))
    assert torch.equal(torch.rand(2), expected_next)  # the global RNG was not touched
    (s1, w1), (s2, w2) = runs
    assert isinstance(s1, TrainStats) and s1.steps == 4 and s1.samples == 64
    assert s1 == s2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    empty = Trainer(build_network("tiny", seed=2), lr=1e-3).train(_buffer(8), steps=0, batch_size=16)
    assert empty.steps == 0 and empty.samples == 0


def test_trainer_state_dict_round_trip(fixed_batch: Batch) -> None:
    net = build_network("tiny", seed=3)
    trainer = Trainer(net, lr=1e-3, seed=7)
    for _ in range(3):
        trainer.train_batch(fixed_batch)
    state = copy.deepcopy(trainer.state_dict())
    clone_net = copy.deepcopy(net)

    resumed = Trainer(clone_net, lr=1e-3, seed=7)
    resumed.load_state_dict(state)
    assert resumed.step == 3
    a, b = trainer.train_batch(fixed_batch), resumed.train_batch(fixed_batch)
    assert a == b
    wa, wb = _weights(net), _weights(clone_net)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_lr_can_be_changed(fixed_batch: Batch) -> None:
    trainer = Trainer(build_network("tiny", seed=0), lr=1e-3)
    trainer.lr = 5e-4
    assert trainer.train_batch(fixed_batch).lr == pytest.approx(5e-4)


def test_uniform_targets_give_finite_losses() -> None:
    batch = _buffer(16, one_hot=False).sample(16)
    stats = Trainer(build_network("tiny", seed=0), lr=1e-3).train_batch(batch)
    assert math.isfinite(stats.total_loss) and math.isfinite(stats.grad_norm)


@pytest.mark.parametrize(
    ("positions", "ratio", "batch", "expected"),
    [
        (1000, 1.0, 256, 4),
        (1024, 1.0, 256, 4),
        (100, 0.3, 10, 3),  # 100 * 0.3 / 10 is 3.0000000000000004 in floating point
        (1, 0.5, 256, 1),
        (0, 2.0, 256, 0),
        (500, 0.0, 64, 0),
        (640, 2.5, 64, 25),
    ],
)
def test_steps_for(positions: int, ratio: float, batch: int, expected: int) -> None:
    assert steps_for(positions, ratio, batch) == expected


def test_steps_for_rejects_bad_batch() -> None:
    with pytest.raises(ValueError):
        steps_for(10, 1.0, 0)
