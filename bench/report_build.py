"""What building a session's report.json costs the process that builds it (the API's
`GET /v1/sessions/{id}/report.json`), for a long stored session.

Creates a temporary SQLite database (migrated), one `completed` session with `--games`
synthetic games of `--plies` plies (each with its policy, root-value and full-search blobs,
about 30 legal moves a ply, as a real game stores them), a learning step every 5 games, a
checkpoint and evaluations every 100 games and a metric snapshot every 10 games, stored
through the real repositories. Then it builds the report with
`service.reports.files.session_report` and prints ONE JSON object:

- `build_s`: seconds per build (median of `--repeats`, no instrumentation on);
- `bytes_loaded` / `rows_loaded`: what the database handed the process during one build
  (every fetched row's values: bytes and text by length, numbers as 8 bytes), counted by a
  row factory on the SQLite connection;
- `peak_traced_mb`: the largest Python heap the build held above its start (tracemalloc);
- `rss_growth_mb`: the process's resident memory after the builds minus before (psutil);
- `stored_blob_mb`: the size of the games' blob columns in the database, for scale;
- `report_bytes`: the size of the report as JSON.

    python bench/report_build.py                      # 3,000 games of 100 plies
    python bench/report_build.py --games 10000 --repeats 1
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from sqlalchemy import event, func, select

from service.config import Settings
from service.event_types import EventType
from service.lifecycle import State
from service.reports.files import session_report
from service.storage import models
from service.storage import repositories as repo
from service.storage.database import create_engine, session_factory, upgrade_engine


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=3000, help="stored games (default 3000)")
    parser.add_argument("--plies", type=int, default=100, help="plies per game (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="timed builds (default 3; the median is shown)")
    args = parser.parse_args()
    if min(args.games, args.plies, args.repeats) < 1:
        parser.error("--games, --plies and --repeats are at least 1")
    return args


def synthetic_game(number: int, plies: int, rng: np.random.Generator) -> dict[str, Any]:
    """A game message as a worker sends it; the moves need not be legal (a report never replays them)."""
    result = ("1-0", "0-1", "1/2-1/2")[number % 3]
    policies = []
    for _ in range(plies):
        p = rng.random(int(rng.integers(20, 40))) + 0.01
        policies.append((p / p.sum()).astype(np.float16))
    return {
        "number": number,
        "moves": ["e2e4"] * plies,
        "pgn": f'[Round "{number}"]\n\n' + "e4 " * plies,
        "result": result,
        "termination": "move_cap" if result == "1/2-1/2" else "resignation",
        "adjudicated": result == "1/2-1/2",
        "plies": plies,
        "temperature": 1.0,
        "policies": policies,
        "root_values": rng.uniform(-1, 1, plies).tolist(),
        "full_search": (rng.random(plies) < 0.25).tolist(),
        "simulations": 8 * plies,
        "duration_s": float(rng.uniform(1, 5)),
    }


async def seed(maker, settings: Settings, games: int, plies: int) -> str:
    """A session's rows at the requested size, written in batches. Not split: one insert sequence
    per table, in order."""
    rng = np.random.default_rng(0)
    config = settings.session_config(seed=0)
    async with maker() as db, db.begin():
        session_id = (await repo.create_session(db, config.model_dump(mode="json"), 0)).id
        await repo.set_state(
            db,
            session_id,
            State.COMPLETED,
            started_at=models.utcnow(),
            finished_at=models.utcnow(),
            stop_reason="max_games",
        )
    root = Path(settings.checkpoint_dir)
    checkpoint_id = None
    for first in range(1, games + 1, 500):
        async with maker() as db, db.begin():
            for number in range(first, min(first + 500, games + 1)):
                await repo.add_game(db, session_id, synthetic_game(number, plies, rng))
                if number % 5 == 0:
                    await repo.add_event(
                        db,
                        session_id,
                        EventType.LEARNING_STEP,
                        {
                            "games": number,
                            "step": 2 * number,
                            "steps": 10,
                            "policy_loss": 3 - number / games,
                            "value_loss": 1.0,
                            "total_loss": 4 - number / games,
                            "policy_entropy": 3.0,
                            "grad_norm": 1.0,
                            "lr": 1e-3,
                            "samples": 320,
                            "buffer_size": 1000,
                            "positions_learned": 100 * number,
                            "seconds": 0.5,
                        },
                    )
                if number % 10 == 0:
                    await repo.add_metric_snapshot(
                        db,
                        session_id,
                        {"simulations_per_second": 250.0, "rss_mb": 300.0, "rss_growth_mb": 1.0, "buffer_size": 1000},
                    )
                if number % 100 == 0 or number == 1:
                    generation = number // 100
                    checkpoint_id = (
                        await repo.add_checkpoint(
                            db,
                            session_id,
                            {
                                "generation": generation,
                                "games": number,
                                "path": root / session_id / f"gen-{generation:04d}.safetensors",
                                "state_path": root / session_id / f"gen-{generation:04d}.state.pt",
                                "sha256": "0" * 64,
                            },
                            root,
                        )
                    ).id
                    if generation:
                        for opponent in ("random", "greedy", f"gen{generation - 1}"):
                            await repo.add_evaluation(
                                db,
                                session_id,
                                checkpoint_id,
                                opponent,
                                wins=20,
                                draws=10,
                                losses=10,
                                pentanomial=[1, 2, 10, 4, 3],
                            )
    return session_id


class RowCounter:
    """Counts what SQLite hands the process: rows and their values' bytes."""

    def __init__(self) -> None:
        self.on = False
        self.rows = 0
        self.bytes = 0

    def factory(self, _cursor: Any, row: tuple) -> tuple:
        if self.on:
            self.rows += 1
            self.bytes += sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in row)
        return row


