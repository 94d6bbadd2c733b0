"""Telemetry: the Prometheus collectors of the sessions (DESIGN.md "Prometheus names") and
the optional metric sinks (W&B, Braintrust).

`SessionMetrics` owns a registry of its own and is fed from the orchestrator's event
listeners; `exposition` renders registries as one Prometheus text exposition (0.0.4) and
`serve` publishes a registry on a port (the headless `run`). `attach_sinks` starts the
sinks ENABLE_WANDB / ENABLE_BRAINTRUST switch on and attaches them to an orchestrator;
`close_sinks` flushes them (`sinks`); `Sink` (`sink`) is what every sink guarantees,
`WandbSink` and `BraintrustSink` (`wandb_sink`, `braintrust_sink`) the two there are.
"""

from .braintrust_sink import BraintrustSink
from .metrics import CONTENT_TYPE, METRIC_NAMES, SessionMetrics, exposition, serve
from .sink import Sink
from .sinks import attach_sinks, close_sinks, make_sinks
from .wandb_sink import WandbSink

__all__ = [
    "CONTENT_TYPE",
    "METRIC_NAMES",
    "BraintrustSink",
    "SessionMetrics",
    "Sink",
    "WandbSink",
    "attach_sinks",
    "close_sinks",
    "exposition",
    "make_sinks",
    "serve",
]
