"""`continuous-play report --input DIR --output DIR` and `python -m service.reports`, as
subprocesses, on a run's directory written from a stored session: the page and copies of
the run's files on success; one line on stderr and exit code 2 on bad input."""

from __future__ import annotations

import asyncio
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import chess
import chess.pgn
import numpy as np
import pytest
from support.cli import CONSOLE_SCRIPT

from service.config import Settings
from service.event_types import EventType
from service.reports.files import write_session_files
from service.storage import models
from service.storage import repositories as repo
from service.storage.database import create_engine, session_factory, upgrade_engine

pytestmark = pytest.mark.e2e

COMMANDS = {
    "cli": [str(CONSOLE_SCRIPT), "report"],
    "module": [sys.executable, "-m", "service.reports"],
}
PREFIX = {"cli": "continuous-play: ", "module": "python -m service.reports: "}


def game(number: int, plies: int = 16) -> dict:
    """A stored-game message: random legal moves with a policy over each position's moves."""
    rng = random.Random(number)
    board, moves, policies = chess.Board(), [], []
    for _ in range(plies):
        legal = list(board.legal_moves)
        if not legal:
            break
        p = np.array([rng.random() + 0.01 for _ in legal], dtype=np.float32)
        policies.append((p / p.sum()).astype(np.float16))
        move = rng.choice(legal)
        moves.append(move.uci())
        board.push(move)
    result = ("1-0", "0-1", "1/2-1/2")[number % 3]
    pgn = chess.pgn.Game.from_board(board)
    pgn.headers.update(Round=str(number), Result=result, White='Net "<b>gen</b>"', Black="Net <script>")
    out = io.StringIO()
    print(pgn, file=out, end="\n\n")
    return {
        "number": number,
        "moves": moves,
        "result": result,
        "termination": "move_cap",
        "adjudicated": result == "1/2-1/2",
        "plies": len(moves),
        "temperature": 1.0,
        "policies": policies,
        "root_values": [rng.uniform(-1, 1) for _ in moves],
        "full_search": [True] * len(moves),
        "simulations": 8 * len(moves),
        "duration_s": 0.2 + number / 20,
        "pgn": out.getvalue(),
    }


async def _write_run(tmp: Path) -> tuple[str, Path]:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}",
        checkpoint_dir=tmp / "checkpoints",
        report_dir=tmp / "reports",
        chess_preset="tiny",
    )
    engine = create_engine(settings.database_url)
    try:
        await upgrade_engine(engine)
        maker = session_factory(engine)
        config = settings.session_config(seed=1, max_games=12)
        async with maker() as db, db.begin():
            session_id = (await repo.create_session(db, config.model_dump(mode="json"), config.seed)).id
            await repo.set_state(
                db,
                session_id,
                "completed",
                started_at=models.utcnow(),
                finished_at=models.utcnow(),
                stop_reason="max_games",
            )
            for number in range(1, 13):
                await repo.add_game(db, session_id, game(number))
            for i in range(1, 4):
                await repo.add_event(
                    db,
                    session_id,
                    EventType.LEARNING_STEP,
                    {
                        "games": 4 * i,
                        "step": 8 * i,
                        "policy_loss": 3.2 - 0.1 * i,
                        "value_loss": 1.0 - 0.1 * i,
                        "total_loss": 4.2 - 0.2 * i,
                        "policy_entropy": 3.1,
                        "grad_norm": 1.0,
                        "lr": 0.001,
                        "buffer_size": 50 * i,
                        "seconds": 0.1,
                    },
                )
        out = Path(settings.report_dir) / session_id
        await write_session_files(maker, settings, session_id, out)
        return session_id, out
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[str, Path]:
    """A run's directory as `continuous-play run` leaves it (written from a stored session)."""
    return asyncio.run(_write_run(tmp_path_factory.mktemp("run")))


