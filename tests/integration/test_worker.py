"""The session worker inline: self-play, replay buffer, learning and checkpoints together.

Tiny network, a few simulations, short games: each session takes a few seconds on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import pickle
from pathlib import Path

import chess
import numpy as np
import pytest
import torch
from support.tiny import TINY

from service.config import SessionConfig, Settings, load_settings
from service.engine import arena, encoding, network
from service.engine.openings import OPENINGS
from service.engine.training import learning_rate_after, steps_for
from service.event_types import EventType
from service.headless import run_session
from service.sessions.worker import Commands, SessionWorker, WorkerSpec

pytestmark = pytest.mark.integration

# TINY for 6 games with full searches of 8 simulations, training batches of 32 and a
# checkpoint every 3 games
WORKER = {
    **TINY,
    "seed": 11,
    "max_games": 6,
    "selfplay_simulations": 8,
    "learning_batch_size": 32,
    "checkpoint_interval": 3,
    "session_duration_min": 10,
}


def worker_config(**overrides) -> SessionConfig:
    return SessionConfig(**{**WORKER, **overrides})


@pytest.fixture(autouse=True)
def _torch_threads():
    """The worker sets torch's thread count for the whole process: put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No setting from the caller's environment or a .env file leaks into Settings."""
    for key in list(os.environ):
        if key.lower() in Settings.model_fields:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def probe_planes() -> np.ndarray:
    boards = [chess.Board()]
    for uci in ("e2e4", "e7e5", "g1f3", "b8c6"):
        board = boards[-1].copy()
        board.push_uci(uci)
        boards.append(board)
    return encoding.encode_boards(boards)


class Recorder:
    """An inline worker's emit: keeps every message, and checks the buffer per game."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.worker: SessionWorker | None = None
        self.buffer_sizes: list[tuple[int, int]] = []  # (buffer size after the game, searched positions)
        self.outputs: list[tuple[str, int, tuple[np.ndarray, ...]]] = []  # evaluator outputs over the session
        self.planes = probe_planes()

    def __call__(self, kind: str, data: dict) -> None:
        self.messages.append((kind, data))
        if kind == "game":
            self.buffer_sizes.append((len(self.worker.buffer), len(data["full_search"])))
        if kind in ("game", "learning"):
            self.outputs.append((kind, len(self.of("game")), self.worker.evaluator.evaluate(self.planes)))

    def of(self, kind: str) -> list[dict]:
        return [d for k, d in self.messages if k == kind]


def run_worker(tmp_path: Path, cfg: dict, **spec_kw) -> tuple[Recorder, SessionWorker, dict]:
    rec = Recorder()
    should_stop = spec_kw.pop("should_stop", lambda: False)
    spec = WorkerSpec(session_id="itest", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1, **spec_kw)
    worker = SessionWorker(spec, rec, should_stop)
    rec.worker = worker
    rec.initial = worker.evaluator.evaluate(rec.planes)
    summary = worker.run()
    return rec, worker, summary


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    threads = torch.get_num_threads()
    try:
        tmp = tmp_path_factory.mktemp("worker")
        cfg = worker_config(learning_rate_decay_positions=400)  # the rate falls over the session's phases
        rec, worker, summary = run_worker(tmp, cfg)
        yield cfg, rec, worker, summary, tmp
    finally:
        torch.set_num_threads(threads)


def test_games_are_numbered_once_each(session):
    cfg, rec, _, summary, _ = session
    games = rec.of("game")
    assert len(games) == cfg.max_games
    assert sorted(g["number"] for g in games) == list(range(1, cfg.max_games + 1))
    for g in games:
        assert g["result"] in ("1-0", "0-1", "1/2-1/2")
        assert 1 <= g["plies"] == len(g["moves"]) <= cfg.max_moves_per_game
        assert len(g["policies"]) == len(g["root_values"]) == len(g["full_search"]) == g["plies"]
        assert g["adjudicated"] == (g["termination"] == "move_cap")
        board = chess.Board()
        for uci, policy in zip(g["moves"], g["policies"]):
            legal = list(board.legal_moves)
            assert len(policy) == len(legal)
            assert abs(float(np.sum(policy.astype(np.float32))) - 1.0) < 1e-2
            move = chess.Move.from_uci(uci)
            assert move in legal
            board.push(move)
        if g["termination"] == "checkmate":
            assert board.is_checkmate()
    assert summary["games"] == cfg.max_games


def test_buffer_grows_by_every_searched_position(session):
    _, rec, worker, _, _ = session
    size = 0
    for after, positions in rec.buffer_sizes:
        size += positions
        assert after == size
    assert len(worker.buffer) == size > 0


