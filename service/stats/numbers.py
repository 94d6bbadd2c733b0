"""Numbers as strict JSON carries them: `finite(value)`.

JSON has no NaN or infinity (PostgreSQL's json type rejects them, browsers cannot parse
them), yet a diverged loss or an untestable slope produces them and must still be recorded,
shown or sent. One rule serves every writer of such data (stored events and snapshots, the
analyzer's indicators, report.json and the HTML report): such a float becomes None.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, inside dicts (keys made
    strings, as JSON writes them), lists and tuples (made lists) too; any other value as is."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
