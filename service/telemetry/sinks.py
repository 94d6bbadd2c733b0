"""Which metric sinks run: `make_sinks` / `attach_sinks` / `close_sinks`.

ENABLE_WANDB switches on `WandbSink` (wandb_sink.py), ENABLE_BRAINTRUST `BraintrustSink`
(braintrust_sink.py); what every sink guarantees (a bounded queue and a thread of its own,
one warning on this module's logger and off on any failure, a bounded close) is `Sink`'s,
in sink.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from .braintrust_sink import BraintrustSink
from .sink import CLOSE_TIMEOUT_S, Sink
from .wandb_sink import WandbSink

log = logging.getLogger(__name__)  # "service.telemetry.sinks": every sink module logs under it (sink.py)


def make_sinks(settings: Any) -> list[Sink]:
    """The sinks ENABLE_WANDB / ENABLE_BRAINTRUST switch on (not started)."""
    sinks: list[Sink] = []
    if getattr(settings, "enable_wandb", False):
        sinks.append(WandbSink())
    if getattr(settings, "enable_braintrust", False):
        sinks.append(BraintrustSink())
    return sinks


def attach_sinks(settings: Any, orchestrator: Any) -> list[Sink]:
    """Start the enabled sinks and attach them to `orchestrator` (before it starts:
    recovery reports events)."""
    sinks = make_sinks(settings)
    for sink in sinks:
        sink.attach(orchestrator)
    return sinks


async def close_sinks(sinks: Iterable[Sink], timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Close the sinks together, off the event loop; never raises."""
    sinks = list(sinks)
    if not sinks:
        return
    results = await asyncio.gather(*(sink.aclose(timeout) for sink in sinks), return_exceptions=True)
    for sink, result in zip(sinks, results):
        if isinstance(result, BaseException):
            log.warning("%s sink did not close cleanly: %s", sink.name, result)
