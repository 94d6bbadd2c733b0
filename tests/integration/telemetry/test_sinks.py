"""The W&B and Braintrust sinks (service/telemetry/: sink.py, wandb_sink.py, braintrust_sink.py,
sinks.py) with their real SDKs.

- W&B runs for real in offline mode (WANDB_MODE=offline, WANDB_DIR under tmp_path, a base
  URL that nothing answers on, no key): the test reads back the run's transaction log
  (`run-<id>.wandb`, wandb's LevelDB-style record log of protobuf `Record`s) and checks
  the logged history, config, summary and exit code.
- Braintrust runs its real SDK against a local fake of its HTTP API (login, project
  registration, /version, /logs3): the network is the only thing replaced; the test reads
  the rows the SDK uploaded.
- Failures: a sink that cannot import, start or write logs ONE warning, disables itself and
  its listener keeps returning; a full queue drops with a counted warning; a session on the
  real orchestrator (inline pool, tiny preset) completes with sinks that fail on every call.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.events import game_finished
from support.tiny import TINY, app_settings, tiny_settings

from service.config import Settings
from service.event_types import EventType
from service.lifecycle import FINAL
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import InlinePool
from service.storage.database import create_engine, session_factory, upgrade_engine
from service.telemetry import BraintrustSink, Sink, WandbSink, attach_sinks, close_sinks, make_sinks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SINK_LOGGER = "service.telemetry.sinks"


# -- events as the orchestrator reports them -----------------------------------------------
LEARNING = {
    "games": 4,
    "step": 12,
    "steps": 6,
    "policy_loss": 3.25,
    "value_loss": 0.75,
    "total_loss": 4.0,
    "grad_norm": 1.5,
    "lr": 0.001,
    "policy_entropy": 2.5,
    "samples": 96,
    "buffer_size": 80,
    "positions_learned": 80,
    "seconds": 0.2,
}
CHECKPOINT = {"checkpoint_id": 2, "generation": 1, "games": 4, "sha256": "ab" * 32}
EVALUATION = {
    "checkpoint_id": 2,
    "generation": 1,
    "opponent": "random",
    "wins": 3,
    "draws": 1,
    "losses": 0,
    "pentanomial": [0, 0, 0, 1, 1],
    "adjudicated": 1,
    "elo": 1612.5,
    "elo_low": 1540.0,
    "elo_high": 1690.0,
    "sprt": None,
    "ratings": {
        "gen0": {"rating": 1500.0, "low": 1500.0, "high": 1500.0},
        "gen1": {"rating": 1612.5, "low": 1540.0, "high": 1690.0},
    },
}
SNAPSHOT = {
    "simulations_per_second": 850.0,
    "buffer_size": 80,
    "games_in_flight": 3,
    "rss_mb": 412.0,
    "rss_growth_mb": 12.5,
}
ALERT = {
    "name": "loss_spike",
    "severity": "warning",
    "message": "training loss 9 is 3.2x its recent mean",
    "value": 9.0,
    "threshold": 8.4,
}


def feed_session(sink: Sink, sid: str, final: str | None = "completed") -> None:
    """A session's events, in the order the orchestrator reports them."""
    sink.listener(sid, EventType.SESSION_STATE, {"state": "pending"})
    sink.listener(sid, EventType.SESSION_STATE, {"state": "running", "started_at": "2025-01-01T00:00:00+00:00"})
    for number, result in enumerate(["1-0", "1/2-1/2", "0-1", "1/2-1/2"], start=1):
        sink.listener(sid, EventType.GAME_FINISHED, game_finished(number, result))
    sink.listener(sid, "stats", SNAPSHOT)  # live only: not forwarded
    sink.listener(sid, EventType.LEARNING_STEP, LEARNING)
    sink.listener(sid, EventType.CHECKPOINT_SAVED, CHECKPOINT)
    sink.listener(sid, EventType.EVALUATION_FINISHED, EVALUATION)
    sink.listener(sid, EventType.METRICS_SNAPSHOT, SNAPSHOT)
    sink.listener(sid, EventType.ALERT_RAISED, ALERT)
    if final == "failed":
        sink.listener(sid, EventType.SESSION_STATE, {"state": "failed", "failure_reason": "RuntimeError: boom"})
    elif final is not None:
        sink.listener(sid, EventType.SESSION_STATE, {"state": final, "stop_reason": "max_games"})


