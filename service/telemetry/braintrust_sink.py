"""The Braintrust sink (ENABLE_BRAINTRUST): every event one log row.

One Braintrust logger on the project `BRAINTRUST_PROJECT` (default continuous-play); each
row has input: session and event, output: the event's data, metadata: session, event and
labels, metrics: its numbers, scores: the white score of a game and the score of an
evaluation match, both in [0, 1]. Needs `BRAINTRUST_API_KEY` (and the network): it logs in
and registers the project when it starts, so a bad key is the sink's one warning. After
that, uploads are batched by the SDK's own background thread, which retries and reports
dropped batches on stderr. What every sink guarantees is in `sink`.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..event_types import EventType
from .sink import CONFIG_RECORD, DEFAULT_PROJECT, DEFAULT_QUEUE_SIZE, WHITE_SCORE, Sink, numbers


class BraintrustSink(Sink):
    """Every event one Braintrust log row (see the module's doc)."""

    name = "Braintrust"

    def __init__(
        self, *, project: str | None = None, api_key: str | None = None, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        super().__init__(queue_size=queue_size)
        self.project = project or os.environ.get("BRAINTRUST_PROJECT") or DEFAULT_PROJECT
        self._api_key = api_key
        self._logger: Any = None

    def _open(self) -> None:
        import braintrust  # ImportError: one warning, the sink is off
        from braintrust.logger import BraintrustState

        api_key = self._api_key or os.environ.get("BRAINTRUST_API_KEY")
        if not api_key:
            raise RuntimeError("BRAINTRUST_API_KEY is not set")
        # A state of its own: this sink's login, project and upload thread touch no one else's.
        self._logger = braintrust.init_logger(
            project=self.project, api_key=api_key, set_current=False, state=BraintrustState()
        )
        _ = self._logger.id  # log in and register the project now: a bad key fails here, once

    def _write(self, session_id: str, event_type: str, data: dict[str, Any]) -> None:
        if event_type == CONFIG_RECORD:
            self._logger.log(
                input={"session_id": session_id, "event": event_type},
                output=data,
                metadata={"session_id": session_id, "event": event_type},
                tags=[event_type],
            )
            return
        metadata: dict[str, Any] = {"session_id": session_id, "event": event_type}
        for key in ("state", "result", "termination", "opponent", "name", "severity", "trigger", "stop_reason"):
            if isinstance(data.get(key), str):
                metadata[key] = data[key]
        scores: dict[str, float] = {}
        if event_type == EventType.GAME_FINISHED and data.get("result") in WHITE_SCORE:
            scores["white_score"] = WHITE_SCORE[data["result"]]
        if event_type == EventType.EVALUATION_FINISHED:
            w, d, losses = (int(data.get(k) or 0) for k in ("wins", "draws", "losses"))
            if w + d + losses:
                scores["score"] = (w + d / 2) / (w + d + losses)
        tags = [event_type]
        if event_type == EventType.ALERT_RAISED and data.get("severity"):
            tags.append(str(data["severity"]))
        self._logger.log(
            input={"session_id": session_id, "event": event_type},
            output=_json_safe(data),
            metadata=metadata,
            metrics=numbers(data, finite=True, skip=("game_id", "checkpoint_id")) or None,
            scores=scores or None,
            tags=tags,
            error=str(data["failure_reason"]) if data.get("failure_reason") else None,
        )

    def _shutdown(self) -> None:
        if self._logger is not None:
            self._logger.flush()

    def _abandon(self) -> None:
        self._logger = None


def _json_safe(value: Any) -> Any:
    """`value` with NaN and infinities spelt as strings (JSON has no numbers for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
