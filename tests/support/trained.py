"""A *trained-ish* network for the inference backends' parity tests.

An untrained net's policy logits lie within a few hundredths of each other, so any rounding
flips its best move and a parity test on it measures noise. This net is taught, in 120 AdamW
steps from a seed (a few seconds for `tiny`), a peaked policy that depends on the position
(captures by the victim's value, checks, and a fixed per-move preference) and a material
value, and its BatchNorm statistics move away from their initial 0/1: its logits spread as
a learned net's do (std ~1.5 over the legal moves, against ~0.1 untrained), and every run of
the test builds the same one.
"""

from __future__ import annotations

import functools
import random

import chess
import numpy as np
import torch
from torch.nn import functional as F

from service.engine import network
from service.engine.encoding import POLICY_SIZE, encode_boards, legal_mask, move_index
from support.positions import random_positions

_VALUES = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9, chess.KING: 0}


def _targets(boards: list[chess.Board], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Policy targets (N, 1858) and WDL targets (N, 3) of the teaching rule."""
    rng = np.random.default_rng(seed)
    preference = rng.normal(0.0, 1.0, POLICY_SIZE)  # a fixed taste for some moves over others
    policy = np.zeros((len(boards), POLICY_SIZE), dtype=np.float32)
    wdl = np.zeros((len(boards), 3), dtype=np.float32)
    for i, board in enumerate(boards):
        moves = list(board.legal_moves)
        index = [move_index(m, board.turn) for m in moves]
        score = np.array(
            [
                preference[k]
                + 2.0 * _VALUES.get(board.piece_type_at(m.to_square) or 0, 0)
                + (1.0 if board.gives_check(m) else 0.0)
                for k, m in zip(index, moves)
            ]
        )
        p = np.exp(2.0 * (score - score.max()))
        policy[i, index] = p / p.sum()
        balance = sum(
            v * (len(board.pieces(t, board.turn)) - len(board.pieces(t, not board.turn))) for t, v in _VALUES.items()
        )
        win = 1 / (1 + np.exp(-balance / 3))
        wdl[i] = (0.8 * win, 0.2, 0.8 * (1 - win))
    return policy, wdl


@functools.cache
def trained_ish_state(preset: str = "tiny", seed: int = 0, steps: int = 120) -> dict[str, torch.Tensor]:
    """The state dict of `preset`'s generation 0 of `seed` after `steps` teaching steps
    (cached per process: several tests share one)."""
    boards = [b for b in random_positions(1_000, seed=seed + 101) if any(b.generate_legal_moves())]
    x = torch.from_numpy(encode_boards(boards))
    legal = torch.from_numpy(legal_mask(boards))
    policy, wdl = (torch.from_numpy(a) for a in _targets(boards, seed))
    net = network.build_network(preset, seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    order = random.Random(seed)
    net.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            rows = torch.tensor(order.sample(range(len(boards)), 128))
            logits, wdl_logits = net(x[rows])
            logp = torch.log_softmax(logits.masked_fill(~legal[rows], float("-inf")), dim=1)
            loss = -(policy[rows] * logp.masked_fill(~legal[rows], 0.0)).sum(1).mean()
            loss = loss + F.cross_entropy(wdl_logits, wdl[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def trained_ish(preset: str = "tiny", seed: int = 0) -> network.ChessNet:
    """A fresh net (eval mode) holding `trained_ish_state(preset, seed)`."""
    net = network.build_network(preset, seed)
    net.load_state_dict(trained_ish_state(preset, seed))
    return net.eval()
