"""A session's self-play actors as Ray actors (WORKER_BACKEND=ray): placed by the cluster, so
one session's actors spread over several nodes while its learner stays where it is (on a GPU
node when DEVICE=cuda).

Each `SelfPlayActor` runs `actor.play` on a thread of its own Ray worker process, reserving
`threads` CPUs and no GPU (`ray_placement`: it plays on the CPU whatever DEVICE the learner
has, and a session's actors are spread over the nodes). The learner publishes a network by
putting its weights in the object store once (`ray.put`, numpy arrays) and handing the
reference to every actor; an actor takes the newest between two search steps. Messages come
back through `poll` (one outstanding call per actor, answered with what the actor sent since,
waiting up to POLL_S); the actor's outbox is bounded, so an actor whose learner is busy
waits, as a process actor does on its pipe. An actor whose process or node is lost fails its
`poll` with `RayActorError`: it is replaced under a new number, its games in flight are lost,
never numbered. A replacement that the cluster cannot place yet (its node is gone and no
other has room) waits in Ray's queue while the others play on: nothing here waits for an
actor to start. Ray must be initialised in the learner's process already (it runs in a Ray
actor of `ray_pool.RayPool`, or a test's `ray.init`).
"""

from __future__ import annotations

import dataclasses
import queue as queue_mod
import threading
from typing import Any

import numpy as np
import torch

from .actor import ActorSpec, play
from .fleet import FleetBase, _Actor
from .ray_placement import RayRole, ray_placement

POLL_S = 0.5
"""How long one `poll` waits for the actor's first message."""
OUTBOX = 8
"""Messages an actor keeps for the learner before it waits."""


class _RayControl:
    """A Ray actor's `ActorControl`: flags and the newest weights set by the learner's calls."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hold = threading.Event()
        self.outbox: queue_mod.Queue = queue_mod.Queue(maxsize=OUTBOX)
        self.published: tuple[int, int, dict[str, np.ndarray]] | None = None  # version, generation, weights
        self.game_count = 0

    def stopped(self) -> bool:
        return self.stop.is_set()

    def paused(self) -> bool:
        return self.hold.is_set()

    def newest(self) -> int:
        return self.published[0] if self.published is not None else 0

    def load(self, version: int) -> tuple[dict[str, torch.Tensor], int] | None:
        published = self.published
        if published is None or published[0] != version:
            return None
        return {k: torch.from_numpy(np.array(v)) for k, v in published[2].items()}, published[1]

    def games(self) -> int:
        return self.game_count

    def send(self, item: tuple[str, int, Any]) -> None:
        while not self.stop.is_set():
            try:
                self.outbox.put(item, timeout=0.2)
                return
            except queue_mod.Full:
                continue


class SelfPlayActor:
    """The Ray actor: `actor.play` on a thread; the learner's calls set what it reads."""

    def __init__(self, spec: ActorSpec) -> None:
        try:
            torch.set_num_interop_threads(1)  # before any torch work in this process
        except RuntimeError:  # a reused Ray worker process that did torch work already
            pass
        self.control = _RayControl()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._main, args=(spec,), name="self-play", daemon=True)
        self.thread.start()

    def _main(self, spec: ActorSpec) -> None:
        try:
            play(spec, self.control)
        except BaseException as exc:  # reported by `poll`: the learner replaces this actor
            self.error = f"{type(exc).__name__}: {exc}"

    def publish(self, version: int, generation: int, weights: dict[str, np.ndarray], games: int) -> None:
        """The newest network (its weights from the object store) and the learner's game count."""
        self.control.published = (version, generation, weights)
        self.control.game_count = games

    def set_games(self, games: int) -> None:
        self.control.game_count = games

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.control.hold.set()
        else:
            self.control.hold.clear()

    def stop(self) -> None:
        self.control.stop.set()

    def poll(self, timeout: float = POLL_S) -> list[tuple[str, int, Any]]:
        """What the actor sent since the last poll (waits up to `timeout` for the first)."""
        if self.error is not None:
            raise RuntimeError(f"self-play actor failed: {self.error}")
        try:
            batch = [self.control.outbox.get(timeout=timeout)]
        except queue_mod.Empty:
            return []
        while True:
            try:
                batch.append(self.control.outbox.get_nowait())
            except queue_mod.Empty:
                return batch

    def pid(self) -> int:
        import os

        return os.getpid()


