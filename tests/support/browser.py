"""Headless Debian Chromium driven by Playwright (its own browser download cannot work here).

`chromium_page()` yields a Playwright page and the list of console errors and page errors
it collected, so a test can assert a page loaded cleanly. The flags keep Chromium off the
network (this machine's network is closed) and let it run as root.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
"""Screenshots the browser tests keep (git-ignored)."""


def chromium_path() -> str:
    """Debian's chromium (`make install` installs it); a clear failure when it is missing."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make install` (apt-get install chromium)")
    return path


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1400, 1000)) -> Iterator[tuple[object, list[str]]]:
    """A fresh browser page and the console/page errors it logs while the test runs."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            yield page, errors
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Keep a full-page screenshot under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
