"""The worker protocol: every message about a session has one handler in the recorder, and a
kind nobody handles fails loudly instead of being dropped."""

from __future__ import annotations

import pickle

import pytest

from service.config import Settings
from service.sessions.events import EventBus
from service.sessions.lease import Leases
from service.sessions.protocol import SESSION_MESSAGES, Command, CommandKind, MessageKind, WorkerMessage
from service.sessions.recorder import Announcer, Recorder
from service.sessions.writer import Writer

pytestmark = pytest.mark.integration


def recorder(tmp_path) -> Recorder:
    writer = Writer(None, publish=lambda event: None, on_outage_limit=lambda outage: None)
    settings = Settings(checkpoint_dir=str(tmp_path))
    return Recorder(settings, writer, Announcer(EventBus()), Leases(writer))


@pytest.mark.asyncio
async def test_every_session_message_has_a_handler(tmp_path):
    assert recorder(tmp_path).handled == SESSION_MESSAGES
    assert MessageKind.READY not in SESSION_MESSAGES and MessageKind.DIED not in SESSION_MESSAGES


@pytest.mark.asyncio
async def test_a_kind_without_a_handler_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="'ready'"):
        await recorder(tmp_path).record("s1", MessageKind.READY, {})
    with pytest.raises(ValueError, match="'gossip'"):
        await recorder(tmp_path).record("s1", "gossip", {})  # type: ignore[arg-type]


def test_messages_and_commands_cross_a_process_boundary():
    for value in (WorkerMessage(MessageKind.GAME, "s1", {"number": 1}), Command(CommandKind.STOP, "s1")):
        copy = pickle.loads(pickle.dumps(value))
        assert copy == value and type(copy.kind) is type(value.kind)
