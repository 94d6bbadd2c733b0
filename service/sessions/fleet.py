"""Where a session's self-play games come from: the learner's own process, or a fleet of actors.

The learner (`worker.SessionWorker`) reads games from a `Play`, whatever plays them:

- `LocalPlay` (SELFPLAY_ACTORS=1): one `SelfPlay` in the learner's process, stepped between
  learning phases, as one worker always did; deterministic under a seed.
- `Fleet` (SELFPLAY_ACTORS >= 2): that many actor processes (spawned, `actor_main` running
  `actor.play`), each with its own copy of the weights and `SELFPLAY_PARALLEL_GAMES` games in
  flight. The learner publishes each new network as a file (`publish`:
  `fleet/net-<version>.safetensors` in the session's checkpoint folder) and bumps a shared
  version number; an actor adopts the newest between two search steps. Finished games come
  back on each actor's own pipe: while the learner learns, checkpoints or evaluates, an actor
  plays on until it holds one learning phase's games (`ahead_games`), then waits (the learner
  holds the ratio of trained samples per new position whatever their speed); the learner
  numbers games in the order they arrive. An actor that dies is replaced under a new actor
  number (its games in flight are lost, never numbered: no gap); pause holds every actor and
  waits until each has said so, so every game finished before the pause is in the learner's
  hands.

Actors report their throughput every few seconds (`ActorState`, simulations/s, generation) and
the moves of one featured game (the lowest-numbered live actor's), all on the same queue.

Over 500 lines: the `Play` protocol and both of its sides (local, process fleet) with the
control they share; the Ray fleet builds on `FleetBase` here, and parting the process fleet
from the protocol would split one contract across files.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from ..config import SessionConfig
from ..engine import inference, network
from ..engine.selfplay import GameRecord, SelfPlay, SelfPlayConfig
from ..lifecycle import ActorState
from .actor import ActorSpec, play

PUBLISHED_KEPT = 3
"""Newest published networks kept on disk (an actor may be reading the one before the newest)."""


class Play(Protocol):
    """A source of finished self-play games for the learner."""

    def step(self) -> list[GameRecord]:
        """Games finished since the last call (may wait a little for them)."""
        ...

    def adopt(self, net: torch.nn.Module, generation: int) -> None:
        """From now on self-play plays `net`, as `generation`."""
        ...

    def pause(self) -> list[GameRecord]:
        """Hold self-play; returns the games that finished before it held."""
        ...

    def resume(self) -> None:
        """Let self-play go on after `pause`."""
        ...

    def close(self) -> int:
        """Stop self-play for good; returns the games dropped in flight."""
        ...

    def more(self) -> bool:
        """Whether games may still come (False once MAX_GAMES have been handed over)."""
        ...

    @property
    def in_flight(self) -> int:
        """Games being played."""
        ...

    def actors(self) -> list[dict[str, Any]]:
        """Per live actor: its number, state, simulations/s (since the last call, or as it
        last reported), generation and games in flight."""
        ...


class LocalPlay:
    """SELFPLAY_ACTORS=1: self-play in the learner's own process, one step per call."""

    def __init__(self, selfplay: SelfPlay, evaluator: inference.SnapshotEvaluator, max_lag: int | None) -> None:
        self.selfplay = selfplay
        self.evaluator = evaluator
        self.max_lag = max_lag
        self._mark = (0, time.perf_counter())  # simulations, clock at the last `actors`

    def step(self) -> list[GameRecord]:
        return self.selfplay.step()

    def adopt(self, net: torch.nn.Module, generation: int) -> None:
        self.evaluator.refresh()  # the evaluator wraps the learner's own net
        self.selfplay.play_generation(generation, self.max_lag)

    def pause(self) -> list[GameRecord]:
        return []  # nothing runs between two calls of `step`

    def resume(self) -> None:
        pass

    def close(self) -> int:
        return self.selfplay.in_flight

    def more(self) -> bool:
        return bool(self.selfplay.in_flight) or self.selfplay.max_new_games != 0

    @property
    def in_flight(self) -> int:
        return self.selfplay.in_flight

    def actors(self) -> list[dict[str, Any]]:
        now = time.perf_counter()
        sims, t = self._mark
        self._mark = (self.selfplay.simulations, now)
        return [
            {
                "actor": 0,
                "state": ActorState.RUNNING,
                "simulations_per_second": (self.selfplay.simulations - sims) / max(now - t, 1e-9),
                "generation": self.selfplay.generation,
                "games_in_flight": self.selfplay.in_flight,
            }
        ]


# -- an actor process ----------------------------------------------------------------------