def test_learning_phases_when_due(session):
    cfg, rec, worker, summary, _ = session
    expected = []  # (games, steps) the worker should learn at, replayed from its messages
    games = pending = 0
    for kind, data in rec.messages:
        if kind == "game":
            games += 1
            pending += len(data["full_search"])  # every position is a (value) target
            if games >= cfg.min_games_before_learning and games % cfg.learn_every_n_games == 0 and pending:
                expected.append((games, steps_for(pending, cfg.train_samples_per_position, cfg.learning_batch_size)))
                pending = 0
    phases = rec.of("learning")
    assert [(p["games"], p["steps"]) for p in phases] == expected
    assert [p["games"] for p in phases] == [2, 4, 6]
    step = learned = 0
    for p in phases:
        step += p["steps"]
        assert p["step"] == step
        assert p["samples"] == p["steps"] * cfg.learning_batch_size
        for key in ("policy_loss", "value_loss", "total_loss", "grad_norm", "policy_entropy", "seconds"):
            assert math.isfinite(p[key]), (key, p)
        assert p["policy_loss"] > 0 and p["value_loss"] > 0 and p["policy_entropy"] >= 0
        aux = cfg.aux_material_weight * p["aux_loss"]  # the training-only material head's share
        assert p["total_loss"] == pytest.approx(p["policy_loss"] + p["value_loss"] + aux, rel=1e-5)
        assert (p["aux_loss"] > 0) == (cfg.aux_material_weight > 0)
        assert 0 <= p["material_share"] <= 1
        lr = learning_rate_after(learned, cfg.learning_rate, cfg.learning_rate_decay_positions, cfg.learning_rate_floor)
        assert p["lr"] == pytest.approx(lr)  # from the positions learned before the phase
        learned = p["positions_learned"]
    assert phases[-1]["lr"] < phases[0]["lr"] == pytest.approx(cfg.learning_rate)
    assert summary["training_steps"] == worker.trainer.step == step


def test_learning_changes_the_selfplay_network(session):
    _, rec, _, _, _ = session
    current = rec.initial
    changed = 0
    for kind, games, outputs in rec.outputs:
        same = all(np.array_equal(a, b) for a, b in zip(outputs, current))
        if kind == "game":
            assert same, f"the self-play net changed between learning phases (game {games})"
        else:
            changed += not any(np.allclose(a, b, atol=1e-6) for a, b in zip(outputs[:2], current[:2]))
            current = outputs
    assert changed == len(rec.of("learning")) == 3


def test_checkpoints_gen0_then_every_interval_then_final(session):
    cfg, rec, _, summary, tmp = session
    points = rec.of("checkpoint")
    n, every = cfg.max_games, cfg.checkpoint_interval
    games = [0, *range(every, n + 1, every)] + ([n] if n % every else [])
    assert [(c["generation"], c["games"]) for c in points] == list(enumerate(games))
    assert rec.messages[0][0] == "checkpoint"  # generation 0 before any game
    for c in points:
        path = Path(c["path"])
        assert path.parent == tmp / "ckpt" and Path(c["state_path"]).is_file()
        net, header = network.load_weights(path)
        assert header["generation"] == c["generation"] and header["games"] == c["games"]
    gen0, _ = network.load_weights(points[0]["path"])
    fresh = network.build_network(cfg.chess_preset, cfg.seed).state_dict()
    assert all(torch.equal(gen0.state_dict()[k], v) for k, v in fresh.items())
    assert summary["generation"] == len(points)


def test_finished_summary_comes_last(session):
    cfg, rec, _, summary, _ = session
    kind, data = rec.messages[-1]
    assert kind == "finished" and data == summary
    assert summary["reason"] == "max_games"
    assert summary["dropped_in_flight"] == 0
    assert [k for k, _ in rec.messages].count("finished") == 1
    stats = rec.of("stats")
    assert stats and all(s["simulations_per_second"] >= 0 and s["rss_mb"] > 0 for s in stats)


def test_should_stop_stops_with_reason_stopped(tmp_path):
    seen = []

    def should_stop() -> bool:
        return len(seen) >= 2

    cfg = worker_config(max_games=0, checkpoint_interval=100, min_games_before_learning=100)
    rec = Recorder()

    def emit(kind, data):
        if kind == "game":
            seen.append(data["number"])
        rec(kind, data)

    spec = WorkerSpec(session_id="stop", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1)
    worker = SessionWorker(spec, emit, should_stop)
    rec.worker = worker
    summary = worker.run()
    assert summary["reason"] == "stopped"
    assert summary["games"] == len(seen) >= 2
    assert rec.messages[-1] == ("finished", summary)
    points = rec.of("checkpoint")
    assert [c["generation"] for c in points] == [0, 1]  # gen 0, then the final one
    assert points[-1]["games"] == summary["games"]


