"""Worker pools: where sessions' engine work runs, never on the event loop.

A pool hands out workers; a worker runs one session at a time (`worker.serve_sessions`)
and talks in plain tuples: commands in (`("run", WorkerSpec)`, `("pause", None)`, ...),
messages out (`(kind, data)`). `ProcessPool` (WORKER_BACKEND=process, the default) keeps
`WORKERS` spawned processes warm; `InlinePool` runs workers as threads of this process
(unit tests only: a thread shares the GIL with the API); `ray_pool.RayPool`
(WORKER_BACKEND=ray) has the same `Worker`/`Pool` shape on Ray actors.

Each worker's messages are read by a small thread and handed to the event loop, so the
loop never blocks on a queue. A worker whose process dies (killed, out of memory, a
crash in native code) reports `("died", {"exitcode": ..., "reason": "..."})` after every
message it sent before dying; the pool replaces it when it is released, and the
orchestrator restarts its session on a fresh worker (`Orchestrator._run`).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue as queue_mod
import signal
import threading
from typing import Any, Protocol

from .worker import pool_process_main, serve_sessions

Message = tuple[str, dict[str, Any]]


class Worker(Protocol):
    """One worker as the orchestrator sees it."""

    name: str

    def send(self, kind: str, payload: Any = None) -> None:
        """Queue a command for the worker."""

    async def receive(self) -> Message:
        """The worker's next message (`("died", {...})` if it is gone)."""

    @property
    def alive(self) -> bool:
        """Whether it can still run sessions."""


class _Base:
    """The event-loop side shared by both kinds: an asyncio queue fed from another thread."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self._loop = loop
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()

    def _deliver(self, message: Message) -> None:  # called from the reader/worker thread
        try:
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, message)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    async def receive(self) -> Message:
        return await self._inbox.get()

    def drain(self) -> None:
        """Forget messages left from an earlier session."""
        while not self._inbox.empty():
            self._inbox.get_nowait()


class ProcessWorker(_Base):
    """A spawned process running `worker.pool_process_main`."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, threads: int) -> None:
        super().__init__(name, loop)
        ctx = mp.get_context("spawn")
        self._commands = ctx.Queue()
        self._messages = ctx.Queue()
        self.process = ctx.Process(target=pool_process_main, args=(self._commands, self._messages, threads),
                                   name=name, daemon=True)
        self.process.start()
        # The child has its own copy of the messages pipe's write end now. Closing ours
        # means a child killed in the middle of writing a message leaves EOF behind, not a
        # reader blocked forever on the rest of a message that will never come.
        self._messages._writer.close()
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._messages.get(timeout=0.5)
            except queue_mod.Empty:
                if not self.process.is_alive():
                    self._deliver(self._death())
                    return
                continue
            except Exception:  # EOF, a message cut short by the death, a closed queue
                self.process.join(1.0)
                self._deliver(self._death())
                return
            self._deliver(message)

    def _death(self) -> Message:
        code = self.process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how += f", {signal.Signals(-code).name}"
            except ValueError:
                pass
        return ("died", {"exitcode": code, "pid": self.process.pid, "reason": f"worker process died ({how})"})

    def send(self, kind: str, payload: Any = None) -> None:
        self._commands.put((kind, payload))

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        if self.process.is_alive():
            self.send("exit")
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        for q in (self._commands, self._messages):
            q.close()
            q.join_thread()

    def discard(self) -> None:
        """Forget a dead worker without waiting on it (its process is reaped, its queues
        closed; commands nobody will read are dropped)."""
        self.process.join(0)
        self._reader.join(5.0)  # it notices the death within a poll (0.5 s)
        self._commands.cancel_join_thread()
        self._commands.close()
        self._messages.close()
        if not self._reader.is_alive():
            self._messages._reader.close()


class ThreadWorker(_Base):
    """A thread of this process running `worker.serve_sessions` (inline pool)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name, loop)
        self._commands: queue_mod.Queue = queue_mod.Queue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _get(self, timeout: float | None):
        try:
            return self._commands.get(timeout=timeout) if timeout != 0 else self._commands.get_nowait()
        except queue_mod.Empty:
            return None

    def _main(self) -> None:
        try:
            serve_sessions(self._get, lambda kind, data: self._deliver((kind, data)))
        finally:
            self._deliver(("died", {"exitcode": None}))

    def send(self, kind: str, payload: Any = None) -> None:
        self._commands.put((kind, payload))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self.send("exit")
            self._thread.join(timeout)


class Pool:
    """`size` warm workers; `acquire` waits for an idle one, `release` returns it (a dead
    one is replaced). `ready` once every worker has reported it is up."""

    kind = "process"

    def __init__(self, size: int, threads: int = 1) -> None:
        self.size = size
        self.threads = threads
        self._idle: asyncio.Queue | None = None
        self._workers: list[Any] = []
        self._ready = False
        self._count = 0

    def _spawn(self, loop: asyncio.AbstractEventLoop):
        self._count += 1
        return ProcessWorker(f"worker-{self._count}", loop, self.threads)

    async def start(self) -> None:
        """Start the workers and wait until each is warm (imports done, ready for a session)."""
        loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        self._workers = [self._spawn(loop) for _ in range(self.size)]
        for worker in self._workers:
            kind, data = await worker.receive()
            if kind != "ready":
                raise RuntimeError(f"{worker.name} did not start: {kind} {data}")
            self._idle.put_nowait(worker)
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready and any(w.alive for w in self._workers)

    async def acquire(self):
        """An idle, live worker (waits while all are busy)."""
        while True:
            worker = await self._idle.get()
            if worker.alive:
                worker.drain()
                return worker
            await self._replace(worker)

    async def release(self, worker) -> None:
        """Give a worker back after its session ended (a dead one is replaced by a fresh one)."""
        if worker.alive:
            self._idle.put_nowait(worker)
        else:
            await self._replace(worker)

    async def _replace(self, dead) -> None:
        if dead in self._workers:
            self._workers.remove(dead)
        if hasattr(dead, "discard"):
            await asyncio.to_thread(dead.discard)
        fresh = self._spawn(asyncio.get_running_loop())
        self._workers.append(fresh)
        kind, data = await fresh.receive()
        if kind != "ready":
            raise RuntimeError(f"{fresh.name} did not start: {kind} {data}")
        self._idle.put_nowait(fresh)

    async def close(self) -> None:
        """Stop every worker (a session still running is ended by its `shutdown` first)."""
        self._ready = False
        await asyncio.gather(*(asyncio.to_thread(w.close) for w in self._workers))
        self._workers = []


class ProcessPool(Pool):
    """WORKER_BACKEND=process: spawn-context processes kept warm."""


class InlinePool(Pool):
    """WORKER_BACKEND=inline: worker threads in this process (unit tests only)."""

    kind = "inline"

    def _spawn(self, loop: asyncio.AbstractEventLoop):
        self._count += 1
        return ThreadWorker(f"inline-{self._count}", loop)


def make_pool(backend: str, size: int, threads: int, *, ray_address: str = "local") -> Pool:
    """The pool WORKER_BACKEND names: `size` workers of `threads` torch threads each (a Ray
    actor reserves that many CPUs), Ray at `ray_address` (RAY_ADDRESS)."""
    if backend == "process":
        return ProcessPool(size, threads)
    if backend == "inline":
        return InlinePool(size, threads)
    if backend == "ray":
        from .ray_pool import RayPool  # imports nothing of Ray until the pool starts

        return RayPool(size, threads, address=ray_address)
    raise ValueError(f"WORKER_BACKEND={backend!r}: expected process, ray or inline")
