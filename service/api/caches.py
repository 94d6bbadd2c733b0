"""The caches that keep the routes dashboards poll cheap (one light query per request,
however long the session); the SQL they run is in storage (`storage.queries.game_sums`,
`storage.repositories`), the JSON they keep is the API's (`api.schemas`).

- `ScorecardCache`: the scorecard is an aggregate over all of a session's games; summed
  afresh on every request its cost grew with the session (SQLite reads each game's row,
  blobs included, to reach the columns it sums). Each session's sums are kept and only the
  games stored since (`games.id` above the last one summed) are added, in one grouped query,
  and only when the session's `games_done` has changed since it last looked.
- `GamePages`: a games-list page as JSON, until the session's `games_done` changes.
- `NewestRows`: the session's newest rated evaluation (its Elo) and newest metric snapshot,
  loaded once each by id (the ids come with the session's row, in the same query).
- `SessionViews`: the JSON of `GET /v1/sessions/{id}` while the session's version (see
  `repositories.session_version`) and its live stats are what they were.
- `RatingFits`: the rating lists of `/v1/sessions/{id}/evaluations` and `/v1/ratings` (a
  dense Newton solve, run in a thread) until their evaluations change.
- `ReportCache`: a session's report.json / report.html as bytes until the session changes,
  one build at a time per session and version, at most `REPORT_BUILDS` builds at once.

Why the sums are exact: a game is never changed or deleted once stored (only with its
session), `repositories.add_game` counts each stored game in `sessions.games_done` in the
game's own transaction, and the orchestrator is the one writer of a session's games, one
transaction after the other, so ids grow in commit order. Should the sums ever fall short of
`games_done` (a game committed out of id order by some other writer), the session's card is
summed again from scratch. Each cached value is read AFTER the version it is filed under,
so it is never older than that version. Every cache is per app (`app.state`), bounded, and
forgets a session when it is deleted through the API (`RatingFits` and `ReportCache` entries
of a deleted session are never asked for again: they age out).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from sqlalchemy.ext.asyncio import AsyncSession

from service.api.schemas import Elo, Scorecard
from service.stats.scorecard import rate
from service.storage import repositories as repo
from service.storage.models import EvaluationRow
from service.storage.queries import GameSums, game_sums

CACHED_SESSIONS = 4096
"""Sessions whose scorecard sums are kept (least recently used beyond that are dropped)."""


class PerApp:
    """A cache kept once per app, on `app.state` under the class's STATE_NAME, made on first use."""

    STATE_NAME: ClassVar[str]

    @classmethod
    def for_app(cls, app: Any) -> Self:
        cache = getattr(app.state, cls.STATE_NAME, None)
        if cache is None:
            cache = cls()
            setattr(app.state, cls.STATE_NAME, cache)
        return cache


def scorecard_of(sums: GameSums) -> Scorecard:
    """The API's scorecard of a session's game sums."""
    games = sums.games
    return Scorecard(
        games=games,
        white_wins=sums.white,
        black_wins=sums.black,
        draws=sums.draws,
        adjudicated=sums.adjudicated,
        adjudicated_decisive=sums.adjudicated_decisive,
        white_win_rate=rate(sums.white, games),
        black_win_rate=rate(sums.black, games),
        draw_rate=rate(sums.draws, games),
        white_score=rate(sums.white + sums.draws / 2, games),
        mean_plies=rate(sums.plies, games),
        min_plies=sums.min_plies,
        max_plies=sums.max_plies,
        total_duration_s=sums.duration_s,
        terminations=dict(sums.terminations),
    )


@dataclass(frozen=True)
class _Entry:
    sums: GameSums
    games_done: int  # the session's games_done when these sums were brought up to date
    card: Scorecard