# -- reading an offline W&B run back ---------------------------------------------------------
def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a `.wandb` transaction log: a 7-byte header (":W&B", magic,
    version), then 32 KiB blocks of chunks (crc32 u32, length u16, type u8: 1 full,
    2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pos, pending = [], 7, b""
    block, header = 32768, 7
    while pos + header <= len(data):
        if block - pos % block < header:  # the block's tail is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        pos += header
        chunk, pos = data[pos : pos + length], pos + length
        if kind == 0 and length == 0:
            break
        if kind in (1, 4):
            payload, pending = pending + chunk, b""
            record = pb.Record()
            record.ParseFromString(payload)
            records.append(record)
        elif kind in (2, 3):
            pending += chunk
    return records


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


class OfflineRun:
    """What one offline run wrote: its run record, config, history rows, summary, exit."""

    def __init__(self, run_dir: Path) -> None:
        files = list(run_dir.glob("run-*.wandb"))
        assert len(files) == 1, f"no transaction log in {run_dir}"
        self.records = wandb_records(files[0])
        kinds = [r.WhichOneof("record_type") for r in self.records]
        runs = [r.run for r in self.records if r.WhichOneof("record_type") == "run"]
        assert runs, f"no run record in {files[0]}: {kinds}"
        self.run = runs[0]
        self.config: dict[str, Any] = {}
        for record in self.records:
            kind = record.WhichOneof("record_type")
            updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
            for item in updates:
                self.config[_key(item)] = json.loads(item.value_json)
        self.history = [
            {_key(i): json.loads(i.value_json) for i in r.history.item}
            for r in self.records
            if r.WhichOneof("record_type") == "history"
        ]
        self.summary: dict[str, Any] = {}
        for record in self.records:
            if record.WhichOneof("record_type") == "summary":
                for item in record.summary.update:
                    self.summary[_key(item)] = json.loads(item.value_json)
        exits = [r.exit for r in self.records if r.WhichOneof("record_type") == "exit"]
        self.exit_code = exits[-1].exit_code if exits else None

    def series(self, name: str) -> list[tuple[Any, Any]]:
        """(games, value) of every history row holding `name`."""
        return [(row.get("games"), row[name]) for row in self.history if name in row]


def offline_runs(wandb_dir: Path, session_id: str) -> list[Path]:
    return sorted((wandb_dir / "wandb").glob(f"offline-run-*-{session_id}"))


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> Path:
    """WANDB_MODE=offline with its files under tmp_path; no key, and a base URL on a port
    nothing listens on, so any attempt at the network would fail."""
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    for name in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    return wandb_dir


def sink_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SINK_LOGGER and r.levelno >= logging.WARNING]


