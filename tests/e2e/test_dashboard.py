"""The live dashboard (`GET /`) in headless Chromium against a real `continuous-play serve`
(uvicorn, a process worker pool, SQLite), with API keys on:

- the page loads everything from the app (no other host), asks for the key, and once it is
  given follows the session live: a finished game, a board that moves, the four charts with
  data (Elo with its band, losses per head, games/min, W/D/L), the fleet (one actor, running,
  and the learner's figures), the rating list, the event log; pause and resume from the
  sessions table; no console error; a screenshot is kept (tests/artifacts/dashboard.png);
- after the WebSocket drops it reconnects with `since` = the last seq it saw and goes on
  with no event twice and none missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from server_support import Server, serving, sqlite_url, wait_for
from support.browser import chromium_page, screenshot

from service.event_types import EventType

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

KEY = "dashboard-test-key-0123456789"
ENV = {
    "API_KEYS": KEY,
    # an evaluation every 4 games, so the Elo chart and the rating list fill up quickly
    "EVAL_INTERVAL_GAMES": "4",
    "EVAL_GAMES": "2",
    "EVAL_OPPONENTS": "random",
    "EVAL_SIMULATIONS": "2",
    "SELFPLAY_ACTORS": "1",  # self-play in the learner's process: the fleet panel shows actor 0
}
WAIT_MS = 60_000
CHARTS = ["chart-elo", "chart-loss", "chart-rate", "chart-wdl"]


@pytest.fixture(scope="module")
def live_session(tmp_path_factory) -> Iterator[tuple[Server, str]]:
    """A keyed server with one running session (created over REST) that plays on for minutes."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    with serving(tmp_path, sqlite_url(tmp_path), **ENV) as server, server.client() as client:
        r = client.post(
            "/v1/sessions",
            json={"max_games": 0, "session_duration_min": 10},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 201, r.text
        session_id = r.json()["id"]
        wait_for(client, session_id, lambda b: b["state"] == "running", "running", server)
        yield server, session_id


def same_origin(server: Server, url: str) -> bool:
    ws = server.base_url.replace("http://", "ws://", 1)
    return url.startswith((server.base_url + "/", ws + "/", "data:"))


def charts_with_data(page) -> list[str]:
    return page.evaluate(
        """ids => ids.filter(id => {
        const gd = document.getElementById(id);
        return gd && gd.classList.contains('js-plotly-plot') && Array.isArray(gd.data)
            && gd.data.some(t => Array.isArray(t.x) && t.x.length > 0);
    })""",
        CHARTS,
    )


def log_seqs(page) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all("#log li", "rows => rows.map(r => r.dataset.seq)") if s]