def test_a_resumed_session_keeps_the_time_it_already_used(tmp_path):
    """SESSION_DURATION_MIN counts the whole session: the resumed worker's deadline comes from
    the session time stored in its checkpoint (`elapsed_s`), not from a fresh start. Resumed
    from a checkpoint whose session had used all of its 10 minutes, it plays no game and stops
    with reason "duration"; its final checkpoint carries the time on (>= 600 s). A worker that
    ignored the stored time would play a game (and be stopped by `should_stop`: "stopped")."""
    cfg = worker_config(max_games=0, session_duration_min=10, checkpoint_interval=100, min_games_before_learning=100)
    seen = []
    first = SessionWorker(
        WorkerSpec(session_id="t", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1),
        lambda k, d: seen.append((k, d)),
        lambda: sum(k == "game" for k, _ in seen) >= 1,
    )
    assert first.run()["reason"] == "stopped"
    state_path = Path([d for k, d in seen if k == "checkpoint"][-1]["state_path"])
    state = torch.load(state_path, weights_only=True)
    assert state["elapsed_s"] > 0  # the session's own time is stored with its checkpoint
    state["elapsed_s"] = 600.0  # as if the session had used its 10 minutes before the restart
    torch.save(state, state_path)
    games = sum(k == "game" for k, _ in seen)
    after = []
    resumed = SessionWorker(
        WorkerSpec(
            session_id="t",
            config=cfg,
            checkpoint_dir=tmp_path / "ckpt",
            torch_threads=1,
            first_game=games + 1,
            resume_state=state_path,
        ),
        lambda k, d: after.append((k, d)),
        lambda: any(k == "game" for k, _ in after),
    )
    summary = resumed.run()
    assert summary["reason"] == "duration", summary
    assert not [d for k, d in after if k == "game"] and summary["games"] == games
    final = [d for k, d in after if k == "checkpoint"]
    assert final, after
    assert torch.load(final[-1]["state_path"], weights_only=True)["elapsed_s"] >= 600.0


def test_run_session_stores_the_session_and_writes_its_files(clean_env, tmp_path):
    """The headless path: orchestrator, inline worker, SQLite storage, then the three files."""
    settings = load_settings(
        report_dir=tmp_path / "reports",
        checkpoint_dir=tmp_path / "checkpoints",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cp.db'}",
        worker_backend="inline",
        enable_prometheus=False,
    )
    config = settings.session_config(
        **{**WORKER, "max_games": 4, "selfplay_parallel_games": 2, "max_moves_per_game": 16}
    )
    kinds = []
    sid, report = asyncio.run(run_session(settings, config, on_event=lambda k, d: kinds.append(k)))
    out = tmp_path / "reports" / sid
    assert {p.name for p in out.iterdir()} >= {"games.pgn", "metrics.json", "report.json"}
    assert out.joinpath("games.pgn").read_text().count("[Round ") == 4
    metrics = json.loads(out.joinpath("metrics.json").read_text())
    assert [g["number"] for g in metrics["games"]] == [1, 2, 3, 4]
    assert report == json.loads(out.joinpath("report.json").read_text())
    assert report["state"] == "completed" and report["stop_reason"] == "max_games" and report["error"] is None
    assert report["scorecard"]["games"] == 4
    assert kinds.count(EventType.GAME_FINISHED) == 4 and kinds[-1] == EventType.SESSION_STATE
    assert (tmp_path / "checkpoints" / sid / "gen-0000.safetensors").is_file()
    # the end-of-session evaluation: the newest checkpoint against random and against gen0
    assert {(e["opponent"]) for e in report["evaluations"]} == {"random", "gen0"}
    assert {r["player"] for r in report["rating_list"]} >= {"gen0", "random"}
    assert report["elo"]["low"] <= report["elo"]["rating"] <= report["elo"]["high"]
    names = {i["name"] for i in report["analysis"]}
    assert {"elo_progression", "win_rate_trend", "high_confidence_moves", "value_calibration"} <= names
    assert all(i["verdict"] for i in report["analysis"])


