"""An actor process plays on while its learner learns: `fleet._Sender` holds up to `ahead`
finished games beyond what its pipe holds, then makes the actor wait; messages keep their order.

Without it a learner and one actor on two cores took turns (the pipe holds about one game of
`small`, so the actor waited through every learning phase)."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest

from service.config import SessionConfig
from service.sessions.fleet import _Sender, ahead_games

pytestmark = pytest.mark.unit

GAME = b"x" * 300_000  # larger than a pipe's buffer: a send waits until the other end reads


def test_the_actor_runs_ahead_by_that_many_games_then_waits_and_nothing_is_reordered():
    reader, writer = mp.Pipe(duplex=False)
    sender = _Sender(writer, ahead=2)
    sender.send(("game", 1, GAME))  # taken by the sender's thread, which waits on the full pipe
    sender.send(("stats", 1, {"n": 1}))
    sender.send(("game", 1, GAME))  # the second game ahead: still no wait
    third = threading.Thread(target=sender.send, args=(("game", 1, GAME),))
    third.start()
    third.join(0.5)
    assert third.is_alive()  # a third game ahead waits for the learner
    received = [reader.recv()]  # the learner reads one game: room for the third
    third.join(5.0)
    assert not third.is_alive()
    sender.send(("paused", 1, None))
    received += [reader.recv() for _ in range(4)]
    assert [(kind, data if kind != "game" else len(data)) for kind, _, data in received] == [
        ("game", len(GAME)),
        ("stats", {"n": 1}),
        ("game", len(GAME)),
        ("game", len(GAME)),
        ("paused", None),  # after every game sent before it: a pause finds them all received
    ]
    sender.close(timeout=5.0)
    assert not sender.thread.is_alive()


def test_an_actor_holds_one_learning_phase_of_games_at_least_two():
    assert ahead_games(SessionConfig(learn_every_n_games=5)) == 5
    assert ahead_games(SessionConfig(learn_every_n_games=1)) == 2
