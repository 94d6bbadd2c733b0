"""How a value is written into the report page (`html.py`): escaped (`escaped`,
`script_json`), formatted (`num`, `sig`, `pct`, `elo`, `interval`, `seconds`, `when`; a dash
for what is missing, not a number or not finite) and laid out in the page's building blocks
(`table`, `kv`, `card`, `chart`, `badge`, `tile`). Every string of a session reaches the page
through `escaped` or `script_json`."""

from __future__ import annotations

import json
from html import escape
from typing import Any, Iterable

from ..stats.numbers import finite

DASH = "\u2014"
"""What a missing value reads as."""


def escaped(value: Any) -> str:
    """`value` as HTML text: `str(value)` with `&`, `<`, `>` and both quotes escaped, so it is
    safe in an element and in a quoted attribute; None reads as a dash. Every string of a
    session passes through here before it reaches the page."""
    return DASH if value is None else escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' that could end or open a tag."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# -- number formats -----------------------------------------------------------------------


def as_number(x: Any) -> float | None:
    """A number to format, or None (not a number, a bool, NaN or infinite)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return finite(float(x))


def num(x: Any, digits: int = 2) -> str:
    """A number for a table: a whole one as an integer (for `digits` <= 2), else `digits`
    decimals, or significant digits when tiny or huge; thousands separated."""
    v = as_number(x)
    if v is None:
        return DASH
    if v == int(v) and abs(v) < 1e15 and digits <= 2:
        return f"{int(v):,}"
    if v != 0 and (abs(v) < 10**-digits or abs(v) >= 1e7):
        return f"{v:.{max(digits, 1)}g}"
    return f"{v:,.{digits}f}"


def sig(x: Any, digits: int = 3) -> str:
    """A number to `digits` significant digits."""
    v = as_number(x)
    return DASH if v is None else f"{v:.{digits}g}"


def pct(x: Any, digits: int = 1) -> str:
    """A share (0..1) as a percentage."""
    v = as_number(x)
    return DASH if v is None else f"{100 * v:.{digits}f}%"


def elo(x: Any, signed: bool = False) -> str:
    """An Elo rating (or, `signed`, a difference) to the point."""
    v = as_number(x)
    if v is None:
        return DASH
    return f"{v:+.0f}" if signed else f"{v:.0f}"


def interval(low: Any, high: Any, signed: bool = False) -> str:
    """An Elo interval as `[low, high]`."""
    if as_number(low) is None or as_number(high) is None:
        return DASH
    return f"[{elo(low, signed)}, {elo(high, signed)}]"


def seconds(x: Any) -> str:
    """A duration in the unit that reads best (ms, s, min, h)."""
    v = as_number(x)
    if v is None:
        return DASH
    if v < 1:
        return f"{1000 * v:.1f} ms"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.1f} h"


def when(ts: Any) -> str:
    """An RFC 3339 time as `YYYY-MM-DD HH:MM:SS UTC`."""
    if not isinstance(ts, str) or len(ts) < 19:
        return escaped(ts)
    return escaped(ts[:10] + " " + ts[11:19] + (" UTC" if ts.endswith(("+00:00", "Z")) else ""))


# -- building blocks ----------------------------------------------------------------------


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], *, cls: str = "", numeric: Iterable[int] = ()) -> str:
    """A table of already-escaped cells; columns in `numeric` are right-aligned."""
    right = set(numeric)
    head = "".join(f"<th{' class=num' if i in right else ''}>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in right else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table (keys escaped here, values already escaped)."""
    body = "".join(f"<tr><th>{escaped(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="table-wrap"><table class="kv"><tbody>{body}</tbody></table></div>'


def empty(text: str) -> str:
    """The words a section shows instead of a chart or table it has no data for."""
    return f'<div class="empty">{escaped(text)}</div>'


def card(title: str, body: str, *, wide: bool = False, note: str | None = None) -> str:
    """A titled card around `body` (already markup), with an optional note under it."""
    foot = f'<p class="note">{escaped(note)}</p>' if note else ""
    return f'<div class="card{" wide" if wide else ""}"><h3>{escaped(title)}</h3>{body}{foot}</div>'


def chart(chart_id: str, ready: bool, empty_text: str, *, height: int = 320) -> str:
    """The container a chart is drawn into, or the words saying why there is none."""
    if not ready:
        return empty(empty_text)
    return f'<div class="chart" id="{escaped(chart_id)}" style="height:{height}px"></div>'


_BADGES = {
    "improving": "good",
    "calibrated": "good",
    "accepted": "good",
    "completed": "good",
    "stable": "neutral",
    "continue": "neutral",
    "running": "info",
    "paused": "info",
    "pending": "info",
    "stopping": "info",
    "stopped": "neutral",
    "worsening": "bad",
    "rejected": "bad",
    "failed": "bad",
    "critical": "bad",
    "miscalibrated": "warn",
    "warning": "warn",
}


def badge(text: Any) -> str:
    """A verdict, state or severity as a coloured badge."""
    kind = _BADGES.get(str(text), "muted")
    return f'<span class="badge {kind}">{escaped(text)}</span>'


def tile(label: str, value: str, sub: str = "") -> str:
    """A summary tile: a label, a big value and a line under it (both already markup)."""
    return (
        f'<div class="tile"><div class="tile-label">{escaped(label)}</div><div class="tile-value">{value}</div>'
        f'<div class="tile-sub">{sub}</div></div>'
    )
