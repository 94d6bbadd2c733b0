"""A real tiny session (`continuous-play run`'s path: run_session) ends with a report.json
that carries the value's calibration against results and the share of games at the move cap,
and the same figures are in the report files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.tiny import TINY, app_settings

from service.headless import run_session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.asyncio
async def test_a_tiny_session_reports_value_health_and_cap_share(tmp_path: Path):
    settings = app_settings(tmp_path, torch_threads=1)
    # 6 games of at most 16 plies: most reach the cap, a few may end by the rules
    config = settings.session_config(**{**TINY, "max_games": 6, "max_moves_per_game": 16})
    session_id, report = await run_session(settings, config)

    games = report["scorecard"]["games"]
    assert games == 6
    share = report["series"]["cap_share"]
    assert share["games"] == games and sum(b["games"] for b in share["buckets"]) == games
    assert share["move_cap"] == report["scorecard"]["terminations"].get("move_cap", 0)
    assert share["buckets"][0]["first"] == 1 and share["buckets"][-1]["last"] == games

    health = report["value_health"]
    assert health["games"] == games and (health["first_game"], health["last_game"]) == (1, games)
    plies = report["scorecard"]["length"]["mean"] * games
    assert health["positions"] >= plies  # one root value per searched position
    assert sum(b["count"] for b in health["bins"]) == health["positions"]
    assert 0 <= health["brier"] <= 1 and 0 <= health["ece"] <= 1
    rates = health["base_rates"]
    assert sum(rates.values()) == pytest.approx(1.0)

    written = json.loads((Path(settings.report_dir) / session_id / "report.json").read_text())
    assert written["value_health"] == health and written["series"]["cap_share"] == share
    assert 'id="finishing"' in (Path(settings.report_dir) / session_id / "report.html").read_text()
