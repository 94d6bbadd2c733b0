"""A worker pool whose workers a test scripts: the boundary between the orchestrator and a
worker process, to force interleavings that real workers make only by chance.

A `ScriptedWorker` records the commands the orchestrator sends it and reports exactly what
the test tells it to (`report`), except that it answers `shutdown` as a real worker does
(its session loop ends: `finished` with reason shutdown, then `idle`); it plays no chess.
Everything else (the orchestrator, its writer, the database) is real.
"""

from __future__ import annotations

import asyncio
from typing import Any

from support.waiting import wait_for

from service.sessions.pool import Pool, _Base
from service.sessions.protocol import Command, WorkerMessage


async def until(predicate, timeout: float = 30.0) -> None:
    """Wait (on the event loop) until `predicate()` holds, looking every 10 ms: a scripted
    interleaving moves on as soon as it can; AssertionError after `timeout` s."""
    await wait_for(predicate, timeout=timeout, interval=0.01, what="the scripted interleaving's next step")


class ScriptedWorker(_Base):
    """A worker that says what the test makes it say."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name, loop)
        self.commands: list[Command] = []
        self.got_command = asyncio.Event()
        self._alive = True
        self._inbox.put_nowait(WorkerMessage("ready", None, {}))

    def _send(self, command: Command) -> None:
        self.commands.append(command)
        self._loop.call_soon_threadsafe(self.got_command.set)
        if command.kind == "shutdown":  # as a real worker: it checkpoints (here: nothing) and is done
            self._loop.call_soon_threadsafe(self.report, "finished", command.session_id, {"reason": "shutdown"})
            self._loop.call_soon_threadsafe(self.report, "idle", command.session_id)

    def report(self, kind: str, session_id: str | None, data: dict[str, Any] | None = None) -> None:
        """Make the worker report a message (called on the event loop)."""
        self._inbox.put_nowait(WorkerMessage(kind, session_id, data or {}))

    def kinds(self) -> list[str]:
        """The kinds of the commands received so far."""
        return [c.kind for c in self.commands]

    async def wait_for_command(self, kind: str, timeout: float = 30.0) -> Command:
        """The first command of `kind`, once it has come."""
        async with asyncio.timeout(timeout):
            while True:
                for command in self.commands:
                    if command.kind == kind:
                        return command
                self.got_command.clear()
                await self.got_command.wait()

    @property
    def alive(self) -> bool:
        return self._alive

    def discard(self) -> None:
        self._alive = False
        self._discarded = True

    def close(self, timeout: float = 10.0) -> None:
        self._alive = False


class ScriptedPool(Pool):
    """A pool of ScriptedWorkers; `spawned` lists every worker it started, in order."""

    kind = "scripted"

    def __init__(self, size: int = 1) -> None:
        super().__init__(size)
        self.spawned: list[ScriptedWorker] = []

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> ScriptedWorker:
        self._count += 1
        worker = ScriptedWorker(f"scripted-{self._count}", loop)
        self.spawned.append(worker)
        return worker
