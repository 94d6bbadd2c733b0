"""The session worker, the session's learner: owns its network, optimizer, replay buffer and
random state, and interleaves taking self-play games, learning, checkpoints and evaluations
(whose matches `evaluation.py` plays).

It reads top to bottom as a pipeline (`SessionWorker.run`): take the games self-play finished
(`fleet.Play`: a batched step in this process with SELFPLAY_ACTORS=1, else what the actor
processes sent), hand them to the replay buffer and to the caller numbered in arrival order,
learn when due (publishing the new network to self-play), checkpoint when due, stop when
told or when a limit is reached. The moves of one featured game are reported as `move`
messages, at most one every `WorkerSpec.move_interval_s` (plies in between are skipped: the
live feed shows the game moving, its `game.finished` has every move). It reports through
`emit(kind, data)` with plain picklable dicts, so the same code runs inline (tests,
benchmarks), in a spawned process or a Ray actor (`serving.py`).

Over 500 lines: the learner's pipeline is one class read top to bottom; what could leave it
has (self-play to `fleet.py`, matches to `evaluation.py`/`evaluator.py`, a worker's life
between sessions to `serving.py`); the next seam is the checkpoint write and restore.
"""

from __future__ import annotations

import functools
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil
import torch

from ..config import SessionConfig
from ..engine import inference, mcts, network, openings, replay, schedules
from ..engine.replay import ReplayBuffer
from ..engine.selfplay import GameRecord, SelfPlay, SelfPlayConfig, replay_samples
from ..engine.training import Trainer, learning_rate_after, material_share_after, steps_for
from .evaluation import Evaluations
from .evaluator import EvaluatorProcess
from .fleet import Fleet, FleetBase, LocalPlay, Play
from .protocol import CommandKind, MessageKind
from .ray_fleet import RayFleet

Emit = Callable[[MessageKind, dict[str, Any]], None]

_ENDING = (CommandKind.STOP, CommandKind.SHUTDOWN, CommandKind.EXIT)
"""Commands after which the session loop ends (checkpointed)."""

MOVE_INTERVAL_S = 0.25
"""At most one featured-game `move` message per this many seconds (about 4 per second)."""


@dataclass
class WorkerSpec:
    """Everything a worker needs to run a session (picklable, sent to a spawned process)."""

    session_id: str
    config: SessionConfig  # typed and validated (a stored one: `stored_session_config`)
    checkpoint_dir: Path  # this session's own folder
    torch_threads: int = 1
    first_game: int = 1  # games already stored + 1 (resume)
    resume_state: Path | None = None  # the session's last checkpoint's state file
    init_weights: Path | None = None  # a stored checkpoint to start a new session from
    # stored games to refill the buffer: moves, policies, full_search, root_values, result
    replay_games: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float | None = None  # time left; None: SESSION_DURATION_MIN
    stats_interval_s: float = 2.0
    move_interval_s: float | None = MOVE_INTERVAL_S  # None: no `move` messages
    actors: int = 1  # SELFPLAY_ACTORS resolved: 1 plays in this process, more in processes of their own
    actor_threads: int = 1  # torch threads of each actor process
    fleet: bool | None = None  # actors in processes of their own; None: when actors > 1
    separate_evaluator: bool = False  # evaluations in a process of their own (never under GATING)
    backend: str = "process"  # WORKER_BACKEND: with `ray` a fleet's actors are Ray actors


def selfplay_config(cfg: SessionConfig) -> SelfPlayConfig:
    """Engine settings of a session config."""
    search = mcts.SearchConfig(
        algorithm=cfg.search,
        simulations=cfg.selfplay_simulations,
        gumbel_considered=cfg.gumbel_considered,
    )
    return SelfPlayConfig(
        search=search,
        simulations=cfg.selfplay_simulations,
        fast_simulations=cfg.fast_simulations,
        late_search_generation=cfg.late_search_generation,
        late_search_scale=cfg.late_search_scale,
        full_search_prob=cfg.full_search_prob,
        parallel_games=cfg.selfplay_parallel_games,
        temperature_plies=cfg.temperature_plies,
        max_plies=cfg.max_moves_per_game,
        adjudication=cfg.adjudication,
        adjudication_margin=cfg.adjudication_margin,
        resign_threshold=cfg.resign_threshold,
        openings=openings.selfplay_openings(cfg.selfplay_openings),
    )


