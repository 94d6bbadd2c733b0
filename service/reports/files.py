"""A session's report, built from the database, and its files: games.pgn, metrics.json,
report.json and report.html.

Everything comes from storage (games, learning events, alerts, metric snapshots, checkpoints,
evaluations), so a session resumed after a crash or across several `run`s gets one complete
report, and the API can build the report of any session, running or finished.

What a build holds does not grow with the session (`reads`): the games' totals, streaks,
buckets and histograms are SQL aggregates (exact); the analyzer's verdicts come from at most
SAMPLED_GAMES games' results and lengths and SEARCHED_GAMES games' policy and root-value
blobs, evenly spread over the session (`analysis_sample` says how many); learning steps and
metric snapshots are counted and summed in SQL and their rows thinned to SERIES_ROWS, as the
charts draw them anyway; the fleet's games per actor and recorded generation lags are grouped
in SQL, its actor replacements counted there and the newest MAX_REPLACEMENTS listed; the
share of games at the move cap is grouped in SQL and the value's calibration reads the root
values of the newest CALIBRATION_GAMES games. Below those bounds nothing is thinned.

`load_session` does the (async) reads; `compose` turns them into report.json (pure CPU:
decoding the sampled policy targets, fitting the ratings; callers run it in a thread);
`session_report` and `write_session_files` put them together. metrics.json, every game's
row, is written by `write_session_files` only (the end of `continuous-play run`).
`continuous-play report --input DIR --output DIR` is `service.reports.directory`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..config import Settings, stored_session_config
from ..event_types import EventType
from ..stats.analyzer import analyze
from ..stats.numbers import finite
from ..stats.ratings import lists_out, player, rating_list, rating_lists
from ..storage import codec, models
from ..storage import repositories as repo
from . import reads
from .builder import (
    CALIBRATION_GAMES,
    MAX_POINTS,
    adjudication_counts,
    build_report,
    build_series,
    cap_share,
    fleet_section,
    match_estimate,
    sprt_verdicts,
    value_health,
)
from .directory import write_atomic
from .html import render_html

MAX_SNAPSHOTS = 100_000
"""Metric snapshots metrics.json keeps (the newest)."""
SAMPLED_GAMES = 2000
"""Games whose result and length the analyzer's trends read (evenly spread)."""
SEARCHED_GAMES = 200
"""Games whose policy targets and root values (kilobytes each) the analyzer reads."""
SERIES_ROWS = MAX_POINTS
"""Learning steps and metric snapshots a build reads (thinned evenly beyond that)."""
MAX_ALERTS = 1000
"""Alerts a report lists (the newest)."""
MAX_REPLACEMENTS = 100
"""Actor replacements a report lists (the newest; all of them are counted)."""


def analysis(sampled, searched, learning, ratings, games_at) -> list:
    """The improvement indicators (stats.analyzer) over the sampled games and learning rows."""
    elo_points = [
        (games_at[int(name[3:])], r.rating, r.low, r.high)
        for name, r in ratings.items()
        if name.startswith("gen") and name[3:].isdigit() and int(name[3:]) in games_at
    ]
    max_probs, value_pairs = [], []
    for result, policy_blob, values_blob in searched:
        white = {"1-0": 1.0, "0-1": -1.0}.get(result, 0.0)
        for ply, (policy, value) in enumerate(
            zip(codec.decode_policies(policy_blob), codec.decode_values(values_blob))
        ):
            if len(policy):
                max_probs.append(float(policy.max()))
            value_pairs.append((float(value), white if ply % 2 == 0 else -white))
    return analyze(
        elo_points=sorted(elo_points) or None,
        results=[g.result for g in sampled] or None,
        losses=[row["total_loss"] for row in learning] or None,
        loss_steps=[row["step"] for row in learning] or None,
        plies=[g.plies for g in sampled] or None,
        move_max_probabilities=max_probs or None,
        policy_entropies=[row["policy_entropy"] for row in learning] or None,
        entropy_steps=[row["step"] for row in learning] or None,
        value_pairs=value_pairs or None,
    )


@dataclass
class StoredSession:
    """What a report is made of: the games as aggregates and bounded samples (see the
    module's docstring), the rest as rows."""

    row: models.SessionRow
    totals: reads.GameTotals
    game_series: dict[str, Any]
    sampled: list[Any]  # (result, plies) of at most SAMPLED_GAMES games, in number order
    searched: list[Any]  # (result, policy blob, root-values blob) of at most SEARCHED_GAMES games
    steps: reads.Steps
    snapshots: reads.Snapshots
    evaluation_events: list[models.EventRow]
    alerts: list[models.EventRow]
    checkpoints: list[models.CheckpointRow]
    evaluations: list[models.EvaluationRow]
    fleet: reads.Fleet
    newest: list[Any]  # (number, result, root values, white first) of the newest CALIBRATION_GAMES games


