"""The `continuous-play` command.

Settings come from the environment and `.env` (see README); `--set NAME=VALUE` overrides
a per-session setting for one run. A bad value is one line naming it, and exit code 2.
"""

from __future__ import annotations

import ipaddress
import sys
from enum import StrEnum
from pathlib import Path
from typing import Optional

import typer

from .config import SessionConfig, Settings, SettingsError, session_config_from, settings_or_exit

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="AlphaZero-style continuous self-play and learning for chess."
)


@app.callback()
def _root() -> None:
    """AlphaZero-style continuous self-play and learning for chess."""


def fail(message: str) -> None:
    """One line on stderr naming what is wrong, exit 2."""
    typer.echo(f"continuous-play: {message}", err=True)
    raise typer.Exit(2)


def session_config(settings: Settings, assignments: list[str]) -> SessionConfig:
    """The session's config: settings plus `NAME=VALUE` overrides, or one line and exit 2."""
    try:
        return session_config_from(settings, assignments)
    except SettingsError as exc:
        fail(str(exc))
    raise AssertionError  # unreachable: fail() exits


@app.command()
def run(
    set_: list[str] = typer.Option([], "--set", help="Override a per-session setting, e.g. --set MAX_GAMES=10."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a stored session by its id."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; one line per event."),
) -> None:
    """Run one session headless: self-play and learning until MAX_GAMES, SESSION_DURATION_MIN or Ctrl-C.

    It is stored in DATABASE_URL like a session of `serve` (resumable, visible to the API) and ends
    with games.pgn, metrics.json and report.json under REPORT_DIR/<session_id>/."""
    import asyncio

    from .headless import run_session
    from .sessions.errors import SessionError
    from .sessions.progress import SessionProgress

    settings = settings_or_exit()
    if resume is not None and set_:
        fail("--resume continues a session with its stored settings: drop --set")
    config = None if resume is not None else session_config(settings, set_)
    if config is not None and config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("invalid setting DEVICE='cuda': torch sees no CUDA device here (use DEVICE=cpu)")
    try:
        with SessionProgress(config, quiet=quiet) as progress:
            session_id, report = asyncio.run(run_session(settings, config, resume_id=resume, on_event=progress.update))
    except SessionError as exc:
        fail(str(exc))
    out = Path(settings.report_dir) / session_id
    typer.echo(
        f"session {session_id} {report['state']}: {report['scorecard']['games']} games, "
        f"report {out / 'report.json'}, games {out / 'games.pgn'}"
    )
    if report["state"] == "failed":
        typer.echo(f"continuous-play: session failed: {report['error']}", err=True)
        raise typer.Exit(1)


@app.command()
def report(
    input_dir: Path = typer.Option(
        ...,
        "--input",
        help="A run's directory (REPORT_DIR/<session_id>/): report.json, and metrics.json and games.pgn when there.",
    ),
    output_dir: Path = typer.Option(..., "--output", help="Where report.html (and copies of the run's files) go."),
) -> None:
    """Render a run's report.json as one self-contained HTML page (opens offline) under --output."""
    from .reports.directory import ReportInputError, render_directory

    try:
        path = render_directory(input_dir, output_dir)
    except ReportInputError as exc:
        fail(str(exc))
    typer.echo(f"report {path}")


@app.command()
def uci(
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Weights file (safetensors); default: generation 0 of SEED (CHESS_PRESET)."
    ),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="Inference backend (auto, torch, torch-bf16, onnxruntime); default INFERENCE_BACKEND."
    ),
) -> None:
    """Speak UCI on stdin/stdout with a checkpoint's network (chess GUIs, cutechess, lichess-bot)."""
    from .engine.inference import InferenceBackend
    from .uci.entry import main as uci_main

    settings = settings_or_exit()
    if backend is not None and backend not in {b.value for b in InferenceBackend}:
        fail(f"--backend {backend!r}: expected one of {', '.join(b.value for b in InferenceBackend)}")
    raise typer.Exit(
        uci_main(
            checkpoint,
            seed=settings.seed,
            preset=settings.chess_preset,
            threads=settings.torch_threads,
            algorithm=settings.search,
            device=settings.device,
            backend=backend or settings.inference_backend.value,
            probe_dir=settings.checkpoint_dir,
        )
    )


