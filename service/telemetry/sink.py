"""What every metric sink guarantees: the `Sink` base class, and what both sinks share.

A sink is an orchestrator listener (`listener(session_id, event_type, data)`, as
`SessionMetrics`) that forwards each session's game results, learning losses, evaluation
Elo with its 95% interval, metrics snapshots, alerts and state changes to an experiment
tracker (`wandb_sink.WandbSink`, `braintrust_sink.BraintrustSink`; `sinks` switches them
on). What every sink guarantees:

- The event loop never waits on an SDK. `listener` only copies the event into a bounded
  queue (`queue_size` records) owned by the sink; one daemon thread per sink imports the
  SDK, opens it and writes the records. A full queue drops the record and counts it: a
  warning on the first drop, then at most one a minute with the running count.
- A failing sink never stops a session. Whatever goes wrong in it (the SDK cannot be
  imported, its start fails - no key, no network -, a write raises) is ONE warning on the
  `service.telemetry.sinks` logger naming the sink and the reason; the sink then disables
  itself and drops everything after. `listener` never raises.
- `close()` (or `await aclose()`) writes what is queued, finishes the runs and flushes the
  SDK, waiting at most `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..event_types import STORED, EventType
from ..lifecycle import FINAL

# Every sink module logs under one name, the wiring module's (sinks.py): README and the
# tests look for the sinks' warnings on it.
log = logging.getLogger("service.telemetry.sinks")

DEFAULT_PROJECT = "continuous-play"
"""The W&B and Braintrust project when WANDB_PROJECT / BRAINTRUST_PROJECT are not set."""
DEFAULT_QUEUE_SIZE = 10_000
"""Records a sink holds before it drops: hours of events of a few sessions (games and
learning steps arrive a few per second at most; stats are throttled to snapshots)."""
DROP_WARNING_PERIOD_S = 60.0
"""At most one warning about dropped records per this many seconds."""
CLOSE_TIMEOUT_S = 30.0
"""How long `close` waits for a sink to write what is queued and flush."""

CONFIG_RECORD = "session.config"
"""The event type of the internal record that carries a session's configuration to `_write`."""
WHITE_SCORE = {"1-0": 1.0, "0-1": 0.0, "1/2-1/2": 0.5}
"""White's score of a game result (the sinks' `game/white_score` and `white_score`)."""
_BULKY = ("moves",)  # dropped from the copy a sink queues (the PGN holds the moves)
_STOP = object()


