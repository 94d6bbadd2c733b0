"""Who runs a session: the owner names an orchestrator, and tells when one is gone.

A session is run by one process at a time (`serve`, or `run --resume`), through a lease
in its database row (`storage.repositories.claim_lease`): the owner, its last heartbeat, and
the expiry after which another process may take the session over. An owner is
`host:pid:token` (the token tells two orchestrators of one process apart); an owner of this
host whose process is gone, or of this process that is no longer open, is `stale`: its
lease need not be waited out (a service restarted after a crash recovers its sessions at
once). An owner on another host is trusted until its lease expires.

`Leases` is one orchestrator's side of it: claimed before a session gets a worker, taken
again in each game and checkpoint write, renewed by the heartbeat, given back at the end.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime

import psutil

from ..storage import repositories as repo
from .errors import SessionNotFound, SessionOwned
from .writer import Writer, rfc3339, utcnow

log = logging.getLogger(__name__)

LEASE_S = 30.0
"""How long a claim holds without a heartbeat: a crashed owner elsewhere is taken over after this."""
HEARTBEAT_S = 10.0
"""How often an orchestrator renews the leases of the sessions it runs."""

_open_owners: set[str] = set()


def new_owner() -> str:
    """A fresh owner name for an orchestrator of this process (`host:pid:token`)."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    _open_owners.add(owner)
    return owner


def close_owner(owner: str) -> None:
    """The orchestrator named `owner` is closed: its leases are stale from now on."""
    _open_owners.discard(owner)


def stale(owner: str) -> bool:
    """Whether `owner` is known to be gone: a process of this host that no longer exists,
    or an orchestrator of this process that was closed."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _open_owners
    return not psutil.pid_exists(pid)


class Leases:
    """This orchestrator's leases, taken and given back through the writer's jobs."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.owner = new_owner()
        self.lease_s = LEASE_S  # an attribute so tests can shorten it

    async def take(self, db, session_id: str) -> None:
        """In a write job: make this orchestrator the session's owner for `lease_s`, or
        LeaseHeld (nothing of the job is stored) while another live process holds its lease.
        Every game and checkpoint write takes it again: a process whose lease expired under it
        (stalled, cut off) never writes beside the one that took over."""
        await repo.claim_lease(db, session_id, self.owner, utcnow(), self.lease_s, stale)

    async def check(self, db, session_id: str) -> None:
        """In a write job: LeaseHeld unless no other live process holds the session's lease."""
        await repo.check_lease(db, session_id, self.owner, utcnow(), stale)

    def free(self, row, now: datetime) -> bool:
        """Whether no other live process holds `row`'s lease (free, expired, stale or ours)."""
        return repo.lease_holder(row, self.owner, now, stale) is None

    async def claim(self, session_id: str, action: str) -> None:
        """Make this orchestrator the session's owner (renewed by `renew`), or SessionOwned
        while another live process holds its lease (`action` names what was refused)."""
        try:
            await self.writer.write(lambda db: self.take(db, session_id))
        except repo.LeaseHeld as exc:
            raise owned(exc, action) from None
        except repo.NotFound:
            raise SessionNotFound("session", session_id) from None

    async def renew(self) -> None:
        """Renew every lease this orchestrator holds (the heartbeat)."""
        await self.writer.write(lambda db: repo.renew_leases(db, self.owner, utcnow(), self.lease_s))

    async def release(self, session_id: str) -> None:
        """Give up the lease of a session this orchestrator no longer runs (best effort: a
        lease left behind expires, or is stale once this process or orchestrator is gone)."""
        try:
            await self.writer.write(lambda db: repo.release_lease(db, session_id, self.owner))
        except Exception as exc:
            log.warning(
                "session %s: its lease was not released (%s); it expires in %g s",
                session_id,
                type(exc).__name__,
                self.lease_s,
            )

    def close(self) -> None:
        """This orchestrator is closed: a lease it left behind is stale from now on."""
        close_owner(self.owner)


def owned(exc: repo.LeaseHeld, action: str) -> SessionOwned:
    """The refusal of `action` on a session another live process holds (HTTP 409, CLI exit 2)."""
    until = rfc3339(exc.expires_at) if exc.expires_at is not None else "?"
    return SessionOwned(exc.session_id, exc.state, action, exc.owner, until)
