"""The HTML report (service.reports.html) and the series it draws (service.reports.builder):
every section is there, every string of a session is escaped, nothing is loaded from any
address, and a session without evaluations, learning or games gets words, not empty charts."""

from __future__ import annotations

import json
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.report import CHARTS

from service.config import Settings
from service.event_types import EventType
from service.reports import html
from service.reports.builder import (
    REPORT_FORMAT,
    build_report,
    complete,
    fleet_section,
    histogram,
    match_estimate,
    nice_step,
    result_buckets,
    thin,
)
from service.reports.html import render_html
from service.reports.markup import script_json
from service.stats.analyzer import analyze
from service.stats.ratings import rating_list, ratings_out
from service.stats.scorecard import Scorecard

pytestmark = pytest.mark.unit

SECTIONS = (
    "summary",
    "strength",
    "learning",
    "selfplay",
    "finishing",
    "fleet",
    "analysis",
    "alerts",
    "checkpoints",
    "manifest",
)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Page(HTMLParser):
    """Tags, ids, attributes and script bodies of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: dict[str | None, str] = {}
        self._script: str | None = None
        self._in_script = self._in_style = False
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script, self._script = True, dict(attrs).get("id")
            self.scripts.setdefault(self._script, "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"
        self._in_style = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[self._script] += data
        elif not self._in_style:
            self.text.append(data)

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}

    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def sample_report(session_id: str = "a" * 32, **extra) -> dict:
    """A report like compose() writes for a session with games, learning, three evaluated
    checkpoints, metric snapshots and an alert."""
    settings = Settings(_env_file=None, chess_preset="tiny")
    config = settings.session_config(seed=3, eval_interval_games=10)
    card, games = Scorecard(), []
    for n in range(1, 31):
        result = ("1-0", "0-1", "1/2-1/2")[n % 3]
        adjudicated = result == "1/2-1/2" or n % 5 == 0
        termination = "move_cap" if adjudicated else "checkmate"
        plies, duration = 20 + n, 0.5 + n / 50
        card.add(result, plies, termination, adjudicated, duration)
        games.append(
            {
                "number": n,
                "result": result,
                "termination": termination,
                "adjudicated": adjudicated,
                "plies": plies,
                "duration_s": duration,
                "simulations": 8 * plies,
                "temperature": 1.0,
                "mean_move_s": duration / plies,
            }
        )
    learning = [
        {
            "games": 5 * i,
            "step": 10 * i,
            "steps": 10,
            "policy_loss": 3 - 0.1 * i,
            "value_loss": 1 - 0.05 * i,
            "total_loss": 4 - 0.15 * i,
            "policy_entropy": 3 - 0.05 * i,
            "grad_norm": 1.0,
            "lr": 1e-3,
            "samples": 320,
            "buffer_size": 100 * i,
            "positions_learned": 100 * i,
            "seconds": 0.5,
        }
        for i in range(1, 7)
    ]
    stats = [
        {
            "ts": f"2024-05-01T10:0{i}:00+00:00",
            "simulations_per_second": 200.0 + i,
            "rss_mb": 300.0 + i,
            "rss_growth_mb": float(i),
            "buffer_size": 10 * i,
            "games_in_flight": 4,
            "inference": {
                "backend": "torch-bf16",
                "requested": "auto",
                "source": "probe" if i == 0 else "cache",
                "positions_per_s": {"torch": 5000.0, "torch-bf16": 12000.0, "onnxruntime": 5200.0},
            },
        }
        for i in range(5)
    ]
    checkpoints = [
        {
            "generation": g,
            "games": 10 * g,
            "path": f"/ck/{session_id}/gen-{g:04d}.safetensors",
            "sha256": f"{g:02d}" * 32,
        }
        for g in range(4)
    ]
    report = build_report(
        session_id=session_id,
        config=config,
        settings=settings,
        scorecard=card,
        learning=learning,
        stats=[{k: v for k, v in s.items() if k != "ts"} for s in stats],
        checkpoints=checkpoints,
        games=games,
        started=1714557600.0,
        elapsed_s=300.0,
        summary={"reason": "max_games"},
        error=None,
        torch_threads=1,
    )
    evaluations, rows = [], []
    for g in (1, 2, 3):
        for opponent, wdl, penta in (
            ("random", (7, 2, 1), [0, 0, 1, 2, 2]),
            (f"gen{g - 1}", (4, 3, 3), [1, 1, 1, 1, 1]),
        ):
            row = SimpleNamespace(opponent=opponent, wins=wdl[0], draws=wdl[1], losses=wdl[2], games=sum(wdl))
            rows.append((row, g, None))
            sprt = (
                {
                    "llr": 0.3 * g,
                    "lower": -2.94,
                    "upper": 2.94,
                    "state": "continue",
                    "elo0": 0.0,
                    "elo1": 50.0,
                    "elo_model": "normalized",
                    "alpha": 0.05,
                    "beta": 0.05,
                    "samples": 5,
                    "against_generation": g - 1,
                }
                if opponent.startswith("gen")
                else None
            )
            evaluations.append(
                {
                    "generation": g,
                    "opponent": opponent,
                    "wins": wdl[0],
                    "draws": wdl[1],
                    "losses": wdl[2],
                    "pentanomial": penta,
                    "elo": None,
                    "elo_low": None,
                    "elo_high": None,
                    "sprt": sprt,
                    "adjudicated": 2,
                }
            )
    fitted = rating_list(rows, 1500.0)
    report["rating_list"] = ratings_out(fitted)
    report["evaluations"] = evaluations
    newest = fitted["gen3"]
    report["elo"] = {"generation": 3, "rating": newest.rating, "low": newest.low, "high": newest.high}
    report["state"] = "completed"
    report["analysis"] = [
        i.to_dict()
        for i in analyze(
            elo_points=[
                (10 * g, fitted[f"gen{g}"].rating, fitted[f"gen{g}"].low, fitted[f"gen{g}"].high) for g in range(4)
            ],
            results=[g["result"] for g in games],
            losses=[r["total_loss"] for r in learning],
            plies=[g["plies"] for g in games],
        )
    ]
    report["alerts"] = [
        {
            "name": "loss_spike",
            "severity": "warning",
            "message": "loss 9.1 > 3 x mean 2.0",
            "value": 9.1,
            "threshold": 6.0,
            "trigger": EventType.LEARNING_STEP,
            "games": 25,
            "seq": 40,
            "ts": "2024-05-01T10:04:00+00:00",
        }
    ]
    report["fleet"] = fleet_section(
        config=report["manifest"]["config"],
        actors=[(1, 18, 1, 30, 0, 3), (2, 12, 2, 29, 0, 3)],  # (actor, games, numbers, generations)
        lags=[(1, 0, 15), (1, 1, 3), (2, 0, 10), (2, 2, 2)],  # (actor, lag, games)
        replacements=1,
        replaced=[
            (33, "2024-05-01T10:03:00+00:00", {"actor": 3, "replacement": 2, "exitcode": -9, "reason": "killed"})
        ],
        latest=(
            stats[-1]["ts"],
            {
                **stats[-1],
                "learner_steps_per_second": 2.5,
                "samples_per_position": 1.9,
                "generation": 3,
                "actors": [
                    {"actor": n, "state": "running", "simulations_per_second": 100.0 + n, "generation": 3, "pid": 9}
                    for n in (1, 2)
                ],
            },
        ),
    )
    report.update(extra)
    return complete(report, {"games": games, "learning": learning, "stats": stats})


def empty_report(session_id: str = "b" * 32) -> dict:
    """A report of a session that has stored nothing yet."""
    settings = Settings(_env_file=None, chess_preset="tiny")
    report = build_report(
        session_id=session_id,
        config=settings.session_config(),
        settings=settings,
        scorecard=Scorecard(),
        learning=[],
        stats=[],
        checkpoints=[],
        games=[],
        started=1714557600.0,
        elapsed_s=0.0,
        summary=None,
        error=None,
        torch_threads=1,
    )
    report.update(state="running", finished_at=None, rating_list=[], evaluations=[], analysis=[])
    return report


def embedded(page: Page, script_id: str):
    return json.loads(page.scripts[script_id])


# -- the page -----------------------------------------------------------------------------


def test_every_section_chart_and_table_is_there():
    report = sample_report()
    text = render_html(report)
    page = Page(text)
    assert text.startswith("<!DOCTYPE html>")
    assert set(SECTIONS) <= page.ids and set(CHARTS) <= page.ids
    visible = page.visible_text()
    for heading in (
        "Rating list",
        "Evaluation matches",
        "SPRT verdicts",
        "Training loss per head",
        "Self-play results over time",
        "Game length",
        "Move time",
        "Improvement indicators",
        "Raised alerts",
        "Saved networks",
        "Session settings",
        "Packages",
        "Games per actor",
        "Generation lag of games",
        "Actor replacements",
    ):
        assert heading in visible, heading
    # rating list with intervals, pentanomial counts, SPRT verdicts, analyzer verdicts, alerts
    for row in report["rating_list"]:
        assert f"[{row['low']:.0f}, {row['high']:.0f}]" in visible
    assert "0 0 1 2 2" in visible and "continue" in visible
    assert "Elo progression" in visible and "Training loss" in visible
    assert "loss_spike" in visible and "loss 9.1 &gt; 3 x mean 2.0" in text and "loss 9.1 > 3 x mean 2.0" in visible
    assert EventType.LEARNING_STEP in visible
    # the embedded report is the report, as strict JSON
    assert embedded(page, "report-data") == json.loads(json.dumps(report))
    data = embedded(page, "chart-data")["series"]
    assert [p["generation"] for p in data["elo"]] == [0, 1, 2, 3]
    assert set(data["matches"]) == {"random", "gen0", "previous generation"}


def test_the_manifest_names_the_inference_backend_the_worker_ran():
    """INFERENCE_BACKEND=auto is stored as asked; what ran (and the probe) is the newest stats'."""
    report = sample_report()
    manifest = report["manifest"]
    assert manifest["config"]["inference_backend"] == "auto"
    assert manifest["inference"]["backend"] == "torch-bf16" and manifest["inference"]["source"] == "cache"
    assert manifest["packages"]["onnxruntime"] is not None
    assert "inference backend torch-bf16" in Page(render_html(report)).visible_text()
    assert empty_report()["manifest"]["inference"] is None  # no stats yet: not known