def test_dashboard_follows_a_session_live(live_session):
    server, session_id = live_session
    row = f'#sessions tr[data-session="{session_id}"]'
    with chromium_page() as (page, errors):
        requests: list[str] = []
        sockets: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        boards: list[tuple[int, str]] = []
        page.on(
            "response",
            lambda r: (
                boards.append((r.status, r.headers.get("content-type", "")))
                if "/dashboard/board.svg" in r.url
                else None
            ),
        )
        page.goto(server.base_url + "/")

        # keys are on: the key field shows; the feed is refused until the key is given
        page.wait_for_selector("#key-form:not([hidden])")
        page.wait_for_selector(row)
        page.click(f"{row} td:first-child")
        page.wait_for_function("() => document.getElementById('conn').textContent.includes('API key')", timeout=WAIT_MS)
        page.fill("#api-key", KEY)
        page.click("#key-form button[type=submit]")
        page.wait_for_function("() => document.getElementById('conn').textContent.startsWith('live')", timeout=WAIT_MS)
        assert any(
            f"/v1/sessions/{session_id}/live?" in u and f"token={KEY}" in u and "moves=true" in u for u in sockets
        ), sockets

        # the featured board moves: its image changes at least twice
        page.evaluate("""() => {
            const img = document.getElementById('board');
            window.__boards = new Set([img.getAttribute('src')]);
            new MutationObserver(() => window.__boards.add(img.getAttribute('src')))
                .observe(img, {attributes: true, attributeFilter: ['src']});
        }""")
        page.wait_for_function("() => window.__boards.size >= 3", timeout=WAIT_MS)
        assert page.evaluate("() => cpDashboard.view.boardUpdates") >= 2  # from game.move events
        assert page.eval_on_selector("#featured-moves", "l => l.children.length") >= 1
        assert re.match(r"game #\d+ · ", page.text_content("#featured-label"))

        # a finished game, its result and PGN
        page.wait_for_selector("#last-game[data-game]", timeout=WAIT_MS)
        assert page.text_content("#last-game .result") in ("1-0", "0-1", "1/2-1/2")
        assert "[Result " in page.text_content("#last-pgn")

        # the charts fill up (Elo needs the first evaluation, after 4 games)
        page.wait_for_function(
            """ids => ids.every(id => {
            const gd = document.getElementById(id);
            return gd && Array.isArray(gd.data) && gd.data.some(t => Array.isArray(t.x) && t.x.length > 0);
        })""",
            arg=CHARTS,
            timeout=WAIT_MS,
        )
        assert charts_with_data(page) == CHARTS
        assert page.eval_on_selector_all(".js-plotly-plot", "gs => gs.length") == len(CHARTS)
        band = page.evaluate("() => document.getElementById('chart-elo').data.find(t => t.fill === 'tonexty')")
        assert band and len(band["y"]) >= 1, "the Elo chart has its interval band"

        # the fleet: actor 0 runs and has games; the learner's figures and the games' lag
        page.wait_for_function(
            """() => {
            const row = document.querySelector('#fleet tbody tr[data-actor="0"]');
            const badge = row && row.querySelector('.badge');
            return badge && badge.textContent === 'running' && Number(row.children[5].textContent) >= 1;
        }""",
            timeout=WAIT_MS,
        )
        assert page.eval_on_selector_all("#fleet tbody tr", "rows => rows.length") == 1
        assert page.is_hidden("#fleet-empty")
        figures = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('#fleet-stats > div')]"
            ".map(d => [d.querySelector('dt').textContent, d.querySelector('dd').textContent]))"
        )
        assert figures["actors"] == "1 / 1" and figures["replaced"] == "0", figures
        assert re.fullmatch(r"\d+\.\d\d", figures["learner steps/s"]), figures
        assert figures["samples/position"].endswith(" / 2.00"), figures  # actual / TRAIN_SAMPLES_PER_POSITION
        assert re.fullmatch(r"\d+\.\d\d / \d+", figures["generation lag"]), figures  # mean / max
        assert page.text_content("#fleet-meta").startswith("last report "), page.text_content("#fleet-meta")

        # the rating list and the sessions table
        page.wait_for_selector("#ratings tbody tr", timeout=WAIT_MS)
        # the first match's rating may show before the second match is stored: wait for both
        page.wait_for_function(
            """() => {
            const players = [...document.querySelectorAll('#ratings tbody tr')].map(r => r.dataset.player);
            return players.includes('gen0') && players.includes('random');
        }""",
            timeout=WAIT_MS,
        )
        players = page.eval_on_selector_all("#ratings tbody tr", "rows => rows.map(r => r.dataset.player)")
        assert "gen0" in players and "random" in players
        page.wait_for_function(
            f"""() => {{
            const cell = document.querySelector('{row} td:nth-child(4)');
            return cell && /\\d/.test(cell.textContent);
        }}""",
            timeout=WAIT_MS,
        )  # elo with its interval in the table
        assert page.text_content(f"{row} .badge") == "running"

        # the event log: entries, newest first, each seq once
        seqs = log_seqs(page)
        assert seqs and len(seqs) == len(set(seqs)) and seqs == sorted(seqs, reverse=True)
        assert page.eval_on_selector_all(f"#log li[data-type='{EventType.GAME_FINISHED}']", "r => r.length") >= 1

        # pause and resume from the table (with the key)
        page.click(f"{row} button[data-action=pause]")
        page.wait_for_function(
            f"() => document.querySelector('{row} .badge').textContent === 'paused'", timeout=WAIT_MS
        )
        page.click(f"{row} button[data-action=resume]")
        page.wait_for_function(
            f"() => document.querySelector('{row} .badge').textContent === 'running'", timeout=WAIT_MS
        )
        page.wait_for_selector(f"#log li[data-type='{EventType.SESSION_STATE}']")

        page.evaluate("() => { document.getElementById('notice').hidden = true; }")  # no toast in the picture
        page.wait_for_timeout(500)  # let the last chart redraw land before the picture
        path = screenshot(page, "dashboard")
        assert path.stat().st_size > 20_000

        assert not errors, errors
        assert requests and all(same_origin(server, u) for u in requests), [
            u for u in requests if not same_origin(server, u)
        ]
        assert len(boards) >= 3 and all(status == 200 and kind == "image/svg+xml" for status, kind in boards), boards
        page.wait_for_function(
            "() => { const img = document.getElementById('board'); return img.complete && img.naturalWidth > 0; }",
            timeout=WAIT_MS,
        )

        # create a session from the form (it waits: one session at a time), stop and delete it
        page.click("#new-session")
        page.fill("#f-overrides", "{not json")
        page.click("#f-submit")
        assert "not JSON" in page.text_content("#f-error")
        page.select_option("#f-preset", "tiny")
        page.fill("#f-max-games", "3")
        page.fill("#f-overrides", '{"seed": 11, "selfplay_simulations": 4}')
        page.click("#f-submit")
        page.wait_for_function(
            f"() => location.hash.startsWith('#session=') && !location.hash.endsWith('{session_id}')", timeout=WAIT_MS
        )
        created = page.evaluate("() => location.hash.slice('#session='.length)")
        new_row = f'#sessions tr[data-session="{created}"]'
        page.wait_for_selector(new_row)
        assert page.text_content(f"{new_row} .badge") == "pending"
        with server.client() as client:
            config = client.get(f"/v1/sessions/{created}").json()["config"]
        assert config["seed"] == 11 and config["selfplay_simulations"] == 4 and config["max_games"] == 3
        page.click(f"{new_row} button[data-action=stop]")
        page.wait_for_function(
            f"() => document.querySelector('{new_row} .badge').textContent === 'stopped'", timeout=WAIT_MS
        )
        page.click(f"{new_row} button[data-action=delete]")  # asks for a second click
        page.wait_for_selector(f"{new_row} button[data-action=delete].confirm")
        page.click(f"{new_row} button[data-action=delete]")
        page.wait_for_selector(new_row, state="detached", timeout=WAIT_MS)
        assert page.is_hidden("#detail")  # the deleted session was the one shown
        assert not errors, errors


