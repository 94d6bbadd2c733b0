"""Telemetry: the Prometheus collectors of the sessions (DESIGN.md "Prometheus names").

`SessionMetrics` owns a registry of its own and is fed from the orchestrator's event
listeners; `exposition` renders registries as one Prometheus text exposition (0.0.4) and
`serve` publishes a registry on a port (the headless `run`).
"""

from .metrics import CONTENT_TYPE, METRIC_NAMES, SessionMetrics, exposition, serve

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "SessionMetrics", "exposition", "serve"]
