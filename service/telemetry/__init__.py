"""Telemetry: the Prometheus collectors of the sessions (DESIGN.md "Prometheus names") and
the optional metric sinks (W&B, Braintrust).

`SessionMetrics` owns a registry of its own and is fed from the orchestrator's event
listeners; `exposition` renders registries as one Prometheus text exposition (0.0.4) and
`serve` publishes a registry on a port (the headless `run`). `attach_sinks` starts the
sinks ENABLE_WANDB / ENABLE_BRAINTRUST switch on and attaches them to an orchestrator;
`close_sinks` flushes them (`service.telemetry.sinks`).
"""

from .metrics import CONTENT_TYPE, METRIC_NAMES, SessionMetrics, exposition, serve
from .sinks import BraintrustSink, Sink, WandbSink, attach_sinks, close_sinks, make_sinks

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