def game_message(record: GameRecord, newest_generation: int | None = None) -> dict[str, Any]:
    """What the caller stores of a game: no board features (they are recomputed by replay).
    `newest_generation` is the learner's when the game arrived: its lag is measured from it
    (None: the game's own, lag 0)."""
    if newest_generation is None:
        newest_generation = record.generation
    return {
        "number": record.number,
        "generation": record.generation,
        "actor": record.actor,
        "generation_lag": max(newest_generation - record.generation, 0),
        "started": record.started,
        "moves": [m.uci() for m in record.moves],
        "result": record.result,
        "termination": record.termination,
        "adjudicated": record.adjudicated,
        "plies": record.plies,
        "temperature": record.temperature,
        "policies": [p.astype("float16") for p in record.policies],
        "root_values": record.root_values,
        "full_search": record.full_search,
        "move_seconds": record.move_seconds,
        "simulations": record.simulations,
        "duration_s": record.duration_s,
        "ended_at": record.ended_at,
        "material": record.material,
        "false_resign": record.false_resign,
        "pgn": record.pgn(),
    }


class Commands:
    """Commands from the orchestrator (pause, resume, stop, shutdown), read between steps.

    `get(timeout)` returns the next command, or None when none came within `timeout`
    seconds (0: don't wait; None: wait for one)."""

    def __init__(self, get: Callable[[float | None], CommandKind | None]) -> None:
        self.get = get

    @classmethod
    def none(cls) -> "Commands":
        """A source that never sends anything (a session that only stops by its limits)."""
        return cls(lambda timeout: None)


