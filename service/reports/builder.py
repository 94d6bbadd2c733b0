"""The session report as JSON: scorecard, losses, throughput and a manifest that says
exactly what produced it (seed, settings, package versions, git revision).

Over 500 lines: one pure function per section of report.json (strength, learning, fleet,
alerts, manifest) beside the one that joins them; a section that grows moves to a module of
its own (the fleet section would be the first).
"""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

from ..stats import calibration
from ..stats.elo import elo_from_pentanomial, elo_from_wdl
from ..stats.numbers import finite
from ..stats.scorecard import Scorecard

if TYPE_CHECKING:
    from ..config import SessionConfig, Settings

REPORT_FORMAT = "continuous-play-report/1"
_PACKAGES = ("continuous-play", "torch", "onnxruntime", "chess", "numpy", "safetensors", "pydantic")


def git_revision() -> str | None:
    """The source's git commit, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest(
    config: SessionConfig, settings: Settings, torch_threads: int, inference: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Seed, settings, versions and revision: enough to reproduce the session. `inference`: the
    backend its worker ran (INFERENCE_BACKEND=auto resolved, with the probe's positions/s), as
    the worker's stats reported it; None before the first report."""
    versions: dict[str, str | None] = {}
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
        "inference": inference,
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
    out["curve"] = [
        {k: row[k] for k in ("games", "step", "policy_loss", "value_loss", "total_loss")} for row in learning
    ]
    return out


def _throughput(
    games: list[dict[str, Any]], stats: list[dict[str, Any]], learning: list[dict[str, Any]], elapsed_s: float
) -> dict[str, Any]:
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


