"""Issue #24's value targets: the result beside the material signal, the share between them,
and the training-only auxiliary material head."""

from __future__ import annotations

import copy
import math

import chess
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from service.engine.network import build_network
from service.engine.replay import ReplayBuffer, Sample, wdl_target
from service.engine.selfplay import material_targets, replay_samples, value_targets
from service.engine.training import Trainer, learning_rate_after, material_share_after

pytestmark = pytest.mark.unit

# 1.e4 Nc6 2.d4 Nxd4 3.Qxd4 ...: White is a knight for a pawn up (+2) from ply 5 on.
MOVES = ["e2e4", "b8c6", "d2d4", "c6d4", "d1d4", "a7a6", "a2a3", "a6a5"]
WHITE_BALANCE = [0, 0, 0, 0, -1, 2, 2, 2, 2]


def _uniform_policies() -> list[np.ndarray]:
    board, out = chess.Board(), []
    for move in MOVES:
        n = board.legal_moves.count()
        out.append(np.full(n, 1.0 / n, dtype=np.float32))
        board.push_uci(move)
    return out


def _white_view(values: list[float]) -> list[float]:
    return [v if ply % 2 == 0 else -v for ply, v in enumerate(values)]


def test_material_targets_are_the_balance_horizon_plies_later_up_to_the_end():
    scale = 5.0
    got = _white_view(material_targets(MOVES, 2, 3, scale))
    expected = [math.tanh(WHITE_BALANCE[min(p + 2, 8)] / scale) for p in range(9)]
    assert got == pytest.approx(expected)
    # scale 0: adjudicated by the margin; horizon 0: the balance of the position itself
    assert _white_view(material_targets(MOVES, 0, 2, 0.0)) == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_value_targets_take_the_material_signal_until_the_last_horizon_plies():
    """The material rule's target: the material signal, and the result in the last H plies."""
    material = material_targets(MOVES, 2, 3, 5.0)
    values = value_targets(MOVES, "0-1", 2, 3, 5.0)
    assert values[:6] == material[:6]
    assert _white_view(values[6:]) == [-1.0, -1.0, -1.0]


def test_samples_carry_the_result_and_the_material_signal():
    """Each stored position keeps the three targets, so a session can change the share
    between them without replaying its games."""
    policies = _uniform_policies()
    samples = replay_samples(MOVES, policies, [True] * len(MOVES), "0-1", 2, 3, 5.0)
    assert [s.result for s in samples] == value_targets(MOVES, "0-1", 2, 3, 5.0)[: len(MOVES)]
    assert _white_view([s.outcome for s in samples]) == [-1.0] * len(MOVES)
    assert [s.material for s in samples] == material_targets(MOVES, 2, 3, 5.0)[: len(MOVES)]


def test_the_root_weight_mixes_each_positions_root_value_into_its_result_target():
    policies = _uniform_policies()
    roots = [0.5, -0.25, 0.8, -1.0, 2.0, 0.0, 0.1, -0.3]  # 2.0: out of range, clipped to 1
    plain = replay_samples(MOVES, policies, [True] * len(MOVES), "0-1", 0, 3, 0.0, root_values=roots)
    mixed = replay_samples(MOVES, policies, [True] * len(MOVES), "0-1", 0, 3, 0.0, root_values=roots, root_weight=0.25)
    for ply, (a, b) in enumerate(zip(plain, mixed)):
        result = -1.0 if ply % 2 == 0 else 1.0  # Black won: White to move at even plies
        assert a.outcome == result  # weight 0: the game's result alone, whatever the root values
        assert b.outcome == pytest.approx(0.75 * result + 0.25 * max(-1.0, min(1.0, roots[ply])))
        assert (b.result, b.material) == (a.result, a.material)  # the material rule and aux target unchanged
    last = replay_samples(
        MOVES, policies, [True] * len(MOVES), "0-1", 0, 3, 0.0, root_values=roots[:3], root_weight=1.0
    )
    assert [s.outcome for s in last[3:]] == [s.outcome for s in plain[3:]]  # no root value: the result