def as_number(value: Any) -> float | int | None:
    """`value` as a JSON number (bools as 0/1), or None for anything else."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return None


def numbers(
    data: dict[str, Any], prefix: str = "", *, finite: bool = False, skip: Iterable[str] = ()
) -> dict[str, float | int]:
    """The top-level numeric fields of `data` (bools as 0/1), keys prefixed with `prefix`;
    `finite` drops NaN and infinities (JSON has no spelling for them)."""
    skipped = set(skip)
    out: dict[str, float | int] = {}
    for key, value in data.items():
        number = as_number(value)
        if key in skipped or number is None or (finite and not math.isfinite(number)):
            continue
        out[prefix + key] = number
    return out


class Sink:
    """A listener that hands the events to a thread of its own, which writes them to an SDK.

    Subclasses implement `_open` (import the SDK and start it), `_write(session_id,
    event_type, data)` and `_shutdown` (finish and flush); all three run on the sink's
    thread only. Any exception out of them disables the sink with one warning.
    """

    name = "sink"

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._disabled = False
        self._closing = False
        self.reason: str | None = None
        self.dropped = 0
        self._drops_reported = 0
        self._last_drop_warning = -math.inf
        self._configured: set[str] = set()  # sessions whose config was queued (the loop's side)
        self._seen: set[str] = set()  # sessions seen since their last final state (the loop's side)
        self._config_source: Callable[[str], Any] | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- state ---------------------------------------------------------------------------
    @property
    def disabled(self) -> bool:
        """True once the sink failed (see `reason`)."""
        return self._disabled

    @property
    def pending(self) -> int:
        """Records queued and not yet written."""
        return self._queue.qsize()

    def start(self) -> "Sink":
        """Start the sink's thread (once); returns the sink."""
        with self._lock:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name=f"{self.name}-sink", daemon=True)
                self._thread.start()
        return self

    # -- wiring --------------------------------------------------------------------------
    def attach(self, orchestrator: Any) -> "Sink":
        """Listen to `orchestrator`'s events; give each session's run its configuration
        (from `create_session`, or the stored session for one restored after a restart)."""
        self.start()
        listeners = getattr(orchestrator, "listeners", None)
        if listeners is not None:
            listeners.append(self.listener)
        create = getattr(orchestrator, "create_session", None)
        if create is not None:

            async def create_and_configure(config: Any, *args: Any, **kwargs: Any) -> Any:
                session_id = await create(config, *args, **kwargs)
                dump = getattr(config, "model_dump", None)
                if dump is not None:
                    self.configure(session_id, dump(mode="json"))
                return session_id

            orchestrator.create_session = create_and_configure
        sessionmaker = getattr(orchestrator, "sessionmaker", None)
        if sessionmaker is not None:
            self._config_source = _stored_config(sessionmaker)
        return self

    def configure(self, session_id: str, config: dict[str, Any]) -> None:
        """The configuration of `session_id` (the first one given counts)."""
        if session_id in self._configured or self._disabled or self._closing:
            return
        self._configured.add(session_id)
        self._put(session_id, CONFIG_RECORD, dict(config))

    def listener(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue one event for the sink's thread; never blocks, never raises."""
        try:
            # the stored events only: not `stats` (live, every few seconds; `metrics.snapshot` is its copy)
            if self._disabled or self._closing or event_type not in STORED:
                return
            if session_id not in self._seen:
                self._seen.add(session_id)
                self._fetch_config(session_id)
            record = {k: v for k, v in data.items() if k not in _BULKY} if isinstance(data, dict) else {}
            self._put(session_id, event_type, record)
            if event_type == EventType.SESSION_STATE and record.get("state") in FINAL:
                self._seen.discard(session_id)  # restored later: its config is read again
                self._configured.discard(session_id)
        except Exception as exc:  # pragma: no cover - defensive: a listener never raises
            self._disable("queueing an event", exc)

    def _fetch_config(self, session_id: str) -> None:
        """Read a session's stored configuration off the loop's critical path (a session
        restored after a restart was not created through `create_session` here)."""
        source = self._config_source
        if source is None or session_id in self._configured:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def fetch() -> None:
            try:
                config = await source(session_id)
            except Exception as exc:  # the session may not be committed yet: create_session gives it
                log.debug("%s sink: no stored config for %s (%s)", self.name, session_id, exc)
                return
            if config is not None and not self._disabled:
                self.configure(session_id, config)

        task = loop.create_task(fetch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _put(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        if self._disabled or self._closing:
            return
        try:
            self._queue.put_nowait((session_id, event_type, data))
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning >= DROP_WARNING_PERIOD_S:
                self._last_drop_warning = now
                log.warning(
                    "%s sink is behind: its queue of %d records is full; dropped %d record(s) so far",
                    self.name,
                    self._queue.maxsize,
                    self.dropped,
                )
                self._drops_reported = self.dropped

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # ImportError, a failed login, a missing key...
            self._disable("start", exc)
            self._drain()
            return
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self._disabled:
                continue
            try:
                self._write(*item)
            except BaseException as exc:
                self._disable(f"writing a {item[1]} event", exc)
                self._drain()
                break
        if not self._disabled:
            try:
                self._shutdown()
            except BaseException as exc:
                self._disable("closing", exc)

    def _drain(self) -> None:
        """Throw away what is queued (the sink is disabled)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _disable(self, stage: str, exc: BaseException) -> None:
        with self._lock:
            if self._disabled:
                return
            self._disabled = True
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.reason = f"{stage} failed: {type(exc).__name__}" + (f": {detail}" if detail else "")
        if isinstance(exc, ImportError):
            self.reason += " (install the SDK: pip install 'continuous-play[sinks]')"
        log.warning("%s sink disabled (%s); sessions go on without it", self.name, self.reason)
        log.debug("%s sink failure", self.name, exc_info=exc)
        try:
            self._abandon()
        except Exception:  # pragma: no cover - best effort
            log.debug("%s sink: abandoning failed", self.name, exc_info=True)

    # -- closing -------------------------------------------------------------------------
    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued, finish and flush; waits at most `timeout` seconds."""
        with self._lock:
            if self._closing:
                thread = self._thread
                started = False
            else:
                self._closing = True
                thread, started = self._thread, True
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        if started:
            while thread.is_alive():
                try:
                    self._queue.put(_STOP, timeout=0.1)
                    break
                except queue.Full:
                    if time.monotonic() >= deadline:
                        break
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning(
                "%s sink did not finish within %.0f s; %d record(s) may be lost",
                self.name,
                timeout,
                self._queue.qsize(),
            )
        if self.dropped > self._drops_reported:
            log.warning("%s sink dropped %d record(s) in all (its queue was full)", self.name, self.dropped)
            self._drops_reported = self.dropped

    async def aclose(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """`close` off the event loop."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.to_thread(self.close, timeout)

    # -- hooks (the sink's thread) -------------------------------------------------------
    def _open(self) -> None:
        """Import and start the SDK."""

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Write one record."""

    def _shutdown(self) -> None:
        """Finish and flush (the queue is empty)."""

    def _abandon(self) -> None:
        """Release what `_open` took after a failure; best effort, may be called from any thread."""


def _stored_config(sessionmaker: Any) -> Callable[[str], Any]:
    """A reader of a stored session's configuration (None when there is no such session)."""

    async def read(session_id: str) -> dict[str, Any] | None:
        from ..storage import repositories as repo

        async with sessionmaker() as db:
            row = await repo.get_session(db, session_id)
            return dict(row.config) if row is not None and row.config else None

    return read