@dataclass
class _Shared:
    """What the learner and its actor processes share: the newest published network, the
    games done (for the temperature schedule), and the pause and stop flags."""

    version: Any  # mp.Value("q"): the newest published network's version (its file names its generation)
    games: Any  # mp.Value("q"): games the learner has received
    paused: Any  # mp.Event
    stop: Any  # mp.Event


def published_path(folder: Path, version: int) -> Path:
    """The file of a published network."""
    return folder / f"net-{version:06d}.safetensors"


@dataclass
class _ProcessControl:
    """An actor process's `ActorControl`: shared values, files and its own pipe (one per
    actor: one killed in the middle of a message leaves a torn message in its own pipe only,
    which the learner reads as the end of that pipe; `_Sender` makes the actor wait once it is
    as far ahead as it may run)."""

    shared: _Shared
    folder: Path
    sender: _Sender  # owns the write end of this actor's pipe
    parent: int = field(default_factory=os.getppid)

    def stopped(self) -> bool:
        return self.shared.stop.is_set() or os.getppid() != self.parent  # the learner may die by SIGKILL

    def paused(self) -> bool:
        return self.shared.paused.is_set()

    def newest(self) -> int:
        return self.shared.version.value

    def load(self, version: int) -> tuple[dict[str, torch.Tensor], int] | None:
        try:
            net, header = network.load_weights(published_path(self.folder, version))
        except (FileNotFoundError, OSError):
            return None
        return net.state_dict(), header["generation"]

    def games(self) -> int:
        return self.shared.games.value

    def send(self, item: tuple[str, int, Any]) -> None:
        self.sender.send(item)


class _Sender:
    """Sends an actor's messages from a thread of its own, in order, so that the actor plays on
    while its learner learns: up to `ahead` finished games wait here (a pipe holds about one
    game of `small`), and the next one makes the actor wait. Without it a learner and one actor
    took turns on two cores (docs/performance.md). The ratio of trained samples per position is
    the learner's to hold; running ahead costs generation lag (measured, MAX_GENERATION_LAG)."""

    def __init__(self, out: Any, ahead: int) -> None:
        self.out = out
        self.queue: queue.SimpleQueue[tuple[str, int, Any] | None] = queue.SimpleQueue()
        self.room = threading.Semaphore(ahead)
        self.thread = threading.Thread(target=self._run, name="actor-sender", daemon=True)
        self.thread.start()

    def send(self, item: tuple[str, int, Any]) -> None:
        if item[0] == "game":
            self.room.acquire()
        self.queue.put(item)

    def close(self, timeout: float) -> None:
        """Send what waits (the learner reads its actors' pipes while it closes), then stop."""
        self.queue.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                self.out.send(item)
            except (BrokenPipeError, EOFError, OSError):  # the learner is gone
                os._exit(0)
            if item[0] == "game":
                self.room.release()


def ahead_games(config: SessionConfig) -> int:
    """Finished games an actor process may hold beyond its pipe: one learning phase's
    (LEARN_EVERY_N_GAMES), at least 2."""
    return max(2, config.learn_every_n_games)


