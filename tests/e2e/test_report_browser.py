"""The HTML report in headless Chromium (Debian's, driven by Playwright): the page a real tiny
`continuous-play run` wrote at its end opens from a file:// URL with no console error and no
request to anywhere, and its plotly charts have drawn data; a session with nothing stored
shows words instead; markup in a session's strings stays text. Screenshots are kept under
tests/artifacts/ (report.png, report-empty.png)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.browser import chromium_page, screenshot
from support.cli import CONSOLE_SCRIPT, clean_env
from support.report import CHARTS
from support.tiny import tiny_env

from service.reports.html import render_html

pytestmark = pytest.mark.e2e

# TINY for 8 games of <= 30 plies, four in flight, with full searches of 8 simulations,
# training batches of 32, and a checkpoint evaluated against two anchors every 4 games
RUN = tiny_env(
    SEED=5,
    MAX_GAMES=8,
    SELFPLAY_PARALLEL_GAMES=4,
    MAX_MOVES_PER_GAME=30,
    SELFPLAY_SIMULATIONS=8,
    LEARNING_BATCH_SIZE=32,
    CHECKPOINT_INTERVAL=4,
    EVAL_INTERVAL_GAMES=4,
    EVAL_OPPONENTS=["random", "greedy"],
    ENABLE_PROMETHEUS=False,
    ENABLE_WANDB=False,
    ENABLE_BRAINTRUST=False,
)
# Marks a page would set if markup in a session's strings ever ran.
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'

PLOTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
    id: el.id,
    traces: (el.data || []).length,
    points: (el.data || []).reduce((n, t) => n + ((t.y || t.values || []).length), 0),
    drawn: el.querySelectorAll('.trace, .point, .barlayer path, .scatterlayer path').length,
    width: el.getBoundingClientRect().width,
}))"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The directory a real tiny session (two evaluations, learning) leaves under REPORT_DIR."""
    tmp = tmp_path_factory.mktemp("run")
    env = clean_env(
        **RUN,
        REPORT_DIR=str(tmp / "reports"),
        CHECKPOINT_DIR=str(tmp / "checkpoints"),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}",
        NO_COLOR="1",
    )
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "run", "--quiet"], cwd=tmp, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = list((tmp / "reports").iterdir())
    return out


def open_page(path: Path, name: str | None = None, expect_charts: bool = True):
    """Load `path` in Chromium; returns (plots, errors, requests, page text, pwned mark)."""
    with chromium_page() as (page, errors):
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        if expect_charts:
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        page.wait_for_timeout(300)
        plots = page.evaluate(PLOTS)
        text = page.inner_text("body")
        pwned = page.evaluate("window.__pwned === undefined ? null : window.__pwned")
        if name:
            screenshot(page, name)
    return plots, errors, requests, text, pwned


def test_the_report_of_a_real_run_draws_every_chart(run_dir):
    assert {"games.pgn", "metrics.json", "report.json", "report.html"} <= {p.name for p in run_dir.iterdir()}
    report = json.loads((run_dir / "report.json").read_text())
    assert report["evaluations"] and report["losses"]["phases"] and report["series"]["throughput"]
    plots, errors, requests, text, _ = open_page(run_dir / "report.html", "report")
    assert errors == []
    assert requests == [(run_dir / "report.html").resolve().as_uri()]  # nothing else, from anywhere
    assert sorted(p["id"] for p in plots) == sorted(CHARTS)
    for plot in plots:
        assert plot["traces"] >= 1 and plot["points"] >= 1 and plot["drawn"] >= 1 and plot["width"] > 200, plot
    assert report["session_id"] in text
    for words in (
        "Rating list",
        "Evaluation matches",
        "SPRT verdicts",
        "Improvement indicators",
        "Alerts",
        "Manifest",
    ):
        assert words in text, words
    # whether this tiny run raises an alert depends on the machine (its games differ with the
    # CPU's arithmetic): the section shows the alerts the report holds, or says there are none
    alerts = report.get("alerts") or []
    assert ("No alert was raised." in text) == (alerts == [])
    for alert in alerts:
        assert alert["message"] in text


def test_a_session_with_nothing_stored_shows_words(tmp_path):
    report = {
        "format": "continuous-play-report/1",
        "session_id": "e" * 32,
        "state": "pending",
        "scorecard": {"games": 0},
        "losses": {"phases": 0, "steps": 0},
        "checkpoints": [],
        "elo": None,
        "rating_list": [],
        "evaluations": [],
        "analysis": [],
    }
    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    plots, errors, requests, text, _ = open_page(page, "report-empty", expect_charts=False)
    assert errors == [] and plots == [] and len(requests) == 1
    assert "No evaluation yet" in text and "No learning step yet" in text
    assert "No self-play game has finished yet" in text


def test_markup_in_session_strings_stays_text(run_dir, tmp_path):
    report = json.loads((run_dir / "report.json").read_text())
    report["session_id"] = HOSTILE
    report["error"] = HOSTILE
    report["alerts"] = [
        {
            "name": HOSTILE,
            "severity": "warning",
            "message": HOSTILE,
            "value": 1.0,
            "threshold": 0.5,
            "trigger": HOSTILE,
            "ts": "2024-01-01T00:00:00+00:00",
        }
    ]
    report["evaluations"][0]["opponent"] = HOSTILE
    report["series"]["matches"][HOSTILE] = report["series"]["matches"].pop("random")
    report["manifest"]["config"]["eval_uci_engine"] = HOSTILE
    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    plots, errors, requests, text, pwned = open_page(page)
    assert pwned is None
    assert errors == [] and len(requests) == 1
    assert HOSTILE in text  # shown as what it is
    assert len(plots) == len(CHARTS)
