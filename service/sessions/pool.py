"""Worker pools: where sessions' engine work runs, never on the event loop.

A pool hands out workers; a worker runs one session at a time (`serving.serve_sessions`)
and talks in `protocol` tuples that name the session: commands in (`Command`: run, pause,
resume, stop, shutdown, exit), messages out (`WorkerMessage`). `ProcessPool`
(WORKER_BACKEND=process, the default) keeps `WORKERS` spawned processes warm; `InlinePool`
runs workers as threads of this process (unit tests only: a thread shares the GIL with the
API); `ray_pool.RayPool` (WORKER_BACKEND=ray) has the same `Worker`/`Pool` shape on Ray
actors.

Each worker's messages are read by a small thread and handed to the event loop through a
bounded inbox (INBOX_SIZE): when the orchestrator falls behind (a slow database), the
reader waits, the worker's own outgoing queue fills, and the worker waits in its next
report, so a backlog never grows without bound in the service. A worker whose process dies
(killed, out of memory, a crash in native code) reports `died` after every message it sent
before dying; the pool replaces it when it is released. A worker goes back to the pool
(`release`) only once it has reported `idle` for its session (its loop ended); otherwise
the orchestrator `replace`s it: it is killed and a fresh one takes its place, so a session's
loop can never run on into the next session given that worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing as mp
import queue as queue_mod
import signal
import threading
from typing import Any, Protocol

from .protocol import Command, CommandKind, MessageKind, WorkerMessage
from .serving import pool_process_main, serve_sessions

INBOX_SIZE = 1024
"""Messages a worker's inbox holds in the service before its reader (then the worker) waits:
a few tens of MB of games at most; about 4 minutes of featured-game moves."""
DELIVERY_POLL_S = 0.5
"""How often a reader blocked on a full inbox checks whether its worker was discarded."""


class Worker(Protocol):
    """One worker as the orchestrator sees it."""

    name: str

    def send(self, kind: CommandKind, session_id: str | None = None, payload: Any = None) -> None:
        """Queue a command for the worker (`session_id`: the session it is about)."""

    async def receive(self) -> WorkerMessage:
        """The worker's next message (`died` if it is gone)."""

    @property
    def alive(self) -> bool:
        """Whether it can still run sessions."""


class _Base:
    """The event-loop side shared by every kind: a bounded asyncio queue fed from another
    thread, which waits while the queue is full."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, inbox_size: int = INBOX_SIZE) -> None:
        self.name = name
        self._loop = loop
        self._inbox: asyncio.Queue[WorkerMessage] = asyncio.Queue(maxsize=inbox_size)
        self._discarded = False
        self.inbox_peak = 0
        """The most messages its inbox has held (diagnostics, tests)."""

    async def _put(self, message: WorkerMessage) -> None:
        await self._inbox.put(message)
        self.inbox_peak = max(self.inbox_peak, self._inbox.qsize())

    def _deliver(self, message: WorkerMessage) -> None:
        """Hand a message to the event loop; called from the reader or worker thread, never
        from the loop. Waits while the inbox is full; a discarded worker's messages are dropped."""
        if self._discarded:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._put(message), self._loop)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            return
        while True:
            try:
                future.result(DELIVERY_POLL_S)
                return
            except concurrent.futures.TimeoutError:
                if self._discarded or self._loop.is_closed():
                    future.cancel()
                    return
            except (concurrent.futures.CancelledError, RuntimeError):
                return

    @property
    def inbox_full(self) -> bool:
        """Whether its inbox is at its bound (its reader, then the worker, waits)."""
        return self._inbox.full()

    async def receive(self) -> WorkerMessage:
        return await self._inbox.get()

    def drain(self) -> None:
        """Forget messages left from an earlier session."""
        while not self._inbox.empty():
            self._inbox.get_nowait()

    def send(self, kind: CommandKind, session_id: str | None = None, payload: Any = None) -> None:
        self._send(Command(kind, session_id, payload))

    def _send(self, command: Command) -> None:
        raise NotImplementedError


