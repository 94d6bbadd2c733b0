"""Helpers of the API tests (imported by conftest.py and the tests): the app over a test
database (SQLite and PostgreSQL, from `database` in tests/conftest.py), its lifespan
running, and a real HTTP client on it.

Read routes are checked against rows stored through the real repositories. Lifecycle
routes are checked against `FakeOrchestrator`, a stand-in for
`service.sessions.orchestrator.Orchestrator` that applies the state machine straight to
storage with no worker (the real orchestrator has its own tests, and one API test here
drives it on an inline pool).
"""

from __future__ import annotations

import asyncio
import io
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chess
import chess.pgn
import httpx
import numpy as np
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.tiny import app_settings

from service.app import create_app
from service.config import SessionConfig, Settings
from service.engine import network
from service.lifecycle import ACTIVE, State
from service.sessions.errors import IllegalTransition, SessionNotFound, action_target
from service.storage import models
from service.storage import repositories as repo

API_KEY = "test-key-0123456789abcdef"
BASE_URL = "http://127.0.0.1"
"""Where the test clients reach the app: a loopback Host, the only names it serves by default."""


class FakeOrchestrator:
    """TEST DOUBLE of the orchestrator's interface: no workers, state changes written
    directly through the repositories. A created session is `running` at once (a free slot);
    `stop` ends it as `stopped` at once."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], pool: Any) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.pool = pool
        self.started = False
        self.closed = False
        self.warm = True
        self.live_stats: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    @property
    def ready(self) -> bool:
        return self.started and not self.closed and self.warm

    async def create_session(self, config: SessionConfig, init_checkpoint_id: int | None = None) -> str:
        async with self.sessionmaker() as db, db.begin():
            if init_checkpoint_id is not None and await repo.get_checkpoint(db, init_checkpoint_id) is None:
                raise SessionNotFound("checkpoint", init_checkpoint_id)
            row = await repo.create_session(db, config.model_dump(mode="json"), config.seed, init_checkpoint_id)
            await repo.set_state(db, row.id, State.RUNNING.value, started_at=models.utcnow())
            self.calls.append(("create", row.id))
            return row.id

    async def _state(self, db: AsyncSession, session_id: str) -> str:
        row = await repo.get_session(db, session_id)
        if row is None:
            raise SessionNotFound("session", session_id)
        return row.state

    async def _act(self, session_id: str, action: str) -> None:
        async with self.sessionmaker() as db, db.begin():
            target = action_target(session_id, await self._state(db, session_id), action)
            if target is State.STOPPING:
                target = State.STOPPED
            await repo.set_state(db, session_id, target.value)
            self.calls.append((action, session_id))

    async def pause(self, session_id: str) -> None:
        await self._act(session_id, "pause")

    async def resume(self, session_id: str) -> None:
        await self._act(session_id, "resume")

    async def stop(self, session_id: str) -> None:
        await self._act(session_id, "stop")

    async def delete(self, session_id: str) -> None:
        async with self.sessionmaker() as db, db.begin():
            state = await self._state(db, session_id)
            if State(state) in ACTIVE:
                raise IllegalTransition(session_id, state, "delete")
            await repo.delete_session(db, session_id)
            self.calls.append(("delete", session_id))

    def live(self, session_id: str) -> dict[str, Any] | None:
        return self.live_stats.get(session_id)


@dataclass
class Api:
    """The app under test, its HTTP client and direct storage access for seeding."""

    app: Any
    client: httpx.AsyncClient
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    backend: str

    @property
    def orchestrator(self) -> Any:
        return self.app.state.orchestrator

    def auth(self, key: str = API_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def make_settings(database, tmp_path: Path, **overrides: Any) -> Settings:
    """app_settings on the test's database."""
    return app_settings(tmp_path, **{"database_url": database.url, **overrides})


