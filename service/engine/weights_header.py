"""What says a weights file is ours: the safetensors metadata key and format name of its JSON
header, and a reader of that header that needs neither torch nor safetensors.

`network` writes the header and checks it fully when it loads a file; the UCI engine peeks at
it before the network loads, so that `uci` is answered without waiting for torch to import.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

FORMAT = "continuous-play/1"
HEADER_KEY = "continuous-play"  # the safetensors metadata entry holding the JSON header


def peek_header(path: str | os.PathLike) -> dict:
    """The JSON header of a weights file, read without torch; ValueError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no weights file at {path}")
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("too short")
            (size,) = struct.unpack("<Q", raw)
            if size > 100_000_000:
                raise ValueError("implausible header size")
            meta = json.loads(f.read(size)).get("__metadata__") or {}
        header = json.loads(meta[HEADER_KEY])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a {FORMAT} weights file ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} weights file")
    return header