def test_gating_keeps_self_play_on_the_last_accepted_net(tmp_path):
    """GATING=true: learning changes the training net, but self-play keeps generation 0 until
    a checkpoint wins its SPRT (two-game matches never reach a verdict)."""
    cfg = worker_config(
        max_games=6,
        gating=True,
        eval_interval_games=2,
        eval_games=2,
        min_games_before_learning=2,
        learn_every_n_games=2,
    )
    rec, worker, summary = run_worker(tmp_path, cfg)
    assert summary["reason"] == "max_games" and rec.of("learning")
    verdicts = [e["sprt"]["state"] for e in rec.of("evaluation") if "sprt" in e]
    assert verdicts and "accepted" not in verdicts
    gen0 = network.Evaluator(network.build_network(cfg.chess_preset, cfg.seed)).evaluate(rec.planes)
    trained = network.Evaluator(worker.net).evaluate(rec.planes)
    self_play = worker.evaluator.evaluate(rec.planes)
    np.testing.assert_allclose(self_play[0], gen0[0], atol=1e-5)
    assert not np.allclose(trained[0], gen0[0], atol=1e-5)


def test_evaluation_plays_by_fixed_rules_whatever_the_self_play_cap(tmp_path, monkeypatch):
    """Self-play's cap and margin are training levers; matches keep arena's yardstick, and
    every result names it."""
    seen = []
    real = arena.play_match

    def spy(*args, **kwargs):  # the real match, its rules recorded
        seen.append({k: kwargs.get(k) for k in ("max_plies", "adjudication", "margin", "adjudicator")})
        result = real(*args, **kwargs)
        seen[-1]["plies"] = [len(g.moves) - len(OPENINGS[g.opening].split()) for g in result.games]
        return result

    monkeypatch.setattr(arena, "play_match", spy)
    cfg = worker_config(
        max_games=2,
        max_moves_per_game=6,
        adjudication="none",
        adjudication_margin=1,
        eval_games=4,
        eval_opponents=["greedy"],
        min_games_before_learning=100,
    )
    rec = Recorder()
    rec.worker = SessionWorker(
        WorkerSpec(session_id="s", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1), rec
    )
    rec.worker.run()
    assert all(len(g["moves"]) <= 6 for g in rec.of("game"))
    # arena's fixed cap and margin; the cap judged by Stockfish (EVAL_ADJUDICATION=auto, installed)
    assert seen and all((s["max_plies"], s["margin"]) == (arena.EVAL_MAX_PLIES, 3) for s in seen)
    assert all(s["adjudication"] == "stockfish" and s["adjudicator"] is not None for s in seen)
    assert all(e["yardstick"] == "cap150/stockfish300cp@d10" for e in rec.of("evaluation"))
    assert max(p for s in seen for p in s["plies"]) > 6  # not the session's 6-ply cap
    assert all(p <= arena.EVAL_MAX_PLIES for s in seen for p in s["plies"])
    assert rec.of("evaluation")[0]["opponent"] == "greedy"


def test_a_stop_during_an_evaluation_match_ends_it_at_once(tmp_path, monkeypatch):
    """Evaluation polls the worker's commands between steps: a stop does not wait for the match.
    The stop arrives at the match's 5th step (of a 40-game match); the match ends at that very
    step (no step after it) and reports nothing."""
    cfg = worker_config(
        max_games=0,
        session_duration_min=10,
        eval_interval_games=2,
        eval_games=40,
        eval_opponents=["gen0"],
        eval_simulations=16,
        max_moves_per_game=200,
        min_games_before_learning=100,
    )
    messages = []
    matches: list[dict] = []  # per match: steps polled, the step the stop was seen at, its result
    real = arena.play_match

    def watched(*args, should_stop, **kwargs):
        match = {"polls": 0, "stopped_at": None}
        matches.append(match)

        def poll() -> bool:
            match["polls"] += 1
            stop = should_stop()
            if stop and match["stopped_at"] is None:
                match["stopped_at"] = match["polls"]
            return stop

        match["result"] = real(*args, should_stop=poll, **kwargs)
        return match["result"]

    monkeypatch.setattr(arena, "play_match", watched)

    def get(timeout):  # "stop" at the 5th step of the first match
        return "stop" if matches and matches[0]["polls"] >= 5 else None

    worker = SessionWorker(
        WorkerSpec(session_id="s", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1),
        lambda k, d: messages.append((k, d)),
        commands=Commands(get),
    )
    summary = worker.run()
    assert summary["reason"] == "stopped"
    assert len(matches) == 1, matches
    assert matches[0]["stopped_at"] == matches[0]["polls"] == 5, matches  # ended at the step that saw it
    assert matches[0]["result"] is None
    assert not [d for k, d in messages if k == "evaluation"]  # the interrupted match reports nothing