class SessionWorker:
    """One session's learning loop; `run` returns when the session stops.

    Commands: `pause` holds the session between two search steps (its games and trees
    stay in memory) until `resume`; `stop` ends it (final checkpoint, reason "stopped");
    `shutdown` does the same for a service going down (reason "shutdown": the session
    stays resumable). `should_stop` is a plain flag for callers without a command queue.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        emit: Emit,
        should_stop: Callable[[], bool] = lambda: False,
        commands: Commands | None = None,
    ) -> None:
        """Not split: one assignment per piece of the learner's state, read once."""
        self.spec = spec
        self.emit = emit
        self.should_stop = should_stop
        self.commands = commands or Commands.none()
        torch.set_num_threads(spec.torch_threads)
        in_fleet = bool(spec.fleet or (spec.fleet is None and spec.actors > 1))
        self.inference = inference.choose(
            spec.config.inference_backend,
            spec.config.chess_preset,
            batch=spec.config.selfplay_parallel_games,
            device=spec.config.device,
            threads=spec.actor_threads if in_fleet else spec.torch_threads,  # the threads self-play runs on
            cache_dir=spec.checkpoint_dir.parent,  # CHECKPOINT_DIR: shared by sessions and restarts
        )
        # `auto` resolved once, here: the actors, evaluations and evaluator process build this one.
        self.cfg = cfg = spec.config.model_copy(update={"inference_backend": self.inference.backend})
        self.device = cfg.device
        torch.manual_seed(cfg.seed)
        self.net = network.build_network(cfg.chess_preset, cfg.seed).to(self.device)
        self.trainer = Trainer(
            self.net, lr=cfg.learning_rate, device=self.device, seed=cfg.seed, aux_weight=cfg.aux_material_weight
        )
        self.buffer = ReplayBuffer(cfg.replay_buffer_positions, seed=cfg.seed)
        self.generation = 0
        self.games_done = spec.first_game - 1
        self.new_positions = 0
        self.positions_learned = 0
        self.positions_received = 0  # by this run: the training/self-play ratio it held
        self.samples_trained = 0
        if spec.resume_state is not None:
            self._restore(spec.resume_state)
        elif spec.init_weights is not None:
            net, _ = network.load_weights(spec.init_weights, self.device)
            self.net.load_state_dict(net.state_dict())
        for game in spec.replay_games:
            self.buffer.add(
                replay_samples(
                    game["moves"],
                    game["policies"],
                    game["full_search"],
                    game["result"],
                    cfg.value_horizon_plies,
                    cfg.adjudication_margin,
                    cfg.value_material_scale,
                    root_values=game["root_values"],
                    root_weight=cfg.value_root_weight,
                )
            )
        self.evaluator = inference.make(self.net, cfg.inference_backend, self.device)
        self.played_generation = max(self.generation - 1, 0)  # what self-play plays: the checkpoint loaded
        remaining = max(cfg.max_games - self.games_done, 0) if cfg.max_games else None
        self.play: Play
        if in_fleet:
            fleet = dict(
                threads=spec.actor_threads,
                remaining=remaining,
                move_interval_s=spec.move_interval_s,
                on_replaced=self._on_actor_replaced,
                on_move=lambda data: self.emit(MessageKind.MOVE, data),
            )
            if spec.backend == "ray":  # actors as Ray actors, placed by the cluster
                self.play = RayFleet(spec.actors, cfg, selfplay_config(cfg), **fleet)
            else:
                self.play = Fleet(spec.actors, cfg, selfplay_config(cfg), spec.checkpoint_dir / "fleet", **fleet)
        else:
            self.play = LocalPlay(self._local_selfplay(remaining), self.evaluator, cfg.max_generation_lag)
        self.process = psutil.Process()

    def _local_selfplay(self, remaining: int | None) -> SelfPlay:
        """Self-play in this process (SELFPLAY_ACTORS=1), as one worker always played."""
        cfg = self.cfg
        selfplay = SelfPlay(
            selfplay_config(cfg),
            self.evaluator,
            seed=cfg.seed,
            first_game=self.games_done + 1,
            temperature_for=lambda n: schedules.temperature(
                cfg.temperature_schedule,
                n,
                cfg.initial_temperature,
                cfg.final_temperature,
                cfg.temperature_decay_games,
            ),
        )
        selfplay.generation = self.played_generation
        selfplay.max_new_games = remaining
        self._last_move = float("-inf")
        if self.spec.move_interval_s is not None:
            selfplay.move_hook = self._on_move
        return selfplay

    # -- the pipeline --------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Play, learn and checkpoint until a stop condition; returns the final summary."""
        cfg = self.cfg
        duration = self.spec.duration_s if self.spec.duration_s is not None else cfg.session_duration_min * 60
        self._run_started = time.monotonic()
        deadline = self._run_started + duration - self.elapsed_before  # time used before a restart counts
        if self.generation == 0:
            self._checkpoint()  # generation 0: the evaluation anchor
        if isinstance(self.play, FleetBase):
            self.play.start(self.net, self.played_generation, self.games_done)
        if self.spec.separate_evaluator and not self.cfg.gating:
            self.evaluator_process = EvaluatorProcess(self.cfg, self.device, self.spec.init_weights)
        try:
            return self._run(deadline)
        finally:
            self.play.close()  # after an error too: no actor outlives its session
            if self.evaluator_process is not None:
                self.evaluator_process.close()

    def _run(self, deadline: float) -> dict[str, Any]:
        reason = "max_games"
        last_stats = time.monotonic()
        marks = self._marks()
        start_rss = self.process.memory_info().rss
        gc_was_enabled = gc.isenabled()
        gc.disable()  # search trees hold no cycles: reference counting frees them
        try:
            while self.play.more():
                command = self._take_command()
                if command == CommandKind.PAUSE:
                    paused_at = time.monotonic()
                    for record in self.play.pause():  # what finished before every actor held
                        self._on_game(record)
                    self.emit(MessageKind.PAUSED, {"games": self.games_done})
                    while command not in (CommandKind.RESUME, CommandKind.STOP, CommandKind.SHUTDOWN, CommandKind.EXIT):
                        command = self.commands.get(None)
                    self._paused_s += time.monotonic() - paused_at
                    deadline += time.monotonic() - paused_at  # a pause does not use the session's time
                    if command == CommandKind.RESUME:
                        self.play.resume()
                        self.emit(MessageKind.RESUMED, {"games": self.games_done})
                if command in _ENDING or self.should_stop():
                    reason = "stopped" if command == CommandKind.STOP or command is None else "shutdown"
                    break
                if time.monotonic() >= deadline:
                    reason = "duration"
                    break
                for record in self.play.step():
                    self._on_game(record)
                if self.evaluator_process is not None:
                    for data in self.evaluator_process.results():
                        self.emit(MessageKind.EVALUATION, data)
                now = time.monotonic()
                if now - last_stats >= self.spec.stats_interval_s:
                    marks = self._emit_stats(marks, start_rss)
                    last_stats = now
        finally:
            if gc_was_enabled:
                gc.enable()
        self._emit_stats(marks, start_rss)
        dropped = self.play.close()  # self-play ends here: the final checkpoint and evaluation run alone
        if self.games_done and (self.generation == 0 or self._last_checkpoint_games != self.games_done):
            self._checkpoint()
        evaluations = self.evaluator_process or self.evaluations
        evaluated = evaluations.last_games
        if reason in ("max_games", "duration") and self.games_done > evaluated:
            self._evaluate()  # after the limit: the session's own time is not spent on it; an explicit stop means now
        if self.evaluator_process is not None:
            self._finish_evaluations(wait=reason in ("max_games", "duration"))
        summary = {
            "reason": reason,
            "games": self.games_done,
            "generation": self.generation,
            "positions_learned": self.positions_learned,
            "training_steps": self.trainer.step,
            "dropped_in_flight": dropped,
        }
        self.emit(MessageKind.FINISHED, summary)
        return summary

    def _marks(self) -> tuple[int, float]:
        """Training steps and the clock now, for the learner's rate in the next stats."""
        return self.trainer.step, time.perf_counter()

    def _emit_stats(self, marks: tuple[int, float], start_rss: int) -> tuple[int, float]:
        """Throughput (the actors' simulations/s, the learner's steps/s since the last report),
        the training/self-play ratio so far, the actors, buffer and memory; returns new marks."""
        steps, t = marks
        now = self._marks()
        actors = self.play.actors()
        rss = self.process.memory_info().rss
        self.emit(
            MessageKind.STATS,
            {
                "simulations_per_second": sum(a["simulations_per_second"] for a in actors),
                "learner_steps_per_second": (now[0] - steps) / max(now[1] - t, 1e-9),
                "samples_per_position": self.samples_trained / self.positions_received
                if self.positions_received
                else None,
                "generation": self.played_generation,
                "actors": actors,
                "buffer_size": len(self.buffer),
                "games_in_flight": self.play.in_flight,
                "rss_mb": rss / 2**20,
                "rss_growth_mb": (rss - start_rss) / 2**20,
                "inference": self.inference.to_dict(),
            },
        )
        return now

    def _on_move(self, game: int, ply: int, uci: str, san: str, fen: str) -> None:
        """A move of the featured game: reported unless one was reported too recently."""
        now = time.monotonic()
        assert self.spec.move_interval_s is not None  # the hook is set only with an interval
        if now - self._last_move < self.spec.move_interval_s:
            return
        self._last_move = now
        self.emit(MessageKind.MOVE, {"game": game, "ply": ply, "uci": uci, "san": san, "fen": fen, "actor": 0})

    def _on_game(self, record: GameRecord) -> None:
        cfg = self.cfg
        self.games_done += 1
        record.number = self.games_done  # in arrival order: from every actor, 1..N with no gap
        rules = (cfg.value_horizon_plies, cfg.adjudication_margin, cfg.value_material_scale)
        samples = record.samples(*rules, root_weight=cfg.value_root_weight)
        self.buffer.add(samples)
        self.new_positions += len(samples)
        self.positions_received += len(samples)
        self.emit(MessageKind.GAME, game_message(record, self.played_generation))
        n = self.games_done
        if n >= cfg.min_games_before_learning and n % cfg.learn_every_n_games == 0 and len(self.buffer):
            self._learn()
        if n % cfg.checkpoint_interval == 0:
            self._checkpoint()
        if n % cfg.eval_interval_games == 0:
            self._evaluate()

    def _learn(self) -> None:
        cfg = self.cfg
        steps = steps_for(self.new_positions, cfg.train_samples_per_position, cfg.learning_batch_size)
        if steps <= 0:
            return
        t = time.perf_counter()
        self.trainer.material_share = material_share_after(self.positions_learned, cfg.value_material_decay_positions)
        self.trainer.lr = learning_rate_after(
            self.positions_learned, cfg.learning_rate, cfg.learning_rate_decay_positions, cfg.learning_rate_floor
        )
        seen = self.positions_learned + self.new_positions  # the session's, restarts included
        recency = replay.window_recency(seen, len(self.buffer), cfg.replay_window_positions)
        stats = self.trainer.train(self.buffer, steps, cfg.learning_batch_size, recency=recency)
        self.samples_trained += stats.steps * cfg.learning_batch_size
        if not cfg.gating:  # with gating only an SPRT-accepted checkpoint plays self-play
            self._adopt(self.generation)  # the trained net becomes generation self.generation when saved
        gc.collect()  # training and the optimizer may leave cycles behind
        self.positions_learned += self.new_positions
        self.new_positions = 0
        self.emit(
            MessageKind.LEARNING,
            {
                "games": self.games_done,
                "step": self.trainer.step,
                "steps": stats.steps,
                "policy_loss": stats.policy_loss,
                "value_loss": stats.value_loss,
                "total_loss": stats.total_loss,
                "grad_norm": stats.grad_norm,
                "lr": stats.lr,
                "policy_entropy": stats.policy_entropy,
                "aux_loss": stats.aux_loss,
                "material_share": stats.material_share,
                "samples": stats.samples,
                "buffer_size": len(self.buffer),
                "positions_learned": self.positions_learned,
                "seconds": time.perf_counter() - t,
            },
        )

    def _adopt(self, generation: int) -> None:
        """Self-play takes the network as it is now, as `generation` (the checkpoint it is, or
        will be saved as); with MAX_GENERATION_LAG older games in flight are abandoned."""
        self.play.adopt(self.net, generation)
        self.played_generation = generation

    def _on_actor_replaced(self, actor: int, replacement: int, exitcode: int | None) -> None:
        """An actor died and another took its place: its games in flight are lost, never numbered."""
        self.emit(MessageKind.ACTOR_REPLACED, {"actor": actor, "replacement": replacement, "exitcode": exitcode})

    # -- commands ------------------------------------------------------------------------
    _pending: CommandKind | None = None  # a command read during an evaluation, for the main loop

    def _take_command(self) -> str | None:
        command, self._pending = self._pending or self.commands.get(0), None
        return command

    def _stop_requested(self) -> bool:
        """Whether a stop (or shutdown) arrived; a pause waits for the main loop."""
        if self._pending is None:
            self._pending = self.commands.get(0)
        return self._pending in _ENDING or self.should_stop()

    # -- evaluation ----------------------------------------------------------------------
    def _evaluate(self) -> None:
        """Evaluate the newest checkpoint (`Evaluations.play`, or handed to the evaluator
        process), checkpointing first when the games since the last one are not in one;
        under GATING an accepted one is promoted."""
        if self._last_checkpoint_games != self.games_done:
            self._checkpoint()
        if self.evaluator_process is not None:
            generation = self.generation - 1
            self.evaluator_process.submit(self._weights_path(generation), generation, self.games_done)
            return
        for data in self.evaluations.play(self.net, self.generation - 1, self.games_done, self._stop_requested):
            if self.cfg.gating and data.get("sprt", {}).get("state") == "accepted":
                self._adopt(self.generation - 1)  # promote: self-play now uses this checkpoint
            self.emit(MessageKind.EVALUATION, data)

    def _finish_evaluations(self, wait: bool) -> None:
        """At the end: wait for the evaluator's running and waiting evaluations (a limit was
        reached), or stop them without a result (a stop means now)."""
        assert self.evaluator_process is not None
        if not wait:
            self.evaluator_process.stop()
        while wait and self.evaluator_process.busy and not self._stop_requested():
            for data in self.evaluator_process.results(timeout=0.5):
                self.emit(MessageKind.EVALUATION, data)

    evaluator_process: EvaluatorProcess | None = None

    @functools.cached_property
    def evaluations(self) -> Evaluations:
        """Evaluations in this process, built on first use: with an evaluator process of its
        own the learner never needs them (nor generation 0's network)."""
        return Evaluations(self.cfg, self.device, self.spec.init_weights)

    # -- checkpoints ---------------------------------------------------------------------

    def _weights_path(self, generation: int) -> Path:
        return self.spec.checkpoint_dir / f"gen-{generation:04d}.safetensors"

    _last_checkpoint_games = -1
    elapsed_before = 0.0  # session time used by earlier runs (restored from the checkpoint)
    _run_started: float | None = None
    _paused_s = 0.0

    def _elapsed(self) -> float:
        """Session time used so far, pauses excluded, earlier runs included."""
        if self._run_started is None:
            return self.elapsed_before
        return self.elapsed_before + time.monotonic() - self._run_started - self._paused_s

    def _checkpoint(self) -> None:
        folder = self.spec.checkpoint_dir
        folder.mkdir(parents=True, exist_ok=True)
        weights = self._weights_path(self.generation)
        state = folder / f"gen-{self.generation:04d}.state.pt"
        sha = network.save_weights(
            self.net,
            weights,
            generation=self.generation,
            seed=self.cfg.seed,
            extra={"session_id": self.spec.session_id, "games": self.games_done},
        )
        # tensors, numbers, strings, lists and dicts only: it loads with weights_only=True
        values = {
            "generation": self.generation,
            "games": self.games_done,
            "optimizer": self.trainer.state_dict(),
            "buffer_rng": self.buffer.state_dict(),
            "positions_learned": self.positions_learned,
            "torch_rng": torch.get_rng_state(),
            "weights": weights.name,
            "elapsed_s": self._elapsed(),
        }
        network.write_durably(state, lambda tmp: torch.save(values, tmp))
        self.emit(
            MessageKind.CHECKPOINT,
            {
                "generation": self.generation,
                "games": self.games_done,
                "path": str(weights),
                "state_path": str(state),
                "sha256": sha,
            },
        )
        self._last_checkpoint_games = self.games_done
        self.generation += 1

    def _restore(self, state_path: Path) -> None:
        state = torch.load(state_path, weights_only=True)  # a state file runs no code when loaded
        net, _ = network.load_weights(state_path.parent / state["weights"], self.device)
        self.net.load_state_dict(net.state_dict())
        self.trainer.load_state_dict(state["optimizer"])
        if state.get("buffer_rng") is not None:  # None in state files of older versions
            self.buffer.load_state_dict(state["buffer_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.positions_learned = state["positions_learned"]
        self.elapsed_before = state.get("elapsed_s", 0.0)
        self.generation = state["generation"] + 1
