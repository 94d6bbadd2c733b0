"""A session's files, written from the database: games.pgn, metrics.json, report.json.

Everything comes from storage (games, learning events, metric snapshots, checkpoints), so
a session resumed after a crash or across several `run`s gets one complete report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..config import SessionConfig, Settings
from ..sessions.ratings import player, rating_list, ratings_out
from ..stats.analyzer import analyze
from ..stats.scorecard import Scorecard
from ..storage import models
from ..storage import repositories as repo
from .builder import build_report


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


async def write_session_files(sessionmaker, settings: Settings, session_id: str, out_dir: Path) -> dict[str, Any]:
    """Write the three files under `out_dir` and return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    async with sessionmaker() as db:
        row = await repo.get_session(db, session_id)
        games = list((await db.scalars(select(models.GameRow).where(models.GameRow.session_id == session_id)
                                       .order_by(models.GameRow.number))).all())
        events = await repo.events_since(db, session_id, 0, 10**9)
        snapshots = await repo.list_metric_snapshots(db, session_id)
        checkpoints = await repo.list_checkpoints(db, session_id)
        evaluations = await repo.list_evaluations(db, session_id)
        with (out_dir / "games.pgn").open("w") as f:
            async for chunk in repo.games_pgn(db, session_id):
                f.write(chunk)
    card = Scorecard()
    game_rows = []
    for g in games:
        card.add(g.result, g.plies, g.termination, g.adjudicated, g.duration_s)
        game_rows.append({"number": g.number, "result": g.result, "termination": g.termination,
                          "adjudicated": g.adjudicated, "plies": g.plies, "duration_s": g.duration_s,
                          "simulations": g.simulations, "temperature": g.temperature,
                          "mean_move_s": g.duration_s / max(g.plies, 1)})
    learning = [e.data for e in events if e.type == "learning.step"]
    stats = [s.data for s in snapshots]
    ckpts = [{"generation": c.generation, "games": c.games, "path": str(Path(settings.checkpoint_dir) / c.file_name),
              "sha256": c.sha256} for c in checkpoints]
    started = row.started_at or row.created_at
    ended = row.finished_at or row.updated_at
    elapsed = max((ended - started).total_seconds(), 0.0) if started and ended else 0.0
    config = SessionConfig.model_validate(row.config)
    (out_dir / "metrics.json").write_text(json.dumps(
        {"session_id": session_id, "games": game_rows, "learning": learning, "stats": stats, "checkpoints": ckpts},
        indent=1))
    summary = {"reason": row.stop_reason} if row.stop_reason else None
    report = build_report(
        session_id=session_id, config=config, settings=settings, scorecard=card, learning=learning, stats=stats,
        checkpoints=ckpts, games=game_rows, started=started.timestamp(), elapsed_s=elapsed, summary=summary,
        error=row.failure_reason, torch_threads=settings.resolved_torch_threads())
    report["state"] = row.state
    generation_of = {c.id: c.generation for c in checkpoints}
    games_at = {c.generation: c.games for c in checkpoints}
    ratings = rating_list([(e, generation_of[e.checkpoint_id], None) for e in evaluations], settings.elo_anchor)
    report["rating_list"] = ratings_out(ratings)
    report["evaluations"] = [{"generation": generation_of[e.checkpoint_id], "opponent": e.opponent, "wins": e.wins,
                              "draws": e.draws, "losses": e.losses, "pentanomial": e.pentanomial,
                              "elo": e.elo, "elo_low": e.elo_low, "elo_high": e.elo_high, "sprt": e.sprt}
                             for e in evaluations]
    newest = max((generation_of[e.checkpoint_id] for e in evaluations), default=None)
    if newest is not None and player(newest) in ratings:
        r = ratings[player(newest)]
        report["elo"] = {"generation": newest, "rating": r.rating, "low": r.low, "high": r.high}
    report["analysis"] = [i.to_dict() for i in analysis(games, learning, ratings, games_at)]
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return report
