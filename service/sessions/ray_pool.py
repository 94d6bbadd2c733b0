"""WORKER_BACKEND=ray: session workers as Ray actors, the scale-out path.

The same `Worker`/`Pool` shape as `pool.py`: one actor per pool worker, each running
`serving.serve_sessions` on a thread of its own process, so it owns its session's network,
optimizer, replay buffer and random state exactly as a pool process does, and a Ray
cluster can place the actors on other machines. The orchestrator cannot tell the two
backends apart.

- Connection: `RAY_ADDRESS=local` starts a Ray head inside this process, bound to
  loopback, with as many CPUs as this machine has (or as the workers reserve, if more);
  `ray://host:10001` connects to a cluster through Ray Client (a service outside the
  cluster, as in docker-compose's `ray` profile); `host:6379` or `auto` joins a cluster
  that has a Ray node on this machine. Ray is imported only when the pool starts and is an
  optional extra: without it the pool says `pip install '.[ray]'`.
- Resources: an actor reserves TORCH_THREADS CPUs (`threads`, its torch threads), so Ray
  never puts more sessions on a node than it has cores for, and with DEVICE=cuda a GPU (or a
  share of one), so it runs on a GPU node; `ray_placement` derives this for every role.
- Commands (run, pause, resume, stop, shutdown, exit) go to the actor's `command` method
  from a sender thread, one at a time, each acknowledged before the next (so they arrive
  in order, and a large `run` spec is never serialised on the event loop); the actor's
  session thread reads them between search steps, as a pool process does.
- Messages come back in batches: a reader thread keeps one `poll` call outstanding (it
  returns what the worker emitted, waiting up to POLL_S for the first), and hands them
  to the event loop. `ray.get` runs only on these threads.
- Death: when the actor dies (its process killed, its node lost, `ray.kill`), the pending
  `poll` raises `RayActorError` and the worker reports `("died", {...})`: the pool replaces
  it when it is released, and the orchestrator restarts the session on the new actor from
  its last checkpoint and stored games, as after a crash.

Checkpoints are written by the actor and read by the API process: on a cluster of several
machines CHECKPOINT_DIR must be one shared folder (a network file system, or one volume
mounted at the same path everywhere, as in docker-compose.yml). Paths in a `run` spec are
made absolute here, so a Ray worker's working directory does not matter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import queue as queue_mod
import threading
from pathlib import Path
from typing import Any

from .pool import INBOX_SIZE, Pool, _Base
from .protocol import Command, CommandKind, MessageKind, WorkerMessage
from .ray_placement import RayRole, ray_placement
from .serving import serve_sessions
from .worker import WorkerSpec

log = logging.getLogger(__name__)

INSTALL_HINT = "WORKER_BACKEND=ray needs Ray, an optional extra: pip install '.[ray]'"
POLL_S = 0.5
"""How long one `poll` waits for the worker's first message (an idle actor answers empty)."""
POLL_BATCH = 256
"""At most this many messages per `poll` answer."""
ACTOR_CONCURRENCY = 4
"""Threads of an actor's method calls: the outstanding `poll`, a `command`, `ready`; the
session itself runs on a thread of its own."""
OBJECT_STORE_BYTES = 256 * 2**20
"""Object store of a local head (RAY_ADDRESS=local): specs and messages are small."""
LOCAL_CPU_TOKENS = 4
"""A local head advertises this many times the CPUs it has (see `start`)."""
START_TIMEOUT_S = 300.0
"""How long the pool waits for its actors to come up (placed, torch imported)."""