# -- W&B, offline ----------------------------------------------------------------------------
def test_wandb_offline_writes_one_run_per_session_with_its_history(wandb_offline, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    sink = WandbSink(project="cp-test").start()
    sink.configure("s1", {"max_games": 4, "chess_preset": "tiny", "seed": 7})
    feed_session(sink, "s1", final="completed")
    feed_session(sink, "s2", final="failed")
    feed_session(sink, "s3", final=None)  # still running at close: its run is finished by close
    sink.close()
    assert not sink.disabled, sink.reason
    assert sink_warnings(caplog) == []

    for sid in ("s1", "s2", "s3"):
        assert len(offline_runs(wandb_offline, sid)) == 1, sorted((wandb_offline / "wandb").iterdir())
    one = OfflineRun(offline_runs(wandb_offline, "s1")[0])
    assert one.run.run_id == "s1" and one.run.display_name == "s1" and one.run.project == "cp-test"
    assert one.config["max_games"] == 4 and one.config["chess_preset"] == "tiny" and one.config["seed"] == 7
    assert one.series("game/white_score") == [(1, 1.0), (2, 0.5), (3, 0.0), (4, 0.5)]
    assert one.series("game/plies") == [(1, 20), (2, 20), (3, 20), (4, 20)]
    assert one.series("selfplay/draw_rate")[-1] == (4, 0.5)
    assert one.series("selfplay/white_win_rate")[-1] == (4, 0.25)
    for head, value in (("policy_loss", 3.25), ("value_loss", 0.75), ("total_loss", 4.0)):
        assert one.series(f"learning/{head}") == [(4, value)]
    assert one.series("checkpoint/generation") == [(4, 1)]
    # the evaluation at the checkpoint's game count, with its 95% interval
    assert one.series("eval/elo") == [(4, 1612.5)]
    assert one.series("eval/elo_low") == [(4, 1540.0)] and one.series("eval/elo_high") == [(4, 1690.0)]
    assert one.series("eval/random/score") == [(4, 0.875)]
    assert one.series("stats/simulations_per_second") == [(4, 850.0)]
    assert one.series("stats/rss_growth_mb") == [(4, 12.5)]
    assert one.series("alert/loss_spike") == [(4, 9.0)]
    assert not any("stats/games_in_flight" in row and row.get("games") != 4 for row in one.history)
    assert one.summary["state"] == "completed" and one.summary["stop_reason"] == "max_games"
    assert one.exit_code == 0

    failed = OfflineRun(offline_runs(wandb_offline, "s2")[0])
    assert failed.exit_code == 1 and failed.summary["state"] == "failed"
    assert failed.summary["failure_reason"] == "RuntimeError: boom"
    assert failed.series("eval/elo") == [(4, 1612.5)]

    open_at_close = OfflineRun(offline_runs(wandb_offline, "s3")[0])
    assert open_at_close.exit_code == 0 and open_at_close.summary["state"] == "running"
    assert len(open_at_close.series("game/white_score")) == 4


def test_wandb_init_error_is_one_warning_and_the_listener_goes_on(wandb_offline, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    sink = WandbSink(settings={"mode": "no-such-mode"}).start()  # the SDK rejects it at start
    for _ in range(3):
        assert sink.listener("s1", EventType.GAME_FINISHED, game_finished(1, "1-0")) is None
    sink.close()
    assert sink.disabled and "ValidationError" in sink.reason
    warnings = sink_warnings(caplog)
    assert len(warnings) == 1 and warnings[0].startswith("W&B sink disabled") and "ValidationError" in warnings[0]
    for _ in range(50):
        assert sink.listener("s1", EventType.GAME_FINISHED, game_finished(2, "0-1")) is None
    assert len(sink_warnings(caplog)) == 1
    assert not list((wandb_offline / "wandb").glob("offline-run-*"))


def test_wandb_online_without_credentials_is_one_warning_not_a_prompt(wandb_offline, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no stored `wandb login` either
    monkeypatch.setenv("HOME", str(tmp_path))
    sink = WandbSink().start()
    feed_session(sink, "s1")
    sink.close()
    assert sink.disabled and "WANDB_MODE=offline" in sink.reason
    assert len(sink_warnings(caplog)) == 1
    assert not list((wandb_offline / "wandb").glob("*run-*"))


def test_a_missing_sdk_is_one_warning(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    monkeypatch.setitem(sys.modules, "braintrust", None)
    sinks = [WandbSink().start(), BraintrustSink(api_key="sk-test").start()]
    for sink in sinks:
        feed_session(sink, "s1")
        sink.close()
    for sink in sinks:
        feed_session(sink, "s2")
    assert all(sink.disabled and "continuous-play[sinks]" in sink.reason for sink in sinks)
    warnings = sorted(sink_warnings(caplog))
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("Braintrust sink disabled (start failed: ModuleNotFoundError")
    assert warnings[1].startswith("W&B sink disabled (start failed: ModuleNotFoundError")


# -- Braintrust, against a fake of its HTTP API -------------------------------------------------
class FakeBraintrust:
    """Braintrust's HTTP API as far as a logger uses it: API-key login, project
    registration, /version and /logs3 uploads; records what it receives."""

    def __init__(self, valid_key: str = "sk-test") -> None:
        self.valid_key = valid_key
        self.requests: list[tuple[str, str, str | None]] = []
        self.rows: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                auth = self.headers.get("Authorization")
                path = self.path.split("?")[0]
                fake.requests.append((self.command, path, auth))
                if auth != f"Bearer {fake.valid_key}":
                    return self._reply(401, {"error": "invalid api key"})
                if path == "/api/apikey/login":
                    return self._reply(
                        200,
                        {"org_info": [{"id": "org-1", "name": "test-org", "api_url": fake.url, "proxy_url": fake.url}]},
                    )
                if path == "/v1/project":
                    name = json.loads(body or b"{}").get("name")
                    return self._reply(200, {"id": "project-1", "name": name, "org_id": "org-1"})
                if path == "/version":
                    return self._reply(200, {})
                if path == "/logs3":
                    fake.rows.extend(json.loads(body)["rows"])
                    return self._reply(200, {})
                return self._reply(404, {"error": f"no route {path}"})

            do_GET = do_POST = do_PUT = _handle

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def braintrust_api(monkeypatch):
    fake = FakeBraintrust()
    for name in (
        "BRAINTRUST_API_KEY",
        "BRAINTRUST_ORG_NAME",
        "BRAINTRUST_API_URL",
        "BRAINTRUST_PROXY_URL",
        "BRAINTRUST_PROJECT",
        "BRAINTRUST_SYNC_FLUSH",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRAINTRUST_APP_URL", fake.url)
    monkeypatch.setenv("BRAINTRUST_APP_PUBLIC_URL", fake.url)
    monkeypatch.setenv("BRAINTRUST_NUM_RETRIES", "0")
    yield fake
    fake.close()


def test_braintrust_logs_every_event_as_a_row(braintrust_api, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    monkeypatch.setenv("BRAINTRUST_API_KEY", "sk-test")
    sink = BraintrustSink(project="cp-test").start()
    sink.configure("s1", {"max_games": 4})
    feed_session(sink, "s1", final="completed")
    sink.close()
    assert not sink.disabled, sink.reason
    assert sink_warnings(caplog) == []
    assert ("POST", "/api/apikey/login", "Bearer sk-test") in braintrust_api.requests
    assert ("POST", "/v1/project", "Bearer sk-test") in braintrust_api.requests

    rows = braintrust_api.rows
    assert rows and all(r["project_id"] == "project-1" and r["log_id"] == "g" for r in rows)
    assert all(r["input"]["session_id"] == "s1" and r["metadata"]["session_id"] == "s1" for r in rows)
    events = [r["input"]["event"] for r in rows]
    assert events.count(EventType.GAME_FINISHED) == 4 and events.count(EventType.SESSION_STATE) == 3
    assert "stats" not in events
    for kind in (
        "session.config",
        EventType.LEARNING_STEP,
        EventType.CHECKPOINT_SAVED,
        EventType.EVALUATION_FINISHED,
        EventType.METRICS_SNAPSHOT,
        EventType.ALERT_RAISED,
    ):
        assert events.count(kind) == 1, (kind, events)

    def only(kind: str) -> dict[str, Any]:
        return next(r for r in rows if r["input"]["event"] == kind)

    games = sorted(
        (r for r in rows if r["input"]["event"] == EventType.GAME_FINISHED), key=lambda r: r["output"]["number"]
    )
    assert [g["scores"]["white_score"] for g in games] == [1.0, 0.5, 0.0, 0.5]
    assert [g["metadata"]["result"] for g in games] == ["1-0", "1/2-1/2", "0-1", "1/2-1/2"]
    assert games[0]["output"]["pgn"].startswith('[Result "1-0"]') and "moves" not in games[0]["output"]
    learning = only(EventType.LEARNING_STEP)
    assert learning["metrics"]["policy_loss"] == 3.25 and learning["metrics"]["total_loss"] == 4.0
    evaluation = only(EventType.EVALUATION_FINISHED)
    assert (evaluation["metrics"]["elo"], evaluation["metrics"]["elo_low"], evaluation["metrics"]["elo_high"]) == (
        1612.5,
        1540.0,
        1690.0,
    )
    assert evaluation["scores"]["score"] == 0.875 and evaluation["metadata"]["opponent"] == "random"
    assert only(EventType.METRICS_SNAPSHOT)["metrics"]["simulations_per_second"] == 850.0
    alert = only(EventType.ALERT_RAISED)
    assert alert["metadata"]["name"] == "loss_spike" and "warning" in alert["tags"]
    assert alert["output"]["message"].startswith("training loss")
    assert only("session.config")["output"] == {"max_games": 4}
    assert [r["metadata"]["state"] for r in rows if r["input"]["event"] == EventType.SESSION_STATE] == [
        "pending",
        "running",
        "completed",
    ]


def test_braintrust_rejected_key_is_one_warning(braintrust_api, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    sink = BraintrustSink(api_key="sk-wrong").start()
    feed_session(sink, "s1")
    sink.close()
    assert sink.disabled and "401" in sink.reason
    warnings = sink_warnings(caplog)
    assert len(warnings) == 1 and warnings[0].startswith("Braintrust sink disabled")
    assert braintrust_api.rows == []
    assert all(path == "/api/apikey/login" for _, path, _ in braintrust_api.requests)


def test_braintrust_without_a_key_is_one_warning(braintrust_api, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    sink = BraintrustSink().start()
    feed_session(sink, "s1")
    sink.close()
    assert sink.disabled and "BRAINTRUST_API_KEY is not set" in sink.reason
    assert len(sink_warnings(caplog)) == 1
    assert braintrust_api.requests == []


# -- failures and back-pressure -----------------------------------------------------------------
class RaisingSink(Sink):
    """A sink whose every write raises."""

    name = "raising"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        self.calls += 1
        raise ConnectionError("upstream is down")


class BlockedSink(Sink):
    """A sink whose writes wait until `release` is set (an SDK stuck on the network)."""

    name = "blocked"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = threading.Event()
        self.written: list[str] = []

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        self.release.wait(30)
        self.written.append(event_type)


def test_a_failing_write_is_one_warning_and_disables_the_sink(caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    sink = RaisingSink().start()
    for number in range(1, 21):
        assert sink.listener("s1", EventType.GAME_FINISHED, game_finished(number, "1-0")) is None
    sink.close()
    assert sink.disabled and sink.reason == "writing a game.finished event failed: ConnectionError: upstream is down"
    assert sink.calls == 1
    assert sink_warnings(caplog) == [
        "raising sink disabled (writing a game.finished event failed: ConnectionError: upstream is down); "
        "sessions go on without it"
    ]


def test_a_full_queue_drops_records_with_a_counted_warning(caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    sink = BlockedSink(queue_size=3).start()
    for number in range(1, 21):  # the writer is stuck: the listener must not wait for it
        assert sink.listener("s1", EventType.GAME_FINISHED, game_finished(number, "1-0")) is None
    assert 16 <= sink.dropped <= 17  # 3 queued, perhaps 1 taken by the stuck writer
    warnings = sink_warnings(caplog)
    assert len(warnings) == 1 and "queue of 3 records is full" in warnings[0] and "dropped 1 record" in warnings[0]
    sink.release.set()
    sink.close()
    assert len(sink.written) == 20 - sink.dropped and not sink.disabled
    warnings = sink_warnings(caplog)
    assert len(warnings) == 2 and f"dropped {sink.dropped} record(s) in all" in warnings[1]


def test_make_sinks_follows_the_settings():
    assert make_sinks(Settings(_env_file=None)) == []
    sinks = make_sinks(Settings(_env_file=None, enable_wandb=True, enable_braintrust=True))
    assert [type(s) for s in sinks] == [WandbSink, BraintrustSink]
    assert all(s.project == "continuous-play" for s in sinks)


# -- a real session with failing sinks --------------------------------------------------------
@pytest.mark.asyncio
async def test_a_session_completes_with_sinks_that_fail_on_every_call(tmp_path, wandb_offline, caplog):
    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    settings = tiny_settings(tmp_path, enable_wandb=True)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sinks.db'}")
    await upgrade_engine(engine)
    orchestrator = Orchestrator(settings, session_factory(engine), InlinePool(1))
    failing = RaisingSink().attach(orchestrator)
    bad_wandb = WandbSink(settings={"mode": "no-such-mode"}).attach(orchestrator)
    sinks = attach_sinks(settings, orchestrator)  # ENABLE_WANDB: a real offline W&B sink
    assert [type(s) for s in sinks] == [WandbSink]
    done = asyncio.Event()
    seen: list[str] = []

    def watch(session_id: str, kind: str, data: dict[str, Any]) -> None:
        seen.append(kind)
        if kind == EventType.SESSION_STATE and data["state"] in FINAL:
            done.set()

    orchestrator.listeners.append(watch)
    await orchestrator.start()
    try:
        sid = await orchestrator.create_session(settings.session_config(max_games=4))
        await asyncio.wait_for(done.wait(), 240)
    finally:
        await orchestrator.close()
        await close_sinks([failing, bad_wandb, *sinks])
        await engine.dispose()

    assert seen.count(EventType.GAME_FINISHED) == 4 and seen[-1] == EventType.SESSION_STATE
    assert failing.disabled and failing.calls == 1 and bad_wandb.disabled
    assert not sinks[0].disabled, sinks[0].reason
    warnings = sink_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert any(w.startswith("raising sink disabled") for w in warnings)
    assert any(w.startswith("W&B sink disabled") for w in warnings)

    run = OfflineRun(offline_runs(wandb_offline, sid)[0])
    assert run.run.display_name == sid and run.config["max_games"] == 4 and run.config["chess_preset"] == "tiny"
    assert [games for games, _ in run.series("game/white_score")] == [1, 2, 3, 4]
    assert run.series("learning/total_loss") and run.series("eval/elo")
    assert run.summary["state"] == "completed" and run.exit_code == 0


@pytest.mark.asyncio
async def test_a_restored_session_gets_its_stored_config(tmp_path, wandb_offline):
    from service.storage import repositories as repo

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}")
    await upgrade_engine(engine)
    sessionmaker = session_factory(engine)
    async with sessionmaker() as db, db.begin():
        sid = (await repo.create_session(db, {"max_games": 9, "seed": 5}, 5)).id
    orchestrator = Orchestrator(Settings(_env_file=None, **TINY), sessionmaker, InlinePool(1))  # never started
    sink = WandbSink().attach(orchestrator)
    sink.listener(sid, EventType.METRICS_SNAPSHOT, SNAPSHOT)  # after a restart: no pending/running event first
    for _ in range(200):
        if not sink._tasks:
            break
        await asyncio.sleep(0.01)
    await sink.aclose()
    await engine.dispose()
    assert not sink.disabled, sink.reason
    run = OfflineRun(offline_runs(wandb_offline, sid)[0])
    assert run.config["max_games"] == 9 and run.config["seed"] == 5
    assert run.series("stats/simulations_per_second") == [(0, 850.0)]


# -- wiring: `serve`'s lifespan and the headless `run` -----------------------------------------
@pytest.mark.asyncio
async def test_the_app_lifespan_attaches_and_closes_the_enabled_sinks(tmp_path, wandb_offline, caplog, monkeypatch):
    from service.app import create_app

    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        checkpoint_dir=tmp_path / "checkpoints",
        report_dir=tmp_path / "reports",
        enable_wandb=True,
        enable_braintrust=True,
        api_keys=[],
        cors_origins=[],
    )
    app = create_app(settings, pool=InlinePool(1))
    async with app.router.lifespan_context(app):
        sinks = app.state.sinks
        assert [type(s) for s in sinks] == [WandbSink, BraintrustSink]
        listeners = app.state.orchestrator.listeners
        assert all(any(getattr(fn, "__self__", None) is s for fn in listeners) for s in sinks)
    assert all(s._thread is not None and not s._thread.is_alive() for s in sinks)
    assert not sinks[0].disabled
    # no key: Braintrust is off with one warning, and the service started and stopped anyway
    assert sinks[1].disabled and sink_warnings(caplog) == [
        "Braintrust sink disabled (start failed: RuntimeError: BRAINTRUST_API_KEY is not set); "
        "sessions go on without it"
    ]


@pytest.mark.asyncio
async def test_a_headless_run_writes_its_offline_wandb_run(tmp_path, wandb_offline, caplog):
    from service.headless import run_session

    caplog.set_level(logging.WARNING, logger=SINK_LOGGER)
    settings = app_settings(tmp_path, torch_threads=1, enable_prometheus=False, enable_wandb=True)
    config = settings.session_config(**{**TINY, "min_games_before_learning": 1000}, max_games=2, seed=3)
    session_id, _ = await run_session(settings, config)
    assert sink_warnings(caplog) == []
    runs = offline_runs(wandb_offline, session_id)
    assert len(runs) == 1
    run = OfflineRun(runs[0])
    assert run.config["max_games"] == 2 and run.config["seed"] == 3
    assert sorted(n for _, n in run.series("game/number")) == [1, 2]
    assert run.summary["state"] == "completed" and run.exit_code == 0
