"""`continuous-play report --input DIR --output DIR` (and `python -m service.reports`): a run's
report.json, with its metrics.json when there, rendered as OUTPUT/report.html next to copies
of the run's files. Files only, no database: this module imports neither SQLAlchemy nor the
storage layer, so the command starts fast.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .builder import REPORT_FORMAT, complete
from .html import render_html

RUN_FILES = ("report.json", "metrics.json", "games.pgn")


def write_atomic(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class ReportInputError(Exception):
    """What is wrong with a report's input or output directory, in one line."""


def read_report_dir(input_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(report.json, metrics.json or None) of a run's directory; ReportInputError naming
    what is wrong otherwise."""
    if not input_dir.exists():
        raise ReportInputError(f"--input {input_dir}: no such directory")
    if not input_dir.is_dir():
        raise ReportInputError(f"--input {input_dir}: not a directory")
    path = input_dir / "report.json"
    if not path.is_file():
        raise ReportInputError(
            f"--input {input_dir}: no report.json there (the directory a `continuous-play run` "
            "wrote under REPORT_DIR/<session_id>/)"
        )
    report = _read_json(path)
    if not isinstance(report, dict) or not str(report.get("format", "")).startswith(REPORT_FORMAT.split("/")[0]):
        raise ReportInputError(f'{path}: not a continuous-play report (no "format": "{REPORT_FORMAT}")')
    metrics = None
    if (input_dir / "metrics.json").is_file():
        metrics = _read_json(input_dir / "metrics.json")
        if not isinstance(metrics, dict):
            raise ReportInputError(f"{input_dir / 'metrics.json'}: not a JSON object")
    return report, metrics


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ReportInputError(f"{path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def render_directory(input_dir: Path, output_dir: Path) -> Path:
    """Render a run's report.json (and metrics.json, when there) into OUTPUT/report.html, with
    copies of the run's files next to it; returns the HTML's path."""
    report, metrics = read_report_dir(Path(input_dir))
    try:
        report = complete(report, metrics)
        page = render_html(report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportInputError(
            f"{Path(input_dir) / 'report.json'}: not a report this version can read ({type(exc).__name__}: {exc})"
        ) from None
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        same = output_dir.resolve() == Path(input_dir).resolve()
        if not same:
            for name in RUN_FILES:
                if (Path(input_dir) / name).is_file():
                    shutil.copyfile(Path(input_dir) / name, output_dir / name)
        write_atomic(output_dir / "report.html", page)
    except OSError as exc:
        raise ReportInputError(f"--output {output_dir}: cannot write there ({exc.strerror or exc})") from None
    return output_dir / "report.html"
