"""Bounded replay buffer of self-play positions, sampled into dense training batches.

Chess has no board symmetry to augment with, so a position is stored once, compactly:
its `board_features` row (16 x uint64), its value targets (float32: the material rule's,
the game's result and the material signal alone), whether its
policy is a target (bool) and its search policy as the legal moves' indices (int16) with
their probabilities (float16), packed into one small bytes object per slot. Dense
1858-wide targets exist only in a sampled batch. After a restart the buffer is rebuilt
from stored games (the games are the record, not the buffer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .encoding import FEATURE_WIDTH, POLICY_SIZE, planes_from_features


def wdl_target(value: np.ndarray) -> np.ndarray:
    """Value targets in [-1, 1] -> WDL probabilities (B, 3), columns win, draw, loss from the
    side to move's view (the value head's output order), whose expected score is the value:
    +1, 0, -1 are the one-hot win, draw, loss; a graded value v > 0 is a win with
    probability v and a draw otherwise (so the value head, P(win) - P(loss), learns v)."""
    v = np.asarray(value, dtype=np.float32)
    return np.stack([np.clip(v, 0, 1), 1 - np.abs(v), np.clip(-v, 0, 1)], axis=-1).astype(np.float32)


@dataclass(slots=True)
class Sample:
    """One position to learn from, as self-play records it."""

    features: tuple[int, ...]
    """`encoding.board_features` row of the position."""
    move_indices: np.ndarray
    """Policy indices of the position's legal moves (each once)."""
    policy: np.ndarray
    """Search policy target over `move_indices` (float, sums to 1)."""
    result: float
    """Value target from the side to move's view, in [-1, 1]: the game's result (+1 win,
    0 draw, -1 loss) or a graded material target (`selfplay.value_targets`)."""
    policy_target: bool = True
    """Whether `policy` teaches the policy head: a full search's (playout-cap randomisation,
    KataGo); a fast search's mostly repeats the prior, so such a position teaches the value
    head only."""
    outcome: float | None = None
    """The result target from the side to move's view: the game's result (+1, 0, -1), mixed with
    the position's root value under VALUE_ROOT_WEIGHT (`selfplay.position_targets`); None: `result`."""
    material: float | None = None
    """The material signal alone (`selfplay.material_targets`), for the auxiliary head; None: `result`."""


@dataclass
class Batch:
    """Dense training targets for B sampled positions."""

    planes: np.ndarray  # float32 (B, 22, 8, 8)
    policy: np.ndarray  # float32 (B, 1858), sums to 1 over legal moves, 0 elsewhere
    legal: np.ndarray  # bool (B, 1858)
    wdl: np.ndarray  # float32 (B, 3): the material rule's value target as WDL (`wdl_target`), rows sum to 1
    policy_weight: np.ndarray  # float32 (B,): 1 where the row's policy is a target, else 0
    outcome_wdl: np.ndarray  # float32 (B, 3): the result target (`Sample.outcome`) as WDL
    material: np.ndarray  # float32 (B,): the material signal in [-1, 1]

    def __len__(self) -> int:
        return int(self.wdl.shape[0])


WINDOW_ALPHA = 0.75
WINDOW_BETA = 0.4
"""KataGo's window growth exponent and slope (its `-taper-window-exponent` and scale)."""


def recency_window(seen: int, start: int) -> float:
    """How many recent positions training samples favour once `seen` positions were played:
    all of them up to `start` (REPLAY_WINDOW_POSITIONS), then KataGo's shuffle window,
    start * (1 + beta * ((seen / start) ** alpha - 1) / alpha), which keeps growing but
    ever more slowly than the data, so old games fall out of the sampled window while a
    young session still learns from everything it has."""
    if seen <= start:
        return float(seen)
    return start * (1 + WINDOW_BETA * ((seen / start) ** WINDOW_ALPHA - 1) / WINDOW_ALPHA)


def window_recency(seen: int, size: int, start: int) -> float:
    """The `ReplayBuffer.sample` recency for a window of `recency_window(seen, start)`
    positions over a buffer of `size`: the window is the exponential's scale, so a position
    `window` old weighs 1/e of the newest's (with the window the whole buffer, the newest
    is e times as likely as the oldest). 0, uniform over the buffer, with `start` 0 (the
    sampling of sessions stored before the window) or an empty buffer."""
    if start <= 0 or size <= 0:
        return 0.0
    return recency_window(max(seen, size), start) / size