def _events(session_id: str, kind: str) -> Any:
    return select(models.EventRow).where(models.EventRow.session_id == session_id, models.EventRow.type == kind)


async def load_session(db, session_id: str) -> StoredSession | None:
    """Read what the report of `session_id` needs; None when there is no such session."""
    row = await repo.get_session(db, session_id)
    if row is None:
        return None
    totals = await reads.game_totals(db, session_id)
    sampled = await reads.spread_games(
        db, session_id, totals.games, SAMPLED_GAMES, (models.GameRow.result, models.GameRow.plies)
    )
    searched = await reads.spread_games(
        db,
        session_id,
        totals.games,
        SEARCHED_GAMES,
        (models.GameRow.result, models.GameRow.policy, models.GameRow.root_values),
    )
    evaluation_events = await db.scalars(
        _events(session_id, EventType.EVALUATION_FINISHED).order_by(models.EventRow.seq)
    )
    alerts = await db.scalars(
        _events(session_id, EventType.ALERT_RAISED).order_by(models.EventRow.seq.desc()).limit(MAX_ALERTS)
    )
    return StoredSession(
        row=row,
        totals=totals,
        game_series=await reads.game_series(db, session_id, totals),
        sampled=sampled,
        searched=searched,
        steps=await reads.learning_steps(db, session_id, SERIES_ROWS),
        snapshots=await reads.metric_snapshots(db, session_id, SERIES_ROWS),
        evaluation_events=list(evaluation_events.all()),
        alerts=list(reversed(alerts.all())),
        checkpoints=await repo.list_checkpoints(db, session_id),
        evaluations=await repo.list_evaluations(db, session_id),
        fleet=await reads.fleet(db, session_id, MAX_REPLACEMENTS),
        newest=await reads.newest_games(db, session_id, CALIBRATION_GAMES),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _alert(event: models.EventRow) -> dict[str, Any]:
    data = event.data if isinstance(event.data, dict) else {"message": str(event.data)}
    return {**data, "seq": event.seq, "ts": _iso(event.ts)}


def _checkpoints(stored: StoredSession, settings: Settings) -> list[dict[str, Any]]:
    return [
        {
            "generation": c.generation,
            "games": c.games,
            "path": str(Path(settings.checkpoint_dir) / c.file_name),
            "sha256": c.sha256,
        }
        for c in stored.checkpoints
    ]


def compose(stored: StoredSession, settings: Settings) -> dict[str, Any]:
    """report.json of a session from what `load_session` read. Pure CPU.

    `build_report` and `build_series` make their sections from the rows they are given; the
    figures of games, learning steps and snapshots that rows thinned to a bound would get
    wrong (counts, sums, minima, the games' charts) are then set from the SQL aggregates.
    Not split: it is the list of report.json's sections, each a call, in the file's order."""
    row, totals, steps = stored.row, stored.totals, stored.steps
    learning = steps.rows
    stats = [data for _, data in stored.snapshots.rows]
    ckpts = _checkpoints(stored, settings)
    started = row.started_at or row.created_at
    ended = row.finished_at or (datetime.now(timezone.utc) if row.active else row.updated_at)
    elapsed = max((ended - started).total_seconds(), 0.0) if started and ended else 0.0
    summary = {"reason": row.stop_reason} if row.stop_reason else None
    report = build_report(
        session_id=row.id,
        config=stored_session_config(row.config),
        settings=settings,
        scorecard=totals.scorecard(),
        learning=learning,
        stats=stats,
        checkpoints=ckpts,
        games=[],
        started=started.timestamp(),
        elapsed_s=elapsed,
        summary=summary,
        error=row.failure_reason,
        torch_threads=settings.resolved_torch_threads(),
    )
    report["throughput"].update(
        games_per_minute=totals.games / max(elapsed / 60, 1e-9),
        mean_move_seconds=totals.mean_move_seconds(),
        learning_seconds=steps.seconds,
        simulations_per_second_mean=stored.snapshots.simulations_per_second_mean,
    )
    if steps.count:
        report["losses"]["phases"] = steps.count
        for head in reads.LOSS_HEADS:
            report["losses"][head]["min"] = steps.minimum[head]
    report["state"] = row.state
    report["finished_at"] = _iso(row.finished_at)  # None while the session is not over
    report["generated_at"] = datetime.now(timezone.utc).isoformat()
    generation_of = {c.id: c.generation for c in stored.checkpoints}
    games_at = {c.generation: c.games for c in stored.checkpoints}
    evaluated = [(e, generation_of[e.checkpoint_id], None) for e in stored.evaluations]
    ratings = rating_list(evaluated, settings.elo_anchor)  # the current yardstick's: the Elo, curve and analysis
    report["rating_list"] = lists_out(rating_lists(evaluated, settings.elo_anchor))
    adjudicated: dict[tuple[Any, Any], list[Any]] = {}  # per (checkpoint, opponent), in order
    for event in stored.evaluation_events:
        if isinstance(event.data, dict):
            key = (event.data.get("checkpoint_id"), event.data.get("opponent"))
            adjudicated.setdefault(key, []).append(event.data.get("adjudicated"))
    evaluations = []
    for e in stored.evaluations:
        known = adjudicated.get((e.checkpoint_id, e.opponent))
        evaluations.append(
            {
                "generation": generation_of[e.checkpoint_id],
                "opponent": e.opponent,
                "wins": e.wins,
                "draws": e.draws,
                "losses": e.losses,
                "pentanomial": e.pentanomial,
                "elo": e.elo,
                "elo_low": e.elo_low,
                "elo_high": e.elo_high,
                "sprt": e.sprt,
                "yardstick": e.yardstick,
                "games": e.wins + e.draws + e.losses,
                "adjudicated": known.pop(0) if known else None,
                "match": match_estimate(e.wins, e.draws, e.losses, e.pentanomial),
                "games_played": games_at.get(generation_of[e.checkpoint_id]),
                "created_at": _iso(e.created_at),
            }
        )
    report["evaluations"] = evaluations
    newest = max((generation_of[e.checkpoint_id] for e in stored.evaluations), default=None)
    if newest is not None and player(newest) in ratings:
        r = ratings[player(newest)]
        report["elo"] = {
            "generation": newest,
            "rating": r.rating,
            "low": r.low,
            "high": r.high,
            "yardstick": stored.evaluations[-1].yardstick,
        }
    report["analysis"] = [i.to_dict() for i in analysis(stored.sampled, stored.searched, learning, ratings, games_at)]
    report["analysis_sample"] = {
        "games": totals.games,
        "sampled_games": len(stored.sampled),
        "searched_games": len(stored.searched),
    }
    report["series"] = build_series(
        games=[],
        learning=learning,
        checkpoints=ckpts,
        rating_list=report["rating_list"],
        evaluations=evaluations,
        stats=[{"ts": _iso(ts), **data} for ts, data in stored.snapshots.rows],
    )
    report["series"].update(stored.game_series)
    report["series"]["cap_share"] = cap_share(report["series"]["results"])
    report["value_health"] = value_health(stored.newest)
    report["sprt"] = sprt_verdicts(evaluations)
    report["adjudication"] = adjudication_counts(report["scorecard"], evaluations)
    report["alerts"] = [_alert(e) for e in stored.alerts]
    fleet = stored.fleet
    last_snapshot = stored.snapshots.rows[-1] if stored.snapshots.rows else None
    report["fleet"] = fleet_section(
        config=report["manifest"]["config"],
        actors=fleet.actors,
        lags=fleet.lags,
        replacements=fleet.replacements,
        replaced=[(seq, _iso(ts), data) for seq, ts, data in fleet.replaced],
        latest=(_iso(last_snapshot[0]), last_snapshot[1]) if last_snapshot is not None else None,
    )
    # Exactly what a reader of report.json gets: strict JSON (no NaN), lists, string keys.
    return json.loads(json.dumps(finite(report)))


async def session_report(db, settings: Settings, session_id: str) -> dict[str, Any] | None:
    """The report.json document of a session from the database (None: no such session)."""
    stored = await load_session(db, session_id)
    if stored is None:
        return None
    return await asyncio.to_thread(compose, stored, settings)


async def write_session_files(sessionmaker, settings: Settings, session_id: str, out_dir: Path) -> dict[str, Any]:
    """Write games.pgn, metrics.json, report.json and report.html under `out_dir`; return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    async with sessionmaker() as db:
        stored = await load_session(db, session_id)
        if stored is None:
            raise LookupError(f"no session {session_id}")
        with (out_dir / "games.pgn").open("w") as f:
            async for chunk in repo.games_pgn(db, session_id):
                f.write(chunk)
        games = await reads.metrics_games(db, session_id)
        learning = await db.scalars(_events(session_id, EventType.LEARNING_STEP).order_by(models.EventRow.seq))
        snapshots = await repo.list_metric_snapshots(db, session_id, limit=MAX_SNAPSHOTS)
        metrics = {
            "session_id": session_id,
            "games": games,
            "learning": [e.data for e in learning.all()],
            "stats": [s.data for s in snapshots],
            "checkpoints": _checkpoints(stored, settings),
        }
    report = await asyncio.to_thread(compose, stored, settings)
    write_atomic(out_dir / "metrics.json", json.dumps(finite(metrics), indent=1))
    write_atomic(out_dir / "report.json", json.dumps(report, indent=1))
    write_atomic(out_dir / "report.html", await asyncio.to_thread(render_html, report))
    return report
