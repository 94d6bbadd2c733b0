"""The `continuous-play` console script in a subprocess, as a user runs it.

`clean_env` is os.environ without any setting of the service (a variable exported in the
shell or by CI must not leak into a test's run), plus what the test sets; `started` runs the
console script in the background and never leaves it behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.config import Settings

CONSOLE_SCRIPT = Path(sys.executable).with_name("continuous-play")
"""The console script of the virtual environment that runs the tests."""


def clean_env(**values: str) -> dict[str, str]:
    """os.environ without any setting of ours, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(values)
    return env


@contextmanager
def started(cwd: Path, *args: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`continuous-play *args` running in `cwd` (stdout and stderr piped, as text); killed on
    the way out if it still runs."""
    proc = subprocess.Popen(
        [str(CONSOLE_SCRIPT), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
