"""A learner and a fleet of self-play actors in real processes (SELFPLAY_ACTORS=2).

The learner (`SessionWorker`) runs here, its actors are spawned processes: games arrive from
both, numbered 1..N in arrival order, each with the generation that started it and the actor
that played it; the learner holds the training/self-play ratio; an actor killed with SIGKILL
is replaced while the session runs; pause holds every actor; at the end no actor is left.
"""

from __future__ import annotations

import io
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

import chess.pgn
import psutil
import pytest
import torch
from support.tiny import TINY

from service.config import SessionConfig
from service.lifecycle import ActorState
from service.sessions.protocol import CommandKind, MessageKind
from service.sessions.worker import Commands, SessionWorker, WorkerSpec

pytestmark = pytest.mark.integration

FLEET = {  # TINY with two actors, longer games and learning phases every 4 games
    **TINY,
    "seed": 5,
    "selfplay_actors": 2,
    "selfplay_parallel_games": 4,
    "max_moves_per_game": 30,
    "selfplay_simulations": 8,
    "min_games_before_learning": 4,
    "learn_every_n_games": 4,
    "checkpoint_interval": 8,
    "eval_interval_games": 10_000,
    "session_duration_min": 10,
}


@pytest.fixture(autouse=True)
def _torch_threads():
    """The learner sets torch's thread count for the whole process: put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class Learner:
    """A learner in a thread of this process, its messages in a list, commands through a queue."""

    def __init__(self, folder: Path, separate_evaluator: bool = False, **overrides: Any) -> None:
        config = SessionConfig(**{**FLEET, **overrides})
        self.spec = WorkerSpec(
            "fleet",
            config,
            folder,
            actors=2,
            stats_interval_s=0.5,
            move_interval_s=0.2,
            separate_evaluator=separate_evaluator,
        )
        self.messages: list[tuple[MessageKind, dict[str, Any]]] = []
        self.commands: queue.Queue[CommandKind] = queue.Queue()
        self.summary: dict[str, Any] | None = None
        self.error: BaseException | None = None

        def get(timeout: float | None) -> CommandKind | None:
            try:
                return self.commands.get(timeout=timeout) if timeout != 0 else self.commands.get_nowait()
            except queue.Empty:
                return None

        def emit(kind: MessageKind, data: dict[str, Any]) -> None:
            self.messages.append((kind, data))

        self.worker = SessionWorker(self.spec, emit, commands=Commands(get))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.summary = self.worker.run()
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> "Learner":
        self.thread.start()
        return self

    def join(self, timeout: float = 240.0) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the learner did not finish"
        assert self.error is None, repr(self.error)
        assert self.summary is not None
        return self.summary

    def of(self, kind: MessageKind) -> list[dict[str, Any]]:
        return [data for k, data in list(self.messages) if k == kind]

    def wait(self, what: str, predicate, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.thread.is_alive() or predicate(), f"the learner ended before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def actor_pids(self) -> dict[int, int]:
        stats = self.of(MessageKind.STATS)
        return {a["actor"]: a["pid"] for a in stats[-1]["actors"]} if stats else {}


def _numbers(games: list[dict[str, Any]]) -> list[int]:
    return [g["number"] for g in games]


def test_games_from_every_actor_are_numbered_in_arrival_order(tmp_path):
    learner = Learner(tmp_path, max_games=24).start()
    learner.wait("both actors reporting", lambda: len(learner.actor_pids()) == 2)
    pids = list(learner.actor_pids().values())
    summary = learner.join()

    games = learner.of(MessageKind.GAME)
    assert summary["reason"] == "max_games" and summary["games"] == 24
    assert _numbers(games) == list(range(1, 25))  # once each, no gap
    assert {g["actor"] for g in games} == {1, 2}  # both actors played
    newest = 0
    for game in games:
        headers = chess.pgn.read_headers(io.StringIO(game["pgn"]))
        assert headers is not None
        assert (headers["Round"], headers["Generation"], headers["Actor"]) == (
            str(game["number"]),
            str(game["generation"]),
            str(game["actor"]),
        )
        assert game["generation_lag"] >= 0
        newest = max(newest, game["generation"] + game["generation_lag"])
    assert newest >= 1  # the learner published trained generations and games arrived after
    assert max(g["generation"] for g in games) >= 1  # and the actors adopted them

    learning = learner.of(MessageKind.LEARNING)
    assert learning, "the learner never learned"
    final = learner.of(MessageKind.STATS)[-1]
    assert final["samples_per_position"] == pytest.approx(2.0, rel=0.25)  # TRAIN_SAMPLES_PER_POSITION
    moves = learner.of(MessageKind.MOVE)
    assert moves and {m["actor"] for m in moves} == {1}  # one featured game, from one actor

    for pid in pids:  # no actor outlives its session
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_killed_actor_is_replaced_and_pause_holds_every_actor(tmp_path):
    learner = Learner(tmp_path, max_games=0, session_duration_min=10).start()
    learner.wait("3 games", lambda: len(learner.of(MessageKind.GAME)) >= 3)
    learner.wait("both actors reporting", lambda: len(learner.actor_pids()) == 2)
    victim, pid = sorted(learner.actor_pids().items())[0]
    os.kill(pid, signal.SIGKILL)
    learner.wait("the replacement", lambda: learner.of(MessageKind.ACTOR_REPLACED))
    replaced = learner.of(MessageKind.ACTOR_REPLACED)[0]
    assert replaced["actor"] == victim and replaced["replacement"] == 3
    assert replaced["exitcode"] == -signal.SIGKILL
    learner.wait("a game of the replacement", lambda: any(g["actor"] == 3 for g in learner.of(MessageKind.GAME)))

    learner.commands.put(CommandKind.PAUSE)
    learner.wait("the pause", lambda: learner.of(MessageKind.PAUSED))
    held = len(learner.of(MessageKind.GAME))
    assert learner.of(MessageKind.PAUSED)[0]["games"] == held  # every game finished before is reported
    time.sleep(3.0)
    assert len(learner.of(MessageKind.GAME)) == held, "a game arrived while paused"
    learner.commands.put(CommandKind.RESUME)
    learner.wait("a game after the pause", lambda: len(learner.of(MessageKind.GAME)) > held + 2)
    pids = list(learner.actor_pids().values())
    learner.commands.put(CommandKind.STOP)
    summary = learner.join()

    assert summary["reason"] == "stopped"
    games = learner.of(MessageKind.GAME)
    assert _numbers(games) == list(range(1, len(games) + 1))  # the death left no gap, no duplicate
    assert {g["actor"] for g in games} >= {3}
    stats = learner.of(MessageKind.STATS)
    assert all(a["state"] in set(ActorState) for s in stats for a in s["actors"])
    assert all(victim not in {a["actor"] for a in s["actors"]} for s in stats[-2:])
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_evaluator_plays_in_its_own_process_while_self_play_goes_on(tmp_path):
    learner = Learner(tmp_path, separate_evaluator=True, max_games=24, eval_interval_games=8, eval_games=4)
    summary = learner.start().join()

    assert summary["reason"] == "max_games"
    order = [(kind, data) for kind, data in learner.messages if kind in (MessageKind.GAME, MessageKind.EVALUATION)]
    evaluations = [data for kind, data in order if kind == MessageKind.EVALUATION]
    assert {e["games_played"] for e in evaluations} >= {8, 24}  # one while playing, one after the limit
    first = next(i for i, (kind, _) in enumerate(order) if kind == MessageKind.EVALUATION)
    games_before_result = sum(1 for kind, _ in order[:first] if kind == MessageKind.GAME)
    assert games_before_result > 8, "self-play waited for the evaluation"
    for e in evaluations:
        assert e["wins"] + e["draws"] + e["losses"] == 4 and (e["opponent"] == "random" or "sprt" in e)
    assert _numbers(learner.of(MessageKind.GAME)) == list(range(1, 25))
