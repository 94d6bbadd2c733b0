"""Who runs a session: the owner names an orchestrator, and tells when one is gone.

A session is run by one process at a time (`serve`, or `run --resume`), through a lease
in its database row (`storage.repositories.claim_lease`): the owner, its last heartbeat, and
the expiry after which another process may take the session over. An owner is
`host:pid:token` (the token tells two orchestrators of one process apart); an owner of this
host whose process is gone, or of this process that is no longer open, is `stale`: its
lease need not be waited out (a service restarted after a crash recovers its sessions at
once). An owner on another host is trusted until its lease expires.
"""

from __future__ import annotations

import os
import socket
import uuid

import psutil

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
