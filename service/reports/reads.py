"""What a session's report reads from the database: SQL aggregates and bounded samples, so
its cost to the process that builds it (the API's, for report.json and report.html) does
not grow with the session: a long session's games are never all loaded, and never their
policy blobs but for a bounded sample.

- `game_totals`: the scorecard's counts and sums, exact (`storage.queries.game_sums`, one
  grouped query), with the games per length, the longest decisive and drawn runs and the
  current run (window functions);
- `game_series`: the charts of the games, exact: W/D/L (and games at the move cap) per bucket of games, and the
  histograms of game length, seconds per move and game duration (binned in SQL);
- `spread_games`: at most `limit` games evenly spread over the session (the first and the
  last included), the columns asked for: the analyzer's input;
- `learning_steps`, `metric_snapshots`: their count and totals from SQL, the rows thinned to
  at most `limit` (first and last kept), as the charts draw them;
- `fleet`: the games per self-play actor (count, numbers, generations), the generation lag
  the `game.finished` events recorded (games per actor and lag) and the actor replacements
  (`session.state` events with `actor_replaced`), grouped in SQL;
- `newest_games`: the newest `limit` games' number, result, root values and first mover;
- `metrics_games`: every game's summary columns (no blobs), streamed: metrics.json, which only
  `continuous-play run` writes at its end;
- `report_version`: what a report depends on, in one light query (the API's cache key).

The statements of one build run one after the other, not in one snapshot: while a session
plays, a game stored meanwhile may be in one figure and not yet in another.

Over 500 lines: one function per read above, each a query or two; they share the session's
filters, and splitting them would part the report's reads for no seam between them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, Integer, bindparam, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..event_types import EventType
from ..stats.scorecard import DRAW, median_of_counts, rate, summary
from ..storage.codec import decode_values
from ..storage.models import (
    CheckpointRow,
    EvaluationRow,
    EventRow,
    GameRow,
    MetricSnapshotRow,
    SessionRow,
)
from ..storage.queries import MOVE_SECONDS, GameSums, count_if, game_sums
from .builder import (
    BIN_EPSILON,
    MAX_BUCKETS,
    MOVE_CAP,
    histogram_bin,
    histogram_bins,
    histogram_of,
    nice_step,
    thin_indices,
)

_OF_SESSION = GameRow.session_id == bindparam("session_id")
_PLIES = select(GameRow.plies, func.count(GameRow.id)).where(_OF_SESSION).group_by(GameRow.plies)

# Runs of games (in number order): a game's rank minus its rank among the games of its kind
# is constant along a run of that kind ("gaps and islands").
_RANK = func.row_number().over(order_by=GameRow.number)
_IS_DRAW = case((GameRow.result == DRAW, 1), else_=0)
_ORDERED = (
    select(
        GameRow.number,
        GameRow.result,
        _IS_DRAW.label("draw"),
        (_RANK - func.row_number().over(partition_by=_IS_DRAW, order_by=GameRow.number)).label("kind_run"),
        (_RANK - func.row_number().over(partition_by=GameRow.result, order_by=GameRow.number)).label("result_run"),
    )
    .where(_OF_SESSION)
    .subquery()
)
_KIND_RUNS = (
    select(_ORDERED.c.draw, func.count().label("length")).group_by(_ORDERED.c.draw, _ORDERED.c.kind_run).subquery()
)
_LONGEST_RUNS = select(_KIND_RUNS.c.draw, func.max(_KIND_RUNS.c.length)).group_by(_KIND_RUNS.c.draw)
_CURRENT_RUN = (
    select(_ORDERED.c.result, func.count())
    .group_by(_ORDERED.c.result, _ORDERED.c.result_run)
    .order_by(func.max(_ORDERED.c.number).desc())
    .limit(1)
)


@dataclass
class GameTotals:
    """A session's games summed in SQL (`storage.queries.game_sums`), with what the scorecard
    shows beyond those sums: the games per length and the runs. Exact."""

    sums: GameSums = field(default_factory=GameSums)
    plies: dict[int, int] = field(default_factory=dict)  # games per length
    longest_decisive: int = 0
    longest_draw: int = 0
    current: tuple[str | None, int] = (None, 0)  # result of the last game, games in a row with it

    @property
    def games(self) -> int:
        """The session's games."""
        return self.sums.games

    def mean_move_seconds(self) -> float | None:
        """report.json's throughput.mean_move_seconds: the mean over games of seconds per move."""
        return rate(self.sums.move_seconds, self.games)

    def scorecard(self) -> dict[str, Any]:
        """What `stats.scorecard.Scorecard.to_dict()` says of the same games (`summary`)."""
        sums = self.sums
        return summary(
            games=sums.games,
            white_wins=sums.white,
            black_wins=sums.black,
            draws=sums.draws,
            adjudicated=sums.adjudicated,
            adjudicated_decisive=sums.adjudicated_decisive,
            terminations=sums.terminations,
            lengths=self.plies,
            total_duration_s=sums.duration_s,
            longest_decisive=self.longest_decisive,
            longest_draw=self.longest_draw,
            current=self.current,
        )


