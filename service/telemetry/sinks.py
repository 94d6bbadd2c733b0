"""Optional metric sinks: Weights & Biases (ENABLE_WANDB) and Braintrust (ENABLE_BRAINTRUST).

A sink is an orchestrator listener (`listener(session_id, event_type, data)`, as
`SessionMetrics`) that forwards each session's game results, learning losses, evaluation
Elo with its 95% interval, metrics snapshots, alerts and state changes to an experiment
tracker. What every sink guarantees:

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

`WandbSink`: one W&B run per session (run id and name: the session id), its config the
session's configuration (from `create_session`, or read from storage for a session restored
after a restart, which resumes its run with `resume="allow"`). History rows are keyed on
`games`, the step metric of every series: the session's self-play games finished as seen
here, raised to the worker's own count at each learning step and checkpoint. Series:
`game/*` (white score, plies, duration...), `selfplay/*` (W/D/L rates), `learning/*` (loss
per head, grad norm, lr, entropy...), `checkpoint/generation`, `eval/elo`, `eval/elo_low`,
`eval/elo_high` (95% interval), `eval/<opponent>/*`, `stats/*` (metrics snapshots),
`alert/<name>` (plus a W&B alert). The run is finished when the session reaches
`completed | stopped | failed` (exit code 1 when failed), and at close. The mode comes from
the SDK's environment: `WANDB_MODE=offline` writes runs under
`WANDB_DIR/wandb/offline-run-*` without any network (`wandb sync` uploads them later; each
process writes its own directory for a resumed run); online needs `WANDB_API_KEY` (or a
`wandb login`): without credentials the sink is off with one warning, never an interactive
prompt. Project: `WANDB_PROJECT` (default continuous-play), team: `WANDB_ENTITY`.

`BraintrustSink`: one Braintrust logger on the project `BRAINTRUST_PROJECT` (default
continuous-play); every event is one log row (input: session and event, output: the
event's data, metadata: session, event and labels, metrics: its numbers, scores: the
white score of a game and the score of an evaluation match, both in [0, 1]). Needs
`BRAINTRUST_API_KEY` (and the network): it logs in and registers the project when it
starts, so a bad key is the sink's one warning. After that, uploads are batched by the
SDK's own background thread, which retries and reports dropped batches on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..event_types import STORED, EventType
from ..lifecycle import FINAL, State

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "continuous-play"
DEFAULT_QUEUE_SIZE = 10_000
"""Records a sink holds before it drops: hours of events of a few sessions (games and
learning steps arrive a few per second at most; stats are throttled to snapshots)."""
DROP_WARNING_PERIOD_S = 60.0
CLOSE_TIMEOUT_S = 30.0

_CONFIG = "session.config"  # internal record: the session's configuration
_BULKY = ("moves",)  # dropped from the copy a sink queues (the PGN holds the moves)
_WHITE_SCORE = {"1-0": 1.0, "0-1": 0.0, "1/2-1/2": 0.5}
_STOP = object()


def _number(value: Any) -> float | int | None:
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
        number = _number(value)
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
        self._put(session_id, _CONFIG, dict(config))

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


# -- Weights & Biases ------------------------------------------------------------------------
_RUN_ID = re.compile(r"[^A-Za-z0-9_-]")


class _Run:
    """One session's W&B run and what its derived series need."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.games = 0
        self.results = {"1-0": 0, "0-1": 0, "1/2-1/2": 0}
        self.games_at: dict[int, int] = {}  # checkpoint generation -> games