class ScorecardCache(PerApp):
    """Per session, the scorecard sums and the `games_done` they were last checked against
    (see the module's docstring); one per app (`for_app`)."""

    def __init__(self, size: int = CACHED_SESSIONS) -> None:
        self.size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.queries = 0  # scorecard queries run (tests and benches read it)

    STATE_NAME = "scorecard_cache"

    async def get(self, db: AsyncSession, session_id: str, games_done: int) -> Scorecard:
        """The session's scorecard, given its `games_done` as just read from its row."""
        entry = self._entries.get(session_id)
        if entry is not None and entry.games_done == games_done:
            self._entries.move_to_end(session_id)
            return entry.card
        sums = await game_sums(db, session_id, entry.sums if entry is not None else None)
        self.queries += 1
        if sums.games < games_done and entry is not None:  # a game missed: sum everything again
            sums = await game_sums(db, session_id)
            self.queries += 1
        current = self._entries.get(session_id)
        if current is not None and current.sums.last_id > sums.last_id:
            return current.card  # another request stored newer sums meanwhile
        entry = self._entries[session_id] = _Entry(sums, games_done, scorecard_of(sums))
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry.card

    def forget(self, session_id: str) -> None:
        self._entries.pop(session_id, None)


def elo_of(evaluation: EvaluationRow, generation: int | None) -> Elo:
    """The API's Elo of a rated evaluation and its checkpoint's generation."""
    return Elo(
        rating=evaluation.elo,
        low=evaluation.elo_low,
        high=evaluation.elo_high,
        checkpoint_id=evaluation.checkpoint_id,
        generation=generation,
        opponent=evaluation.opponent,
        evaluated_at=evaluation.created_at,
    )


GAME_PAGE_BYTES = 16 * 2**20
"""Bytes of serialized games-list pages kept (least recently used beyond that are dropped)."""
GAME_PAGE_ENTRIES = 4096
"""Games-list pages kept, however small: a bound on keys, not only on bytes."""


