"""WORKER_BACKEND=ray: the real orchestrator on SQLite with session workers as Ray actors on
a local head that each test starts (RAY_ADDRESS=local, bound to loopback) and stops.

- a session runs to MAX_GAMES on an actor, stored exactly as on the process backend;
- an actor killed mid-session (`ray.kill`) is replaced and the session resumes from its
  last checkpoint and stored games: games 1..N, none lost or duplicated, the restart
  recorded as a `session.state` event;
- without Ray installed the pool says which extra to install;
- a fleet of two self-play actors plays one session, a lost actor replaced;
- on a local cluster of two nodes (`ray.cluster_utils.Cluster`, nodes labelled with the
  `learner`/`selfplay` resources) the two actors run on two nodes, and losing the node of one
  costs only its games in flight (~35 s here).

Ray's start-up costs seconds (~5-10 s per test here), so these tests are few.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import psutil
import pytest
import pytest_asyncio
from support.stored import ended, game_numbers, session_row
from support.tiny import tiny_settings
from support.waiting import wait_for

from service.event_types import EventType
from service.sessions.orchestrator import Orchestrator
from service.sessions.pool import make_pool
from service.sessions.ray_pool import RayPool, import_ray
from service.storage import repositories as repo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def ray_processes() -> list[psutil.Process]:
    """Ray's processes started under this one (the head's GCS, raylet, workers...)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ray" in " ".join(proc.cmdline()).lower() or proc.name().startswith(("ray", "gcs_server")):
                found.append(proc)
        except psutil.Error:
            pass
    return found


@pytest_asyncio.fixture
async def orchestrator(db_sessions, tmp_path):
    environ = dict(os.environ)  # ray.init sets variables (RAY_AUTH_MODE...): later tests must not see them
    orch = Orchestrator(
        tiny_settings(tmp_path, worker_backend="ray", ray_address="local"),
        db_sessions,
        make_pool("ray", 1, 1, ray_address="local"),
    )
    started = time.monotonic()
    await orch.start()
    print(f"ray pool warm in {time.monotonic() - started:.1f} s")
    try:
        yield orch
    finally:
        await orch.close()
        os.environ.clear()
        os.environ.update(environ)
        assert not import_ray().is_initialized()
        deadline = time.monotonic() + 20
        while ray_processes() and time.monotonic() < deadline:  # Ray's processes end on their own
            await asyncio.sleep(0.2)
        left = ray_processes()
        for proc in left:  # never leave them behind, even when the test fails
            proc.kill()
        assert not left, f"Ray processes outlived the pool: {[p.pid for p in left]}"


@SQLITE_ONLY
@pytest.mark.asyncio
async def test_a_session_runs_to_max_games_on_ray_actors(orchestrator, db_sessions, tmp_path):
    assert isinstance(orchestrator.pool, RayPool) and orchestrator.ready
    sid = await orchestrator.create_session(orchestrator.settings.session_config(max_games=6))
    await wait_for(lambda: ended(db_sessions, sid))
    row = await session_row(db_sessions, sid)
    assert row.state == "completed", row.failure_reason
    assert row.games_done == 6 and await game_numbers(db_sessions, sid) == [1, 2, 3, 4, 5, 6]
    async with db_sessions() as db:
        checkpoints = await repo.list_checkpoints(db, sid)
        types = [e.type for e in await repo.events_since(db, sid, 0, 1000)]
    assert [c.generation for c in checkpoints] == list(range(len(checkpoints)))
    assert all((tmp_path / "checkpoints" / c.file_name).is_file() for c in checkpoints)
    assert (
        types.count(EventType.GAME_FINISHED) == 6
        and EventType.LEARNING_STEP in types
        and EventType.METRICS_SNAPSHOT in types
    )