def build_report(
    *,
    session_id: str,
    config: SessionConfig,
    settings: Settings,
    scorecard: Scorecard | dict[str, Any],
    learning: list[dict[str, Any]],
    stats: list[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    games: list[dict[str, Any]],
    started: float,
    elapsed_s: float,
    summary: dict[str, Any] | None,
    error: str | None,
    torch_threads: int,
) -> dict[str, Any]:
    """The report.json document of a session (`scorecard`: a Scorecard or its `to_dict()`); the
    manifest's inference backend is the newest of `stats` that names one."""
    inference = next((row["inference"] for row in reversed(stats) if isinstance(row.get("inference"), dict)), None)
    return {
        "format": REPORT_FORMAT,
        "session_id": session_id,
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "stop_reason": (summary or {}).get("reason", "failed" if error else None),
        "error": error,
        "scorecard": scorecard if isinstance(scorecard, dict) else scorecard.to_dict(),
        "losses": _loss_summary(learning),
        "throughput": _throughput(games, stats, learning, elapsed_s),
        "checkpoints": [{k: c[k] for k in ("generation", "games", "path", "sha256")} for c in checkpoints],
        "elo": None,  # measured by evaluation matches, never from self-play results
        "manifest": manifest(config, settings, torch_threads, inference),
    }


# ---------------------------------------------------------------------------------------------
# The series the HTML report draws. Pure functions over the JSON rows of report.json and
# metrics.json, so `continuous-play report` can rebuild them from files alone.

_NICE_STEPS = (1, 2, 2.5, 5)
MAX_BUCKETS = 40  # W/D/L-over-time buckets at most
MOVE_CAP = "move_cap"
"""The termination of a self-play game cut at MAX_MOVES_PER_GAME (engine/selfplay.py's)."""
MAX_BINS = 30  # histogram bins at most
MAX_POINTS = 2000  # points of a line series at most (longer ones are thinned evenly, the last kept)
_GENERATION = re.compile(r"gen(\d+)")
PREVIOUS = "previous generation"
"""The series name of the matches against the previous evaluated checkpoint (the SPRT's)."""


def nice_step(raw: float, integer: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least `raw` (> 0)."""
    if raw <= 0 or not math.isfinite(raw) or (integer and raw <= 1):
        return 1
    exponent = math.floor(math.log10(raw))
    for power in (exponent, exponent + 1):
        for step in _NICE_STEPS:
            value = step * 10.0**power
            if integer and (value < 1 or value != int(value)):
                continue
            if value >= raw * (1 - 1e-12):
                return int(value) if integer else value
    return int(10.0 ** (exponent + 1)) if integer else 10.0 ** (exponent + 1)


def histogram_bins(
    low: float, high: float, *, integer: bool = False, max_bins: int = MAX_BINS
) -> tuple[float, float, int]:
    """(start, width, bins) of `histogram` for values from `low` to `high`: round edges, and
    integer-wide bins [a, a + w) for integer data, so a bin never splits one value."""
    span = high - low + (1 if integer else 0)
    if span > 0:
        width = nice_step(span / max_bins, integer=integer)
        start = math.floor(low / width) * width
    elif integer:
        width, start = 1, low
    else:  # one value: one bin around it
        width = nice_step(max(abs(low) * 0.1, 1e-9))
        start = low - width / 2
    return start, width, max(1, int(math.floor((high - start) / width)) + 1)


BIN_EPSILON = 1e-9
"""Added to (value - start) / width before flooring it to a bin, so a value on an edge
rounded a hair below it still lands in the bin the edge opens."""


def histogram_bin(value: float, start: float, width: float, bins: int) -> int:
    """The bin of `value` in a histogram of `histogram_bins`."""
    return min(int(math.floor((value - start) / width + BIN_EPSILON)), bins - 1)


def histogram_of(
    start: float,
    width: float,
    counts: list[int],
    *,
    n: int,
    mean: float | None,
    median: float | None,
    integer: bool = False,
) -> dict[str, Any]:
    """A histogram's JSON from its layout and counts (what `histogram` returns; the report of
    a stored session gets the counts from SQL)."""
    edges = [
        int(round(start + i * width)) if integer else float(f"{start + i * width:.12g}") for i in range(len(counts) + 1)
    ]
    return {"edges": edges, "counts": counts, "n": n, "mean": mean, "median": median}


def histogram(values: Sequence[float | None], *, integer: bool = False, max_bins: int = MAX_BINS) -> dict[str, Any]:
    """Counts over equal-width bins with round edges (`histogram_bins`): {"edges": [n+1],
    "counts": [n], "n", "mean", "median"}, empty lists without values."""
    clean = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not clean:
        return {"edges": [], "counts": [], "n": 0, "mean": None, "median": None}
    start, width, bins = histogram_bins(min(clean), max(clean), integer=integer, max_bins=max_bins)
    counts = [0] * bins
    for v in clean:
        counts[histogram_bin(v, start, width, bins)] += 1
    ordered = sorted(clean)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return histogram_of(start, width, counts, n=len(clean), mean=mean(clean), median=median, integer=integer)


def result_buckets(games: list[dict[str, Any]], max_buckets: int = MAX_BUCKETS) -> dict[str, Any]:
    """Self-play results over time: games in order, cut into buckets of a round size."""
    ordered = sorted(games, key=lambda g: g["number"])
    size = int(nice_step(len(ordered) / max_buckets, integer=True)) if ordered else 1  # an int already
    buckets = []
    for i in range(0, len(ordered), size):
        chunk = ordered[i : i + size]
        plies = [g["plies"] for g in chunk]
        move_s = [g["duration_s"] / max(g["plies"], 1) for g in chunk if g.get("duration_s") is not None]
        buckets.append(
            {
                "first": chunk[0]["number"],
                "last": chunk[-1]["number"],
                "games": len(chunk),
                "white_wins": sum(g["result"] == "1-0" for g in chunk),
                "black_wins": sum(g["result"] == "0-1" for g in chunk),
                "draws": sum(g["result"] == "1/2-1/2" for g in chunk),
                "adjudicated": sum(bool(g.get("adjudicated")) for g in chunk),
                "move_cap": sum(g.get("termination") == MOVE_CAP for g in chunk),
                "mean_plies": mean(plies) if plies else None,
                "mean_move_s": mean(move_s) if move_s else None,
            }
        )
    return {"bucket_size": size, "buckets": buckets}


def thin(rows: list[Any], limit: int = MAX_POINTS) -> list[Any]:
    """At most `limit` rows, evenly spaced, the first and the last included."""
    if len(rows) <= limit:
        return rows
    return [rows[i] for i in thin_indices(len(rows), limit)]


def thin_indices(n: int, limit: int = MAX_POINTS) -> list[int]:
    """The indices `thin` keeps of `n` rows (all of them when n <= limit; `limit` >= 2 else)."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return [round(i * step) for i in range(limit)]


def generation_of(name: str) -> int | None:
    """N for a player or opponent named `gen<N>`, else None."""
    match = _GENERATION.fullmatch(name)
    return int(match.group(1)) if match else None


def match_estimate(wins: int, draws: int, losses: int, pentanomial: list[int] | None) -> dict[str, Any] | None:
    """The candidate's Elo difference against the match's opponent with its 95% interval: from
    the game pairs when there are any (they are the independent samples), else from W/D/L."""
    try:
        if pentanomial and len(pentanomial) == 5 and sum(pentanomial):
            estimate = elo_from_pentanomial(pentanomial)
        elif wins + draws + losses:
            estimate = elo_from_wdl(wins, draws, losses)
        else:
            return None
    except ValueError:
        return None
    games = wins + draws + losses
    return {
        "elo": estimate.elo,
        "low": estimate.low,
        "high": estimate.high,
        "score": (wins + draws / 2) / games if games else estimate.score,
        "los": estimate.los,
        "method": estimate.method,
    }


def build_series(
    *,
    games: list[dict[str, Any]],
    learning: list[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    rating_list: list[dict[str, Any]],
    evaluations: list[dict[str, Any]],
    stats: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the report's charts draw, from the rows of report.json / metrics.json:

    - `elo`: the fitted rating of each evaluated checkpoint with its 95% interval, by generation
      and games played; `anchors`: the other players of the rating list (random, greedy, uci);
      both from the current yardstick's list (the first rows), never a mix;
    - `matches`: per opponent, the candidate's Elo difference in each match with its interval
      (the matches against the previous checkpoint, the SPRT's, are one series);
    - `learning`: losses per head, policy entropy, grad norm, lr and buffer per learning phase
      (at most MAX_POINTS of them, evenly thinned; so is `throughput`);
    - `results`: self-play W/D/L (and adjudications, mean length) per bucket of games;
    - `game_length` (plies), `move_time` (seconds per move, per game), `game_duration` (s):
      histograms;
    - `throughput`: simulations/s, memory and buffer of the stored metric snapshots.
    Not split: one short block per chart, in the order the page draws them.
    """
    games_at = {c["generation"]: c["games"] for c in checkpoints}
    elo, anchors = [], []
    current = rating_list[0].get("yardstick") if rating_list else None
    for row in rating_list:
        if row.get("yardstick") != current:  # an older yardstick's list: not on the same scale
            continue
        generation = generation_of(row["player"])
        if generation is None:
            anchors.append({k: row[k] for k in ("player", "rating", "low", "high", "games")})
        else:
            elo.append(
                {
                    "generation": generation,
                    "games": games_at.get(generation),
                    "rating": row["rating"],
                    "low": row["low"],
                    "high": row["high"],
                    "match_games": row["games"],
                }
            )
    elo.sort(key=lambda p: p["generation"])
    matches: dict[str, list[dict[str, Any]]] = {}
    for e in evaluations:
        estimate = e.get("match") or match_estimate(e["wins"], e["draws"], e["losses"], e.get("pentanomial"))
        if estimate is None:
            continue
        opponent = e["opponent"]
        name = PREVIOUS if generation_of(opponent) not in (None, 0) else opponent
        matches.setdefault(name, []).append(
            {
                "generation": e["generation"],
                "games": games_at.get(e["generation"]),
                "opponent": opponent,
                "match_games": e["wins"] + e["draws"] + e["losses"],
                "elo": estimate["elo"],
                "low": estimate["low"],
                "high": estimate["high"],
                "score": estimate["score"],
            }
        )
    keys = (
        "games",
        "step",
        "policy_loss",
        "value_loss",
        "total_loss",
        "policy_entropy",
        "grad_norm",
        "lr",
        "buffer_size",
    )
    curve = [{k: row.get(k) for k in keys} for row in thin(learning)]
    throughput = [
        {k: row.get(k) for k in ("ts", "simulations_per_second", "rss_mb", "rss_growth_mb", "buffer_size")}
        for row in thin(stats or [])
    ]
    return {
        "elo": elo,
        "anchors": sorted(anchors, key=lambda a: -a["rating"]),
        "matches": matches,
        "learning": curve,
        "results": result_buckets(games),
        "game_length": histogram([g["plies"] for g in games], integer=True),
        "move_time": histogram(
            [g["duration_s"] / max(g["plies"], 1) for g in games if g.get("duration_s") is not None]
        ),
        "game_duration": histogram([g.get("duration_s") for g in games]),
        "throughput": throughput,
    }


FLEET_STATS = ("simulations_per_second", "learner_steps_per_second", "samples_per_position", "generation")
"""The fleet's figures of a metric snapshot that report.json's `fleet.latest` keeps."""
ACTOR_STATS = ("actor", "state", "simulations_per_second", "generation", "games_in_flight")
"""An actor's figures of a metric snapshot that `fleet.latest.actors` keeps (not its pid)."""
REPLACEMENT_FIELDS = ("actor", "replacement", "exitcode", "reason")
"""What `fleet.replaced` keeps of an actor replacement's `session.state` event."""


def fleet_section(
    *,
    config: dict[str, Any],
    actors: Sequence[tuple[int, int, int, int, int, int]],
    lags: Sequence[tuple[int, int, int]],
    replacements: int,
    replaced: Sequence[tuple[int, Any, dict[str, Any]]],
    latest: tuple[Any, dict[str, Any]] | None,
) -> dict[str, Any]:
    """report.json's `fleet`: who played the session's games and how far behind.

    - `actors`: (actor, games, first number, last number, least and greatest generation) per
      actor, as `reads.fleet` groups the stored games;
    - `lags`: (actor, generation lag, games) as the `game.finished` events recorded them. A
      game's generation lag is the learner's newest generation when the game arrived minus
      the generation that started it (what `generation_lag` of Prometheus observes); games
      of sessions older than the fleet recorded none, and their `generation_lag` is None;
    - `replacements`, `replaced`: the actors that died, with (seq, ts, data) of the newest;
    - `latest`: (ts, data) of the newest metric snapshot: the learner's steps/s, the actual
      samples per position, the simulations/s of all actors and each actor's figures.
    Not split: the section's rows are built in one pass over the same groups."""
    per_actor: dict[int, list[tuple[int, int]]] = {}
    per_lag: dict[int, int] = {}
    for actor, lag, games in lags:
        per_actor.setdefault(actor, []).append((lag, games))
        per_lag[lag] = per_lag.get(lag, 0) + games

    def lag_of(recorded: list[tuple[int, int]]) -> dict[str, Any]:
        n = sum(games for _, games in recorded)
        return {
            "lag_games": n,
            "generation_lag_mean": sum(lag * games for lag, games in recorded) / n if n else None,
            "generation_lag_max": max(lag for lag, _ in recorded) if n else None,
        }

    rows = [
        {
            "actor": actor,
            "games": games,
            "first_game": first,
            "last_game": last,
            "generation_min": low,
            "generation_max": high,
            **lag_of(per_actor.get(actor, [])),
        }
        for actor, games, first, last, low, high in actors
    ]
    recorded = sorted(per_lag.items())
    overall = lag_of(recorded)
    generation_lag = (
        {
            "games": overall["lag_games"],
            "mean": overall["generation_lag_mean"],
            "max": overall["generation_lag_max"],
            "lagging": sum(games for lag, games in recorded if lag > 0),
            "counts": [{"lag": lag, "games": games} for lag, games in recorded],
        }
        if overall["lag_games"]
        else None
    )
    newest = None
    if latest is not None:
        ts, data = latest
        newest = {
            "ts": ts,
            **{k: data.get(k) for k in FLEET_STATS},
            "actors": [{k: a.get(k) for k in ACTOR_STATS} for a in data.get("actors") or [] if isinstance(a, dict)],
        }
    return {
        "selfplay_actors": config.get("selfplay_actors"),
        "train_samples_per_position": config.get("train_samples_per_position"),
        "max_generation_lag": config.get("max_generation_lag"),
        "games": sum(row["games"] for row in rows),
        "actors": rows,
        "generation_lag": generation_lag,
        "replacements": replacements,
        "replaced": [
            {"seq": seq, "ts": ts, **{k: data.get(k) for k in REPLACEMENT_FIELDS}}
            for seq, ts, data in replaced
            if isinstance(data, dict)
        ],
        "latest": newest,
    }


def sprt_verdicts(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SPRT verdicts of the evaluations, one per tested checkpoint."""
    out = []
    for e in evaluations:
        s = e.get("sprt")
        if not s:
            continue
        out.append(
            {
                "generation": e["generation"],
                "against_generation": s.get("against_generation"),
                "opponent": e["opponent"],
                "state": s.get("state"),
                "llr": s.get("llr"),
                "lower": s.get("lower"),
                "upper": s.get("upper"),
                "elo0": s.get("elo0"),
                "elo1": s.get("elo1"),
                "alpha": s.get("alpha"),
                "beta": s.get("beta"),
                "samples": s.get("samples"),
                "elo_model": s.get("elo_model"),
            }
        )
    return out


def adjudication_counts(scorecard: dict[str, Any], evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """Games ended by adjudication, in self-play and in evaluation matches (None: not recorded)."""
    results = scorecard.get("results", {})
    known = [e["adjudicated"] for e in evaluations if e.get("adjudicated") is not None]
    return {
        "selfplay": {
            "games": scorecard.get("games", 0),
            "adjudicated": scorecard.get("adjudicated", 0),
            "adjudicated_decisive": results.get("adjudicated_decisive", 0),
            "adjudicated_draws": scorecard.get("adjudicated", 0) - results.get("adjudicated_decisive", 0),
        },
        "evaluation": {
            "games": sum(e["wins"] + e["draws"] + e["losses"] for e in evaluations),
            "adjudicated": sum(known)
            if len(known) == len(evaluations) and evaluations
            else (sum(known) if known else (0 if not evaluations else None)),
        },
    }


def complete(report: dict[str, Any], metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """`report` with the sections the HTML needs (series, sprt, adjudication, alerts, match
    estimates; fleet as None) added where missing: a report.json of an older version, with the games and
    learning rows of its metrics.json when there is one."""
    out = dict(report)
    evaluations = [dict(e) for e in out.get("evaluations") or []]
    for e in evaluations:
        if "match" not in e and {"wins", "draws", "losses"} <= set(e):
            e["match"] = match_estimate(e["wins"], e["draws"], e["losses"], e.get("pentanomial"))
    out["evaluations"] = evaluations
    metrics = metrics or {}
    learning = metrics.get("learning") or [dict(row) for row in (out.get("losses") or {}).get("curve", [])]
    rebuilt = build_series(
        games=metrics.get("games") or [],
        learning=learning,
        checkpoints=out.get("checkpoints") or [],
        rating_list=out.get("rating_list") or [],
        evaluations=evaluations,
        stats=metrics.get("stats"),
    )
    out["series"] = {**rebuilt, **(out.get("series") or {})}
    out.setdefault("sprt", sprt_verdicts(evaluations))
    out.setdefault("adjudication", adjudication_counts(out.get("scorecard") or {}, evaluations))
    out.setdefault("alerts", [])
    out.setdefault("analysis", [])
    out.setdefault("fleet", None)  # a report.json older than the fleet: its games' actors are not in it
    out["series"].setdefault("cap_share", cap_share(out["series"].get("results") or {}))
    out.setdefault("value_health", None)  # from stored root values: a report.json file alone has none
    return finite(out)


# ---------------------------------------------------------------------------------------------
# Finishing games and the value head's health: report.json's `series.cap_share` and
# `value_health` (their own functions, so the rating tables' sections stay apart).

CALIBRATION_GAMES = 100
"""The newest games whose recorded root values `value_health` checks against their results."""


def cap_share(results: dict[str, Any]) -> dict[str, Any]:
    """The share of self-play games that reached the move cap (termination `move_cap`) per
    bucket of `series.results` (`result_buckets`' buckets, which count them): it should fall
    as the engine learns to finish won games. A bucket from a report older than the count
    (no `move_cap`) is left out."""
    rows = [b for b in results.get("buckets") or [] if b.get("move_cap") is not None]
    games = sum(b["games"] for b in rows)
    capped = sum(b["move_cap"] for b in rows)
    return {
        "bucket_size": results.get("bucket_size", 1),
        "games": games,
        "move_cap": capped,
        "share": capped / games if games else None,
        "buckets": [
            {
                "first": b["first"],
                "last": b["last"],
                "games": b["games"],
                "move_cap": b["move_cap"],
                "share": b["move_cap"] / b["games"] if b["games"] else None,
            }
            for b in rows
        ],
    }


def side_to_move_results(result: str, plies: int, white_first: bool = True) -> list[int]:
    """The game's result (+1 win, 0 draw, -1 loss) from the side to move at each of `plies`
    positions (`white_first`: White moves at the first)."""
    white = {"1-0": 1, "0-1": -1}.get(result, 0)
    return [white if (ply % 2 == 0) == white_first else -white for ply in range(plies)]


def value_health(games: Sequence[tuple[int, str, Sequence[float], bool]]) -> dict[str, Any] | None:
    """The value head's health figure: the root values the search recorded while it played
    the games, (number, result, root values, white_first) each, against how the games ended
    (`stats.calibration`: Brier against the constant prior, calibration table, ECE). Each
    value was predicted before its game's result existed, so the games are held out from the
    net that predicted them. A root value is a scalar, so there is no log loss here (the WDL
    head's log loss is `bench/value_probe.py`'s). None without games."""
    if not games:
        return None
    expected: list[float] = []
    outcomes: list[int] = []
    for _, result, values, white_first in games:
        expected.extend(min(max((float(v) + 1.0) / 2.0, 0.0), 1.0) for v in values)
        outcomes.extend(side_to_move_results(result, len(values), white_first))
    numbers = [number for number, *_ in games]
    return {
        "source": "root values recorded in self-play, newest games",
        "games": len(games),
        "first_game": min(numbers),
        "last_game": max(numbers),
        **calibration.summary(outcomes, expected=expected),
    }