async def game_totals(db: AsyncSession, session_id: str) -> GameTotals:
    """The session's games summed up (four grouped queries; no row per game reaches Python)."""
    t = GameTotals(await game_sums(db, session_id))
    if not t.games:
        return t
    params = {"session_id": session_id}
    t.plies = {int(p): int(c) for p, c in (await db.execute(_PLIES, params)).all()}
    for draw, longest in (await db.execute(_LONGEST_RUNS, params)).all():
        if int(draw):
            t.longest_draw = int(longest)
        else:
            t.longest_decisive = int(longest)
    result, length = (await db.execute(_CURRENT_RUN, params)).one()
    t.current = (str(result), int(length))
    return t


def _floor(db: AsyncSession, value: Any) -> Any:
    """floor(value) for value >= 0: SQLite's FLOOR needs its math functions compiled in,
    and a CAST there truncates (= floors a non-negative value); PostgreSQL's CAST rounds."""
    if db.get_bind().dialect.name == "sqlite":
        return cast(value, Integer)
    return cast(func.floor(value), Integer)


async def _float_histogram(
    db: AsyncSession, session_id: str, value: Any, n: int, totals: tuple[float, float | None, float | None]
) -> dict[str, Any]:
    """`builder.histogram` of a per-game value computed in SQL: bins counted by a grouped
    query with the same arithmetic, the median read by its rank."""
    total, low, high = totals
    if not n or low is None or high is None:
        return histogram_of(0.0, 1.0, [], n=0, mean=None, median=None)
    start, width, bins = histogram_bins(low, high)
    raw = _floor(db, (value - literal(start, Float)) / literal(width, Float) + literal(BIN_EPSILON, Float))
    counts = [0] * bins
    rows = await db.execute(select(raw, func.count()).where(_OF_SESSION).group_by(raw), {"session_id": session_id})
    for index, count in rows.all():
        counts[min(int(index), bins - 1)] += int(count)
    middle = (
        (
            await db.execute(
                select(value).where(_OF_SESSION).order_by(value).offset((n - 1) // 2).limit(2 - n % 2),
                {"session_id": session_id},
            )
        )
        .scalars()
        .all()
    )
    return histogram_of(start, width, counts, n=n, mean=total / n, median=sum(middle) / len(middle))


def _plies_histogram(plies: dict[int, int]) -> dict[str, Any]:
    n = sum(plies.values())
    if not n:
        return histogram_of(0.0, 1.0, [], n=0, mean=None, median=None)
    start, width, bins = histogram_bins(min(plies), max(plies), integer=True)
    counts = [0] * bins
    for value, count in plies.items():
        counts[histogram_bin(value, start, width, bins)] += count
    return histogram_of(
        start,
        width,
        counts,
        n=n,
        mean=sum(p * c for p, c in plies.items()) / n,
        median=median_of_counts(plies),
        integer=True,
    )


async def _result_buckets(db: AsyncSession, session_id: str, n: int) -> dict[str, Any]:
    """`builder.result_buckets` in one grouped query over the games ranked by number."""
    size = nice_step(n / MAX_BUCKETS, integer=True) if n else 1
    ranked = (
        select(
            GameRow.number,
            GameRow.result,
            GameRow.adjudicated,
            GameRow.termination,
            GameRow.plies,
            MOVE_SECONDS.label("move_s"),
            ((_RANK - 1) // bindparam("size", type_=Integer)).label("bucket"),
        )
        .where(_OF_SESSION)
        .subquery()
    )
    query = (
        select(
            func.min(ranked.c.number),
            func.max(ranked.c.number),
            func.count(),
            count_if(ranked.c.result == "1-0"),
            count_if(ranked.c.result == "0-1"),
            count_if(ranked.c.result == DRAW),
            count_if(ranked.c.adjudicated.is_(True)),
            count_if(ranked.c.termination == MOVE_CAP),
            func.avg(cast(ranked.c.plies, Float)),
            func.avg(ranked.c.move_s),
        )
        .group_by(ranked.c.bucket)
        .order_by(ranked.c.bucket)
    )
    buckets = [
        {
            "first": int(first),
            "last": int(last),
            "games": int(games),
            "white_wins": int(w),
            "black_wins": int(b),
            "draws": int(d),
            "adjudicated": int(adj),
            "move_cap": int(capped),
            "mean_plies": float(plies),
            "mean_move_s": float(move_s),
        }
        for first, last, games, w, b, d, adj, capped, plies, move_s in (
            await db.execute(query, {"session_id": session_id, "size": size})
        ).all()
    ]
    return {"bucket_size": size, "buckets": buckets}


async def game_series(db: AsyncSession, session_id: str, totals: GameTotals) -> dict[str, Any]:
    """The `series` of report.json that draw the games (as `builder.build_series` makes them
    from every game's row): results, game_length, move_time, game_duration."""
    sums = totals.sums
    return {
        "results": await _result_buckets(db, session_id, totals.games),
        "game_length": _plies_histogram(totals.plies),
        "move_time": await _float_histogram(
            db, session_id, MOVE_SECONDS, sums.games, (sums.move_seconds, sums.min_move_seconds, sums.max_move_seconds)
        ),
        "game_duration": await _float_histogram(
            db, session_id, GameRow.duration_s, sums.games, (sums.duration_s, sums.min_duration_s, sums.max_duration_s)
        ),
    }


_FEN_TAG = re.compile(r'\[FEN "[^"]*? ([wb]) ')


async def newest_games(db: AsyncSession, session_id: str, limit: int) -> list[tuple[int, str, list[float], bool]]:
    """(number, result, root values, White moves first) of the newest `limit` games, oldest
    first: what `builder.value_health` checks. The first mover comes from the PGN's FEN tag
    (a game from a set-up position), White without one."""
    rows = await db.execute(
        select(GameRow.number, GameRow.result, GameRow.root_values, GameRow.pgn)
        .where(GameRow.session_id == session_id)
        .order_by(GameRow.number.desc())
        .limit(limit)
    )
    out = []
    for number, result, blob, pgn in rows.all():
        fen = _FEN_TAG.search(pgn or "")
        out.append((int(number), str(result), decode_values(blob), fen is None or fen.group(1) == "w"))
    return out[::-1]


async def spread_games(db: AsyncSession, session_id: str, games: int, limit: int, columns: Sequence[Any]) -> list[Any]:
    """`columns` of at most `limit` of the session's `games` games, evenly spread in number
    order (`builder.thin_indices`: the first and the last included), in that order."""
    if limit < 1 or games < 1:
        return []
    query = select(*columns).where(_OF_SESSION).order_by(GameRow.number)
    if games <= limit:
        return list((await db.execute(query.limit(limit), {"session_id": session_id})).all())
    ranked = select(GameRow.id, _RANK.label("rank")).where(_OF_SESSION).subquery()
    query = query.join(ranked, ranked.c.id == GameRow.id).where(
        ranked.c.rank.in_([i + 1 for i in thin_indices(games, max(limit, 2))])
    )
    return list((await db.execute(query, {"session_id": session_id})).all())


_STEP = EventRow.type == EventType.LEARNING_STEP


@dataclass
class Steps:
    """A session's learning steps: their count, per-head minimum and summed seconds (SQL), and
    the rows (`data`) thinned to a bound, the first and the last kept."""

    count: int
    minimum: dict[str, float | None]
    seconds: float
    rows: list[dict[str, Any]]


LOSS_HEADS = ("policy_loss", "value_loss", "total_loss")
"""The losses report.json summarises (first, last, minimum)."""


async def learning_steps(db: AsyncSession, session_id: str, limit: int) -> Steps:
    """The session's `learning.step` events, counted and summed in SQL, at most `limit` rows."""
    where = (EventRow.session_id == session_id) & _STEP
    figures = (
        await db.execute(
            select(
                func.count(),
                *(func.min(EventRow.data[head].as_float()) for head in LOSS_HEADS),
                func.sum(EventRow.data["seconds"].as_float()),
            ).where(where)
        )
    ).one()
    count = int(figures[0])
    query = select(EventRow.data).where(where)
    if count > limit:
        ranked = (
            select(EventRow.seq, func.row_number().over(order_by=EventRow.seq).label("rank")).where(where).subquery()
        )
        query = query.join(ranked, ranked.c.seq == EventRow.seq).where(
            ranked.c.rank.in_([i + 1 for i in thin_indices(count, max(limit, 2))])
        )
    rows = list((await db.scalars(query.order_by(EventRow.seq))).all())
    minimum = {head: None if value is None else float(value) for head, value in zip(LOSS_HEADS, figures[1:4])}
    return Steps(count, minimum, float(figures[4] or 0.0), rows)


@dataclass
class Snapshots:
    """A session's metric snapshots: their count and mean simulations/s (SQL), and (ts, data)
    rows thinned to a bound in time order, the first and the last kept."""

    count: int
    simulations_per_second_mean: float | None
    rows: list[tuple[Any, dict[str, Any]]]


async def metric_snapshots(db: AsyncSession, session_id: str, limit: int) -> Snapshots:
    """The session's metric snapshots, counted and averaged in SQL, at most `limit` rows."""
    where = MetricSnapshotRow.session_id == session_id
    count, sims = (
        await db.execute(
            select(func.count(), func.avg(MetricSnapshotRow.data["simulations_per_second"].as_float())).where(where)
        )
    ).one()
    query = select(MetricSnapshotRow.ts, MetricSnapshotRow.data).where(where)
    if count > limit:
        ranked = (
            select(
                MetricSnapshotRow.id,
                func.row_number().over(order_by=(MetricSnapshotRow.ts, MetricSnapshotRow.id)).label("rank"),
            )
            .where(where)
            .subquery()
        )
        query = query.join(ranked, ranked.c.id == MetricSnapshotRow.id).where(
            ranked.c.rank.in_([i + 1 for i in thin_indices(int(count), max(limit, 2))])
        )
    rows = [
        (ts, data) for ts, data in (await db.execute(query.order_by(MetricSnapshotRow.ts, MetricSnapshotRow.id))).all()
    ]
    return Snapshots(int(count), None if sims is None else float(sims), rows)


_ACTORS = (
    select(
        GameRow.actor,
        func.count(GameRow.id),
        func.min(GameRow.number),
        func.max(GameRow.number),
        func.min(GameRow.generation),
        func.max(GameRow.generation),
    )
    .where(_OF_SESSION)
    .group_by(GameRow.actor)
    .order_by(GameRow.actor)
)
_OF_SESSION_EVENTS = EventRow.session_id == bindparam("session_id")
_RECORDED_LAG = (
    select(
        EventRow.data["actor"].as_integer().label("actor"),
        EventRow.data["generation_lag"].as_integer().label("lag"),
    )
    .where(_OF_SESSION_EVENTS, EventRow.type == EventType.GAME_FINISHED)
    .subquery()
)
_LAGS = (
    select(_RECORDED_LAG.c.actor, _RECORDED_LAG.c.lag, func.count())
    .where(_RECORDED_LAG.c.lag.is_not(None))
    .group_by(_RECORDED_LAG.c.actor, _RECORDED_LAG.c.lag)
)
_REPLACED = (
    _OF_SESSION_EVENTS
    & (EventRow.type == EventType.SESSION_STATE)
    & EventRow.data["actor_replaced"].as_boolean().is_(True)
)


@dataclass
class Fleet:
    """A session's self-play fleet as stored, grouped in SQL (rows per actor and lag, never
    per game):

    - `actors`: (actor, games, first number, last number, least generation, greatest
      generation) per actor that has a stored game, by actor;
    - `lags`: (actor, generation lag, games) per actor and lag, of the `game.finished` events
      that recorded a lag (the learner's newest generation when the game arrived minus the
      one that started it; events of sessions older than the fleet have none);
    - `replacements`: how many actors died and were replaced; `replaced`: the newest of them
      as (seq, ts, data) of their `session.state` events, newest first."""

    actors: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    lags: list[tuple[int, int, int]] = field(default_factory=list)
    replacements: int = 0
    replaced: list[tuple[int, Any, dict[str, Any]]] = field(default_factory=list)


async def fleet(db: AsyncSession, session_id: str, limit: int) -> Fleet:
    """The session's games per actor, recorded generation lags and actor replacements (at
    most `limit` of them listed), in four grouped or bounded queries."""
    params = {"session_id": session_id}
    actors = [
        (int(a), int(n), int(first), int(last), int(low), int(high))
        for a, n, first, last, low, high in (await db.execute(_ACTORS, params)).all()
    ]
    lags = [(0 if a is None else int(a), int(lag), int(n)) for a, lag, n in (await db.execute(_LAGS, params)).all()]
    count = int(await db.scalar(select(func.count()).select_from(EventRow).where(_REPLACED), params) or 0)
    rows = await db.execute(
        select(EventRow.seq, EventRow.ts, EventRow.data).where(_REPLACED).order_by(EventRow.seq.desc()).limit(limit),
        params,
    )
    return Fleet(actors, sorted(lags), count, [(int(seq), ts, data) for seq, ts, data in rows.all()])


METRICS_GAME_COLUMNS = (
    GameRow.number,
    GameRow.result,
    GameRow.termination,
    GameRow.adjudicated,
    GameRow.plies,
    GameRow.duration_s,
    GameRow.simulations,
    GameRow.temperature,
)
"""A game's columns in metrics.json (no PGN, moves or blobs)."""


async def metrics_games(db: AsyncSession, session_id: str, batch: int = 1000) -> list[dict[str, Any]]:
    """Every game's row of metrics.json, in number order, read `batch` rows at a time."""
    query = (
        select(*METRICS_GAME_COLUMNS)
        .where(GameRow.session_id == session_id)
        .order_by(GameRow.number)
        .execution_options(yield_per=batch)
    )
    out = []
    result = await db.stream(query)
    try:
        async for number, res, termination, adjudicated, plies, duration, simulations, temperature in result:
            out.append(
                {
                    "number": number,
                    "result": res,
                    "termination": termination,
                    "adjudicated": adjudicated,
                    "plies": plies,
                    "duration_s": duration,
                    "simulations": simulations,
                    "temperature": temperature,
                    "mean_move_s": duration / max(plies, 1),
                }
            )
    finally:
        await result.close()
    return out


def _newest(column: Any, session_column: Any) -> Any:
    return select(func.max(column)).where(session_column == SessionRow.id).correlate(SessionRow).scalar_subquery()


_REPORT_VERSION = select(
    SessionRow.updated_at,
    SessionRow.games_done,
    SessionRow.state,
    SessionRow.last_seq,
    _newest(CheckpointRow.id, CheckpointRow.session_id),
    _newest(EvaluationRow.id, EvaluationRow.session_id),
    _newest(MetricSnapshotRow.id, MetricSnapshotRow.session_id),
).where(SessionRow.id == bindparam("session_id"))


async def report_version(db: AsyncSession, session_id: str) -> tuple[Any, ...] | None:
    """What a session's report depends on, in one light query; None if there is no session:
    its row's `updated_at` (every change of the row renews it), `games_done` (each stored
    game), state, `last_seq` (each event: learning steps, alerts, finished evaluations) and
    its newest checkpoint, evaluation and metric snapshot ids (rows only ever added while
    the session exists, each above the ids it already has)."""
    row = (await db.execute(_REPORT_VERSION, {"session_id": session_id})).first()
    return None if row is None else tuple(row)