class GamePages(PerApp):
    """Serialized pages of `GET /v1/sessions/{id}/games`, per (session, limit, position), each
    valid while the session's `games_done` is what it was when the page was read.

    Pages do change: games are numbered when they start and stored when they end, so an
    earlier-numbered game can land inside a page already served. Any stored game bumps
    `games_done` (in its own transaction), which retires every cached page of its session;
    a page read after the session's row is at least as new as that row's `games_done`.
    Dashboards poll the same pages between two games: those answers cost one small query.

    A page is keyed by the game number its cursor decodes to, not by the cursor's text: a
    cursor is base64 of JSON, and JSON whitespace (or characters base64 skips) spells one
    position in thousands of ways, each of which would be a key of its own. Keys are bounded
    too (`max_entries`): any number is a valid cursor, so a keyless client can still ask for
    as many distinct pages as it likes; they push each other out.
    """

    def __init__(self, max_bytes: int = GAME_PAGE_BYTES, max_entries: int = GAME_PAGE_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.bytes = 0
        self._pages: OrderedDict[tuple[str, int, int | None], tuple[int, bytes]] = OrderedDict()

    STATE_NAME = "game_pages"

    def __len__(self) -> int:
        return len(self._pages)

    @staticmethod
    def _key(session_id: str, limit: int, cursor: str | None) -> tuple[str, int, int | None] | None:
        """(session, limit, the game number after which the page starts); None for a
        malformed cursor (never cached: the route answers 400)."""
        if cursor is None:
            return session_id, limit, None
        try:
            return session_id, limit, repo.game_cursor_number(cursor)
        except ValueError:
            return None

    def get(self, session_id: str, limit: int, cursor: str | None, games_done: int) -> bytes | None:
        key = self._key(session_id, limit, cursor)
        if key is None:
            return None
        entry = self._pages.get(key)
        if entry is None or entry[0] != games_done:
            return None
        self._pages.move_to_end(key)
        return entry[1]

    def put(self, session_id: str, limit: int, cursor: str | None, games_done: int, body: bytes) -> None:
        key = self._key(session_id, limit, cursor)
        if key is None or len(body) > self.max_bytes // 4:
            return  # one huge page would push every other out
        old = self._pages.pop(key, None)
        if old is not None:
            self.bytes -= len(old[1])
        self._pages[key] = (games_done, body)
        self.bytes += len(body)
        while self.bytes > self.max_bytes or len(self._pages) > self.max_entries:
            _, (_, dropped) = self._pages.popitem(last=False)
            self.bytes -= len(dropped)

    def forget(self, session_id: str) -> None:
        for key in [k for k in self._pages if k[0] == session_id]:
            self.bytes -= len(self._pages.pop(key)[1])


class NewestRows(PerApp):
    """Per session, the `Elo` of its newest rated evaluation and its newest metric snapshot,
    each by its row's id, which the session route reads with the session's row in one query
    (`repositories.session_and_newest`). A stored evaluation or snapshot never changes (an
    evaluation's rating is set in the transaction that stores it) and is deleted only with
    its session, so each is loaded once; a newer one comes with a new id."""

    def __init__(self, size: int = CACHED_SESSIONS) -> None:
        self.size = size
        self._elo: OrderedDict[str, tuple[int, Elo]] = OrderedDict()
        self._snapshot: OrderedDict[str, tuple[int, dict[str, Any], Any]] = OrderedDict()

    STATE_NAME = "newest_rows"

    def _keep(self, table: OrderedDict, session_id: str, value: tuple) -> None:
        table[session_id] = value
        table.move_to_end(session_id)
        while len(table) > self.size:
            table.popitem(last=False)

    async def elo(self, db: AsyncSession, session_id: str, evaluation_id: int | None) -> Elo | None:
        """The Elo of the session's evaluation `evaluation_id` (None: no rated evaluation yet)."""
        if evaluation_id is None:
            return None
        entry = self._elo.get(session_id)
        if entry is not None and entry[0] == evaluation_id:
            self._elo.move_to_end(session_id)
            return entry[1]
        found = await repo.evaluation_with_generation(db, evaluation_id)
        if found is None:  # deleted with its session meanwhile
            return None
        elo = elo_of(*found)
        self._keep(self._elo, session_id, (evaluation_id, elo))
        return elo

    async def snapshot(
        self, db: AsyncSession, session_id: str, snapshot_id: int | None
    ) -> tuple[dict[str, Any], Any] | None:
        """(data, ts) of the session's snapshot `snapshot_id` (None: no snapshot yet)."""
        if snapshot_id is None:
            return None
        entry = self._snapshot.get(session_id)
        if entry is not None and entry[0] == snapshot_id:
            self._snapshot.move_to_end(session_id)
            return entry[1], entry[2]
        row = await repo.get_metric_snapshot(db, snapshot_id)
        if row is None:
            return None
        self._keep(self._snapshot, session_id, (snapshot_id, row.data, row.ts))
        return row.data, row.ts

    def forget(self, session_id: str) -> None:
        self._elo.pop(session_id, None)
        self._snapshot.pop(session_id, None)


class SessionViews(PerApp):
    """The JSON of `GET /v1/sessions/{id}` per session, served again while nothing it shows
    has changed: the session's `repositories.session_version` (its row's `updated_at`, which
    every change of the row renews, `games_done`, state, and the ids of its newest rated
    evaluation and newest metric snapshot) and the live worker stats object the orchestrator
    holds for it (replaced by a new one at each report). A hit costs one light query."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._views: OrderedDict[str, tuple[tuple[Any, ...], Any, bytes]] = OrderedDict()

    STATE_NAME = "session_views"

    def get(self, session_id: str, version: tuple[Any, ...], live: Any) -> bytes | None:
        entry = self._views.get(session_id)
        if entry is None or entry[0] != version or entry[1] is not live:
            return None
        self._views.move_to_end(session_id)
        return entry[2]

    def put(self, session_id: str, version: tuple[Any, ...], live: Any, body: bytes) -> None:
        self._views[session_id] = (version, live, body)
        self._views.move_to_end(session_id)
        while len(self._views) > self.size:
            self._views.popitem(last=False)

    def forget(self, session_id: str) -> None:
        self._views.pop(session_id, None)


class Versioned(PerApp):
    """Values per name, each served while its key (a version read before the value was
    computed, so the value is at least as new as it) is the one asked for; at most `size`
    names, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: Hashable, key: Hashable) -> Any | None:
        """The value stored under `name` for `key`, or None."""
        entry = self._values.get(name)
        if entry is None or entry[0] != key:
            return None
        self._values.move_to_end(name)
        return entry[1]

    def put(self, name: Hashable, key: Hashable, value: Any) -> None:
        """Keep `value` under `name` for `key` (replacing what was there)."""
        self.forget(name)
        self._values[name] = (key, value)
        self._trim()

    def _trim(self) -> None:
        while len(self._values) > self.size:
            self.forget(next(iter(self._values)))

    def forget(self, name: Hashable) -> None:
        """Drop what is kept under `name`."""
        self._values.pop(name, None)