class WandbSink(Sink):
    """One W&B run per session (see the module's doc)."""

    name = "W&B"

    def __init__(
        self,
        *,
        project: str | None = None,
        entity: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(queue_size=queue_size)
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.entity = entity
        self._extra_settings = settings or {}
        self._wandb: Any = None
        self._runs: dict[str, _Run] = {}
        self._run_configs: dict[str, dict[str, Any]] = {}  # configs of sessions with no run yet

    def _open(self) -> None:
        import wandb  # ImportError: one warning, the sink is off

        self._wandb = wandb
        mode = (os.environ.get("WANDB_MODE") or "online").strip().lower()
        if mode not in ("offline", "dryrun", "disabled"):
            # Never an interactive login prompt from this thread: no credentials is the one warning.
            if not wandb.login(prompt=False, verify=False):
                raise RuntimeError(
                    "no W&B credentials: set WANDB_API_KEY (or run `wandb login`), "
                    "or WANDB_MODE=offline to write runs locally"
                )
        # Several runs in one process (one per session), no console capture (the service's
        # logs are its own), no system monitor per run (the worker reports its own memory).
        self._settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, **self._extra_settings)

    def _run_of(self, session_id: str) -> _Run:
        current = self._runs.get(session_id)
        if current is not None:
            return current
        # WANDB_MODE and WANDB_DIR are read now, not when wandb first set itself up in this
        # process: its global setup keeps the environment it first saw.
        run = self._wandb.init(
            project=self.project,
            entity=self.entity,
            name=session_id,
            id=_RUN_ID.sub("-", session_id)[:64],
            resume="allow",
            reinit="create_new",
            job_type="session",
            config=self._run_configs.pop(session_id, None),
            mode=os.environ.get("WANDB_MODE") or None,
            dir=os.environ.get("WANDB_DIR") or None,
            settings=self._settings,
        )
        run.define_metric("games")
        run.define_metric("*", step_metric="games")
        current = self._runs[session_id] = _Run(run)
        return current

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        if event_type == _CONFIG:
            if session_id in self._runs:
                self._runs[session_id].run.config.update(data, allow_val_change=True)
            else:  # the run starts with it
                self._run_configs[session_id] = data
            return
        current = self._run_of(session_id)
        run = current.run
        if event_type == EventType.SESSION_STATE:
            self._on_state(session_id, current, data)
        elif event_type == EventType.GAME_FINISHED:
            result = data.get("result")
            if result in current.results:
                current.results[result] += 1
            current.games += 1  # games finish out of number order (several are in flight)
            played = sum(current.results.values())
            row = {"games": current.games, **numbers(data, "game/", skip=("game_id",))}
            if result in _WHITE_SCORE:
                row["game/white_score"] = _WHITE_SCORE[result]
            if played:
                row.update(
                    {
                        "selfplay/white_win_rate": current.results["1-0"] / played,
                        "selfplay/black_win_rate": current.results["0-1"] / played,
                        "selfplay/draw_rate": current.results["1/2-1/2"] / played,
                    }
                )
            run.log(row)
        elif event_type == EventType.LEARNING_STEP:
            current.games = max(current.games, int(data.get("games") or 0))
            run.log({"games": current.games, **numbers(data, "learning/", skip=("games",))})
        elif event_type == EventType.CHECKPOINT_SAVED:
            games = int(data.get("games") or current.games)
            if data.get("generation") is not None:
                current.games_at[int(data["generation"])] = games
            current.games = max(current.games, games)
            run.log({"games": games, "checkpoint/generation": data.get("generation")})
        elif event_type == EventType.EVALUATION_FINISHED:
            run.log(self._evaluation_row(current, data))
        elif event_type == EventType.METRICS_SNAPSHOT:
            run.log({"games": current.games, **numbers(data, "stats/")})
        elif event_type == EventType.ALERT_RAISED:
            self._on_alert(current, data)

    @staticmethod
    def _evaluation_row(current: _Run, data: dict[str, Any]) -> dict[str, Any]:
        generation = data.get("generation")
        games = current.games_at.get(int(generation), current.games) if generation is not None else current.games
        opponent = str(data.get("opponent") or "opponent")
        row: dict[str, Any] = {"games": games, "eval/generation": generation}
        for key in ("elo", "elo_low", "elo_high"):
            if _number(data.get(key)) is not None:
                row[f"eval/{key}"] = data[key]
        w, d, losses = (int(data.get(k) or 0) for k in ("wins", "draws", "losses"))
        row.update({f"eval/{opponent}/wins": w, f"eval/{opponent}/draws": d, f"eval/{opponent}/losses": losses})
        if w + d + losses:
            row[f"eval/{opponent}/score"] = (w + d / 2) / (w + d + losses)
        sprt = data.get("sprt")
        if isinstance(sprt, dict) and _number(sprt.get("llr")) is not None:
            row["eval/sprt_llr"] = sprt["llr"]
        return row

    def _on_alert(self, current: _Run, data: dict[str, Any]) -> None:
        name = str(data.get("name") or "alert")
        severity = str(data.get("severity") or "warning")
        if _number(data.get("games")) is not None:
            current.games = max(current.games, int(data["games"]))
        row: dict[str, Any] = {"games": current.games}
        if _number(data.get("value")) is not None:
            row[f"alert/{name}"] = data["value"]
        current.run.log(row)
        level = self._wandb.AlertLevel.ERROR if severity == "critical" else self._wandb.AlertLevel.WARN
        current.run.alert(
            title=f"{name} ({severity})", text=str(data.get("message") or name), level=level, wait_duration=60
        )

    def _on_state(self, session_id: str, current: _Run, data: dict[str, Any]) -> None:
        state = data.get("state")
        run = current.run
        run.summary["state"] = state
        for key in ("stop_reason", "failure_reason"):
            if data.get(key):
                run.summary[key] = data[key]
        if state in FINAL:
            run.summary["games"] = current.games
            run.finish(exit_code=1 if state == State.FAILED else 0)
            del self._runs[session_id]

    def _shutdown(self) -> None:
        """The service stops: every open run is finished (a restored session resumes it)."""
        errors = []
        for session_id, current in list(self._runs.items()):
            try:
                current.run.finish()
            except Exception as exc:  # finish the others
                errors.append(exc)
            del self._runs[session_id]
        if errors:
            raise errors[0]

    def _abandon(self) -> None:
        for current in list(self._runs.values()):
            try:
                current.run.finish(exit_code=1, quiet=True)
            except Exception:
                pass
        self._runs.clear()


