"""The inline worker's exploration settings (issue #24): it trains with the recency of
REPLAY_WINDOW_POSITIONS's window and starts its games from SELFPLAY_OPENINGS's lines.

Tiny network, a few simulations, short games: each session takes a few seconds on 2 cores.
"""

from __future__ import annotations

import pytest
import torch
from support.tiny import TINY

from service.config import SessionConfig
from service.engine import openings, replay
from service.engine.training import Trainer
from service.sessions.worker import SessionWorker, WorkerSpec

pytestmark = pytest.mark.integration


def run(tmp_path, monkeypatch, **overrides) -> tuple[list[dict], list[tuple[float, int]]]:
    """The session's game messages and, per learning phase, (recency passed, buffer size)."""
    trained: list[tuple[float, int]] = []
    real = Trainer.train

    def spy(self, buffer, steps, batch_size, *, recency=0.0):
        trained.append((recency, len(buffer)))
        return real(self, buffer, steps, batch_size, recency=recency)

    monkeypatch.setattr(Trainer, "train", spy)
    cfg = SessionConfig(**{**TINY, "seed": 3, "max_games": 4, "session_duration_min": 10, **overrides})
    games: list[dict] = []
    threads = torch.get_num_threads()
    try:
        spec = WorkerSpec(session_id="explore", config=cfg, checkpoint_dir=tmp_path, torch_threads=1)
        SessionWorker(spec, lambda kind, data: games.append(data) if kind == "game" else None).run()
    finally:
        torch.set_num_threads(threads)
    return games, trained


def test_the_worker_trains_on_a_window_that_grows_with_the_session(tmp_path, monkeypatch):
    games, trained = run(tmp_path, monkeypatch, replay_window_positions=10)
    assert len(trained) == 2  # after games 2 and 4
    seen = 0
    plies = [g["plies"] + (g["termination"] == "resignation") for g in games]
    for (recency, size), phase in zip(trained, (2, 4)):
        seen = sum(plies[:phase])
        assert size == seen  # the buffer holds every position so far
        assert recency == pytest.approx(replay.window_recency(seen, size, 10))
        assert 0 < recency < 1  # past 10 positions the window is narrower than the buffer
    assert trained[1][0] * trained[1][1] > trained[0][0] * trained[0][1]  # the window grew


def test_without_a_window_the_worker_samples_uniformly(tmp_path, monkeypatch):
    _, trained = run(tmp_path, monkeypatch, replay_window_positions=0)
    assert trained and all(recency == 0.0 for recency, _ in trained)


def test_the_worker_starts_its_games_from_the_book(tmp_path, monkeypatch):
    games, _ = run(tmp_path, monkeypatch, selfplay_openings="book", replay_window_positions=0)
    lines = [[m.uci() for m in line] for line in openings.selfplay_openings("book")]
    for game in games:
        assert any(game["moves"][: len(line)] == line for line in lines), game["moves"][:10]