def actor_main(spec: ActorSpec, shared: _Shared, out: Any) -> None:
    """An actor process (spawned by `Fleet`): `actor.play` until stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the learner decides when self-play stops
    torch.set_num_interop_threads(1)
    assert spec.folder is not None  # a process fleet publishes files
    sender = _Sender(out, ahead_games(spec.config))
    play(spec, _ProcessControl(shared, spec.folder, sender))
    sender.close(timeout=5.0)


# -- the learner's side --------------------------------------------------------------------


@dataclass
class _Actor:
    number: int
    handle: Any  # the transport's: a Process, a Ray actor handle
    pid: int | None = None
    link: Any = None  # the transport's: the read end of its pipe, its outstanding Ray poll
    state: ActorState = ActorState.STARTING
    dead: bool = False
    simulations_per_second: float = 0.0
    generation: int = 0
    games_in_flight: int = 0


class FleetBase:
    """What every fleet does whatever carries its actors: numbering them (a replacement gets a
    new number), the featured actor, taking their messages, MAX_GAMES, pause, the report.

    A transport (`Fleet`: spawned processes; `ray_fleet.RayFleet`: Ray actors) provides
    `_launch`, `_receive`, `_deaths`, `_set_paused`, `_set_games`, `adopt` and `close`.
    `remaining` (None: no limit) is how many more games the learner takes (MAX_GAMES); games
    past it are dropped. `on_replaced(actor, new_actor, exitcode)` is called when a dead actor
    was replaced; `on_move(data)` gets the featured game's moves."""

    def __init__(
        self,
        size: int,
        config: SessionConfig,
        selfplay: SelfPlayConfig,
        threads: int = 1,
        remaining: int | None = None,
        move_interval_s: float | None = None,
        on_replaced: Callable[[int, int, int | None], None] = lambda actor, new, code: None,
        on_move: Callable[[dict[str, Any]], None] = lambda data: None,
    ) -> None:
        self.size = size
        self.config = config
        self.selfplay = selfplay
        self.threads = threads
        self.remaining = remaining
        self.move_interval_s = move_interval_s
        self.on_replaced = on_replaced
        self.on_move = on_move
        self._actors: dict[int, _Actor] = {}
        self._next_actor = 1
        self._featured: int | None = None
        self._paused = False
        self._closed = False
        self._games = 0

    # -- the transport's part --------------------------------------------------------------
    def _launch(self, spec: ActorSpec) -> _Actor:
        raise NotImplementedError

    def _receive(self, timeout: float) -> list[tuple[str, int, Any]]:
        """Every message that arrived, waiting up to `timeout` for one."""
        raise NotImplementedError

    def _deaths(self) -> list[tuple[_Actor, int | None]]:
        """Live actors found dead since the last call, with their exit codes."""
        raise NotImplementedError

    def _set_paused(self, paused: bool) -> None:
        raise NotImplementedError

    def _set_games(self, games: int) -> None:
        raise NotImplementedError

    def adopt(self, net: torch.nn.Module, generation: int) -> None:
        """Publish `net` as the newest network; actors take it between two search steps."""
        raise NotImplementedError

    def close(self) -> int:
        """Stop every actor; returns the games they had in flight (dropped)."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, net: torch.nn.Module, generation: int, games_done: int) -> None:
        """Publish the learner's network, then start the actors on it."""
        self._games = games_done
        self._set_games(games_done)
        self.adopt(net, generation)
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> _Actor:
        number = self._next_actor
        self._next_actor += 1
        if self._featured is None or self._actors[self._featured].dead:
            self._featured = number  # one actor's game is the live feed's featured game
        spec = ActorSpec(
            number,
            self.config,
            self.selfplay,
            threads=self.threads,
            featured=self._featured == number and self.move_interval_s is not None,
            move_interval_s=self.move_interval_s,
        )
        actor = self._actors[number] = self._launch(spec)
        return actor

    def _live(self) -> list[int]:
        return [n for n, a in self._actors.items() if not a.dead]

    # -- games -----------------------------------------------------------------------------
    def step(self, timeout: float = 0.05) -> list[GameRecord]:
        """Games that arrived (waiting up to `timeout` for the first); replaces dead actors."""
        self._replace_the_dead()
        records: list[GameRecord] = []
        for item in self._receive(timeout):
            record = self._take(item)
            if record is not None and self.remaining != 0:
                records.append(record)
                if self.remaining is not None:
                    self.remaining -= 1
        if records:
            self._games += len(records)
            self._set_games(self._games)
        return records

    def _take(self, item: tuple[str, int, Any]) -> GameRecord | None:
        kind, number, data = item
        actor = self._actors.get(number)
        if actor is None or actor.dead:
            return None  # a replaced actor's last words
        if kind == "game":
            actor.state = ActorState.RUNNING
            return data
        if kind == "stats":
            actor.state = ActorState.RUNNING
            actor.simulations_per_second = data["simulations_per_second"]
            actor.generation = data["generation"]
            actor.games_in_flight = data["games_in_flight"]
        elif kind == "move":
            self.on_move(data)
        elif kind == "paused":
            actor.state = ActorState.PAUSED
        return None

    def _replace_the_dead(self) -> None:
        if self._closed:
            return
        for actor, exitcode in self._deaths():
            actor.dead = True
            replacement = self._spawn()
            self.on_replaced(actor.number, replacement.number, exitcode)

    # -- pause -----------------------------------------------------------------------------
    def pause(self, timeout: float = 120.0) -> list[GameRecord]:
        """Hold every actor; returns the games each finished before it held."""
        self._paused = True
        self._set_paused(True)
        records: list[GameRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._actors[n].state == ActorState.PAUSED for n in self._live()):
                break
            records.extend(self.step(timeout=0.1))
        return records

    def resume(self) -> None:
        self._paused = False
        self._set_paused(False)
        for number in self._live():
            self._actors[number].state = ActorState.STARTING

    def more(self) -> bool:
        return self.remaining != 0

    # -- what the learner reports ----------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(self._actors[n].games_in_flight for n in self._live())

    def actors(self) -> list[dict[str, Any]]:
        return [
            {
                "actor": a.number,
                "state": a.state,
                "simulations_per_second": a.simulations_per_second if a.state == ActorState.RUNNING else 0.0,
                "generation": a.generation,
                "games_in_flight": a.games_in_flight,
                "pid": a.pid,
            }
            for a in self._actors.values()
            if not a.dead
        ]