# -- Braintrust ------------------------------------------------------------------------------
class BraintrustSink(Sink):
    """Every event one Braintrust log row (see the module's doc)."""

    name = "Braintrust"

    def __init__(
        self, *, project: str | None = None, api_key: str | None = None, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        super().__init__(queue_size=queue_size)
        self.project = project or os.environ.get("BRAINTRUST_PROJECT") or DEFAULT_PROJECT
        self._api_key = api_key
        self._logger: Any = None

    def _open(self) -> None:
        import braintrust  # ImportError: one warning, the sink is off
        from braintrust.logger import BraintrustState

        api_key = self._api_key or os.environ.get("BRAINTRUST_API_KEY")
        if not api_key:
            raise RuntimeError("BRAINTRUST_API_KEY is not set")
        # A state of its own: this sink's login, project and upload thread touch no one else's.
        self._logger = braintrust.init_logger(
            project=self.project, api_key=api_key, set_current=False, state=BraintrustState()
        )
        _ = self._logger.id  # log in and register the project now: a bad key fails here, once

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        if event_type == _CONFIG:
            self._logger.log(
                input={"session_id": session_id, "event": event_type},
                output=data,
                metadata={"session_id": session_id, "event": event_type},
                tags=[event_type],
            )
            return
        metadata: dict[str, Any] = {"session_id": session_id, "event": event_type}
        for key in ("state", "result", "termination", "opponent", "name", "severity", "trigger", "stop_reason"):
            if isinstance(data.get(key), str):
                metadata[key] = data[key]
        scores: dict[str, float] = {}
        if event_type == EventType.GAME_FINISHED and data.get("result") in _WHITE_SCORE:
            scores["white_score"] = _WHITE_SCORE[data["result"]]
        if event_type == EventType.EVALUATION_FINISHED:
            w, d, losses = (int(data.get(k) or 0) for k in ("wins", "draws", "losses"))
            if w + d + losses:
                scores["score"] = (w + d / 2) / (w + d + losses)
        tags = [event_type]
        if event_type == EventType.ALERT_RAISED and data.get("severity"):
            tags.append(str(data["severity"]))
        self._logger.log(
            input={"session_id": session_id, "event": event_type},
            output=_json_safe(data),
            metadata=metadata,
            metrics=numbers(data, finite=True, skip=("game_id", "checkpoint_id")) or None,
            scores=scores or None,
            tags=tags,
            error=str(data["failure_reason"]) if data.get("failure_reason") else None,
        )

    def _shutdown(self) -> None:
        if self._logger is not None:
            self._logger.flush()

    def _abandon(self) -> None:
        self._logger = None


def _json_safe(value: Any) -> Any:
    """`value` with NaN and infinities spelt as strings (JSON has no numbers for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# -- wiring ----------------------------------------------------------------------------------
def make_sinks(settings: Any) -> list[Sink]:
    """The sinks ENABLE_WANDB / ENABLE_BRAINTRUST switch on (not started)."""
    sinks: list[Sink] = []
    if getattr(settings, "enable_wandb", False):
        sinks.append(WandbSink())
    if getattr(settings, "enable_braintrust", False):
        sinks.append(BraintrustSink())
    return sinks


def attach_sinks(settings: Any, orchestrator: Any) -> list[Sink]:
    """Start the enabled sinks and attach them to `orchestrator` (before it starts:
    recovery reports events)."""
    sinks = make_sinks(settings)
    for sink in sinks:
        sink.attach(orchestrator)
    return sinks


async def close_sinks(sinks: Iterable[Sink], timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Close the sinks together, off the event loop; never raises."""
    sinks = list(sinks)
    if not sinks:
        return
    results = await asyncio.gather(*(sink.aclose(timeout) for sink in sinks), return_exceptions=True)
    for sink, result in zip(sinks, results):
        if isinstance(result, BaseException):
            log.warning("%s sink did not close cleanly: %s", sink.name, result)
