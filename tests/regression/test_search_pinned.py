"""Self-play's outputs under fixed seeds, pinned bit for bit across the search's variants.

Issue #25 removed duplicated work from the search and from playing a move (legal moves
read off the root, the kept root expanded once, the first halving round without sigma, a
quicker has-a-legal-move test); none of it may change a choice or a target. The digests
below were recorded with the code before those changes and held after them; they were
recorded again when a mate in one became the search's choice and its training target
(issue #24: finish won games), and again when a leaf whose side to move mates at once
became a proven win (the same issue), the intended changes since. They pin every
game's moves, result, policies (float32 bytes), root values, full-search flags, features
and policy indices, and the games still in flight, for Gumbel (the session's mix, full
only, fast only, few considered moves, no noise, virtual loss) and PUCT.

The network is a stand-in whose logits and value come from a hash of each position, so the
figures need no torch; they do need numpy's and libm's float64 exp/log to round alike, so
the digests are compared only on the machine kind they were recorded on (`PINNED_ON`),
like tests/regression/test_determinism.py. To regenerate after an intended change of the
search: `pytest tests/regression/test_search_pinned.py -s` prints them (say why in the commit).
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import zlib

import numpy as np
import pytest

from service.engine import mcts, openings
from service.engine.encoding import POLICY_SIZE
from service.engine.selfplay import SelfPlay, SelfPlayConfig

pytestmark = pytest.mark.regression

BASE = SelfPlayConfig(parallel_games=8, max_plies=30, openings=openings.selfplay_openings("book"))
CASES = {
    "session_mix": BASE,
    "full_only": dataclasses.replace(BASE, full_search_prob=1.0),
    "fast_only": dataclasses.replace(BASE, full_search_prob=0.0),
    "considered_4": dataclasses.replace(
        BASE, search=mcts.SearchConfig(gumbel_considered=4, simulations=16), simulations=16, fast_simulations=2
    ),
    "no_book_resign": dataclasses.replace(BASE, openings=(), resign_threshold=-0.3, resign_playout_share=0.5),
    "no_noise": dataclasses.replace(BASE, search=mcts.SearchConfig(gumbel_scale=0.0)),
    "virtual_loss": dataclasses.replace(BASE, search=mcts.SearchConfig(leaves_per_step=3, virtual_loss=2)),
    "puct": dataclasses.replace(BASE, search=mcts.SearchConfig(algorithm="puct", leaves_per_step=2)),
}
STEPS = 500

PINNED = {
    "session_mix": "b6b1f1343d5d972bcd36f04f7e63afffcaed96399d5485ed0178f0d055a3c649",
    "full_only": "9f948375d18f322622904ae0cb01901a470d8cf801712abd246a919a111d3fe1",
    "fast_only": "aade4403993ff4ed6de092f27eeb9fd4b74a54fa49b326c325e38ad5bead3fc5",
    "considered_4": "f26d24ae96f48803895dca18f6275c62f9678da5501b9bd16f77dc616d0b7391",
    "no_book_resign": "0d6ca559320baaf21f4d43639bc73ce938b82a890883e14358c1d660a3c31fdb",
    "no_noise": "3ef62d82b6d7c186f508ebbdf7f9c16877e6e3e613b8db7286da6eb9a0b2f42d",
    "virtual_loss": "159072ffc7b7aafeb040ae7416f7c470a89528b9100a32aaa5d64c6cf5352a19",
    "puct": "dec8c7cd03a9fbf2066c20e4d4ef984e1949bdf04e8435be96ac5a1408269c94",
}
PINNED_ON = {"machine": "x86_64", "numpy": "2.4.6", "numpy_avx512f": True}


def fingerprint() -> dict[str, object]:
    """What decides the float64 rounding here: the architecture, numpy's version and whether its
    exp/log dispatch to AVX-512 kernels."""
    features = getattr(getattr(np, "_core", None), "_multiarray_umath", None)
    cpu = getattr(features, "__cpu_features__", {}) if features is not None else {}
    return {"machine": platform.machine(), "numpy": np.__version__, "numpy_avx512f": bool(cpu.get("AVX512F"))}


class HashEvaluator:
    """Logits and a value drawn from a hash of each position: a network with opinions, the
    same on every machine and call."""

    def evaluate(self, planes: np.ndarray):
        n = planes.shape[0]
        logits = np.empty((n, POLICY_SIZE), dtype=np.float32)
        values = np.empty(n, dtype=np.float32)
        for b in range(n):
            rng = np.random.default_rng(zlib.crc32(planes[b].tobytes()))
            logits[b] = rng.standard_normal(POLICY_SIZE).astype(np.float32) * 2
            values[b] = rng.uniform(-1, 1)
        return logits, values, np.zeros((n, 3), dtype=np.float32)


def digest(cfg: SelfPlayConfig) -> tuple[str, int]:
    """sha256 of everything self-play produced in STEPS steps, and the games finished."""
    sp = SelfPlay(cfg, HashEvaluator(), seed=3, temperature_for=lambda n: 1.0 if n % 2 else 0.5)
    h = hashlib.sha256()
    records = []
    for _ in range(STEPS):
        records += sp.step()
    for rec in records + [g.record for g in sp.games]:
        h.update(" ".join(m.uci() for m in rec.moves).encode())
        h.update(repr((rec.result, rec.termination, rec.simulations, rec.false_resign)).encode())
        for policy, value, full, features, indices in zip(
            rec.policies, rec.root_values, rec.full_search, rec.features, rec.indices
        ):
            h.update(policy.tobytes())
            h.update(repr((value, full, features, indices)).encode())
    return h.hexdigest(), len(records)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pinned_outputs(case):
    value, finished = digest(CASES[case])
    print(f"\n{case}: {value} ({finished} games finished)")
    here = fingerprint()
    differs = {k: (PINNED_ON[k], here[k]) for k in PINNED_ON if here[k] != PINNED_ON[k]}
    if differs:
        pytest.skip(f"the digests were recorded on another machine kind (pinned, here): {differs}")
    assert value == PINNED[case]