def report(kind: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMANDS[kind], *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", COMMANDS)
def test_renders_the_page_and_copies_the_run(kind, run_dir, tmp_path):
    session_id, run = run_dir
    out = tmp_path / "nested" / "out"
    proc = report(kind, "--input", str(run), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.strip() == f"report {out / 'report.html'}"
    assert sorted(p.name for p in out.iterdir()) == ["games.pgn", "metrics.json", "report.html", "report.json"]
    for name in ("games.pgn", "metrics.json", "report.json"):
        assert (out / name).read_bytes() == (run / name).read_bytes()
    page = (out / "report.html").read_text()
    assert page == (run / "report.html").read_text()  # the same page `run` wrote
    assert session_id in page and 'id="chart-losses"' in page and 'id="chart-results"' in page
    assert "<script src" not in page


def test_the_cli_and_the_module_write_the_same_page(run_dir, tmp_path):
    _, run = run_dir
    for kind in COMMANDS:
        assert report(kind, "--input", str(run), "--output", str(tmp_path / kind), cwd=tmp_path).returncode == 0
    assert (tmp_path / "cli" / "report.html").read_text() == (tmp_path / "module" / "report.html").read_text()


def test_output_may_be_the_input(run_dir, tmp_path):
    _, run = run_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("report.json", "metrics.json"):
        (copy / name).write_bytes((run / name).read_bytes())
    proc = report("cli", "--input", str(copy), "--output", str(copy), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in copy.iterdir()) == ["metrics.json", "report.html", "report.json"]


def test_an_older_report_json_is_completed_from_metrics_json(run_dir, tmp_path):
    _, run = run_dir
    old = tmp_path / "old"
    old.mkdir()
    current = json.loads((run / "report.json").read_text())
    for key in ("series", "sprt", "adjudication", "alerts", "generated_at"):
        current.pop(key)
    (old / "report.json").write_text(json.dumps(current))
    (old / "metrics.json").write_bytes((run / "metrics.json").read_bytes())
    proc = report("module", "--input", str(old), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="chart-results"' in page and 'id="chart-length"' in page and 'id="chart-losses"' in page


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name: (arguments, what the one line must name)."""
    empty = tmp / "empty"
    empty.mkdir()
    invalid = tmp / "invalid"
    invalid.mkdir()
    (invalid / "report.json").write_text('{"format": "continuous-play-report/1", ')
    array = tmp / "array"
    array.mkdir()
    (array / "report.json").write_text("[1, 2]")
    foreign = tmp / "foreign"
    foreign.mkdir()
    (foreign / "report.json").write_text('{"hello": "world"}')
    bad_metrics = tmp / "bad-metrics"
    bad_metrics.mkdir()
    (bad_metrics / "report.json").write_text('{"format": "continuous-play-report/1"}')
    (bad_metrics / "metrics.json").write_text("not json")
    a_file = tmp / "a-file"
    a_file.write_text("x")
    out = str(tmp / "out")
    return {
        "missing": (["--input", str(tmp / "nope"), "--output", out], "no such directory"),
        "not-a-directory": (["--input", str(a_file), "--output", out], "not a directory"),
        "no-report": (["--input", str(empty), "--output", out], "no report.json"),
        "invalid-json": (["--input", str(invalid), "--output", out], "invalid JSON"),
        "not-an-object": (["--input", str(array), "--output", out], "not a continuous-play report"),
        "not-a-report": (["--input", str(foreign), "--output", out], "not a continuous-play report"),
        "bad-metrics": (["--input", str(bad_metrics), "--output", out], "metrics.json: invalid JSON"),
        "output-is-a-file": (["--input", str(tmp / "ok"), "--output", str(a_file)], "cannot write there"),
    }


@pytest.mark.parametrize("kind", COMMANDS)
@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not-a-directory",
        "no-report",
        "invalid-json",
        "not-an-object",
        "not-a-report",
        "bad-metrics",
        "output-is-a-file",
    ],
)
def test_bad_input_is_one_line_and_exit_2(kind, case, run_dir, tmp_path):
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "report.json").write_bytes((run_dir[1] / "report.json").read_bytes())
    args, named = _bad_inputs(tmp_path)[case]
    proc = report(kind, *args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(PREFIX[kind]) and named in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_module_usage_errors_are_one_line(tmp_path):
    proc = report("module", "--input", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "--output" in proc.stderr
