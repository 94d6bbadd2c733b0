"""The session report as JSON: scorecard, losses, throughput and a manifest that says
exactly what produced it (seed, settings, package versions, git revision)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from statistics import mean
from typing import Any

from ..config import SessionConfig, Settings
from ..stats.scorecard import Scorecard

REPORT_FORMAT = "continuous-play-report/1"
_PACKAGES = ("continuous-play", "torch", "chess", "numpy", "safetensors", "pydantic")


def git_revision() -> str | None:
    """The source's git commit, when it runs from a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest(config: SessionConfig, settings: Settings, torch_threads: int) -> dict[str, Any]:
    """Seed, settings, versions and revision: enough to reproduce the session."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "output": {"report_dir": str(settings.report_dir), "checkpoint_dir": str(settings.checkpoint_dir)},
        "torch_threads": torch_threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "git_revision": git_revision(),
    }


def _loss_summary(learning: list[dict[str, Any]]) -> dict[str, Any]:
    if not learning:
        return {"phases": 0, "steps": 0}
    out: dict[str, Any] = {"phases": len(learning), "steps": learning[-1]["step"]}
    for head in ("policy_loss", "value_loss", "total_loss"):
        values = [row[head] for row in learning]
        out[head] = {"first": values[0], "last": values[-1], "min": min(values)}
    out["policy_entropy_last"] = learning[-1]["policy_entropy"]
    out["curve"] = [{k: row[k] for k in ("games", "step", "policy_loss", "value_loss", "total_loss")}
                    for row in learning]
    return out


def _throughput(games: list[dict[str, Any]], stats: list[dict[str, Any]], learning: list[dict[str, Any]],
                elapsed_s: float) -> dict[str, Any]:
    minutes = max(elapsed_s / 60, 1e-9)
    sims = [row["simulations_per_second"] for row in stats]
    return {
        "elapsed_s": elapsed_s,
        "games_per_minute": len(games) / minutes,
        "learning_steps_per_minute": (learning[-1]["step"] if learning else 0) / minutes,
        "simulations_per_second_mean": mean(sims) if sims else None,
        "mean_move_seconds": mean(g["mean_move_s"] for g in games) if games else None,
        "learning_seconds": sum(row["seconds"] for row in learning),
        "rss_mb_last": stats[-1]["rss_mb"] if stats else None,
        "rss_growth_mb": stats[-1]["rss_growth_mb"] if stats else None,
    }


def build_report(*, session_id: str, config: SessionConfig, settings: Settings, scorecard: Scorecard,
                 learning: list[dict[str, Any]], stats: list[dict[str, Any]], checkpoints: list[dict[str, Any]],
                 games: list[dict[str, Any]], started: float, elapsed_s: float, summary: dict[str, Any] | None,
                 error: str | None, torch_threads: int) -> dict[str, Any]:
    """The report.json document of a session."""
    return {
        "format": REPORT_FORMAT,
        "session_id": session_id,
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "stop_reason": (summary or {}).get("reason", "failed" if error else None),
        "error": error,
        "scorecard": scorecard.to_dict(),
        "losses": _loss_summary(learning),
        "throughput": _throughput(games, stats, learning, elapsed_s),
        "checkpoints": [{k: c[k] for k in ("generation", "games", "path", "sha256")} for c in checkpoints],
        "elo": None,  # measured by evaluation matches, never from self-play results
        "manifest": manifest(config, settings, torch_threads),
    }
