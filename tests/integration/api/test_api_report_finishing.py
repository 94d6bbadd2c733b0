"""report.json's value health (calibration of the recorded root values against results) and
the share of self-play games at the move cap, from the database on SQLite and PostgreSQL
(the same figures `builder.value_health` and `builder.cap_share` make from plain rows)."""

from __future__ import annotations

import pytest
from api_support import game_message, seed_session

from service.reports.builder import cap_share, result_buckets, side_to_move_results, value_health
from service.storage import codec

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_report_json_carries_cap_share_and_value_health(api):
    # game_message: results cycle 0-1, 1/2-1/2 (at the move cap), 1-0 by number % 3
    session_id = await seed_session(api, games=45)
    r = await api.client.get(f"/v1/sessions/{session_id}/report.json")
    assert r.status_code == 200, r.text
    report = r.json()

    share = report["series"]["cap_share"]
    assert share["bucket_size"] == 2 and len(share["buckets"]) == 23  # the results chart's buckets
    assert (share["games"], share["move_cap"]) == (45, 15)
    assert share["share"] == pytest.approx(1 / 3)
    capped = sum(game_message(n)["termination"] == "move_cap" for n in (1, 2))
    assert share["buckets"][0] == {"first": 1, "last": 2, "games": 2, "move_cap": capped, "share": capped / 2}
    assert share["move_cap"] == report["scorecard"]["terminations"]["move_cap"]
    messages = [game_message(n) for n in range(1, 46)]
    assert share == cap_share(result_buckets(messages))  # SQL and the pure function agree
    assert share == cap_share(report["series"]["results"])

    health = report["value_health"]
    assert (health["games"], health["first_game"], health["last_game"]) == (45, 1, 45)
    assert health["positions"] == sum(m["plies"] for m in messages)
    assert sum(b["count"] for b in health["bins"]) == health["positions"]
    rows = [
        (m["number"], m["result"], codec.decode_values(codec.encode_values(m["root_values"])), True) for m in messages
    ]
    expected = value_health(rows)
    assert expected is not None
    for key in ("brier", "brier_prior", "ece"):
        assert health[key] == pytest.approx(expected[key])
    assert [b["count"] for b in health["bins"]] == [b["count"] for b in expected["bins"]]
    assert [b["actual"] for b in health["bins"]] == pytest.approx([b["actual"] for b in expected["bins"]])
    # a third of the games are won by White, a third by Black: win and loss shares from the
    # side to move are equal, the draws a third
    outcomes = [o for m in messages for o in side_to_move_results(m["result"], m["plies"])]
    assert health["base_rates"]["draw"] == pytest.approx(outcomes.count(0) / len(outcomes))

    page = (await api.client.get(f"/v1/sessions/{session_id}/report.html")).text
    assert 'id="finishing"' in page and "Value calibration" in page and "Self-play games at the move cap" in page
    assert "15 of 45" in page


async def test_a_session_without_games_has_no_value_health(api):
    session_id = await seed_session(api, games=0)
    report = (await api.client.get(f"/v1/sessions/{session_id}/report.json")).json()
    assert report["value_health"] is None
    assert report["series"]["cap_share"] == {"bucket_size": 1, "games": 0, "move_cap": 0, "share": None, "buckets": []}
    page = (await api.client.get(f"/v1/sessions/{session_id}/report.html")).text
    assert "No self-play game with recorded root values yet." in page