def recency_ages(rng: np.random.Generator, size: int, batch_size: int, recency: float) -> np.ndarray:
    """`batch_size` ages (0 = newest) drawn from a buffer of `size` (see `ReplayBuffer`)."""
    if recency == 0:
        return rng.integers(0, size, size=batch_size)
    # Inverse CDF of an exponential truncated to [0, size): floor(age) has mass
    # proportional to exp(-age / tau) for each integer age, in O(batch_size).
    tau = recency * size
    u = rng.random(batch_size)
    ages = np.floor(-tau * np.log1p(-u * -math.expm1(-size / tau))).astype(np.int64)
    return np.clip(ages, 0, size - 1)


class ReplayBuffer:
    """Ring buffer of the last `capacity` positions (the oldest is dropped first).

    `sample` draws with replacement from the buffer's own numpy Generator (seeded), so a
    session's training is reproducible. `recency=0` samples uniformly; `recency=r>0`
    weights a position of age a (0 = newest) by exp(-a / (r * len(buffer))): with r=1
    the newest position is e times as likely as the oldest, with r=0.25 about 55 times.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._rng = np.random.default_rng(seed)
        self._features = np.zeros((self.capacity, FEATURE_WIDTH), dtype=np.uint64)
        self._value = np.zeros(self.capacity, dtype=np.float32)
        self._outcome = np.zeros(self.capacity, dtype=np.float32)
        self._material = np.zeros(self.capacity, dtype=np.float32)
        self._policy_target = np.zeros(self.capacity, dtype=bool)
        self._policies: list[bytes] = [b""] * self.capacity  # int16 indices then float16 probs
        self._size = 0
        self._next = 0  # slot the next sample goes to
        self.total_added = 0
        """Positions ever added (not reset by `clear`)."""

    def __len__(self) -> int:
        return self._size

    def add(self, samples: Iterable[Sample]) -> None:
        """Append positions, overwriting the oldest once full."""
        for s in samples:
            idx = np.asarray(s.move_indices)
            probs = np.asarray(s.policy, dtype=np.float32)
            if idx.ndim != 1 or idx.shape != probs.shape or idx.size == 0:
                raise ValueError("move_indices and policy must be equal-length, non-empty 1-d arrays")
            if idx.min() < 0 or idx.max() >= POLICY_SIZE:
                raise ValueError(f"move index out of range 0..{POLICY_SIZE - 1}")
            if not (probs >= 0).all() or not probs.sum() > 0:
                raise ValueError("policy target must be non-negative with a positive sum")
            outcome = s.result if s.outcome is None else s.outcome
            material = s.result if s.material is None else s.material
            for name, value in (("result", s.result), ("outcome", outcome), ("material", material)):
                if not -1 <= value <= 1:  # also rejects NaN
                    raise ValueError(f"{name} must be a value in [-1, 1] from the side to move's view, got {value!r}")
            if len(s.features) != FEATURE_WIDTH:
                raise ValueError(f"features must be a board_features row of {FEATURE_WIDTH} ints")
            slot = self._next
            self._features[slot] = s.features
            self._value[slot] = s.result
            self._outcome[slot] = outcome
            self._material[slot] = material
            self._policy_target[slot] = s.policy_target
            self._policies[slot] = idx.astype("<i2").tobytes() + (probs / probs.sum()).astype("<f2").tobytes()
            self._next = (slot + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)
            self.total_added += 1

    def sample(self, batch_size: int, *, recency: float = 0.0) -> Batch:
        """B positions drawn with replacement (see the class docstring for `recency`)."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if recency < 0:
            raise ValueError(f"recency must be >= 0, got {recency}")
        ages = recency_ages(self._rng, self._size, batch_size, recency)
        slots = (self._next - 1 - ages) % self.capacity
        return self._batch(slots)

    def _batch(self, slots: np.ndarray) -> Batch:
        b = len(slots)
        planes = planes_from_features(self._features[slots])
        policy = np.zeros((b, POLICY_SIZE), dtype=np.float32)
        legal = np.zeros((b, POLICY_SIZE), dtype=bool)
        for row, slot in enumerate(slots):
            packed = self._policies[slot]
            k = len(packed) // 4
            idx = np.frombuffer(packed, dtype="<i2", count=k)
            probs = np.frombuffer(packed, dtype="<f2", count=k, offset=2 * k).astype(np.float32)
            policy[row, idx] = probs / probs.sum()  # float16 rounding: renormalise
            legal[row, idx] = True
        return Batch(
            planes=planes,
            policy=policy,
            legal=legal,
            wdl=wdl_target(self._value[slots]),
            policy_weight=self._policy_target[slots].astype(np.float32),
            outcome_wdl=wdl_target(self._outcome[slots]),
            material=self._material[slots].copy(),
        )

    def clear(self) -> None:
        """Drop every position (`total_added` keeps counting)."""
        self._policies = [b""] * self.capacity
        self._size = 0
        self._next = 0

    def state_dict(self) -> dict:
        """The sampler's generator state (the positions themselves come back from stored games)."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