class _Planted:
    """An object whose unpickling creates a file: what a tampered state file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_state_file_runs_no_code_when_a_session_resumes(tmp_path):
    """Issue #21 item 7: state files load with torch.load(weights_only=True). One that holds
    anything but tensors, numbers, strings, lists and dicts is refused, and what it carries is
    never run; the worker's own state files load that way (see the test above)."""
    cfg = worker_config(max_games=0, checkpoint_interval=100, min_games_before_learning=100)
    seen = []
    first = SessionWorker(
        WorkerSpec(session_id="p", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1),
        lambda k, d: seen.append((k, d)),
        lambda: sum(k == "game" for k, _ in seen) >= 1,
    )
    first.run()
    state_path = Path([d for k, d in seen if k == "checkpoint"][-1]["state_path"])
    state = torch.load(state_path, weights_only=True)
    marker = tmp_path / "ran"
    state["planted"] = _Planted(marker)
    torch.save(state, state_path)
    resumed = WorkerSpec(
        session_id="p",
        config=cfg,
        checkpoint_dir=tmp_path / "ckpt",
        torch_threads=1,
        first_game=2,
        resume_state=state_path,
    )
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
        SessionWorker(resumed, lambda k, d: None, lambda: True).run()
    assert not marker.exists(), "the state file ran code"


def test_checkpoint_files_are_on_disk_before_the_checkpoint_is_reported(tmp_path, monkeypatch):
    """Issue #21 item 7: each checkpoint file, and the folder that names it, is fsync'd before
    the worker reports the checkpoint (which the orchestrator then records with its sha256)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    cfg = worker_config(max_games=1, checkpoint_interval=100, min_games_before_learning=100)
    reported: list[tuple[dict, list[str]]] = []

    def emit(kind, data):
        if kind == "checkpoint":
            reported.append((data, list(synced)))

    SessionWorker(WorkerSpec(session_id="f", config=cfg, checkpoint_dir=tmp_path / "ckpt", torch_threads=1), emit).run()
    assert reported
    folder = str((tmp_path / "ckpt").resolve())
    for data, synced_before in reported:
        weights, state = Path(data["path"]).name, Path(data["state_path"]).name
        # fsync'd under their temporary names, before the rename; then the folder
        assert any(Path(p).name.startswith(weights) and p.endswith(".tmp") for p in synced_before), synced_before
        assert any(Path(p).name.startswith(state) and p.endswith(".tmp") for p in synced_before), synced_before
        assert synced_before.count(folder) >= 2, synced_before


def test_auto_resolves_the_inference_backend_once_and_reports_it(tmp_path):
    """INFERENCE_BACKEND=auto: the worker probes (once: its CHECKPOINT_DIR keeps the choice),
    evaluates with the chosen backend, hands it on resolved (actors, evaluations), and
    reports it in its stats (the session's metrics, the report's manifest)."""
    from service.engine import inference

    rec, worker, _ = run_worker(tmp_path, worker_config(max_games=2, inference_backend="auto"))
    chosen = worker.cfg.inference_backend
    assert chosen in inference.available() and worker.evaluator.backend == chosen.value
    stats = rec.of("stats")[-1]["inference"]
    assert stats["backend"] == chosen.value and stats["requested"] == "auto"
    assert stats["source"] in ("probe", "only")  # only: a machine where one backend runs
    if stats["source"] == "probe":
        assert (tmp_path / inference.PROBE_FILE).is_file()  # beside the session folders
        spec = WorkerSpec(
            session_id="again", config=worker_config(inference_backend="auto"), checkpoint_dir=tmp_path / "b"
        )
        again = SessionWorker(spec, lambda kind, data: None)
        assert again.inference.source == "cache" and again.cfg.inference_backend == chosen


@pytest.mark.parametrize("backend", ["onnxruntime", "torch-bf16"])
def test_a_session_plays_and_learns_on_another_backend(tmp_path, backend):
    """Self-play, learning phases and the refresh after each of them on a non-default backend:
    the self-play net changes at each learning phase and only then."""
    from service.engine import inference

    reason = inference.unavailable(inference.InferenceBackend(backend))
    if reason is not None:
        pytest.skip(f"{backend}: {reason}")
    rec, worker, summary = run_worker(tmp_path, worker_config(max_games=4, inference_backend=backend))
    assert worker.evaluator.backend == backend and summary["games"] == 4
    assert rec.of("stats")[-1]["inference"] == {
        "backend": backend,
        "requested": backend,
        "source": "setting",
        "positions_per_s": {},
    }
    current, changed = rec.initial, 0
    for kind, games, outputs in rec.outputs:
        same = all(np.array_equal(a, b) for a, b in zip(outputs, current))
        if kind == "game":
            assert same, f"the self-play net changed between learning phases (game {games})"
        else:
            changed += not same
            current = outputs
    assert changed == len(rec.of("learning")) == 2