async def main() -> None:
    """Arguments, seed, time each build, one JSON object. Not split: a straight script."""
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="report-build-") as tmp:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            checkpoint_dir=Path(tmp) / "checkpoints",
            report_dir=Path(tmp) / "reports",
            chess_preset="tiny",
        )
        engine = create_engine(settings.database_url)
        counter = RowCounter()

        @event.listens_for(engine.sync_engine, "connect")
        def _count_rows(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection._connection._conn.row_factory = counter.factory

        try:
            await upgrade_engine(engine)
            await engine.dispose()  # reconnect: every pooled connection gets the row factory
            maker = session_factory(engine)
            t0 = time.perf_counter()
            session_id = await seed(maker, settings, args.games, args.plies)
            seed_s = time.perf_counter() - t0
            async with maker() as db:
                blob_bytes = await db.scalar(
                    select(
                        func.sum(
                            func.length(models.GameRow.policy)
                            + func.length(models.GameRow.root_values)
                            + func.length(models.GameRow.full_search)
                        )
                    )
                )

            async def build() -> dict[str, Any]:
                async with maker() as db:
                    report = await session_report(db, settings, session_id)
                assert report is not None and report["scorecard"]["games"] == args.games
                return report

            report = await build()  # warm-up: imports, statement caches
            process = psutil.Process()
            gc.collect()
            rss_before = process.memory_info().rss
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                await build()
                times.append(time.perf_counter() - t0)
            gc.collect()
            rss_after = process.memory_info().rss
            counter.on = True
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            await build()
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            counter.on = False
        finally:
            await engine.dispose()
    print(
        json.dumps(
            {
                "bench": "report_build",
                "games": args.games,
                "plies": args.plies,
                "repeats": args.repeats,
                "seed_s": round(seed_s, 2),
                "build_s": round(statistics.median(times), 4),
                "build_s_all": [round(t, 4) for t in times],
                "bytes_loaded": counter.bytes,
                "rows_loaded": counter.rows,
                "peak_traced_mb": round(peak / 2**20, 2),
                "rss_growth_mb": round((rss_after - rss_before) / 2**20, 2),
                "stored_blob_mb": round((blob_bytes or 0) / 2**20, 2),
                "report_bytes": len(json.dumps(report)),
                "python": sys.version.split()[0],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
