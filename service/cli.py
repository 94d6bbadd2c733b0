"""The `continuous-play` command.

Settings come from the environment and `.env` (see README); `--set NAME=VALUE` overrides
a per-session setting for one run. A bad value is one line naming it, and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer
from pydantic import ValidationError

from .config import SessionConfig, Settings, describe_errors, settings_or_exit

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="AlphaZero-style continuous self-play and learning for chess.")


@app.callback()
def _root() -> None:
    """AlphaZero-style continuous self-play and learning for chess."""


def fail(message: str) -> None:
    """One line on stderr naming what is wrong, exit 2."""
    typer.echo(f"continuous-play: {message}", err=True)
    raise typer.Exit(2)


def session_config(settings: Settings, assignments: list[str]) -> SessionConfig:
    """The session's config: settings plus `NAME=VALUE` overrides, validated."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        key = name.strip().lower()
        if not sep or key not in SessionConfig.model_fields:
            fail(f"--set {item!r}: expected NAME=VALUE with NAME a per-session setting, e.g. MAX_GAMES=10")
        overrides[key] = value
    try:
        return settings.session_config(**overrides)
    except ValidationError as exc:
        fail(describe_errors(exc))
    raise AssertionError  # unreachable


@app.command()
def run(
    set_: list[str] = typer.Option([], "--set", help="Override a per-session setting, e.g. --set MAX_GAMES=10."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; one line per event."),
) -> None:
    """Run one session headless: self-play and learning until MAX_GAMES, SESSION_DURATION_MIN or Ctrl-C."""
    from .sessions.headless import default_threads, run_headless
    from .sessions.progress import SessionProgress

    settings = settings_or_exit()
    config = session_config(settings, set_)
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("invalid setting DEVICE='cuda': torch sees no CUDA device here (use DEVICE=cpu)")
    threads = default_threads(settings)
    with SessionProgress(config, quiet=quiet) as progress:
        recorder = run_headless(settings, config, torch_threads=threads, on_message=progress.update)
    out = recorder.out_dir
    typer.echo(f"session {recorder.session_id}: {recorder.scorecard.games} games, "
               f"report {out / 'report.json'}, games {out / 'games.pgn'}")
    if recorder.error:
        typer.echo(f"continuous-play: worker failed: {recorder.error}", err=True)
        raise typer.Exit(1)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="continuous-play")


if __name__ == "__main__":
    main()
