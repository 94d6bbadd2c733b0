"""The headless run's live progress bar (rich): games, W/D/L, adjudicated, loss,
games/min, simulations/s and buffer size, updated from worker messages."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import SessionConfig


class SessionProgress:
    """Context manager; pass `update` as the headless run's `on_message`."""

    def __init__(self, config: SessionConfig, *, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.total = config.max_games or None
        self.progress = Progress(
            TextColumn("[bold]games"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"), console=self.console, disable=quiet)
        self.task = self.progress.add_task("games", total=self.total, line="starting worker...")
        self.loss: float | None = None
        self.sims: float | None = None
        self.buffer = 0

    def __enter__(self) -> "SessionProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, kind: str, data: dict[str, Any], recorder) -> None:
        """Fold one worker message into the bar."""
        if kind == "learning":
            self.loss = data["total_loss"]
            self.buffer = data["buffer_size"]
        elif kind == "stats":
            self.sims = data["simulations_per_second"]
            self.buffer = data["buffer_size"]
        elif kind == "stopping":
            self.console.print("stopping: finishing the last checkpoint (Ctrl-C again to abandon)")
        card = recorder.scorecard
        line = (f"W/D/L {card.white_wins}/{card.draws}/{card.black_wins}  adj {card.adjudicated}  "
                f"loss {'-' if self.loss is None else f'{self.loss:.3f}'}  "
                f"{recorder.games_per_minute():.1f} games/min  "
                f"{'-' if self.sims is None else f'{self.sims:,.0f}'} sims/s  buffer {self.buffer:,}")
        self.progress.update(self.task, completed=card.games, line=line)
        if self.quiet and kind in ("game", "learning", "checkpoint", "finished", "failed"):
            self.console.print(f"{kind}: {line}")