class ProcessWorker(_Base):
    """A spawned process running `serving.pool_process_main`."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, threads: int, inbox_size: int = INBOX_SIZE) -> None:
        super().__init__(name, loop, inbox_size)
        ctx = mp.get_context("spawn")
        self._commands = ctx.Queue()
        self._messages = ctx.Queue(maxsize=inbox_size)  # the worker waits when this is full
        self.process = ctx.Process(
            target=pool_process_main, args=(self._commands, self._messages, threads), name=name, daemon=True
        )
        self.process.start()
        # The child has its own copy of the messages pipe's write end now. Closing ours
        # means a child killed in the middle of writing a message leaves EOF behind, not a
        # reader blocked forever on the rest of a message that will never come.
        self._messages._writer.close()  # type: ignore[attr-defined]  # the pipe's end; private, not in typeshed
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

    def _death(self) -> WorkerMessage:
        code = self.process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how += f", {signal.Signals(-code).name}"
            except ValueError:
                pass
        return WorkerMessage(
            MessageKind.DIED,
            None,
            {"exitcode": code, "pid": self.process.pid, "reason": f"worker process died ({how})"},
        )

    def _send(self, command: Command) -> None:
        self._commands.put(command)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        if self.process.is_alive():
            self.send(CommandKind.EXIT)
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._discarded = True  # a reader waiting on a full inbox gives up
        self._reader.join(5.0)
        self._commands.close()
        self._commands.join_thread()
        self._messages.close()

    def discard(self) -> None:
        """Kill the worker if it still runs and forget it without waiting on it (its
        process is reaped, its queues closed; commands nobody will read are dropped)."""
        self._discarded = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self._reader.join(5.0)  # it notices the death within a poll (0.5 s)
        self._commands.cancel_join_thread()
        self._commands.close()
        self._messages.close()
        if not self._reader.is_alive():
            self._messages._reader.close()  # type: ignore[attr-defined]  # the pipe's end; private, not in typeshed


class ThreadWorker(_Base):
    """A thread of this process running `serving.serve_sessions` (inline pool)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, inbox_size: int = INBOX_SIZE) -> None:
        super().__init__(name, loop, inbox_size)
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
            serve_sessions(self._get, self._deliver)
        finally:
            self._deliver(WorkerMessage(MessageKind.DIED, None, {"exitcode": None}))

    def _send(self, command: Command) -> None:
        self._commands.put(command)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self.send(CommandKind.EXIT)
            self._thread.join(timeout)

    def discard(self) -> None:
        """A thread cannot be killed: tell it to end its session and exit, and drop whatever
        it still reports."""
        self._discarded = True
        self.send(CommandKind.EXIT)


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
            message = await worker.receive()
            if message.kind != MessageKind.READY:
                raise RuntimeError(f"{worker.name} did not start: {message.kind} {message.data}")
            self._idle.put_nowait(worker)
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready and any(w.alive for w in self._workers)

    async def acquire(self):
        """An idle, live worker (waits while all are busy); a dead one found idle is replaced."""
        assert self._idle is not None  # start() set it
        while True:
            worker = await self._idle.get()
            if worker.alive:
                worker.drain()
                return worker
            await self.replace(worker)

    async def release(self, worker) -> None:
        """Give a worker back once it reported `idle` for its session (its loop ended); a
        dead one is replaced by a fresh one."""
        if worker.alive:
            assert self._idle is not None  # start() set it
            self._idle.put_nowait(worker)
        else:
            await self.replace(worker)

    async def replace(self, worker) -> None:
        """Kill a worker (dead already, or one whose session loop may still run) and put a
        fresh one in its place."""
        if worker in self._workers:
            self._workers.remove(worker)
        await asyncio.to_thread(worker.discard)
        fresh = self._spawn(asyncio.get_running_loop())
        self._workers.append(fresh)
        message = await fresh.receive()
        if message.kind != MessageKind.READY:
            raise RuntimeError(f"{fresh.name} did not start: {message.kind} {message.data}")
        assert self._idle is not None  # start() set it
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


def make_pool(backend: str, size: int, threads: int, *, ray_address: str = "local", device: str = "cpu") -> Pool:
    """The pool WORKER_BACKEND names: `size` workers of `threads` torch threads each (a Ray
    actor reserves that many CPUs, and a GPU when `device` (DEVICE) is cuda), Ray at
    `ray_address` (RAY_ADDRESS)."""
    if backend == "process":
        return ProcessPool(size, threads)
    if backend == "inline":
        return InlinePool(size, threads)
    if backend == "ray":
        from .ray_pool import RayPool  # imports nothing of Ray until the pool starts

        return RayPool(size, threads, address=ray_address, device=device)
    raise ValueError(f"WORKER_BACKEND={backend!r}: expected process, ray or inline")