class RatingFits(Versioned):
    """Fitted rating lists, keyed by ("session", id) or ("seed", seed), each valid for the
    version of its evaluations (`repositories.newest_evaluation_id`,
    `repositories.seed_evaluations_version`): a fit is a dense Newton solve over every player
    of the list, too slow to repeat per request, and never on the event loop."""

    def __init__(self, size: int = 256) -> None:
        super().__init__(size)

    STATE_NAME = "rating_fits"

    async def compute(self, name: Hashable, key: Hashable, fit: Callable[[], Any]) -> Any:
        """`fit()` run in a thread (the event loop serves other requests meanwhile), then
        kept under `name` for `key`."""
        value = await asyncio.to_thread(fit)
        self.put(name, key, value)
        return value


REPORT_BUILDS = 2
"""Report builds (database reads, then composing or rendering in a thread) run at once."""
REPORT_BYTES = 64 * 2**20
"""Bytes of built reports kept (a report.html is about 5 MB: plotly.js is inlined)."""


class ReportCache(Versioned):
    """A session's report.json and report.html as bytes, per (session, "json" | "html"), each
    valid for the version it was built after (`reports.report_version`); the one copy that
    every reader of that version is sent from.

    Concurrent requests for one (session, kind, version) share one build (it runs as its own
    task, so a reader that goes away does not cancel it for the others), and at most
    `builds` builds run at once, the rest wait (`waiting`): a keyless client asking for many
    sessions' reports queues, it does not multiply the work or the memory. Kept: at most
    `size` entries and `max_bytes` bytes, least recently used dropped first."""

    def __init__(self, size: int = 256, max_bytes: int = REPORT_BYTES, builds: int = REPORT_BUILDS) -> None:
        super().__init__(size)
        self.max_bytes = max_bytes
        self.bytes = 0
        self._gate = asyncio.Semaphore(builds)
        self._flights: dict[tuple[Hashable, Hashable], asyncio.Task[bytes]] = {}
        self.computed = 0  # builds started (tests read it)
        self.waiting = 0  # builds waiting for a turn

    STATE_NAME = "report_cache"

    def put(self, name: Hashable, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # one huge report would push every other out
        super().put(name, key, value)
        self.bytes += len(value)
        self._trim()

    def _trim(self) -> None:
        while self._values and (len(self._values) > self.size or self.bytes > self.max_bytes):
            self.forget(next(iter(self._values)))

    def forget(self, name: Hashable) -> None:
        entry = self._values.pop(name, None)
        if entry is not None:
            self.bytes -= len(entry[1])

    async def get_or_build(self, name: Hashable, key: Hashable, build: Callable[[], Awaitable[bytes]]) -> bytes:
        """The bytes kept under `name` for `key`, else those `build()` returns (one build per
        name and key at a time, at most `builds` at once), kept for the next reader."""
        found = self.get(name, key)
        if found is not None:
            return found
        flight = self._flights.get((name, key))
        if flight is None:
            flight = asyncio.ensure_future(self._build(name, key, build))
            self._flights[(name, key)] = flight
            flight.add_done_callback(lambda done: self._landed((name, key), done))
        return await asyncio.shield(flight)

    async def _build(self, name: Hashable, key: Hashable, build: Callable[[], Awaitable[bytes]]) -> bytes:
        self.waiting += 1
        try:
            await self._gate.acquire()
        finally:
            self.waiting -= 1
        try:
            self.computed += 1
            value = await build()
        finally:
            self._gate.release()
        self.put(name, key, value)
        return value

    def _landed(self, flight_key: tuple[Hashable, Hashable], done: asyncio.Task[bytes]) -> None:
        self._flights.pop(flight_key, None)
        if not done.cancelled():
            done.exception()  # retrieved: a failed build with no reader left is not "never retrieved"
