"""A session's report, built from the database, and its files: games.pgn, metrics.json,
report.json and report.html.

Everything comes from storage (games, learning events, alerts, metric snapshots, checkpoints,
evaluations), so a session resumed after a crash or across several `run`s gets one complete
report, and the API can build the report of any session, running or finished.

`load_session` does the (async) reads; `compose` turns the rows into report.json and
metrics.json (pure CPU: decoding every game's policy targets for the analyzer, so callers
run it in a thread); `session_report` and `write_session_files` put them together.
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
from sqlalchemy.orm import defer

from ..config import SessionConfig, Settings
from ..sessions.ratings import player, rating_list, ratings_out
from ..stats.analyzer import analyze
from ..stats.scorecard import Scorecard
from ..storage import models
from ..storage import repositories as repo
from .builder import (
    adjudication_counts,
    build_report,
    build_series,
    finite,
    match_estimate,
    sprt_verdicts,
)
from .directory import write_atomic
from .html import render_html

REPORT_EVENTS = ("learning.step", "evaluation.finished", "alert.raised")
"""The stored event types a report reads (game events are read from the games table)."""
MAX_SNAPSHOTS = 100_000


def analysis(games, learning, ratings, games_at) -> list:
    """The improvement indicators (stats.analyzer) over what the session stored."""
    elo_points = [(games_at[int(name[3:])], r.rating, r.low, r.high) for name, r in ratings.items()
                  if name.startswith("gen") and name[3:].isdigit() and int(name[3:]) in games_at]
    max_probs, value_pairs = [], []
    for g in games:
        white = {"1-0": 1.0, "0-1": -1.0}.get(g.result, 0.0)
        for ply, (policy, value) in enumerate(zip(g.policies(), g.values())):
            if len(policy):
                max_probs.append(float(policy.max()))
            value_pairs.append((float(value), white if ply % 2 == 0 else -white))
    return analyze(
        elo_points=sorted(elo_points) or None, results=[g.result for g in games] or None,
        losses=[row["total_loss"] for row in learning] or None, loss_steps=[row["step"] for row in learning] or None,
        plies=[g.plies for g in games] or None, move_max_probabilities=max_probs or None,
        policy_entropies=[row["policy_entropy"] for row in learning] or None,
        entropy_steps=[row["step"] for row in learning] or None, value_pairs=value_pairs or None)


@dataclass
class StoredSession:
    """The rows a report is made of (games without their PGN and move text)."""

    row: models.SessionRow
    games: list[models.GameRow]
    events: list[models.EventRow]
    snapshots: list[models.MetricSnapshotRow]
    checkpoints: list[models.CheckpointRow]
    evaluations: list[models.EvaluationRow]


async def load_session(db, session_id: str) -> StoredSession | None:
    """Read what the report of `session_id` needs; None when there is no such session."""
    row = await repo.get_session(db, session_id)
    if row is None:
        return None
    games = await db.scalars(select(models.GameRow).where(models.GameRow.session_id == session_id)
                             .options(defer(models.GameRow.pgn), defer(models.GameRow.moves))
                             .order_by(models.GameRow.number))
    events = await db.scalars(select(models.EventRow).where(models.EventRow.session_id == session_id,
                                                            models.EventRow.type.in_(REPORT_EVENTS))
                              .order_by(models.EventRow.seq))
    return StoredSession(
        row=row, games=list(games.all()), events=list(events.all()),
        snapshots=await repo.list_metric_snapshots(db, session_id, limit=MAX_SNAPSHOTS),
        checkpoints=await repo.list_checkpoints(db, session_id),
        evaluations=await repo.list_evaluations(db, session_id))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _alert(event: models.EventRow) -> dict[str, Any]:
    data = event.data if isinstance(event.data, dict) else {"message": str(event.data)}
    return {**data, "seq": event.seq, "ts": _iso(event.ts)}


def compose(stored: StoredSession, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report.json, metrics.json) of a session from its stored rows. Pure CPU."""
    row = stored.row
    session_id = row.id
    card = Scorecard()
    game_rows = []
    for g in stored.games:
        card.add(g.result, g.plies, g.termination, g.adjudicated, g.duration_s)
        game_rows.append({"number": g.number, "result": g.result, "termination": g.termination,
                          "adjudicated": g.adjudicated, "plies": g.plies, "duration_s": g.duration_s,
                          "simulations": g.simulations, "temperature": g.temperature,
                          "mean_move_s": g.duration_s / max(g.plies, 1)})
    learning = [e.data for e in stored.events if e.type == "learning.step"]
    stats = [s.data for s in stored.snapshots]
    ckpts = [{"generation": c.generation, "games": c.games, "path": str(Path(settings.checkpoint_dir) / c.file_name),
              "sha256": c.sha256} for c in stored.checkpoints]
    started = row.started_at or row.created_at
    ended = row.finished_at or (datetime.now(timezone.utc) if row.active else row.updated_at)
    elapsed = max((ended - started).total_seconds(), 0.0) if started and ended else 0.0
    config = SessionConfig.model_validate(row.config)
    metrics = {"session_id": session_id, "games": game_rows, "learning": learning, "stats": stats,
               "checkpoints": ckpts}
    summary = {"reason": row.stop_reason} if row.stop_reason else None
    report = build_report(
        session_id=session_id, config=config, settings=settings, scorecard=card, learning=learning, stats=stats,
        checkpoints=ckpts, games=game_rows, started=started.timestamp(), elapsed_s=elapsed, summary=summary,
        error=row.failure_reason, torch_threads=settings.resolved_torch_threads())
    report["state"] = row.state
    report["finished_at"] = _iso(row.finished_at)  # None while the session is not over
    report["generated_at"] = datetime.now(timezone.utc).isoformat()
    generation_of = {c.id: c.generation for c in stored.checkpoints}
    games_at = {c.generation: c.games for c in stored.checkpoints}
    ratings = rating_list([(e, generation_of[e.checkpoint_id], None) for e in stored.evaluations],
                          settings.elo_anchor)
    report["rating_list"] = ratings_out(ratings)
    adjudicated: dict[tuple[int, str], list[int]] = {}  # per (checkpoint, opponent), in order
    for event in stored.events:
        if event.type == "evaluation.finished" and isinstance(event.data, dict):
            key = (event.data.get("checkpoint_id"), event.data.get("opponent"))
            adjudicated.setdefault(key, []).append(event.data.get("adjudicated"))
    evaluations = []
    for e in stored.evaluations:
        known = adjudicated.get((e.checkpoint_id, e.opponent))
        evaluations.append({
            "generation": generation_of[e.checkpoint_id], "opponent": e.opponent, "wins": e.wins, "draws": e.draws,
            "losses": e.losses, "pentanomial": e.pentanomial, "elo": e.elo, "elo_low": e.elo_low,
            "elo_high": e.elo_high, "sprt": e.sprt, "games": e.wins + e.draws + e.losses,
            "adjudicated": known.pop(0) if known else None,
            "match": match_estimate(e.wins, e.draws, e.losses, e.pentanomial),
            "games_played": games_at.get(generation_of[e.checkpoint_id]),
            "created_at": _iso(e.created_at)})
    report["evaluations"] = evaluations
    newest = max((generation_of[e.checkpoint_id] for e in stored.evaluations), default=None)
    if newest is not None and player(newest) in ratings:
        r = ratings[player(newest)]
        report["elo"] = {"generation": newest, "rating": r.rating, "low": r.low, "high": r.high}
    report["analysis"] = [i.to_dict() for i in analysis(stored.games, learning, ratings, games_at)]
    report["series"] = build_series(
        games=game_rows, learning=learning, checkpoints=ckpts, rating_list=report["rating_list"],
        evaluations=evaluations, stats=[{"ts": _iso(s.ts), **s.data} for s in stored.snapshots])
    report["sprt"] = sprt_verdicts(evaluations)
    report["adjudication"] = adjudication_counts(report["scorecard"], evaluations)
    report["alerts"] = [_alert(e) for e in stored.events if e.type == "alert.raised"]
    # Exactly what a reader of report.json gets: strict JSON (no NaN), lists, string keys.
    return json.loads(json.dumps(finite(report))), json.loads(json.dumps(finite(metrics)))


async def session_report(db, settings: Settings, session_id: str) -> dict[str, Any] | None:
    """The report.json document of a session from the database (None: no such session)."""
    stored = await load_session(db, session_id)
    if stored is None:
        return None
    report, _ = await asyncio.to_thread(compose, stored, settings)
    return report


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
    report, metrics = await asyncio.to_thread(compose, stored, settings)
    write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    write_atomic(out_dir / "report.json", json.dumps(report, indent=1))
    write_atomic(out_dir / "report.html", await asyncio.to_thread(render_html, report))
    return report