def test_plotly_is_inlined_and_nothing_is_loaded_from_anywhere():
    text = render_html(sample_report())
    page = Page(text)
    assert "Plotly.newPlot" in text and "plotly.js v" in text  # the library itself, inline
    assert len(text) > 3_000_000
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "object", "embed", "base", "img", "audio", "video", "source")
        for name in ("src", "href", "action", "data", "poster", "srcset", "formaction"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, name, value)
            if name == "href" and value:
                assert value.startswith("#"), value  # in-page navigation only
        if tag == "script":
            assert "src" not in attrs
    styles = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert styles and not any(re.search(r"url\(|@import", s) for s in styles)
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp


def test_session_strings_are_escaped_everywhere():
    report = sample_report(session_id=HOSTILE)
    report["error"] = HOSTILE
    report["stop_reason"] = HOSTILE
    report["alerts"][0].update(message=HOSTILE, name=HOSTILE, severity=HOSTILE, trigger=HOSTILE)
    report["manifest"]["config"]["eval_uci_engine"] = HOSTILE
    report["manifest"]["git_revision"] = HOSTILE
    report["manifest"]["packages"][HOSTILE] = HOSTILE
    report["checkpoints"][0]["path"] = HOSTILE
    report["evaluations"][0]["opponent"] = HOSTILE
    report["rating_list"][0]["player"] = HOSTILE
    report["analysis"][0]["name"] = HOSTILE
    report["analysis"][0]["verdict"] = HOSTILE
    report["scorecard"]["terminations"] = {HOSTILE: 1}
    report["series"]["matches"][HOSTILE] = [dict(report["series"]["matches"]["random"][0], opponent=HOSTILE)]
    report["series"]["anchors"][0]["player"] = HOSTILE
    report["fleet"]["replaced"][0].update(reason=HOSTILE, exitcode=HOSTILE)
    report["fleet"]["latest"]["actors"][0]["state"] = HOSTILE
    report["fleet"]["selfplay_actors"] = HOSTILE
    text = render_html(report)
    assert "<script>alert" not in text and "<img src=x" not in text and "</script><img" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text  # shown, as text
    page = Page(text)
    assert [t for t, _ in page.tags].count("script") == 5  # report-data, chart-data, config, plotly, charts
    assert not any(t == "img" for t, _ in page.tags)
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    # the JSON comes back whole, and the chart labels carry no markup
    assert embedded(page, "report-data")["session_id"] == HOSTILE
    series = embedded(page, "chart-data")["series"]
    labels = [p["player"] for p in series["anchors"]] + list(series["matches"])
    assert all("<" not in name and ">" not in name for name in labels)


