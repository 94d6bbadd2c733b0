"""Seeded sessions repeat exactly on CPU, and one seeded game is pinned move for move.

Same SEED, same config, CPU, same TORCH_THREADS -> the same games, learning included
(per-game random streams seeded from (SEED, game number), generation 0 from SEED, training
under a forked RNG seeded from (SEED, step), the replay sampler seeded from SEED).

What holds where:
- on ANY machine: the same seed twice gives the same games, checkpoints byte for byte
  (`test_same_seed_same_games`), and another seed other games; always asserted;
- on the machine the pin was recorded on (`PINNED_ON`: torch version, CPU architecture and
  the SIMD level torch's kernels use, torch threads): game 1 move for move
  (`test_pinned_game`). Elsewhere float rounding may differ, so that comparison alone is
  skipped, saying which part of the fingerprint differs.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import pytest
import torch

from service.config import SessionConfig
from service.sessions.worker import SessionWorker, WorkerSpec

pytestmark = pytest.mark.regression

# Every field that shapes a game is spelled out, so a change of a default in config.py
# does not silently move the pin below (it is pinned by this config, not by the defaults).
CONFIG = dict(
    chess_preset="tiny",
    seed=5,
    device="cpu",
    max_games=6,
    selfplay_parallel_games=3,
    max_moves_per_game=40,
    selfplay_simulations=8,
    fast_simulations=2,
    gumbel_considered=4,
    full_search_prob=0.25,
    search="gumbel",
    temperature_schedule="linear_decay",
    initial_temperature=1.0,
    final_temperature=0.1,
    temperature_decay_games=50,
    temperature_plies=30,
    selfplay_openings="book",
    adjudication="material",
    adjudication_margin=3,
    resign_threshold=None,
    min_games_before_learning=2,
    learn_every_n_games=2,
    learning_batch_size=32,
    learning_rate=0.001,
    train_samples_per_position=4.0,
    replay_buffer_positions=50_000,
    replay_window_positions=100,
    checkpoint_interval=3,
    torch_threads=1,
    inference_backend="torch",
    session_duration_min=10,
    eval_games=2,
    eval_opponents="random",
    eval_simulations=2,
)

# Game 1 of the CONFIG session (SEED=5). It finishes before the first learning phase
# (after game 2), so it depends on generation 0's inference and the search only, not on
# training. To regenerate after an intended change of the engine (encoding, network
# init, search, self-play, move sampling): run
#     .venv/bin/python -m pytest tests/regression/test_determinism.py -k pinned -s
# which prints the game's moves and hash, and paste them here, saying why in the commit.
#
# What breaks bit-exactness even without a code change: another torch thread count
# (reduction order in the convolutions), another CPU instruction set or oneDNN kernel
# choice (AVX2 vs AVX-512, a new torch/oneDNN version: the TorchScript inference snapshot
# uses oneDNN), another torch version, a GPU, and another batch composition:
# SELFPLAY_PARALLEL_GAMES decides which positions share one network call, and a kernel
# may round differently at another batch size. A near-tie between two moves' visit counts
# or improved policies then flips a move, and every later move differs.
PINNED_GAME = 1
PINNED_PLIES = 40
PINNED_RESULT = ("1/2-1/2", "move_cap")
# the first 8 plies are the book's Sicilian Taimanov (SELFPLAY_OPENINGS=book)
PINNED_FIRST_MOVES = ["e2e4", "c7c5", "g1f3", "e7e6", "d2d4", "c5d4", "f3d4", "b8c6", "d1g4", "g8e7"]
PINNED_SHA256 = "cd12aad3f8dccce12d20a96862a8fcba8ded0da45e3cefb288f279d6b2a09af2"
# The machine the pin above was recorded on (`fingerprint()` there). Regenerating the pin
# records this too: paste `fingerprint()` as printed by the command above.
PINNED_ON = {"torch": "2.13.0+cpu", "machine": "x86_64", "cpu_capability": "AVX512", "torch_threads": 1}


def fingerprint() -> dict[str, object]:
    """What decides the float arithmetic of a CPU session: the torch build (its kernels and
    bundled oneDNN), the CPU architecture, the SIMD level torch dispatches to (DEFAULT, AVX2,
    AVX512...), and the thread count the session runs on (`play` uses one)."""
    return {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": 1,
    }


class Session(dict):
    """A session's games by number, and its checkpoint messages."""

    checkpoints: list[dict]


def play(tmp_path: Path, **overrides) -> Session:
    """Run the inline worker on one thread; its games by number."""
    cfg = SessionConfig(**{**CONFIG, **overrides})
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        games = Session()
        games.checkpoints = []

        def emit(kind: str, data: dict) -> None:
            if kind == "game":
                assert data["number"] not in games
                games[data["number"]] = data
            elif kind == "checkpoint":
                games.checkpoints.append(data)

        spec = WorkerSpec(session_id=f"det-{cfg.seed}", config=cfg, checkpoint_dir=tmp_path, torch_threads=1)
        SessionWorker(spec, emit).run()
    finally:
        torch.set_num_threads(old)
    assert sorted(games) == list(range(1, cfg.max_games + 1))
    return games


def summary(games: dict[int, dict]) -> list[tuple]:
    return [(n, g["moves"], g["result"], g["termination"], g["full_search"]) for n, g in sorted(games.items())]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Session:
    return play(tmp_path_factory.mktemp("det-a"))


def test_same_seed_same_games(first_run, tmp_path):
    again = play(tmp_path)
    assert summary(again) == summary(first_run)
    for n, game in first_run.items():
        assert again[n]["root_values"] == game["root_values"], n
    # learning repeats too: every checkpoint's weights file is the same, byte for byte
    assert len(first_run.checkpoints) == 3
    assert [c["sha256"] for c in again.checkpoints] == [c["sha256"] for c in first_run.checkpoints]


def test_other_seed_other_games(first_run, tmp_path):
    other = play(tmp_path, seed=CONFIG["seed"] + 1)
    assert [g["moves"] for _, g in sorted(other.items())] != [g["moves"] for _, g in sorted(first_run.items())]


def test_pinned_game(first_run):
    game = first_run[PINNED_GAME]
    moves = game["moves"]
    digest = hashlib.sha256(" ".join(moves).encode()).hexdigest()
    here = fingerprint()
    print(f"\ngame {PINNED_GAME}: {len(moves)} plies, {game['result']} ({game['termination']})")
    print("moves:", moves)
    print("sha256:", digest)
    print("fingerprint:", here)
    # Any machine: the pinned game is a well-formed game of this config.
    assert game["number"] == PINNED_GAME and 1 <= len(moves) <= CONFIG["max_moves_per_game"]
    differs = {k: (PINNED_ON[k], here.get(k)) for k in PINNED_ON if here.get(k) != PINNED_ON[k]}
    if differs:
        pytest.skip(
            "the pinned moves were recorded on another machine (pinned, here: "
            + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differs.items())
            + "); the same-seed repeat test still holds here"
        )
    assert moves[: len(PINNED_FIRST_MOVES)] == PINNED_FIRST_MOVES
    assert (len(moves), (game["result"], game["termination"])) == (PINNED_PLIES, PINNED_RESULT)
    assert digest == PINNED_SHA256