class ExportFormat(StrEnum):
    """What `export` writes: ONNX only (what lc0 and KataGo ship, and ONNX Runtime runs)."""

    ONNX = "onnx"


@app.command()
def export(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Weights file (safetensors) of a checkpoint."),
    format_: str = typer.Option(
        ExportFormat.ONNX.value, "--format", help=f"Output format: {', '.join(ExportFormat)}.", show_default=True
    ),
    output: Path = typer.Option(..., "--output", help="The file to write (replaced atomically if it exists)."),
) -> None:
    """Export a checkpoint's network as ONNX: named inputs and outputs, metadata with the preset,
    generation, input planes and move table; runs in ONNX Runtime with no project code."""
    if format_ not in set(ExportFormat):
        fail(f"unknown --format {format_!r}: the formats are {', '.join(ExportFormat)}")
    if output.is_dir():
        fail(f"--output {output} is a folder: name the file to write")
    if not output.parent.is_dir():
        fail(f"--output {output}: {output.parent} is not an existing folder")
    if output.resolve() == checkpoint.resolve():
        fail("--output names the --checkpoint file itself: it would be overwritten")
    from .engine import network, onnx_export

    try:
        net, header = network.load_weights(checkpoint)
    except (OSError, ValueError, TypeError) as exc:
        fail(f"--checkpoint {checkpoint} cannot be loaded: {(str(exc) or type(exc).__name__).splitlines()[0][:300]}")
    data = onnx_export.onnx_bytes(net, header)
    try:
        onnx_export.save(data, output)
    except OSError as exc:
        fail(f"cannot write --output {output}: {exc.strerror or exc}")
    typer.echo(f"onnx {output} (preset {header.get('preset')}, generation {header.get('generation')})")


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_log_config() -> dict:
    """uvicorn's own logging configuration with `RedactSecrets` on each of its handlers, so
    neither the access log (request paths with their query strings) nor the error log (a
    WebSocket's `?token=`) ever writes a key."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": "service.api.auth.RedactSecrets"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact_secrets")
    return config


GRACEFUL_SHUTDOWN_S = 10
"""On SIGTERM, how long `serve` waits for requests still open (a slow client's download)
before it cancels them and the shutdown checkpoints the running sessions: one slow client
must not hold that past a container's stop grace period."""


@app.command()
def serve() -> None:
    """Serve the API and dashboard on HOST:PORT (migrating the database first)."""
    import uvicorn

    from .app import create_app

    settings = settings_or_exit()
    if not settings.api_keys and not is_loopback(settings.host):
        fail(f"refusing to bind HOST={settings.host!r} without API_KEYS: set API_KEYS, or bind 127.0.0.1")
    migrate_or_exit(settings.database_url)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def migrate_or_exit(url: str) -> None:
    """Migrate DATABASE_URL to the newest schema, or one line naming what is wrong and exit 2
    (a URL of another driver or no URL at all; a database that cannot be reached)."""
    from .storage.database import DatabaseError, is_connection_error, safe_url, upgrade

    try:
        upgrade(url)
    except ValueError as exc:  # names DATABASE_URL already
        fail(str(exc))
    except Exception as exc:
        if not (isinstance(exc, DatabaseError) or is_connection_error(exc)):
            raise
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        fail(f"cannot migrate the database at DATABASE_URL={safe_url(url)}: {reason}")


db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate DATABASE_URL to the newest schema (Alembic)."""
    from .storage.database import safe_url

    settings = settings_or_exit()
    migrate_or_exit(settings.database_url)
    typer.echo(f"database {safe_url(settings.database_url)} is at the newest revision")


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="continuous-play")


if __name__ == "__main__":
    main()
