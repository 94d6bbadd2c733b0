"""Learning from the replay buffer: AdamW steps on policy cross-entropy + WDL value loss
(+ an auxiliary material loss).

The policy loss compares the search's target with the net's policy restricted to legal
moves (illegal logits masked to -inf before the softmax), so the net spends no capacity
learning which moves are illegal; it counts only the positions whose policy is a target
(full searches), while every position's value target teaches the value head. The value
loss is the cross-entropy of the WDL logits against the position's WDL probabilities
(`replay.wdl_target`): the material rule's target and the game's result, mixed by
`material_share` (`material_share_after`: the material signal gets a young net going, the
result is what a long session must learn). With `aux_weight` > 0 a training-only head on the
value head's hidden layer learns the material signal alone (a linear read-out, mean squared
error; a tanh saturated as the value's features grew and stopped learning),
shaping the value's features without being the value (KataGo's auxiliary targets); it is
not part of the weights file, so export, UCI and inference never see it. Each step reports
per-head losses, gradient norm, learning rate and the masked policy's entropy (a collapsing
entropy warns early).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .network import ChessNet
from .replay import Batch, ReplayBuffer


@dataclass
class TrainStats:
    """Means over the steps (lr: the last step's)."""

    steps: int
    policy_loss: float
    value_loss: float
    total_loss: float
    grad_norm: float
    """Gradient norm before clipping."""
    lr: float
    policy_entropy: float
    """Entropy of the net's policy over legal moves, nats."""
    samples: int
    aux_loss: float = 0.0
    """The auxiliary material head's mean squared error (0 without the head)."""
    material_share: float = 1.0
    """Share of the material rule in the value target the steps used."""


def material_share_after(positions_learned: int, decay_positions: int | None) -> float:
    """Share of the material rule in the value target once `positions_learned` positions have
    been learned: 1 forever with `decay_positions` None (the value learns the material rule,
    as sessions did before issue #24), 0 with 0 (the result alone), else falling linearly to 0
    over `decay_positions` positions."""
    if decay_positions is None:
        return 1.0
    if decay_positions <= 0:
        return 0.0
    return max(0.0, 1.0 - positions_learned / decay_positions)


def learning_rate_after(positions_learned: int, base: float, decay_positions: int | None, floor: float) -> float:
    """Learning rate once `positions_learned` positions have been learned: `base` forever with
    `decay_positions` None, else falling linearly to `floor * base` over `decay_positions`
    positions and staying there (a constant rate on a sliding window keeps chasing the newest
    games; annealing lets a long session settle, as lc0's step drops do)."""
    if decay_positions is None:
        return base
    done = 1.0 if decay_positions <= 0 else min(1.0, positions_learned / decay_positions)
    return base * (1.0 - (1.0 - floor) * done)


def steps_for(new_positions: int, samples_per_position: float, batch_size: int) -> int:
    """Training steps that draw about `samples_per_position` samples per new self-play position."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if new_positions <= 0 or samples_per_position <= 0:
        return 0
    # round() first so that e.g. 100 * 0.3 / 10 gives 3, not 4.
    return math.ceil(round(new_positions * samples_per_position / batch_size, 9))


class Trainer:
    """Owns the optimiser of one net; deterministic under `seed` on CPU.

    Weight decay applies to conv/linear weights only, not to biases or BatchNorm (decaying
    those only fights the normalisation). Each step runs under a forked torch RNG seeded
    from (seed, step), so training never disturbs, nor depends on, the global RNG.
    """

    def __init__(
        self,
        net: ChessNet,
        *,
        lr: float,
        weight_decay: float = 1e-4,
        device: str | torch.device = "cpu",
        seed: int = 0,
        value_weight: float = 1.0,
        aux_weight: float = 0.0,
        max_grad_norm: float = 10.0,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.seed = int(seed)
        self.value_weight = float(value_weight)
        self.aux_weight = float(aux_weight)
        self.max_grad_norm = float(max_grad_norm)
        self.material_share = 1.0
        """Share of the material rule in the value target (`material_share_after`), set by the learner."""
        self.aux: nn.Linear | None = None
        if self.aux_weight > 0:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.aux = nn.Linear(net.config.value_hidden, 1).to(self.device)
        self._params = list(net.parameters()) + (list(self.aux.parameters()) if self.aux is not None else [])
        decay = [p for p in self._params if p.ndim > 1]
        no_decay = [p for p in self._params if p.ndim <= 1]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
        )
        self.step = 0
        """Optimiser steps taken (restored by `load_state_dict`)."""

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(value)

    def train_batch(self, batch: Batch) -> TrainStats:
        """One optimiser step on `batch`."""
        self.net.train()
        try:
            parts = self._step(batch)
        finally:
            self.net.eval()
        return self._stats([parts], len(batch))

    def train(self, buffer: ReplayBuffer, steps: int, batch_size: int, *, recency: float = 0.0) -> TrainStats:
        """`steps` optimiser steps on batches sampled from `buffer`, aggregated."""
        if steps <= 0:
            return TrainStats(0, 0.0, 0.0, 0.0, 0.0, self.lr, 0.0, 0, material_share=self.material_share)
        self.net.train()
        try:
            parts = [self._step(buffer.sample(batch_size, recency=recency)) for _ in range(steps)]
        finally:
            self.net.eval()
        return self._stats(parts, steps * batch_size)

    def _step(self, batch: Batch) -> torch.Tensor:
        """One step; returns detached (policy, value, total, grad norm, entropy, aux)."""
        dev = self.device
        x = torch.from_numpy(batch.planes).to(dev)
        target = torch.from_numpy(batch.policy).to(dev)
        legal = torch.from_numpy(batch.legal).to(dev)
        share = self.material_share
        wdl = torch.from_numpy(share * batch.wdl + (1.0 - share) * batch.outcome_wdl).to(dev)
        weight = torch.from_numpy(batch.policy_weight).to(dev)
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + self.step)
            logits, wdl_logits, hidden = self.net.heads(x)
            logp = torch.log_softmax(logits.float().masked_fill(~legal, float("-inf")), dim=1)
            logp_legal = logp.masked_fill(~legal, 0.0)  # avoids 0 * -inf where the target is 0
            cross_entropy = -(target * logp_legal).sum(dim=1)
            policy_loss = (cross_entropy * weight).sum() / weight.sum().clamp_min(1.0)
            value_loss = F.cross_entropy(wdl_logits.float(), wdl)
            total = policy_loss + self.value_weight * value_loss
            aux_loss = torch.zeros((), device=dev)
            if self.aux is not None:
                material = torch.from_numpy(batch.material).to(dev)
                aux_loss = F.mse_loss(self.aux(hidden.float()).squeeze(1), material)
                total = total + self.aux_weight * aux_loss
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self._params, self.max_grad_norm)
            self.optimizer.step()
        self.step += 1
        with torch.no_grad():
            entropy = -(logp_legal.exp() * logp_legal).sum(dim=1).mean()
        return torch.stack(
            [
                policy_loss.detach(),
                value_loss.detach(),
                total.detach(),
                grad_norm.detach().float(),
                entropy,
                aux_loss.detach().float(),
            ]
        )

    def _stats(self, parts: list[torch.Tensor], samples: int) -> TrainStats:
        mean = torch.stack(parts).mean(dim=0).tolist()  # one device sync for all steps
        return TrainStats(
            steps=len(parts),
            policy_loss=mean[0],
            value_loss=mean[1],
            total_loss=mean[2],
            grad_norm=mean[3],
            lr=self.lr,
            policy_entropy=mean[4],
            samples=samples,
            aux_loss=mean[5],
            material_share=self.material_share,
        )

    def state_dict(self) -> dict:
        """Optimiser state, step count and the auxiliary head, for checkpoints (the net's
        weights are saved separately)."""
        state = {"optimizer": self.optimizer.state_dict(), "step": self.step}
        if self.aux is not None:
            state["aux"] = self.aux.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        if self.aux is not None and "aux" in state:
            self.aux.load_state_dict(state["aux"])
