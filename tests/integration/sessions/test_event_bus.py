"""The live event bus (service.sessions.events): fan-out, filtering, overflow, shutdown; and
the worker's featured-game `move` reports that feed its `game.move` messages."""

from __future__ import annotations

import asyncio
import json

import chess
import pytest
import torch
from support.tiny import tiny_config

from service.engine import network, schedules
from service.engine.selfplay import SelfPlay
from service.event_types import EventType
from service.sessions.events import OVERFLOW, SHUTDOWN, EventBus, SubscriptionEnded
from service.sessions.worker import MOVE_INTERVAL_S, SessionWorker, WorkerSpec, selfplay_config

pytestmark = pytest.mark.integration


def event(session_id: str, seq: int, kind: str = EventType.GAME_FINISHED) -> dict:
    return {"seq": seq, "session_id": session_id, "type": kind, "ts": "2026-01-01T00:00:00Z", "data": {"n": seq}}


def move(session_id: str, ply: int) -> dict:
    return {
        "session_id": session_id,
        "type": EventType.GAME_MOVE,
        "ts": "2026-01-01T00:00:00Z",
        "data": {"game": 1, "ply": ply, "uci": "e2e4", "san": "e4", "fen": chess.Board().fen()},
    }


def drain(sub) -> list[dict]:
    out = []
    while (item := sub.get_nowait()) is not None:
        out.append(item.message)
    return out


@pytest.mark.asyncio
async def test_messages_go_to_their_session_and_to_all_session_subscribers():
    bus = EventBus(queue_size=10)
    a, b, everyone = bus.subscribe("a"), bus.subscribe("b"), bus.subscribe(None)
    assert bus.subscribers == 3
    assert bus.publish(event("a", 1)) == 2
    assert bus.publish(event("b", 1)) == 2
    assert bus.publish(event("c", 1)) == 1
    assert [m["seq"] for m in drain(a)] == [1] and drain(a) == []
    assert [(m["session_id"], m["seq"]) for m in drain(b)] == [("b", 1)]
    assert [(m["session_id"], m["seq"]) for m in drain(everyone)] == [("a", 1), ("b", 1), ("c", 1)]
    first = await asyncio.wait_for(_next(bus.subscribe("a"), lambda: bus.publish(event("a", 2))), 5)
    assert first["seq"] == 2


async def _next(sub, publish):
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    publish()
    return (await waiting).message


@pytest.mark.asyncio
async def test_moves_only_reach_subscriptions_that_ask_for_them():
    bus = EventBus()
    plain, watching, all_plain, all_watching = (
        bus.subscribe("a"),
        bus.subscribe("a", moves=True),
        bus.subscribe(None),
        bus.subscribe(None, moves=True),
    )
    bus.publish(event("a", 1))
    assert bus.publish(move("a", 1)) == 2
    bus.publish(event("a", 2))
    assert [m["type"] for m in drain(plain)] == [EventType.GAME_FINISHED, EventType.GAME_FINISHED]
    assert [m["type"] for m in drain(all_plain)] == [EventType.GAME_FINISHED, EventType.GAME_FINISHED]
    for sub in (watching, all_watching):
        got = drain(sub)
        assert [m["type"] for m in got] == [EventType.GAME_FINISHED, EventType.GAME_MOVE, EventType.GAME_FINISHED]
        assert "seq" not in got[1]


@pytest.mark.asyncio
async def test_a_full_queue_ends_that_subscription_only_and_never_blocks_the_publisher():
    bus = EventBus()
    slow = bus.subscribe("a", queue_size=3)
    fast = bus.subscribe("a", queue_size=100)
    for seq in range(1, 4):
        bus.publish(event("a", seq))
    assert not slow.ended.is_set()
    assert bus.publish(event("a", 4)) == 1  # slow is full: it overflows, fast still gets it
    assert slow.ended.is_set() and slow.reason == OVERFLOW and slow.overflowed
    assert bus.overflows == 1 and bus.subscribers == 1
    with pytest.raises(SubscriptionEnded) as ended:
        await asyncio.wait_for(slow.get(), 5)  # what was queued is dropped: the client must reconnect
    assert ended.value.reason == OVERFLOW
    with pytest.raises(SubscriptionEnded):
        await asyncio.wait_for(slow.get(), 5)  # and it stays ended
    for seq in range(5, 50):  # the publisher goes on; the overflowed one gets nothing more
        bus.publish(event("a", seq))
    assert [m["seq"] for m in drain(fast)] == list(range(1, 50))
    assert slow.delivered == 3


@pytest.mark.asyncio
async def test_a_reader_waiting_on_an_overflowed_subscription_wakes_up():
    bus = EventBus()
    sub = bus.subscribe(None, queue_size=1)
    bus.publish(event("a", 1))
    assert (await sub.get()).seq == 1
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish(event("a", 2))
    bus.publish(event("a", 3))  # overflow while the reader... had not read 2 yet
    with pytest.raises(SubscriptionEnded):
        got = await asyncio.wait_for(waiting, 5)
        assert got.seq == 2  # the reader may get 2 before the end, never 3
        await asyncio.wait_for(sub.get(), 5)