@asynccontextmanager
async def running_api(
    database, tmp_path: Path, *, orchestrator_factory: Any = FakeOrchestrator, pool: Any = None, **settings: Any
) -> AsyncIterator[Api]:
    """The app over `database` with its lifespan running (migrations included)."""
    cfg = make_settings(database, tmp_path, **settings)
    app = create_app(cfg, pool=pool, orchestrator_factory=orchestrator_factory, engine_kwargs=database.engine_kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield Api(app, client, cfg, app.state.sessionmaker, database.backend)


def get_scope(path: str, raw_path: bytes | None = None) -> dict[str, Any]:
    """The ASGI scope of `GET path` from 127.0.0.1, as a server hands it to the app (to call
    the app straight through its ASGI interface); `raw_path`: the path as sent, undecoded."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


@asynccontextmanager
async def uvicorn_on_loopback(app: Any, sndbuf: int | None = None, **config: Any) -> AsyncIterator[int]:
    """`app` served by uvicorn in this event loop on a loopback socket (a real socket, where
    ASGI transports have none; `sndbuf`: the kernel send buffer its connections inherit),
    its lifespan running; yields the port. `config`: more uvicorn.Config options."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)  # inherited by accepted sockets
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            await asyncio.sleep(0.05)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 120)
        sock.close()


# -- seeding through the real repositories ------------------------------------------------


def game_message(number: int, plies: int = 12, seed: int = 0) -> dict[str, Any]:
    """A worker-style game message: random legal moves, a policy over each position's legal
    moves, and a result cycling through 1-0, 0-1, 1/2-1/2 (the draw ones adjudicated)."""
    rng = random.Random(seed * 100_003 + number)
    board = chess.Board()
    moves, policies, values = [], [], []
    for _ in range(plies):
        legal = list(board.legal_moves)
        if not legal:
            break
        probs = np.array([rng.random() + 0.01 for _ in legal], dtype=np.float32)
        policies.append((probs / probs.sum()).astype(np.float16))
        values.append(rng.uniform(-1, 1))
        move = rng.choice(legal)
        moves.append(move.uci())
        board.push(move)
    result = ("1-0", "0-1", "1/2-1/2")[number % 3]
    adjudicated = result == "1/2-1/2"
    termination = "move_cap" if adjudicated else "resignation"
    game = chess.pgn.Game.from_board(board)
    game.headers["Round"] = str(number)
    game.headers["Result"] = result
    out = io.StringIO()
    print(game, file=out, end="\n\n")
    return {
        "number": number,
        "moves": moves,
        "result": result,
        "termination": termination,
        "adjudicated": adjudicated,
        "plies": len(moves),
        "temperature": 1.0,
        "policies": policies,
        "root_values": values,
        "full_search": [i % 2 == 0 for i in range(len(moves))],
        "simulations": 8 * len(moves),
        "duration_s": 0.5,
        "material": 0,
        "false_resign": None,
        "pgn": out.getvalue(),
    }


async def seed_session(api: Api, *, games: int = 0, state: str = "completed", seed: int = 0, **config: Any) -> str:
    """A stored session in `state` with `games` games."""
    cfg = api.settings.session_config(seed=seed, **config)
    async with api.sessionmaker() as db, db.begin():
        row = await repo.create_session(db, cfg.model_dump(mode="json"), cfg.seed)
        session_id = row.id
        if state != "pending":
            await repo.set_state(db, session_id, state)
        for number in range(1, games + 1):
            await repo.add_game(db, session_id, game_message(number, seed=seed))
    return session_id


async def seed_checkpoint(api: Api, session_id: str, generation: int = 0, games: int = 0) -> int:
    """A real tiny-network checkpoint file under CHECKPOINT_DIR and its row; returns its id."""
    root = Path(api.settings.checkpoint_dir)
    weights = root / session_id / f"gen-{generation:04d}.safetensors"
    state = root / session_id / f"gen-{generation:04d}.state.pt"
    net = network.build_network("tiny", seed=generation)
    sha = network.save_weights(net, weights, generation=generation, seed=0)
    state.write_bytes(b"state")
    async with api.sessionmaker() as db, db.begin():
        row = await repo.add_checkpoint(
            db,
            session_id,
            {"generation": generation, "games": games, "path": str(weights), "state_path": str(state), "sha256": sha},
            root,
        )
        return row.id


async def count_rows(api: Api) -> dict[str, int]:
    """Rows per table (to prove bad requests change nothing)."""
    tables = {
        "sessions": models.SessionRow,
        "games": models.GameRow,
        "checkpoints": models.CheckpointRow,
        "evaluations": models.EvaluationRow,
        "metric_snapshots": models.MetricSnapshotRow,
        "events": models.EventRow,
    }
    async with api.sessionmaker() as db:
        return {name: int(await db.scalar(select(func.count()).select_from(model))) for name, model in tables.items()}


PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int) -> dict:
    """An RFC 9457 problem answer with `status`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == status
    return response.json()