def test_script_json_cannot_close_its_element():
    text = script_json({"s": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"s": "</script><!-- & \u2028"}


def test_a_session_with_nothing_stored_gets_words_not_empty_charts():
    text = render_html(empty_report())
    page = Page(text)
    assert set(SECTIONS) <= page.ids
    assert not set(CHARTS) & page.ids
    visible = page.visible_text()
    assert "No evaluation yet" in visible and "No learning step yet" in visible
    assert "No self-play game has finished yet" in visible and "No alert was raised" in visible
    assert "No checkpoint saved yet" in visible and "No SPRT verdict yet" in visible
    assert "No indicator yet" in visible and "No metric snapshot stored yet" in visible
    assert "not yet" in visible  # finished
    assert embedded(page, "chart-data")["series"]["elo"] == []


def test_games_and_learning_without_evaluation():
    report = sample_report()
    report.update(evaluations=[], rating_list=[], elo=None, sprt=[])
    report["series"].update(elo=[], anchors=[], matches={})
    page = Page(render_html(report))
    assert {"chart-losses", "chart-results", "chart-length", "chart-move-time"} <= page.ids
    assert not {"chart-elo", "chart-matches"} & page.ids
    assert "No evaluation yet" in page.visible_text()


def test_a_failed_session_shows_its_error():
    report = sample_report()
    report.update(state="failed", error="RuntimeError: worker died")
    visible = Page(render_html(report)).visible_text()
    assert "The session failed" in visible and "RuntimeError: worker died" in visible and "failed" in visible


def test_non_finite_numbers_never_reach_the_page_as_nan():
    report = sample_report()
    report["analysis"][0]["value"] = float("nan")
    report["throughput"]["games_per_minute"] = float("inf")
    page = Page(render_html(report))
    data = page.scripts["report-data"]
    assert "NaN" not in data and "Infinity" not in data
    assert embedded(page, "report-data")["analysis"][0]["value"] is None


def test_an_older_report_json_gets_its_series_from_metrics_json():
    full = sample_report()
    older = {k: v for k, v in full.items() if k not in ("series", "sprt", "adjudication", "alerts")}
    older["evaluations"] = [
        {k: v for k, v in e.items() if k not in ("match", "adjudicated")} for e in full["evaluations"]
    ]
    metrics = {
        "games": [
            {
                "number": 1,
                "result": "1-0",
                "termination": "checkmate",
                "adjudicated": False,
                "plies": 31,
                "duration_s": 1.0,
            }
        ],
        "learning": [],
        "stats": [],
    }
    rebuilt = complete(older, metrics)
    assert rebuilt["series"]["game_length"]["counts"] == [1]
    assert [p["generation"] for p in rebuilt["series"]["elo"]] == [0, 1, 2, 3]
    assert rebuilt["series"]["learning"]  # from report.json's loss curve
    assert rebuilt["sprt"] and rebuilt["adjudication"]["evaluation"]["adjudicated"] is None
    assert set(CHARTS) - {"chart-throughput"} <= Page(render_html(rebuilt)).ids
    # a bare report renders too
    assert "summary" in Page(render_html({"format": REPORT_FORMAT, "session_id": "c" * 32})).ids


def test_the_fleet_section_of_the_page():
    report = sample_report()
    fleet = report["fleet"]
    assert fleet["games"] == 30 and [a["actor"] for a in fleet["actors"]] == [1, 2]
    assert fleet["actors"][1]["generation_lag_mean"] == pytest.approx(4 / 12) and fleet["actors"][1]["lag_games"] == 12
    assert fleet["generation_lag"] == {
        "games": 30,
        "mean": pytest.approx(7 / 30),
        "max": 2,
        "lagging": 5,
        "counts": [{"lag": 0, "games": 25}, {"lag": 1, "games": 3}, {"lag": 2, "games": 2}],
    }
    assert fleet["latest"]["actors"][0] == {
        "actor": 1,
        "state": "running",
        "simulations_per_second": 101.0,
        "generation": 3,
        "games_in_flight": None,
    }
    visible = Page(render_html(report)).visible_text()
    assert "60.0%" in visible and "40.0%" in visible  # the actors' shares of the games
    assert "1.90 / 2" in visible and "killed" in visible and "0.23 / 2" in visible  # samples/position, lag mean/max
    assert "5 of 30" in visible  # games behind the newest generation


def test_the_fleet_of_a_session_older_than_the_fleet():
    """Its games are all actor 0 and generation 0 and recorded no lag: one actor, lag unknown;
    a report.json written before the fleet section renders with words in its place."""
    section = fleet_section(
        config={"selfplay_actors": 1, "train_samples_per_position": 2.0},
        actors=[(0, 12, 1, 12, 0, 0)],
        lags=[],
        replacements=0,
        replaced=[],
        latest=("2024-05-01T10:00:00+00:00", {"simulations_per_second": 250.0, "rss_mb": 300.0}),
    )
    assert section["actors"] == [
        {
            "actor": 0,
            "games": 12,
            "first_game": 1,
            "last_game": 12,
            "generation_min": 0,
            "generation_max": 0,
            "lag_games": 0,
            "generation_lag_mean": None,
            "generation_lag_max": None,
        }
    ]
    assert section["generation_lag"] is None and section["replaced"] == []
    assert section["latest"]["learner_steps_per_second"] is None and section["latest"]["actors"] == []
    visible = Page(render_html({**sample_report(), "fleet": section})).visible_text()
    assert "No game recorded its generation lag" in visible and "No actor died" in visible
    older = {k: v for k, v in sample_report().items() if k != "fleet"}
    page = Page(render_html(older))
    assert "fleet" in page.ids and "This report has no fleet section" in page.visible_text()


# -- the series -----------------------------------------------------------------------------


def test_series_of_the_sample():
    report = sample_report()
    series = report["series"]
    results = series["results"]
    assert results["bucket_size"] == 1 and len(results["buckets"]) == 30
    assert sum(b["white_wins"] + b["black_wins"] + b["draws"] for b in results["buckets"]) == 30
    assert sum(b["adjudicated"] for b in results["buckets"]) == report["scorecard"]["adjudicated"]
    assert sum(series["game_length"]["counts"]) == 30 and series["game_length"]["mean"] == pytest.approx(35.5)
    assert sum(series["move_time"]["counts"]) == 30
    assert [row["step"] for row in series["learning"]] == [10, 20, 30, 40, 50, 60]
    assert [p["games"] for p in series["elo"]] == [0, 10, 20, 30]
    assert series["elo"][0]["low"] == series["elo"][0]["rating"] == 1500.0
    assert all(p["low"] <= p["rating"] <= p["high"] for p in series["elo"])
    assert {a["player"] for a in series["anchors"]} == {"random"}
    assert [p["generation"] for p in series["matches"]["previous generation"]] == [2, 3]
    assert len(series["throughput"]) == 5
    assert report["adjudication"]["selfplay"]["adjudicated"] == report["scorecard"]["adjudicated"]
    assert report["adjudication"]["evaluation"] == {"games": 60, "adjudicated": 12}
    assert [s["generation"] for s in report["sprt"]] == [1, 2, 3]


def test_result_buckets_have_round_sizes():
    games = [
        {
            "number": n,
            "result": "1-0" if n % 2 else "1/2-1/2",
            "plies": 10,
            "duration_s": 1.0,
            "adjudicated": n % 2 == 0,
        }
        for n in range(1, 96)
    ]
    out = result_buckets(games)
    assert out["bucket_size"] == 5 and len(out["buckets"]) == 19
    assert out["buckets"][0] == {
        "first": 1,
        "last": 5,
        "games": 5,
        "white_wins": 3,
        "black_wins": 0,
        "draws": 2,
        "adjudicated": 2,
        "move_cap": 0,  # no game carries a termination
        "mean_plies": 10,
        "mean_move_s": 0.1,
    }
    assert result_buckets([]) == {"bucket_size": 1, "buckets": []}


@pytest.mark.parametrize(
    "raw, integer, expected",
    [
        (0.3, False, 0.5),
        (1.2, False, 2.0),
        (2.4, False, 2.5),
        (7, False, 10.0),
        (0.004, False, 0.005),
        (0.3, True, 1),
        (2.4, True, 5),
        (12, True, 20),
        (26, True, 50),
    ],
)
def test_nice_steps(raw, integer, expected):
    assert nice_step(raw, integer) == expected


def test_histograms():
    h = histogram([3, 5, 8, 40, 41, 150], integer=True)
    assert h["edges"][0] == 0 and all(isinstance(x, int) for x in h["edges"])
    assert sum(h["counts"]) == 6 and len(h["counts"]) <= 31
    assert h["edges"][-1] > 150 and h["median"] == 24.0
    assert histogram([40] * 16, integer=True)["edges"] == [40, 41]
    one = histogram([0.05] * 3)
    assert one["counts"] == [3] and one["edges"][0] < 0.05 < one["edges"][1]
    spread = histogram([0.05, 0.06, 0.1, 0.2])
    assert spread["counts"][0] == 1 and spread["counts"][2] == 1 and spread["edges"][1] == 0.055  # 0.06 in [0.06, ..)
    assert histogram([]) == {"edges": [], "counts": [], "n": 0, "mean": None, "median": None}
    assert histogram([float("nan"), 1.0])["n"] == 1


def test_match_estimates_use_pairs_and_the_plain_score():
    est = match_estimate(0, 0, 4, [2, 0, 0, 0, 0])
    assert est["score"] == 0.0 and est["method"] == "pentanomial" and est["elo"] < -1000
    est = match_estimate(7, 2, 1, None)
    assert est["score"] == 0.8 and est["method"] == "trinomial" and est["low"] < est["elo"] < est["high"]
    assert match_estimate(0, 0, 0, None) is None


def test_long_series_are_thinned_evenly():
    rows = list(range(10_001))
    thinned = thin(rows, 2000)
    assert len(thinned) == 2000 and thinned[0] == 0 and thinned[-1] == 10_000
    assert thinned == sorted(set(thinned))
    assert thin(rows[:50], 2000) == rows[:50]


def test_the_page_files_ship_in_a_non_editable_install():
    """pyproject's package-data names every file of service/reports that is not Python (the
    style and script `render_html` inlines), and the page inlines them."""
    folder = Path(html.__file__).parent
    config = tomllib.loads((folder.parent.parent / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service.reports"]
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.name for p in files} >= {"report.css", "report.js"}
    for path in files:
        assert any(path.match(pattern) for pattern in patterns), f"{path.name} is not package data"
    page = render_html(sample_report())
    assert html.asset("report.css") in page and html.asset("report.js") in page
