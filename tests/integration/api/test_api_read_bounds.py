"""Memory a keyless reader can grow (issue 21, item 6), on SQLite and PostgreSQL: the
games-page cache is bounded in entries and keys a page by what its cursor means, and the
rating fits of /v1/sessions/{id}/evaluations and /v1/ratings run off the event loop, once
per change of their evaluations, in a bounded cache."""

from __future__ import annotations

import base64
import threading

import pytest
from api_support import seed_checkpoint, seed_session

from service.api import caches
from service.api import ratings as ratings_route
from service.api import sessions as sessions_route
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def spelled(text: str) -> str:
    """A cursor as a client may spell it: base64url without padding of any JSON text."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def padded_cursors(number: int, count: int) -> list[str]:
    """`count` distinct cursors of at most 512 characters that all mean game `number`."""
    out = []
    for k in range(count):
        blank = " \n\t\r"[k % 4] * (k // 4)
        text = f"[{blank}{number}]" if k % 2 else f"{blank}[{number}{blank}]"
        cursor = spelled(text)
        if len(cursor) <= 512 and cursor != spelled(f"[{number}]"):
            out.append(cursor)
    return out


async def test_padded_cursors_hit_one_cached_page(api):
    session_id = await seed_session(api, games=6, state="running")
    url = f"/v1/sessions/{session_id}/games"
    first = await api.client.get(url, params={"limit": 2})
    cursor = first.json()["next_cursor"]
    canonical = await api.client.get(url, params={"limit": 2, "cursor": cursor})
    assert canonical.status_code == 200 and [g["number"] for g in canonical.json()["items"]] == [3, 4]
    pages = caches.GamePages.for_app(api.app)
    entries = len(pages)
    variants = padded_cursors(2, 200)
    assert len(set(variants)) > 150 and cursor == spelled("[2]")
    for variant in variants:
        r = await api.client.get(url, params={"limit": 2, "cursor": variant})
        assert r.status_code == 200 and r.content == canonical.content
    assert len(pages) == entries  # every spelling of the cursor is the one cached page
    for bad in ("%%%", "Wy0xXQ", spelled("[1.0]"), spelled("[true]"), spelled('["1"]')):
        r = await api.client.get(url, params={"limit": 2, "cursor": bad})
        assert r.status_code == 400 and r.json()["type"].endswith("bad-cursor")
    assert len(pages) == entries


async def test_game_pages_are_bounded_in_entries_whatever_the_cursors():
    pages = caches.GamePages()
    assert 0 < pages.max_entries <= 10_000
    session_id = "a" * 32
    for cursor in padded_cursors(7, 3000):
        pages.put(session_id, 50, cursor, 1, b"{}")
        assert pages.get(session_id, 50, spelled("[7]"), 1) == b"{}"  # one key for all spellings
    for number in range(3 * pages.max_entries):  # distinct positions: distinct keys, still bounded
        pages.put(session_id, 1 + number % 500, spelled(f"[{number}]"), 1, b"{}")
        assert len(pages) <= pages.max_entries
    assert len(pages) == pages.max_entries
    assert pages.bytes == 2 * len(pages)
    pages.forget(session_id)
    assert len(pages) == 0 and pages.bytes == 0


class FitCounter:
    """Wraps a route module's `rating_lists` (a list per yardstick): counts the fits and the
    threads they ran on."""

    def __init__(self, monkeypatch, module) -> None:
        self.calls = 0
        self.threads: set[int] = set()
        real = module.rating_lists

        def counted(*args, **kwargs):
            self.calls += 1
            self.threads.add(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "rating_lists", counted)


async def add_evaluation(api, session_id: str, checkpoint_id: int, opponent: str, wins: int = 3) -> None:
    async with api.sessionmaker() as db, db.begin():
        await repo.add_evaluation(db, session_id, checkpoint_id, opponent, wins=wins, draws=1, losses=1)


async def test_session_rating_fit_runs_off_the_loop_once_per_evaluation(api, monkeypatch):
    fits = FitCounter(monkeypatch, sessions_route)
    session_id = await seed_session(api, games=0, state="running")
    await seed_checkpoint(api, session_id, 0)
    gen1 = await seed_checkpoint(api, session_id, 1, games=10)
    await add_evaluation(api, session_id, gen1, "gen0")
    url = f"/v1/sessions/{session_id}/evaluations"
    first = await api.client.get(url)
    assert first.status_code == 200 and {r["player"] for r in first.json()["ratings"]} == {"gen0", "gen1"}
    for _ in range(3):
        assert (await api.client.get(url)).json() == first.json()
    assert fits.calls == 1
    assert threading.get_ident() not in fits.threads  # not on the event loop's thread

    await add_evaluation(api, session_id, gen1, "random", wins=4)
    second = (await api.client.get(url)).json()
    assert fits.calls == 2 and len(second["items"]) == 2
    assert {r["player"] for r in second["ratings"]} == {"gen0", "gen1", "random"}


async def test_seed_rating_list_is_cached_per_change_and_forgets_a_deleted_session(api, monkeypatch):
    fits = FitCounter(monkeypatch, ratings_route)

    async def evaluated(seed: int, opponents: tuple[str, ...]) -> str:
        session_id = await seed_session(api, games=0, state="completed", seed=seed)
        await seed_checkpoint(api, session_id, 0)
        gen1 = await seed_checkpoint(api, session_id, 1, games=10)
        for opponent in opponents:
            await add_evaluation(api, session_id, gen1, opponent)
        return session_id

    first = await evaluated(5, ("random", "gen0"))
    second = await evaluated(5, ("greedy", "gen0"))
    players = {r["player"] for r in (await api.client.get("/v1/ratings", params={"seed": 5})).json()["ratings"]}
    assert players == {"gen0", "random", "greedy", f"{first}/gen1", f"{second}/gen1"}
    assert (await api.client.get("/v1/ratings", params={"seed": 5})).json()["seed"] == 5
    assert fits.calls == 1 and threading.get_ident() not in fits.threads

    # The newest evaluations go with their session; SQLite then hands their ids out again,
    # so the newest id and the count alone would name the old list.
    assert (await api.client.delete(f"/v1/sessions/{second}")).status_code == 204
    third = await evaluated(5, ("uci-1200", "gen0"))
    players = {r["player"] for r in (await api.client.get("/v1/ratings", params={"seed": 5})).json()["ratings"]}
    assert players == {"gen0", "random", "uci-1200", f"{first}/gen1", f"{third}/gen1"}
    assert fits.calls == 2


async def test_rating_fits_cache_is_bounded():
    fits = caches.RatingFits()
    assert 0 < fits.size <= 4096
    for seed in range(3 * fits.size):
        fits.put(("seed", seed), (seed,), [])
    assert len(fits) == fits.size
    assert fits.get(("seed", 3 * fits.size - 1), (3 * fits.size - 1,)) == []
    assert fits.get(("seed", 0), (0,)) is None