@pytest.mark.asyncio
async def test_close_ends_every_subscription_and_later_ones_at_once():
    bus = EventBus()
    subs = [bus.subscribe("a"), bus.subscribe(None, moves=True)]
    bus.publish(event("a", 1))
    bus.close()
    for sub in subs:
        assert sub.reason == SHUTDOWN and sub.ended.is_set()
        with pytest.raises(SubscriptionEnded):
            await asyncio.wait_for(sub.get(), 5)
    late = bus.subscribe("a")
    assert late.reason == SHUTDOWN
    with pytest.raises(SubscriptionEnded):
        await asyncio.wait_for(late.get(), 5)
    assert bus.publish(event("a", 2)) == 0 and bus.subscribers == 0


@pytest.mark.asyncio
async def test_unsubscribe_and_json_encoded_once():
    bus = EventBus()
    with bus.subscribe("a") as one:
        two = bus.subscribe("a")
        bus.publish(event("a", 1))
        x, y = one.get_nowait(), two.get_nowait()
        assert x is y and json.loads(x.text) == event("a", 1)
    assert one.reason == "closed" and bus.subscribers == 1
    bus.publish(event("a", 2))
    assert one.get_nowait() is None and two.get_nowait().seq == 2


# -- the worker's featured game ------------------------------------------------------------

# TINY for 6 games of <= 20 plies, with no learning and no checkpoint but generation 0 and
# the final one
FEATURED = dict(
    seed=5,
    max_games=6,
    max_moves_per_game=20,
    min_games_before_learning=100,
    checkpoint_interval=1000,
    session_duration_min=10,
)


@pytest.fixture(autouse=True)
def _torch_threads():
    """One torch thread, as a session worker uses (put back afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_selfplay_move_hook_follows_the_lowest_numbered_game_in_flight():
    cfg = tiny_config(**FEATURED)
    net = network.build_network("tiny", 5)
    play = SelfPlay(
        selfplay_config(cfg),
        network.Evaluator(net, "cpu"),
        seed=5,
        temperature_for=lambda n: schedules.temperature("constant", n, 1.0, 1.0, 1),
    )
    play.max_new_games = 5
    seen: list[tuple] = []
    play.move_hook = lambda *args: seen.append((args, play.featured))
    finished = []
    while play.in_flight or play.max_new_games:
        finished.extend(play.step())
    games: dict[int, list[tuple]] = {}
    for (number, ply, uci, san, fen), _ in seen:
        games.setdefault(number, []).append((ply, uci, san, fen))
    by_number = {r.started: r for r in finished}  # the hook names a game by its start number
    order = list(games)
    assert order == sorted(order) and order[0] == 1  # one game at a time, lowest first
    assert [ply for ply, *_ in games[1]] == list(range(1, by_number[1].plies + 1))  # game 1: every ply
    for number, moves in games.items():  # a game featured from the middle: consecutive plies to its end
        record = by_number[number]
        plies = [ply for ply, *_ in moves]
        assert plies == list(range(plies[0], record.plies + 1))
        board = chess.Board()
        for move in record.moves[: plies[0] - 1]:
            board.push(move)
        for (ply, uci, san, fen), expected in zip(moves, record.moves[plies[0] - 1 :]):
            assert uci == expected.uci() and san == board.san(expected)
            board.push(expected)
            assert ply == board.ply() and fen == board.fen()
    assert all(r.ended_at > 0 for r in finished)


def run_worker(tmp_path, name: str, **spec) -> list[tuple[str, dict]]:
    messages: list[tuple[str, dict]] = []
    worker_spec = WorkerSpec(session_id=name, config=tiny_config(**FEATURED), checkpoint_dir=tmp_path / name, **spec)
    SessionWorker(worker_spec, lambda kind, data: messages.append((kind, data))).run()
    return messages


def test_the_worker_reports_featured_moves_rate_limited(tmp_path):
    messages = run_worker(tmp_path, "limited")
    moves = [d for k, d in messages if k == "move"]
    games = {d["number"]: d for k, d in messages if k == "game"}
    assert len(games) == 6 and all(g["ended_at"] > 0 for g in games.values())
    assert moves, "no move was reported"
    assert all(set(m) == {"game", "ply", "uci", "san", "fen", "actor"} and m["actor"] == 0 for m in moves)
    assert [m["game"] for m in moves] == sorted(m["game"] for m in moves)  # one featured game at a time
    for m in moves:  # each report is that game's real move and position
        played = games[m["game"]]["moves"]
        board = chess.Board()
        for uci in played[: m["ply"] - 1]:
            board.push_uci(uci)
        assert played[m["ply"] - 1] == m["uci"] and board.san(chess.Move.from_uci(m["uci"])) == m["san"]
        board.push_uci(m["uci"])
        assert board.fen() == m["fen"]
    kinds = [k for k, _ in messages]
    assert kinds[0] == "checkpoint" and kinds[-1] == "finished"

    every = [d for k, d in run_worker(tmp_path, "every", move_interval_s=0.0) if k == "move"]
    assert len(every) > len(moves)  # without the limit every featured ply is reported: the limit skipped some
    plies = {}
    for m in every:
        plies.setdefault(m["game"], []).append(m["ply"])
    assert all(p == list(range(p[0], p[0] + len(p))) for p in plies.values())  # consecutive: none skipped
    assert plies[1][0] == 1
    assert MOVE_INTERVAL_S == 0.25
    assert "move" not in [k for k, _ in run_worker(tmp_path, "off", move_interval_s=None)]
