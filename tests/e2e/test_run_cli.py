"""`continuous-play run` end to end: the real console script in a subprocess, a tiny session,
and everything it leaves behind (PGN, checkpoints, metrics, report); Ctrl-C, the duration
limit and bad settings.

`test_tiny_session_end_to_end` is also the seed plan's success criteria in one run (its
section 7.4): the session completes, plays >= 10 games, tracks an Elo (with its interval),
and ends with report.html and report.json that parse and agree with the games stored in
its database. (Memory growth: tests/performance/test_memory.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import chess
import chess.pgn
import pytest
import torch
from support.cli import CONSOLE_SCRIPT, clean_env, started
from support.tiny import tiny_env
from support.waiting import wait_for_sync

from service.engine import network
from service.storage import repositories as repo
from service.storage.database import create_engine, session_factory

pytestmark = pytest.mark.e2e

SEED = 3
MAX_GAMES = 10  # the seed plan's success criterion: >= 10 games
MAX_MOVES = 32
INTERVAL = 3
# TINY for MAX_GAMES games of <= MAX_MOVES plies, four in flight, with full searches of 8
# simulations, training batches of 32 and a checkpoint every INTERVAL games
RUN = tiny_env(
    SEED=SEED,
    MAX_GAMES=MAX_GAMES,
    SELFPLAY_PARALLEL_GAMES=4,
    MAX_MOVES_PER_GAME=MAX_MOVES,
    SELFPLAY_SIMULATIONS=8,
    LEARNING_BATCH_SIZE=32,
    CHECKPOINT_INTERVAL=INTERVAL,
    ENABLE_PROMETHEUS=False,
)


def run_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A clean environment with the tiny session's settings and `values`."""
    return clean_env(
        **{
            **RUN,
            "REPORT_DIR": str(tmp_path / "reports"),
            "CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "COLUMNS": "100",
            "NO_COLOR": "1",
            **values,
        }
    )


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        cwd=tmp_path,
        env=env or run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def session_dir(tmp_path: Path) -> Path:
    (out,) = list((tmp_path / "reports").iterdir())
    return out


def read_games(pgn_path: Path) -> list[chess.pgn.Game]:
    games = []
    with pgn_path.open() as f:
        while (game := chess.pgn.read_game(f)) is not None:
            games.append(game)
    return games


def check_game(game: chess.pgn.Game, max_plies: int) -> None:
    """A well-formed self-play game: legal moves, a result and its termination tags."""
    h = game.headers
    assert game.errors == [], game.errors
    assert h["Result"] in ("1-0", "0-1", "1/2-1/2")
    assert h["Adjudicated"] in ("true", "false")
    assert h["Termination"] in ("normal", "adjudication")
    detail = h["TerminationDetail"]
    board = game.board()
    plies = 0
    for move in game.mainline_moves():
        assert board.is_legal(move), (h["Round"], move)
        board.push(move)
        plies += 1
    assert 1 <= plies <= max_plies and int(h["PlyCount"]) == plies
    if detail == "move_cap":
        assert h["Adjudicated"] == "true" and h["Termination"] == "adjudication" and plies == max_plies
    else:
        assert h["Adjudicated"] == "false" and h["Termination"] == "normal"
    if detail == "checkmate":
        assert board.is_checkmate() and h["Result"] == ("0-1" if board.turn == chess.WHITE else "1-0")
    elif detail != "move_cap":
        assert h["Result"] == "1/2-1/2"


def checkpoint_games(n: int, every: int) -> list[int]:
    """Games at each checkpoint: gen 0, every `every` games, and the last game if not already."""
    return [0, *range(every, n + 1, every)] + ([n] if n % every else [])