@SQLITE_ONLY
@pytest.mark.asyncio
async def test_a_killed_actor_is_replaced_and_the_session_resumes(orchestrator, db_sessions):
    ray = import_ray()
    sid = await orchestrator.create_session(orchestrator.settings.session_config(max_games=10))

    async def some_games():
        return len(await game_numbers(db_sessions, sid)) >= 3

    await wait_for(some_games)
    worker = orchestrator.runner.workers[sid]
    ray.kill(worker.actor)  # mid-game: three games are always in flight

    async def replaced():
        current = orchestrator.runner.workers.get(sid)
        return current is not None and current is not worker

    await wait_for(replaced)
    await wait_for(lambda: ended(db_sessions, sid))

    row = await session_row(db_sessions, sid)
    assert row.state == "completed", row.failure_reason
    assert await game_numbers(db_sessions, sid) == list(range(1, 11))
    async with db_sessions() as db:
        events = [e.data for e in await repo.events_since(db, sid, 0, 10_000) if e.type == EventType.SESSION_STATE]
        generations = [c.generation for c in await repo.list_checkpoints(db, sid)]
    assert generations == list(range(len(generations)))
    restarts = [e for e in events if e.get("restarted")]
    assert len(restarts) == 1 and restarts[0]["state"] == "running", events
    assert restarts[0]["reason"].startswith("Ray actor died")


def test_without_ray_the_pool_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    with pytest.raises(RuntimeError, match=r"pip install '\.\[ray\]'"):
        import_ray()
    pool = make_pool("ray", 1, 1, ray_address="local")
    with pytest.raises(RuntimeError, match=r"pip install '\.\[ray\]'"):
        asyncio.run(pool.start())


@SQLITE_ONLY
@pytest.mark.asyncio
async def test_a_fleet_of_ray_actors_plays_one_session_and_a_lost_actor_is_replaced(orchestrator, db_sessions):
    config = orchestrator.settings.session_config(max_games=0, session_duration_min=10, selfplay_actors=2)
    sid = await orchestrator.create_session(config)

    async def played_by() -> set[int]:
        async with db_sessions() as db:
            return {g.actor for g in (await repo.list_games(db, sid, limit=1000))[0]}

    def actors() -> dict[int, int]:
        live = orchestrator.live(sid) or {}
        return {a["actor"]: a["pid"] for a in live.get("actors") or [] if a.get("pid")}

    async def both_played() -> bool:
        return await played_by() >= {1, 2} and len(actors()) == 2

    await wait_for(both_played, what="games of two Ray self-play actors")
    victim, pid = sorted(actors().items())[0]
    os.kill(pid, 9)  # the actor's Ray worker process dies; the learner's actor lives on

    async def replacement_played() -> bool:
        return 3 in await played_by()

    await wait_for(replacement_played, what="a game of the replacement actor")
    await orchestrator.stop(sid)
    await wait_for(lambda: ended(db_sessions, sid))

    row = await session_row(db_sessions, sid)
    assert row.state == "stopped", row.failure_reason
    assert await game_numbers(db_sessions, sid) == list(range(1, row.games_done + 1))
    async with db_sessions() as db:
        events = [e.data for e in await repo.events_since(db, sid, 0, 10_000) if e.type == EventType.SESSION_STATE]
    replaced = [e for e in events if e.get("actor_replaced")]
    assert replaced and replaced[0]["actor"] == victim and replaced[0]["replacement"] == 3
    assert not [e for e in events if e.get("restarted")]  # the learner never died


NODE_ARGS = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20, "num_gpus": 0}
"""Every node of the local cluster: on loopback, a small object store."""


class TwoNodes:
    """A local Ray cluster: a head labelled for the learner and one self-play actor, and a
    second node for one self-play actor (`selfplay` resources: one actor per node)."""

    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                **NODE_ARGS,
                "num_cpus": 8,  # room for both actors (Ray would pack them here): the labels put one on each node
                "resources": {"learner": 1, "selfplay": 1},
                "include_dashboard": False,
            },
        )
        self.nodes = [self.cluster.head_node, self.add()]

    def add(self):
        """One more node, room for one self-play actor."""
        return self.cluster.add_node(**NODE_ARGS, num_cpus=1, resources={"selfplay": 1})

    def node(self, node_id: str):
        return next(n for n in self.cluster.list_all_nodes() if n.node_id == node_id)


def actor_nodes() -> dict[int, str]:
    """pid -> node id of every live actor of the cluster (Ray's GCS, no dashboard needed)."""
    from ray._private import state

    return {a["Pid"]: a["Address"]["NodeID"] for a in state.actors().values() if a["State"] == "ALIVE"}


