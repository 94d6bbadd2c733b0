"""The API's OpenAPI document, generated from the app: `python -m service.openapi`.

`spec()` builds the app with `create_app` (its lifespan never runs: no database, no
worker pool, no file is created) from the settings' *defaults* only, so neither the
environment nor a `.env` file can change the document, and returns `app.openapi()`.

    python -m service.openapi            # write openapi/openapi.json
    python -m service.openapi PATH       # write PATH instead
    python -m service.openapi --check    # exit 1 when openapi/openapi.json is stale
    python -m service.openapi --check PATH

The file is JSON with sorted keys, an indent of 2 and a trailing newline, so a change
of the API shows as a readable diff; tests/smoke/test_openapi.py fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from service.config import Settings

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
"""`openapi/openapi.json` at the repository root."""
REGENERATE = "python -m service.openapi"


class _DefaultSettings(Settings):
    """Settings from their declared defaults only: no environment, no `.env`."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def spec() -> dict[str, Any]:
    """The app's OpenAPI document (built without starting the app)."""
    from service.app import create_app

    return create_app(_DefaultSettings(), migrate=False).openapi()


def render(document: dict[str, Any]) -> str:
    """The document as committed: sorted keys, indent 2, trailing newline."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(f"usage: {REGENERATE} [--check] [PATH]", file=sys.stderr)
        return 2
    path = Path(args[0]) if args else DEFAULT_PATH
    text = render(spec())
    if check:
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            what = "is missing" if current is None else "is stale"
            command = REGENERATE if path == DEFAULT_PATH else f"{REGENERATE} {path}"
            print(f"{path} {what}: run `{command}` and commit the result", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