class ReportPage(HTMLParser):
    """report.html as a parser sees it: the JSON of its `<script type="application/json">`
    blocks by id, and the text of elements by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str | None, str | None]] = []  # (tag, id, script type)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("meta", "link", "br", "img", "input", "hr"):
            self._open.append((tag, a.get("id"), a.get("type")))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        if not self._open:
            return
        tag, ident, kind = self._open[-1]
        if ident is not None and tag == "script" and kind == "application/json":
            self.scripts[ident] = self.scripts.get(ident, "") + data
        elif ident is not None:
            self.texts[ident] = self.texts.get(ident, "") + data


def stored_games(url: str, session_id: str) -> list[tuple[int, str, bool]]:
    """(number, result, adjudicated) of every stored game, through the storage repositories."""

    async def main():
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as db:
                rows, more = await repo.list_games(db, session_id, limit=500)
                assert more is None
                return [(g.number, g.result, g.adjudicated) for g in rows]
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_tiny_session_end_to_end(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cp.db'}"
    proc = run_cli(tmp_path, "run", "--quiet", env=run_env(tmp_path, DATABASE_URL=url))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    out = session_dir(tmp_path)
    sid = out.name
    assert sid in proc.stdout and f"{MAX_GAMES} games" in proc.stdout

    # games.pgn: exactly MAX_GAMES parseable games numbered 1..N
    games = read_games(out / "games.pgn")
    assert len(games) == MAX_GAMES
    for game in games:
        check_game(game, MAX_MOVES)
    assert sorted(int(g.headers["Round"]) for g in games) == list(range(1, MAX_GAMES + 1))

    # checkpoints: gen 0 = build_network(preset, seed), one per interval, the final one
    expected = checkpoint_games(MAX_GAMES, INTERVAL)
    ckpt = tmp_path / "checkpoints" / sid
    weights = sorted(ckpt.glob("gen-*.safetensors"))
    assert [p.name for p in weights] == [f"gen-{g:04d}.safetensors" for g in range(len(expected))]
    for gen, path in enumerate(weights):
        net, header = network.load_weights(path)
        assert header["generation"] == gen and header["seed"] == SEED and header["preset"] == "tiny"
        assert header["games"] == expected[gen]
        state = torch.load(ckpt / f"gen-{gen:04d}.state.pt", weights_only=True)
        assert state["generation"] == gen and state["games"] == expected[gen]
    gen0, _ = network.load_weights(weights[0])
    fresh = network.build_network("tiny", SEED).state_dict()
    assert gen0.state_dict().keys() == fresh.keys()
    assert all(torch.equal(gen0.state_dict()[k], v) for k, v in fresh.items())
    last, _ = network.load_weights(weights[-1])
    assert not all(torch.equal(last.state_dict()[k], v) for k, v in fresh.items()), "learning changed nothing"

    # metrics.json
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["session_id"] == sid
    assert len(metrics["games"]) == MAX_GAMES
    assert [row["games"] for row in metrics["learning"]] == list(range(2, MAX_GAMES + 1, 2))
    assert metrics["stats"] and all("simulations_per_second" in s for s in metrics["stats"])
    assert [c["games"] for c in metrics["checkpoints"]] == expected

    # report.json
    report = json.loads((out / "report.json").read_text())
    assert report["session_id"] == sid and report["stop_reason"] == "max_games" and report["error"] is None
    card = report["scorecard"]
    res = card["results"]
    assert card["games"] == MAX_GAMES
    assert res["white_wins"] + res["draws"] + res["black_wins"] == MAX_GAMES
    assert [res["white_wins"], res["draws"], res["black_wins"]] == [
        sum(g.headers["Result"] == r for g in games) for r in ("1-0", "1/2-1/2", "0-1")
    ]
    assert res["by_colour"]["white"]["wins"] == res["by_colour"]["black"]["losses"] == res["white_wins"]
    assert res["by_colour"]["black"]["wins"] == res["by_colour"]["white"]["losses"] == res["black_wins"]
    assert card["adjudicated"] == sum(g.headers["Adjudicated"] == "true" for g in games)
    assert report["losses"]["phases"] == MAX_GAMES // 2
    assert report["losses"]["steps"] == metrics["learning"][-1]["step"] > 0
    assert {"first", "last", "min"} <= set(report["losses"]["total_loss"])
    tp = report["throughput"]
    assert tp["elapsed_s"] > 0 and tp["games_per_minute"] > 0 and tp["learning_steps_per_minute"] > 0
    assert [c["generation"] for c in report["checkpoints"]] == list(range(len(expected)))
    for c in report["checkpoints"]:
        assert hashlib.sha256(Path(c["path"]).read_bytes()).hexdigest() == c["sha256"]
    man = report["manifest"]
    assert man["seed"] == SEED
    assert man["config"]["max_games"] == MAX_GAMES and man["config"]["chess_preset"] == "tiny"
    assert man["config"]["max_moves_per_game"] == MAX_MOVES
    assert man["packages"]["torch"] == torch.__version__
    assert "git_revision" in man and man["torch_threads"] == 1
    assert man["inference"]["backend"] == man["config"]["inference_backend"] == "torch"  # TINY's, stored via stats

    # the seed's success criteria: completed, >= 10 games, an Elo tracked with its interval
    assert report["state"] == "completed" and card["games"] >= 10
    elo = report["elo"]
    assert elo is not None and elo["low"] <= elo["rating"] <= elo["high"], elo

    # ... and the reports agree with the database: games 1..N, the same W/D/L and adjudications
    games_db = stored_games(url, sid)
    assert [n for n, _, _ in games_db] == list(range(1, MAX_GAMES + 1))
    assert [res["white_wins"], res["draws"], res["black_wins"]] == [
        sum(r == want for _, r, _ in games_db) for want in ("1-0", "1/2-1/2", "0-1")
    ]
    assert card["adjudicated"] == sum(a for _, _, a in games_db)
    assert [(g["number"], g["result"]) for g in metrics["games"]] == [(n, r) for n, r, _ in games_db]

    # report.html parses, names the session, and embeds the same report and scorecard
    page = ReportPage()
    page.feed((out / "report.html").read_text())
    page.close()
    assert page.texts.get("session-id", "").strip() == sid
    embedded = json.loads(page.scripts["report-data"])
    assert embedded["session_id"] == sid and embedded["state"] == "completed"
    assert embedded["scorecard"] == card and embedded["elo"] == elo
    assert "chart-data" in page.scripts and json.loads(page.scripts["chart-data"])


def test_ctrl_c_stops_cleanly_and_still_reports(tmp_path):
    env = run_env(tmp_path, MAX_GAMES="0", SESSION_DURATION_MIN="60")
    with started(tmp_path, "run", "--quiet", env=env) as proc:

        def first_game() -> bool:
            assert proc.poll() is None, f"run ended by itself: {proc.returncode}"
            pgns = list((tmp_path / "reports").glob("*/games.pgn"))
            return bool(pgns) and "[Round " in pgns[0].read_text()

        wait_for_sync(first_game, timeout=120, interval=0.1, what="a first game")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    out = session_dir(tmp_path)
    report = json.loads((out / "report.json").read_text())
    assert report["stop_reason"] == "stopped" and report["error"] is None
    games = read_games(out / "games.pgn")
    assert len(games) == report["scorecard"]["games"] >= 1
    for game in games:
        check_game(game, MAX_MOVES)
    weights = sorted((tmp_path / "checkpoints" / out.name).glob("gen-*.safetensors"))
    assert len(weights) >= 2  # generation 0 and the final checkpoint
    _, header = network.load_weights(weights[-1])
    assert header["games"] == len(games) and header["generation"] == len(weights) - 1
    assert report["checkpoints"][-1]["games"] == len(games)


def test_duration_limit_stops_the_session(tmp_path):
    env = run_env(tmp_path, MAX_GAMES="0", SESSION_DURATION_MIN="0.05")  # 3 s
    proc = run_cli(tmp_path, "run", "--quiet", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = session_dir(tmp_path)
    report = json.loads((out / "report.json").read_text())
    assert report["stop_reason"] == "duration" and report["error"] is None
    assert len(read_games(out / "games.pgn")) == report["scorecard"]["games"]
    # It stopped on the session's own clock (MAX_GAMES=0: no game limit), not before: the
    # session ran its SESSION_DURATION_MIN (stored start to end; 10 ms for timestamp rounding).
    # (How much longer it took is not asserted: bench/ material. The newest checkpoint's state
    # file need not have reached it: when the last game fell on CHECKPOINT_INTERVAL no final
    # checkpoint is written.)
    duration = 0.05 * 60
    assert report["throughput"]["elapsed_s"] >= duration - 0.01, report["throughput"]
    last = report["checkpoints"][-1]
    if report["scorecard"]["games"]:
        assert last["games"] == report["scorecard"]["games"]  # the games played are all in it


@pytest.mark.parametrize("how", ["--set", "environment"])
def test_bad_max_games_is_one_line_and_exit_2(tmp_path, how):
    if how == "--set":
        proc = run_cli(tmp_path, "run", "--set", "MAX_GAMES=-1", timeout=60)
    else:
        proc = run_cli(tmp_path, "run", env=run_env(tmp_path, MAX_GAMES="abc"), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MAX_GAMES" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_unknown_setting_is_refused(tmp_path):
    proc = run_cli(tmp_path, "run", "--set", "NOPE=1", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "NOPE" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