class Fleet(FleetBase):
    """SELFPLAY_ACTORS >= 2: actor processes spawned beside the learner, networks published
    as files in `folder`, one pipe per actor."""

    def __init__(self, size: int, config: SessionConfig, selfplay: SelfPlayConfig, folder: Path, **kwargs: Any):
        super().__init__(size, config, selfplay, **kwargs)
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._version = 0
        self._ctx = mp.get_context("spawn")
        self._shared = _Shared(
            self._ctx.Value("q", 0, lock=False),
            self._ctx.Value("q", 0, lock=False),
            self._ctx.Event(),
            self._ctx.Event(),
        )

    def _launch(self, spec: ActorSpec) -> _Actor:
        spec = dataclasses.replace(spec, folder=self.folder)
        reader, writer = self._ctx.Pipe(duplex=False)
        args = (spec, self._shared, writer)
        process = self._ctx.Process(target=actor_main, args=args, name=f"actor-{spec.actor}", daemon=True)
        process.start()
        writer.close()  # the actor's end: once it dies, its pipe reads as ended
        return _Actor(spec.actor, process, process.pid, reader)

    def _receive(self, timeout: float) -> list[tuple[str, int, Any]]:
        """A pipe whose actor died (ended, or torn mid-message) is closed and read no more."""
        live = [a.link for a in self._actors.values() if not a.link.closed]
        items: list[tuple[str, int, Any]] = []
        for ready in mp_connection.wait(live, timeout):
            conn: mp_connection.Connection = ready  # type: ignore[assignment]  # wait returns what it was given
            try:
                while conn.poll():
                    items.append(conn.recv())
            except (EOFError, OSError):
                conn.close()
        return items

    def _deaths(self) -> list[tuple[_Actor, int | None]]:
        return [(a, a.handle.exitcode) for a in self._actors.values() if not a.dead and not a.handle.is_alive()]

    def _set_paused(self, paused: bool) -> None:
        if paused:
            self._shared.paused.set()
        else:
            self._shared.paused.clear()

    def _set_games(self, games: int) -> None:
        self._shared.games.value = games

    def adopt(self, net: torch.nn.Module, generation: int) -> None:
        self._version += 1
        assert isinstance(net, network.ChessNet)
        network.save_weights(net, published_path(self.folder, self._version), generation=generation, seed=0)
        self._shared.version.value = self._version
        for old in range(self._version - PUBLISHED_KEPT, 0, -1):
            path = published_path(self.folder, old)
            if not path.exists():
                break
            path.unlink(missing_ok=True)

    def close(self) -> int:
        if self._closed:
            return 0
        self._closed = True
        self._shared.stop.set()
        dropped = self.in_flight
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(a.handle.is_alive() for a in self._actors.values()):
            self._receive(0.05)  # an actor waiting on a full pipe sees the stop once read
        for actor in self._actors.values():
            if actor.handle.is_alive():
                actor.handle.kill()
            actor.handle.join(timeout=5.0)
            actor.link.close()
        return dropped


@dataclass(frozen=True)
class FleetLayout:
    """How a session's roles share the cores it gets."""

    actors: int  # self-play actors; 1: in the learner's process
    learner_threads: int  # torch threads of the learner (with one actor: of the one worker)
    actor_threads: int  # torch threads of each actor process
    separate_evaluator: bool  # evaluations in a process of their own: self-play never waits for them


def fleet_layout(settings: Any, config: SessionConfig) -> FleetLayout:
    """SELFPLAY_ACTORS and the threads per role, from the cores a session gets (CPU cores /
    MAX_CONCURRENT_SESSIONS) and TORCH_THREADS: `auto` is one actor per core beside the
    learner's, at least 1. The search is single-threaded Python, so an actor takes one torch
    thread; the learner takes what the actors leave (TORCH_THREADS overrides it). With actors
    in processes of their own the evaluator gets one too (not under GATING, whose promotion
    needs the verdict before self-play goes on); with one actor it plays interleaved, as one
    worker always did."""
    cores = max(1, (os.cpu_count() or 1) // settings.max_concurrent_sessions)
    actors = max(1, cores - 1) if config.selfplay_actors == "auto" else int(config.selfplay_actors)
    if actors == 1:
        return FleetLayout(1, settings.resolved_torch_threads(), 1, False)
    learner = config.torch_threads or settings.torch_threads or max(1, cores - actors)
    return FleetLayout(actors, learner, 1, not config.gating)