class RayFleet(FleetBase):
    """A fleet whose actors are Ray actors (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import ray

        self._ray = ray
        placement = ray_placement(
            RayRole.SELFPLAY, device=self.config.device, threads=self.threads, advertised=ray.cluster_resources()
        )
        self._device = placement.device  # the CPU: Ray hides the GPUs from an actor that asks for none
        self._class = ray.remote(SelfPlayActor).options(**placement.options(), max_concurrency=4, max_restarts=0)
        self._pids: dict[int, Any] = {}  # actor number -> its `pid` call, until it answers
        self._version = 0
        self._weights: Any = None  # the newest published weights' object reference
        self._generation = 0
        self._lost: list[tuple[_Actor, int | None]] = []

    def _launch(self, spec: ActorSpec) -> _Actor:
        if spec.config.device != self._device:
            spec = dataclasses.replace(spec, config=spec.config.model_copy(update={"device": self._device}))
        handle: Any = self._class.remote(spec)
        actor = _Actor(spec.actor, handle)
        if self._weights is not None:
            handle.publish.remote(self._version, self._generation, self._weights, self._games)
        if self._paused:
            handle.set_paused.remote(True)
        actor.link = handle.poll.remote(POLL_S)
        self._pids[spec.actor] = handle.pid.remote()  # answered once Ray has placed it
        return actor

    def _note_pids(self) -> None:
        """The process ids of actors that have started since the last call."""
        ready, _ = self._ray.wait(list(self._pids.values()), num_returns=len(self._pids), timeout=0)
        for number, ref in list(self._pids.items()):
            if ref in ready:
                del self._pids[number]
                try:
                    self._actors[number].pid = self._ray.get(ref)
                except Exception:  # lost at once: its poll says so
                    pass

    def _receive(self, timeout: float) -> list[tuple[str, int, Any]]:
        ray = self._ray
        if self._pids:
            self._note_pids()
        polls = {a.link: a for a in self._actors.values() if not a.dead and a.link is not None}
        if not polls:
            return []
        ready, _ = ray.wait(list(polls), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(polls), num_returns=len(polls), timeout=0)
        items: list[tuple[str, int, Any]] = []
        for ref in ready:
            actor = polls[ref]
            try:
                items.extend(ray.get(ref))
            except Exception:  # RayActorError (process or node lost), or its play thread failed
                actor.link = None
                self._lost.append((actor, None))
                continue
            actor.link = actor.handle.poll.remote(POLL_S)
        return items

    def _deaths(self) -> list[tuple[_Actor, int | None]]:
        lost, self._lost = self._lost, []
        for actor, _ in lost:
            self._kill(actor)
        return lost

    def _kill(self, actor: _Actor) -> None:
        try:
            self._ray.kill(actor.handle, no_restart=True)
        except Exception:  # already gone
            pass

    def _set_paused(self, paused: bool) -> None:
        for number in self._live():
            self._actors[number].handle.set_paused.remote(paused)

    def _set_games(self, games: int) -> None:
        for number in self._live():
            self._actors[number].handle.set_games.remote(games)

    def adopt(self, net: torch.nn.Module, generation: int) -> None:
        self._version += 1
        self._generation = generation
        weights = {k: v.detach().to("cpu").numpy() for k, v in net.state_dict().items()}
        self._weights = self._ray.put(weights)
        for number in self._live():
            self._actors[number].handle.publish.remote(self._version, generation, self._weights, self._games)

    def close(self) -> int:
        if self._closed:
            return 0
        self._closed = True
        dropped = self.in_flight
        for number in self._live():
            self._actors[number].handle.stop.remote()
        for actor in self._actors.values():
            self._kill(actor)
        return dropped
