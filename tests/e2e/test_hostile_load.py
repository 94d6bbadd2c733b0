"""Readers cannot starve the writer (issue #21, item 1), against a real `continuous-play serve`.

The issue's reproduction: a long finished session, then another session playing, while 20
clients without a key ask for the first session's `games.pgn` and `report.html` and never read
the answer (a receive buffer of a few kilobytes, never drained). Before the fix their requests
held every pooled connection until their last byte was taken, the writer's checkout timed out
and the playing session ended `failed` with the driver's text. Now the writer has a connection
of its own and no response holds one while it is sent: the session completes with every game
stored exactly once, and other reads are answered meanwhile (200, or 503 with Retry-After while
the read pool is busy; never a hang).
"""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import pytest
from integration.api.api_support import game_message
from server_support import database_url, read_db, serving

from service.config import Settings
from service.storage import repositories as repo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

LONG_GAMES = 12_000
SLOW_READERS = 20
PLAYED_GAMES = 40
MAX_READERS = 300


async def seed_long_session(db) -> str:
    """A finished session of LONG_GAMES games of 60 plies: a games.pgn of about 5 MB, more
    than a stalled client's socket buffers take (loopback grows a send buffer to 4 MB)."""
    config = Settings(_env_file=None, chess_preset="tiny").session_config(seed=1)
    row = await repo.create_session(db, config.model_dump(mode="json"), 1)
    kinds = [game_message(number, plies=60, seed=1) for number in range(1, 31)]
    db.add_all(repo.game_row(row.id, kinds[n % len(kinds)] | {"number": n}) for n in range(1, LONG_GAMES + 1))
    await repo.set_state(db, row.id, "completed", games_done=LONG_GAMES)
    await db.commit()
    return row.id


def slow_reader(port: int, path: str, settle_s: float = 0.0) -> socket.socket:
    """A client that sends its request and never reads the answer. With `settle_s`, it waits
    (up to that long) until the first bytes of the body have come: the server is then in the
    middle of sending it, holding whatever it holds while it waits for the client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            seen = sock.recv(4096, socket.MSG_PEEK)  # peeked only: nothing is taken
        except TimeoutError:
            break
        head, _, body = seen.partition(b"\r\n\r\n")
        if len(body) > 16:
            break
        time.sleep(0.01)
    sock.settimeout(None)
    return sock


async def stored_numbers(db, session_id: str) -> list[int]:
    return sorted(g.number for g in await repo.newest_games(db, session_id, 10**9))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_slow_readers_never_cost_the_playing_session_a_game(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        with serving(tmp_path, url) as server, ExitStack() as readers:
            long_id = read_db(url, seed_long_session)
            paths = [f"/v1/sessions/{long_id}/games.pgn", f"/v1/sessions/{long_id}/report.html"]
            for i in range(SLOW_READERS):  # one by one, each left in the middle of its answer
                readers.enter_context(slow_reader(server.port, paths[i % 2], settle_s=2.0))
            body, answers = play_while_read(server, readers, paths)
        assert body["state"] == "completed", (body.get("failure_reason"), server.output())
        assert body["failure_reason"] is None
        assert 200 in answers
        numbers = read_db(url, lambda db: stored_numbers(db, body["id"]))
    assert numbers == list(range(1, PLAYED_GAMES + 1)), "every game stored exactly once"


def play_while_read(server, readers: ExitStack, paths: list[str]) -> tuple[dict, set[int]]:
    """Start a session of PLAYED_GAMES and poll it to its end while more slow readers come
    (eight a second, up to MAX_READERS: longer than a pool checkout's 30 s timeout, which is
    what the writer met before the fix); its last body, and the status codes the polls got."""
    answers: set[int] = set()
    with server.client(timeout=60.0) as client:
        r = client.post("/v1/sessions", json={"max_games": PLAYED_GAMES})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        more_readers = 0
        deadline = time.monotonic() + 300
        while True:
            r = client.get(f"/v1/sessions/{sid}")  # a read meanwhile: answered, never hung
            answers.add(r.status_code)
            assert r.status_code in (200, 503), r.text
            if r.status_code == 503:
                assert r.headers["retry-after"] and r.json()["type"].endswith("database-unavailable")
            elif r.json()["state"] not in ("pending", "running"):
                return r.json(), answers
            for _ in range(2):  # keep the readers coming while it plays: the read pool stays full
                if more_readers < MAX_READERS:
                    readers.enter_context(slow_reader(server.port, paths[more_readers % 2]))
                    more_readers += 1
            assert server.running, server.output()
            assert time.monotonic() < deadline, f"the session did not end within 300 s\n{server.output()}"
            time.sleep(0.25)