def test_material_share_falls_linearly_and_none_keeps_it():
    assert material_share_after(10**9, None) == 1.0
    assert material_share_after(0, 0) == 0.0
    assert material_share_after(0, 1000) == 1.0
    assert material_share_after(250, 1000) == pytest.approx(0.75)
    assert material_share_after(1000, 1000) == 0.0
    assert material_share_after(5000, 1000) == 0.0


def test_learning_rate_falls_linearly_to_its_floor_and_none_keeps_it():
    assert learning_rate_after(10**9, 1e-3, None, 0.1) == 1e-3
    assert learning_rate_after(0, 1e-3, 1000, 0.1) == pytest.approx(1e-3)
    assert learning_rate_after(500, 1e-3, 1000, 0.1) == pytest.approx(0.55e-3)
    assert learning_rate_after(1000, 1e-3, 1000, 0.1) == pytest.approx(1e-4)
    assert learning_rate_after(5000, 1e-3, 1000, 0.1) == pytest.approx(1e-4)
    assert learning_rate_after(0, 1e-3, 0, 0.25) == pytest.approx(2.5e-4)


def _buffer(samples: int = 32) -> ReplayBuffer:
    """Positions whose material signal (+0.8) and result (-1) disagree, as after a won
    piece in a game later lost."""
    policies = _uniform_policies()
    positions = replay_samples(MOVES, policies, [True] * len(MOVES), "0-1", 0, 3, 5.0)
    buf = ReplayBuffer(samples, seed=0)
    for i in range(samples):
        s = positions[i % len(positions)]
        buf.add([Sample(s.features, s.move_indices, s.policy, 0.8, outcome=-1.0, material=0.5)])
    return buf


def test_the_buffer_hands_out_each_target():
    batch = _buffer().sample(8)
    assert np.allclose(batch.wdl, wdl_target(np.full(8, 0.8)))
    assert np.allclose(batch.outcome_wdl, wdl_target(np.full(8, -1.0)))
    assert np.allclose(batch.material, 0.5)
    with pytest.raises(ValueError, match="outcome"):
        s = Sample((0,) * 16, np.asarray([0]), np.asarray([1.0]), 0.0, outcome=2.0)
        ReplayBuffer(4).add([s])


@pytest.mark.parametrize("share", [1.0, 0.25, 0.0])
def test_the_value_loss_is_against_the_mixed_target(share):
    batch = _buffer().sample(16)
    net = build_network("tiny", seed=3)
    with torch.no_grad():
        _, wdl_logits = copy.deepcopy(net).train()(torch.from_numpy(batch.planes))  # as a step sees it
    target = torch.from_numpy(share * batch.wdl + (1 - share) * batch.outcome_wdl)
    expected = float(F.cross_entropy(wdl_logits, target))
    trainer = Trainer(net, lr=0.0, weight_decay=0.0)
    trainer.material_share = share
    stats = trainer.train_batch(batch)
    assert stats.value_loss == pytest.approx(expected, rel=1e-4)
    assert stats.material_share == share and stats.aux_loss == 0.0


def test_the_auxiliary_head_learns_material_and_stays_out_of_the_weights():
    batch = _buffer().sample(32)
    net = build_network("tiny", seed=4)
    keys = set(net.state_dict())
    trainer = Trainer(net, lr=3e-3, seed=1, aux_weight=1.0)
    first = trainer.train_batch(batch).aux_loss
    for _ in range(30):
        last = trainer.train_batch(batch).aux_loss
    assert first > 0 and last < first / 4
    assert set(net.state_dict()) == keys  # the weights file (export, UCI) never sees the head

    resumed = Trainer(build_network("tiny", seed=4), lr=3e-3, seed=1, aux_weight=1.0)
    resumed.load_state_dict(trainer.state_dict())
    assert resumed.aux is not None and trainer.aux is not None
    assert torch.equal(resumed.aux.weight, trainer.aux.weight)


def test_the_auxiliary_head_is_seeded():
    a = Trainer(build_network("tiny", seed=0), lr=1e-3, seed=9, aux_weight=0.5)
    b = Trainer(build_network("tiny", seed=0), lr=1e-3, seed=9, aux_weight=0.5)
    assert a.aux is not None and b.aux is not None
    assert torch.equal(a.aux.weight, b.aux.weight)
