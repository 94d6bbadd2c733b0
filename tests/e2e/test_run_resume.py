"""`continuous-play run --resume ID` end to end: the real console script runs a tiny session
on SQLite with the default process pool, is killed with SIGKILL mid-session (a crash: no
checkpoint, no final state; the session stays `running`), and `run --resume ID` continues it
to its end: new games numbered from the highest stored + 1 (games 1..MAX_GAMES each stored
once, the games stored before the crash untouched), checkpoint generations without a gap,
and its report."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

import chess.pgn
import psutil
import pytest
from support.cli import CONSOLE_SCRIPT, clean_env, started
from support.tiny import tiny_env
from support.waiting import wait_for_sync

from service.event_types import EventType

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

MAX_GAMES = 10
# TINY for MAX_GAMES games, two in flight, with full searches of 8 simulations and training
# batches of 32
RUN = tiny_env(
    SEED=6,
    MAX_GAMES=MAX_GAMES,
    SELFPLAY_PARALLEL_GAMES=2,
    SELFPLAY_SIMULATIONS=8,
    LEARNING_BATCH_SIZE=32,
    ENABLE_PROMETHEUS=False,
)


def run_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        **RUN,
        REPORT_DIR=str(tmp_path / "reports"),
        CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cp.db'}",
        COLUMNS="100",
        NO_COLOR="1",
    )


def resume(tmp_path: Path, session_id: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`continuous-play run --resume session_id --quiet`, to its end."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "run", "--resume", session_id, "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def query(db: Path, sql: str) -> list[tuple]:
    """Rows of `sql` on the run's SQLite database (read while the run writes: WAL)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []


def stored_games(db: Path) -> list[tuple[int, str]]:
    return query(db, "SELECT number, moves FROM games ORDER BY number")


def stored_generations(db: Path) -> list[int]:
    return [g for (g,) in query(db, "SELECT generation FROM checkpoints ORDER BY generation")]


def test_run_resume_continues_a_crashed_session_to_its_end(tmp_path):
    db = tmp_path / "cp.db"
    env = run_env(tmp_path)
    family: list[psutil.Process] = []
    try:
        with started(tmp_path, "run", "--quiet", env=env) as proc:

            def crash_point() -> bool:  # a game stored after its first checkpoint past generation 0
                assert proc.poll() is None, f"run ended by itself: {proc.returncode} {proc.stderr.read()[-3000:]}"
                return len(stored_games(db)) >= 3 and len(stored_generations(db)) >= 2

            wait_for_sync(crash_point, timeout=180, what="3 games and a checkpoint past generation 0")
            family = psutil.Process(proc.pid).children(recursive=True)  # its worker processes
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
    finally:
        # its workers notice that their parent is gone and end; never leave one behind
        _, alive = psutil.wait_procs(family, timeout=60)
        for p in alive:
            p.kill()
    assert not alive, f"worker processes outlived the killed run: {[p.pid for p in alive]}"

    ((sid, state),) = query(db, "SELECT id, state FROM sessions")
    before = stored_games(db)
    assert state == "running", "the crash left no final state"
    assert [n for n, _ in before] == list(range(1, len(before) + 1)) and 1 <= len(before) < MAX_GAMES
    generations_before = stored_generations(db)

    resumed = resume(tmp_path, sid, env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert f"session {sid} completed: {MAX_GAMES} games" in resumed.stdout, resumed.stdout[-2000:]

    after = stored_games(db)
    assert [n for n, _ in after] == list(range(1, MAX_GAMES + 1)), "games not 1..MAX_GAMES once each"
    assert after[: len(before)] == before, "games stored before the crash changed"
    assert query(db, "SELECT state, stop_reason, games_done FROM sessions") == [("completed", "max_games", MAX_GAMES)]
    generations = stored_generations(db)
    assert generations == list(range(len(generations))) and generations[: len(generations_before)] == generations_before
    assert len(generations) > len(generations_before), "the resumed run stored no checkpoint"
    sql = f"SELECT json_extract(data, '$.number') FROM events WHERE type = '{EventType.GAME_FINISHED}' ORDER BY seq"
    numbers = [e for (e,) in query(db, sql)]
    assert numbers == list(range(1, MAX_GAMES + 1)), "one game.finished event per game, in order"

    out = tmp_path / "reports" / sid
    report = json.loads((out / "report.json").read_text())
    assert report["state"] == "completed" and report["scorecard"]["games"] == MAX_GAMES
    rounds = []
    with (out / "games.pgn").open() as f:
        while (game := chess.pgn.read_game(f)) is not None:
            rounds.append(int(game.headers["Round"]))
    assert rounds == list(range(1, MAX_GAMES + 1))


def test_run_resume_beside_a_live_owner_is_refused_in_one_line(tmp_path):
    """The issue's reproduction: `run --resume ID` on the database of a process that runs ID
    (here a first `run`) must not play it too; it says who owns it, in one line, exit 2."""
    db = tmp_path / "cp.db"
    env = run_env(tmp_path) | {"MAX_GAMES": "200"}
    with started(tmp_path, "run", "--quiet", env=env) as owner:

        def a_game_stored() -> bool:
            if stored_games(db):
                return True
            assert owner.poll() is None, owner.stderr.read()[-3000:]
            return False

        wait_for_sync(a_game_stored, timeout=180, what="a game stored")
        ((sid,),) = query(db, "SELECT id FROM sessions")
        second = resume(tmp_path, sid, env, timeout=120)
        assert second.returncode == 2, (second.returncode, second.stderr[-3000:])
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
        assert sid in lines[0] and "run by another process" in lines[0], lines[0]
        assert owner.poll() is None, "the owner was disturbed"
        owner.send_signal(signal.SIGINT)  # the owner stops its session as usual
        out, err = owner.communicate(timeout=120)
    assert owner.returncode == 0, err[-3000:]
    assert query(db, "SELECT state, owner FROM sessions") == [("stopped", None)]
    numbers = [n for n, _ in stored_games(db)]
    assert numbers == list(range(1, len(numbers) + 1)), "each game stored once, by the owner alone"
