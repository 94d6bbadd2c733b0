"""What the tests expect of a session's HTML report (service/reports/html.py)."""

from __future__ import annotations

CHARTS = (
    "chart-elo",
    "chart-matches",
    "chart-losses",
    "chart-results",
    "chart-length",
    "chart-move-time",
    "chart-duration",
    "chart-throughput",
)
"""The ids of the charts report.html draws, in page order."""