def test_dashboard_reconnects_with_since(live_session):
    server, session_id = live_session
    with chromium_page() as (page, errors):
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.add_init_script(f"localStorage.setItem('continuous-play.api-key', {KEY!r})")
        page.goto(f"{server.base_url}/#session={session_id}")
        page.wait_for_function(
            "() => window.cpDashboard.feed && window.cpDashboard.feed.lastSeq > 0 "
            "&& document.querySelectorAll('#log li').length > 0",
            timeout=WAIT_MS,
        )
        before = page.evaluate("() => cpDashboard.feed.lastSeq")
        rows_before = len(log_seqs(page))

        # drop the socket as a network failure would: it comes back, resuming at the last seq
        page.evaluate("() => cpDashboard.feed.drop()")
        page.wait_for_function(
            f"() => cpDashboard.feed.reconnects >= 1 && cpDashboard.feed.lastSeq > {before} + 2", timeout=WAIT_MS
        )
        feeds = [u for u in sockets if f"/v1/sessions/{session_id}/live?" in u]
        assert len(feeds) >= 2, sockets
        since = [int(m.group(1)) for u in feeds if (m := re.search(r"[?&]since=(\d+)", u))]
        assert since[0] == 0 and since[1] >= before > 0, since
        assert "reconnected" in page.text_content("#conn")

        seqs = log_seqs(page)
        assert len(seqs) > rows_before
        assert len(seqs) == len(set(seqs)), "an event was shown twice"
        assert seqs == list(range(seqs[0], seqs[-1] - 1, -1)), "an event is missing after the reconnect"
        assert page.evaluate("() => cpDashboard.feed.duplicates") == 0
        assert not errors, errors
