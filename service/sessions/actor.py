"""A self-play actor: plays games on the newest network its learner published, whatever
carries it (a spawned process, `fleet.Fleet`; a Ray actor, `ray_fleet.RayFleet`).

`play` is the actor's loop; an `ActorControl` is its link to the learner: the stop and pause
flags, the newest published network, the learner's game count (for the temperature schedule)
and `send`, which waits while the learner's side is full (the learner is learning,
checkpointing or evaluating and the actor is as far ahead as its transport lets it: the
learner holds the training ratio, the lead only adds generation lag).
Every message sent is a tuple: ("game", actor, GameRecord), ("stats", actor, data), ("move",
actor, data) or ("paused", actor, None). A featured actor reports its lowest-numbered game's
moves, at most one every `move_interval_s`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..config import SessionConfig
from ..engine import inference, network, schedules
from ..engine.selfplay import SelfPlay, SelfPlayConfig

STATS_INTERVAL_S = 2.0
"""How often an actor reports its throughput."""


@dataclass(frozen=True)
class ActorSpec:
    """What an actor needs (picklable)."""

    actor: int
    config: SessionConfig
    selfplay: SelfPlayConfig
    folder: Path | None = None  # where a process fleet's learner publishes networks
    threads: int = 1
    featured: bool = False  # report the moves of one game (the live feed's featured game)
    move_interval_s: float | None = None


class ActorControl(Protocol):
    """An actor's link to its learner."""

    def stopped(self) -> bool:
        """Stop now (told to, or the learner is gone)."""
        ...

    def paused(self) -> bool:
        """Hold between two search steps."""
        ...

    def newest(self) -> int:
        """The newest published network's version (0: none yet)."""
        ...

    def load(self, version: int) -> tuple[dict[str, torch.Tensor], int] | None:
        """That network's weights and generation, or None when it is gone already."""
        ...

    def games(self) -> int:
        """Games the learner has received (the temperature schedule's game number)."""
        ...

    def send(self, item: tuple[str, int, Any]) -> None:
        """One message to the learner (waits while its side is full)."""
        ...


def play(spec: ActorSpec, control: ActorControl) -> None:
    """The actor's loop: adopt the newest network between two search steps, play, send the
    finished games and the throughput, hold while paused, return when stopped."""
    torch.set_num_threads(spec.threads)
    cfg = spec.config
    net = network.build_network(cfg.chess_preset, cfg.seed).to(cfg.device)
    evaluator = inference.make(net, inference.runnable(cfg.inference_backend, cfg.device), cfg.device)
    selfplay = SelfPlay(
        spec.selfplay,
        evaluator,
        seed=f"{cfg.seed}:actor{spec.actor}",
        actor=spec.actor,
        temperature_for=lambda n: schedules.temperature(
            cfg.temperature_schedule,
            control.games(),
            cfg.initial_temperature,
            cfg.final_temperature,
            cfg.temperature_decay_games,
        ),
    )
    last_move = float("-inf")

    def on_move(game: int, ply: int, uci: str, san: str, fen: str) -> None:
        nonlocal last_move
        now = time.monotonic()
        if spec.move_interval_s is None or now - last_move < spec.move_interval_s:
            return
        last_move = now
        data = {"game": game, "ply": ply, "uci": uci, "san": san, "fen": fen, "actor": spec.actor}
        control.send(("move", spec.actor, data))

    if spec.featured:
        selfplay.move_hook = on_move
    adopted = 0
    sims_mark, t_mark = 0, time.perf_counter()
    control.send(("stats", spec.actor, {"simulations_per_second": 0.0, "generation": 0, "games_in_flight": 0}))
    while not control.stopped():
        if control.paused():
            control.send(("paused", spec.actor, None))
            while control.paused() and not control.stopped():
                time.sleep(0.02)
            continue
        version = control.newest()
        if version != adopted:
            adopted = _adopt(net, evaluator, selfplay, spec, control, version) or adopted
        for record in selfplay.step():
            control.send(("game", spec.actor, record))
        now = time.perf_counter()
        if now - t_mark >= STATS_INTERVAL_S:
            stats = {
                "simulations_per_second": (selfplay.simulations - sims_mark) / (now - t_mark),
                "generation": selfplay.generation,
                "games_in_flight": selfplay.in_flight,
            }
            control.send(("stats", spec.actor, stats))
            sims_mark, t_mark = selfplay.simulations, now


def _adopt(
    net: network.ChessNet,
    evaluator: inference.SnapshotEvaluator,
    selfplay: SelfPlay,
    spec: ActorSpec,
    control: ActorControl,
    version: int,
) -> int | None:
    """Take a published network; None when it is gone already (a newer one replaced it)."""
    published = control.load(version)
    if published is None:
        return None
    weights, generation = published
    net.load_state_dict(weights)
    evaluator.refresh()
    selfplay.play_generation(generation, spec.config.max_generation_lag)
    return version