def import_ray():
    """The `ray` module, or RuntimeError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    return ray


class SessionActor:
    """The actor: `serve_sessions` on a thread, fed by `command`, read by `poll`.

    Runs in a Ray worker process (a threaded actor, so `poll` and `command` run while the
    session thread plays)."""

    def __init__(self, threads: int) -> None:
        import torch

        try:
            torch.set_num_interop_threads(1)  # before any torch work in this process
        except RuntimeError:  # an actor process that already did torch work (reused)
            pass
        torch.set_num_threads(threads)
        self._commands: queue_mod.Queue = queue_mod.Queue()
        self._outbox: queue_mod.Queue = queue_mod.Queue(maxsize=INBOX_SIZE)  # the session waits when full
        self._thread = threading.Thread(target=self._main, name="session-worker", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            serve_sessions(self._get, self._outbox.put)
        except BaseException as exc:  # serve_sessions reports a session's failure itself
            self._outbox.put(WorkerMessage(MessageKind.EXITED, None, {"error": f"{type(exc).__name__}: {exc}"}))
            raise
        self._outbox.put(WorkerMessage(MessageKind.EXITED, None, {}))

    def _get(self, timeout: float | None):
        try:
            return self._commands.get(timeout=timeout) if timeout != 0 else self._commands.get_nowait()
        except queue_mod.Empty:
            return None

    def command(self, command: Command) -> None:
        """A command for the session thread (read between search steps)."""
        self._commands.put(command)

    def poll(self, timeout: float = POLL_S) -> list[WorkerMessage]:
        """The worker's messages since the last poll, oldest first (waits up to `timeout`
        for the first; an empty list when none came)."""
        try:
            batch = [self._outbox.get(timeout=timeout)]
        except queue_mod.Empty:
            return []
        while len(batch) < POLL_BATCH:
            try:
                batch.append(self._outbox.get_nowait())
            except queue_mod.Empty:
                break
        return batch

    def pid(self) -> int:
        """This actor's process id (tests, diagnostics)."""
        return os.getpid()


def _absolute(spec: WorkerSpec) -> WorkerSpec:
    """The spec with its paths absolute: the actor's working directory is not ours."""

    def resolve(path: Path | None) -> Path | None:
        return None if path is None else Path(path).resolve()

    return dataclasses.replace(
        spec,
        checkpoint_dir=Path(spec.checkpoint_dir).resolve(),
        resume_state=resolve(spec.resume_state),
        init_weights=resolve(spec.init_weights),
    )


