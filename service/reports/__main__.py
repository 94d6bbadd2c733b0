"""`python -m service.reports --input DIR --output DIR`: the same as `continuous-play report`.

Renders a run's report.json (with its metrics.json, when there) as OUTPUT/report.html, one
self-contained page, and copies the run's files next to it. Bad input is one line on stderr
naming what is wrong, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .directory import ReportInputError, render_directory

PROG = "python -m service.reports"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage)
        sys.stderr.write(f"{PROG}: {message}\n")
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog=PROG, description="Render a run's report.json as one self-contained HTML page.")
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="DIR",
        help="a run's directory (REPORT_DIR/<session_id>/) holding report.json",
    )
    parser.add_argument(
        "--output", required=True, type=Path, metavar="DIR", help="where report.html (and copies of the run's files) go"
    )
    args = parser.parse_args(argv)
    try:
        path = render_directory(args.input, args.output)
    except ReportInputError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 2
    print(f"report {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
