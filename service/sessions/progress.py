"""The headless run's live progress bar (rich): games, W/D/L, adjudicated, loss,
games/min, simulations/s and buffer size, updated from the session's events."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import SessionConfig
from ..event_types import LIVE_STATS, EventType
from ..stats.scorecard import Scorecard


class SessionProgress:
    """Context manager; pass `update` as the headless run's `on_event`."""

    def __init__(self, config: SessionConfig | None, *, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        total = config.max_games if config is not None and config.max_games else None
        self.progress = Progress(
            TextColumn("[bold]games"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=self.console,
            disable=quiet,
        )
        self.task = self.progress.add_task("games", total=total, line="starting worker...")
        self.card = Scorecard()
        self.started = time.monotonic()
        self.loss: float | None = None
        self.sims: float | None = None
        self.buffer = 0

    def __enter__(self) -> "SessionProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, kind: str, data: dict[str, Any]) -> None:
        """Fold one session event into the bar."""
        if kind == EventType.GAME_FINISHED:
            self.card.add(
                data["result"], data["plies"], data["termination"], data["adjudicated"], data.get("duration_s", 0.0)
            )
        elif kind == EventType.LEARNING_STEP:
            self.loss = data["total_loss"]
            self.buffer = data["buffer_size"]
        elif kind == LIVE_STATS:
            self.sims = data["simulations_per_second"]
            self.buffer = data["buffer_size"]
        elif kind == "stopping":
            self.console.print("stopping: saving a last checkpoint (Ctrl-C again to stop waiting)")
        card = self.card
        per_min = card.games / max((time.monotonic() - self.started) / 60, 1e-9)
        line = (
            f"W/D/L {card.white_wins}/{card.draws}/{card.black_wins}  adj {card.adjudicated}  "
            f"loss {'-' if self.loss is None else f'{self.loss:.3f}'}  {per_min:.1f} games/min  "
            f"{'-' if self.sims is None else f'{self.sims:,.0f}'} sims/s  buffer {self.buffer:,}"
        )
        self.progress.update(self.task, completed=card.games, line=line)
        if self.quiet and kind in (
            EventType.GAME_FINISHED,
            EventType.LEARNING_STEP,
            EventType.CHECKPOINT_SAVED,
            EventType.SESSION_STATE,
        ):
            self.console.print(f"{kind}: {line}")