@pytest_asyncio.fixture
async def two_nodes(monkeypatch):
    import ray._private.ray_constants as ray_constants
    from ray._private.authentication import authentication_token_setup as token_setup

    environ = dict(os.environ)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # token auth, as a local head has it (ray.init turns it on for the rest of this process,
    # so a cluster without it would refuse this process's actors after an earlier Ray test);
    # a token is made as ray.init makes one when there is none
    token_setup._enable_token_auth()
    token_setup.ensure_token_if_auth_enabled()
    # ray.init turns a loopback address into this machine's outward one, where the nodes do
    # not listen: as on a machine without clusters, keep it loopback
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    started = time.monotonic()
    nodes = TwoNodes()  # on the main thread: Ray sets signal handlers
    ray = import_ray()
    try:
        ray.init(address=nodes.cluster.address, namespace="continuous-play", logging_level="WARNING")
        print(f"two Ray nodes up in {time.monotonic() - started:.1f} s")
        yield nodes
    finally:
        ray.shutdown()
        nodes.cluster.shutdown()
        os.environ.clear()
        os.environ.update(environ)
        left = ray_processes()
        for proc in left:
            proc.kill()
        assert not left, f"Ray processes outlived the cluster: {[p.pid for p in left]}"


@SQLITE_ONLY
@pytest.mark.asyncio
async def test_two_ray_nodes_play_one_session_and_losing_an_actors_node_costs_no_game(two_nodes, db_sessions, tmp_path):
    """Issue 23: a session whose two actors run on two nodes, games exactly once; the node of
    one actor (not the learner's) lost: the session goes on, no gap, no restart."""
    orch = Orchestrator(
        tiny_settings(tmp_path, worker_backend="ray", ray_address=two_nodes.cluster.address),
        db_sessions,
        make_pool("ray", 1, 1, ray_address=two_nodes.cluster.address),
    )
    await orch.start()
    try:
        config = orch.settings.session_config(max_games=0, session_duration_min=10, selfplay_actors=2)
        sid = await orch.create_session(config)

        async def played_by() -> set[int]:
            async with db_sessions() as db:
                return {g.actor for g in (await repo.list_games(db, sid, limit=1000))[0]}

        def actors() -> dict[int, int]:
            live = orch.live(sid) or {}
            return {a["actor"]: a["pid"] for a in live.get("actors") or [] if a.get("pid")}

        async def both_played() -> bool:
            return await played_by() >= {1, 2} and len(actors()) == 2

        await wait_for(both_played, what="games of two Ray self-play actors")
        nodes = actor_nodes()
        placed = {number: nodes[pid] for number, pid in actors().items()}
        learner_node = nodes[ray_pid(orch.runner.workers[sid])]
        head, second = (n.node_id for n in two_nodes.nodes)
        assert placed[1] != placed[2] and set(placed.values()) == {head, second}, placed
        assert learner_node == head  # the `learner` label

        victim = next(number for number, node in placed.items() if node == second)
        third = two_nodes.add()  # room for the replacement (blocks the loop a few seconds)
        two_nodes.cluster.remove_node(two_nodes.node(second))

        async def replacement_played() -> bool:
            return 3 in await played_by() and 3 in actors()

        await wait_for(replacement_played, what="a game of the replacement actor on the third node")
        assert actor_nodes()[actors()[3]] == third.node_id
        await orch.stop(sid)
        await wait_for(lambda: ended(db_sessions, sid))
    finally:
        await orch.close()

    row = await session_row(db_sessions, sid)
    assert row.state == "stopped", row.failure_reason
    assert await game_numbers(db_sessions, sid) == list(range(1, row.games_done + 1))
    assert await played_by() >= {1, 2, 3}
    async with db_sessions() as db:
        events = [e.data for e in await repo.events_since(db, sid, 0, 10_000) if e.type == EventType.SESSION_STATE]
    replaced = [e for e in events if e.get("actor_replaced")]
    assert [(e["actor"], e["replacement"]) for e in replaced] == [(victim, 3)], events
    assert not [e for e in events if e.get("restarted")]  # the learner never noticed more than an actor


def ray_pid(worker) -> int:
    """The process id of a pool worker's Ray actor (the learner's process)."""
    return import_ray().get(worker.actor.pid.remote())