class RayWorker(_Base):
    """One actor as the orchestrator sees it (the `Worker` protocol)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, actor_class: Any) -> None:
        super().__init__(name, loop)
        self._ray = import_ray()
        self.actor = actor_class.remote()
        self._alive = True
        self._outgoing: queue_mod.Queue = queue_mod.Queue()
        self._sender = threading.Thread(target=self._send_loop, name=f"{name}-sender", daemon=True)
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._sender.start()
        self._reader.start()

    def _read(self) -> None:
        ray = self._ray
        while True:
            try:
                batch = ray.get(self.actor.poll.remote(POLL_S))
            except ray.exceptions.ActorUnavailableError:  # restarting or unreachable for now
                threading.Event().wait(POLL_S)
                continue
            except ray.exceptions.RayActorError as exc:
                self._died(f"Ray actor died: {_first_line(exc)}")
                return
            except Exception as exc:  # Ray itself went away (shut down, connection lost)
                self._died(f"Ray worker lost: {type(exc).__name__}: {_first_line(exc)}")
                return
            for message in batch:
                if message.kind == MessageKind.EXITED:  # serve_sessions returned (`exit`) or crashed
                    self._died(f"worker exited {message.data.get('error', '')}".strip())
                    return
                self._deliver(message)

    def _died(self, reason: str) -> None:
        self._alive = False
        self._outgoing.put(None)  # the sender ends too
        self._deliver(WorkerMessage(MessageKind.DIED, None, {"exitcode": None, "reason": reason}))

    def _send_loop(self) -> None:
        ray = self._ray
        while True:
            item = self._outgoing.get()
            if item is None:
                return
            try:  # acknowledged one at a time: a threaded actor does not keep call order
                ray.get(self.actor.command.remote(item))
            except Exception:  # a dead actor: the reader reports it
                if not self._alive:
                    return

    def _send(self, command: Command) -> None:
        if command.kind == CommandKind.RUN and isinstance(command.payload, WorkerSpec):
            command = command._replace(payload=_absolute(command.payload))
        self._outgoing.put(command)

    @property
    def alive(self) -> bool:
        return self._alive

    def close(self, timeout: float = 10.0) -> None:
        """Ask the worker to exit (a running session got `shutdown` first), then kill the actor."""
        if self._alive:
            self.send(CommandKind.EXIT)
            self._reader.join(timeout)
        self.discard()

    def discard(self) -> None:
        """Kill the actor (already dead, or no longer wanted) and end the sender."""
        self._discarded = True
        self._outgoing.put(None)
        try:
            self._ray.kill(self.actor, no_restart=True)
        except Exception:  # already gone, or Ray shut down
            pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class RayPool(Pool):
    """WORKER_BACKEND=ray: `size` actors, each reserving `threads` CPUs (and a GPU when
    `device` is cuda: DEVICE, the learners' device), on the Ray cluster at `address` (`local`:
    a head started in this process, bound to loopback)."""

    kind = "ray"

    def __init__(self, size: int, threads: int = 1, *, address: str = "local", device: str = "cpu") -> None:
        super().__init__(size, threads)
        self.address = address
        self.device = device
        self._owns_ray = False
        self._actor_class: Any = None

    async def start(self) -> None:
        await asyncio.to_thread(self._connect)
        try:
            await asyncio.wait_for(super().start(), START_TIMEOUT_S)
        except TimeoutError:
            raise RuntimeError(
                f"the Ray cluster at RAY_ADDRESS={self.address} did not start {self.size} worker actor(s) of "
                f"{self.threads} CPU(s) each within {START_TIMEOUT_S:g} s: does it have the CPUs free "
                "(TORCH_THREADS per actor)" + (", and a GPU (DEVICE=cuda)?" if self.device == "cuda" else "?")
            ) from None

    def _connect(self) -> None:
        ray = import_ray()
        if ray.is_initialized():  # someone (a test, an embedding program) connected already
            self._owns_ray = False
        elif self.address == "local":
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(
                address="local",
                # CPUs are scheduling tokens: room for each session's self-play actors too (Ray
                # actors of their own, `ray_fleet`), oversubscribed as processes would be
                num_cpus=max(os.cpu_count() or 1, self.size * self.threads) * LOCAL_CPU_TOKENS,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                object_store_memory=OBJECT_STORE_BYTES,
                namespace="continuous-play",
                logging_level=logging.WARNING,
            )
            self._owns_ray = True
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(address=self.address, namespace="continuous-play", logging_level=logging.WARNING)
            self._owns_ray = True
        placement = ray_placement(
            RayRole.LEARNER,
            device=self.device,
            threads=self.threads,
            advertised=ray.cluster_resources(),
            learners=self.size,
        )
        self._actor_class = ray.remote(SessionActor).options(
            **placement.options(), max_concurrency=ACTOR_CONCURRENCY, max_restarts=0, max_task_retries=0
        )
        self._actor_class = _Bound(self._actor_class, self.threads)

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> RayWorker:
        self._count += 1
        return RayWorker(f"ray-worker-{self._count}", loop, self._actor_class)

    async def close(self) -> None:
        await super().close()
        if self._owns_ray:
            ray = import_ray()
            await asyncio.to_thread(ray.shutdown)
            self._owns_ray = False


class _Bound:
    """An actor class with its constructor arguments: `.remote()` starts one actor."""

    def __init__(self, actor_class: Any, threads: int) -> None:
        self._actor_class = actor_class
        self._threads = threads

    def remote(self):
        return self._actor_class.remote(self._threads)


__all__ = ["RayPool", "RayWorker", "SessionActor", "import_ray"]
