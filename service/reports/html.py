"""The session report as one self-contained HTML file: `render_html(report) -> str`.

Everything the page needs is inside it: the CSS, plotly.js (inlined from the installed
`plotly` package) and the report itself as JSON, so it opens offline, from a file or a mail
attachment, and loads nothing from anywhere (a Content-Security-Policy meta tag forbids any
network access, so a regression shows as a console error rather than a silent fetch).

Tables are rendered here with every string escaped (`html.escape`); the charts are drawn in
the browser from the embedded JSON (`<`, `>` and `&` escaped as \\u sequences, so no string
of a session can close the script element). A section without data (no evaluation, no
learning step, no game yet) says so in words instead of drawing an empty chart.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from html import escape
from typing import Any, Iterable

from .builder import PREVIOUS, complete

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
       "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")
DASH = "\u2014"


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.min.js of the installed plotly package (about 4.8 MB)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # cannot happen with plotly's build; never emit a broken page
        raise RuntimeError("plotly.js contains '</script'; it cannot be inlined")
    return js


def e(value: Any) -> str:
    """Escaped text of any value (None: a dash)."""
    return DASH if value is None else escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' that could end or open a tag."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# -- number formats -----------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(float(x)) else None


def num(x: Any, digits: int = 2) -> str:
    v = _num(x)
    if v is None:
        return DASH
    if v == int(v) and abs(v) < 1e15 and digits <= 2:
        return f"{int(v):,}"
    if v != 0 and (abs(v) < 10 ** -digits or abs(v) >= 1e7):
        return f"{v:.{max(digits, 1)}g}"
    return f"{v:,.{digits}f}"


def sig(x: Any, digits: int = 3) -> str:
    v = _num(x)
    return DASH if v is None else f"{v:.{digits}g}"


def pct(x: Any, digits: int = 1) -> str:
    v = _num(x)
    return DASH if v is None else f"{100 * v:.{digits}f}%"


def elo(x: Any, signed: bool = False) -> str:
    v = _num(x)
    if v is None:
        return DASH
    return f"{v:+.0f}" if signed else f"{v:.0f}"


def interval(low: Any, high: Any, signed: bool = False) -> str:
    if _num(low) is None or _num(high) is None:
        return DASH
    return f"[{elo(low, signed)}, {elo(high, signed)}]"


def seconds(x: Any) -> str:
    v = _num(x)
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
        return e(ts)
    return e(ts[:10] + " " + ts[11:19] + (" UTC" if ts.endswith(("+00:00", "Z")) else ""))


# -- building blocks ----------------------------------------------------------------------


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], *, cls: str = "", numeric: Iterable[int] = ()) -> str:
    """A table of already-escaped cells; columns in `numeric` are right-aligned."""
    right = set(numeric)
    head = "".join(f'<th{" class=num" if i in right else ""}>{h}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in right else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table (keys escaped here, values already escaped)."""
    body = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="table-wrap"><table class="kv"><tbody>{body}</tbody></table></div>'


def empty(text: str) -> str:
    return f'<div class="empty">{e(text)}</div>'


def card(title: str, body: str, *, wide: bool = False, note: str | None = None) -> str:
    foot = f'<p class="note">{e(note)}</p>' if note else ""
    return (f'<div class="card{" wide" if wide else ""}"><h3>{e(title)}</h3>{body}{foot}</div>')


def chart(chart_id: str, ready: bool, empty_text: str, *, height: int = 320) -> str:
    """The container a chart is drawn into, or the words saying why there is none."""
    if not ready:
        return empty(empty_text)
    return f'<div class="chart" id="{e(chart_id)}" style="height:{height}px"></div>'


_BADGES = {
    "improving": "good", "calibrated": "good", "accepted": "good", "completed": "good",
    "stable": "neutral", "continue": "neutral", "running": "info", "paused": "info", "pending": "info",
    "stopping": "info", "stopped": "neutral",
    "worsening": "bad", "rejected": "bad", "failed": "bad", "critical": "bad",
    "miscalibrated": "warn", "warning": "warn",
}


def badge(text: Any) -> str:
    kind = _BADGES.get(str(text), "muted")
    return f'<span class="badge {kind}">{e(text)}</span>'


def tile(label: str, value: str, sub: str = "") -> str:
    return (f'<div class="tile"><div class="tile-label">{e(label)}</div><div class="tile-value">{value}</div>'
            f'<div class="tile-sub">{sub}</div></div>')


# -- sections -----------------------------------------------------------------------------


def _config(report: dict[str, Any]) -> dict[str, Any]:
    return ((report.get("manifest") or {}).get("config")) or {}


def _indicator(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((i for i in report.get("analysis") or [] if i.get("name") == name), None)


def header(report: dict[str, Any]) -> str:
    state = report.get("state")
    chips = [
        ("started", when(report.get("started_at"))),
        ("finished", when(report.get("finished_at")) if report.get("finished_at") else "not yet"),
        ("stop reason", e(report.get("stop_reason"))),
        ("generated", when(report.get("generated_at") or report.get("finished_at"))),
    ]
    meta = "".join(f'<span class="chip"><span>{e(k)}</span> {v}</span>' for k, v in chips)
    error = (f'<div class="alert-box"><strong>The session failed:</strong> <code>{e(report["error"])}</code></div>'
             if report.get("error") else "")
    return f"""<header class="top">
  <div class="wrap">
    <div class="brand">continuous-play <span>session report</span></div>
    <h1><code id="session-id">{e(report.get("session_id"))}</code> {badge(state) if state else ""}</h1>
    <div class="chips">{meta}</div>
    {error}
  </div>
</header>"""


def summary(report: dict[str, Any]) -> str:
    card_ = report.get("scorecard") or {}
    results = card_.get("results") or {}
    throughput = report.get("throughput") or {}
    losses = report.get("losses") or {}
    games = card_.get("games", 0)
    newest = report.get("elo")
    tiles = []
    if newest:
        tiles.append(tile("Elo (newest)", elo(newest.get("rating")),
                          f"gen {e(newest.get('generation'))} &middot; 95% {interval(newest.get('low'), newest.get('high'))}"))
    else:
        tiles.append(tile("Elo (newest)", DASH, "no evaluation yet"))
    progression = _indicator(report, "elo_progression")
    detail = (progression or {}).get("detail") or {}
    if progression and progression.get("trend") is not None:
        tiles.append(tile("Elo per 10 games", elo(progression["trend"], signed=True),
                          f"95% {interval(detail.get('slope_low'), detail.get('slope_high'), True)} &middot; "
                          f"{badge(progression.get('verdict'))}"))
    else:
        tiles.append(tile("Elo per 10 games", DASH, "needs 2 evaluated checkpoints"))
    tiles.append(tile("Self-play games", num(games),
                      f"W {pct(results.get('white_win_rate'))} &middot; D {pct(results.get('draw_rate'))} &middot; "
                      f"B {pct(results.get('black_win_rate'))}"))
    adjudicated = card_.get("adjudicated", 0)
    tiles.append(tile("Adjudicated", num(adjudicated),
                      f"{pct(adjudicated / games) if games else DASH} of games &middot; "
                      f"{num(results.get('adjudicated_decisive', 0))} decisive"))
    tiles.append(tile("Learning steps", num(losses.get("steps", 0)),
                      f"{num(losses.get('phases', 0))} phases &middot; loss "
                      f"{sig(((losses.get('total_loss') or {}).get('last')), 4)}"))
    tiles.append(tile("Games per minute", num(throughput.get("games_per_minute"), 1),
                      f"{num(throughput.get('simulations_per_second_mean'), 0)} sims/s &middot; "
                      f"{seconds(throughput.get('elapsed_s'))}"))
    alerts = report.get("alerts") or []
    tiles.append(tile("Alerts", num(len(alerts)),
                      "none raised" if not alerts else ", ".join(sorted({e(a.get("name")) for a in alerts}))))
    return f'<section id="summary" class="tiles">{"".join(tiles)}</section>'


def strength(report: dict[str, Any]) -> str:
    series = report["series"]
    config = _config(report)
    interval_games = config.get("eval_interval_games")
    no_eval = ("No evaluation yet. Strength is measured only by evaluation matches against fixed anchors"
               + (f" (every {interval_games} games)" if interval_games else "")
               + "; self-play results say nothing about it.")
    charts = (card("Elo by games played (95% interval)", chart("chart-elo", bool(series["elo"]), no_eval),
                   note="Maximum-likelihood rating list over all matches, generation 0 anchored; dashed lines: "
                        "the anchors' fitted ratings.")
              + card("Elo difference per match, by opponent (95% interval)",
                     chart("chart-matches", bool(series["matches"]), no_eval),
                     note="The candidate's logistic Elo against each opponent, from game pairs (pentanomial)."))
    ratings = report.get("rating_list") or []
    rating_rows = [[f"<code>{e(r['player'])}</code>", elo(r["rating"]), interval(r["low"], r["high"]),
                    elo(((r["high"] - r["low"]) / 2) if _num(r["high"]) is not None and _num(r["low"]) is not None
                        else None), num(r["games"])] for r in ratings]
    rating_table = (table(["Player", "Elo", "95% interval", "&plusmn;", "Games"], rating_rows, numeric=(1, 2, 3, 4))
                    if ratings else empty(no_eval))
    evaluations = report.get("evaluations") or []
    rated = {r["player"]: r for r in ratings}
    eval_rows = []
    for ev in evaluations:
        match = ev.get("match") or {}
        penta = ev.get("pentanomial")
        games = ev["wins"] + ev["draws"] + ev["losses"]
        eval_rows.append([
            num(ev["generation"]), f"<code>{e(ev['opponent'])}</code>", num(games),
            f"{num(ev['wins'])} / {num(ev['draws'])} / {num(ev['losses'])}", pct(match.get("score")),
            e(" ".join(str(c) for c in penta)) if penta else DASH,
            f"{elo(match.get('elo'), True)} {interval(match.get('low'), match.get('high'), True)}" if match else DASH,
            num(ev.get("adjudicated")), elo((rated.get(f"gen{ev['generation']}") or {}).get("rating"))])
    eval_table = (table(["Gen", "Opponent", "Games", "W / D / L", "Score", "Pentanomial", "Elo diff [95%]",
                         "Adjudicated", "Gen Elo"], eval_rows, numeric=(0, 2, 3, 4, 6, 7, 8))
                  if evaluations else empty(no_eval))
    sprt = report.get("sprt") or []
    sprt_rows = [[num(s.get("generation")), num(s.get("against_generation")), badge(s.get("state")),
                  f"{sig(s.get('llr'))}", f"[{sig(s.get('lower'))}, {sig(s.get('upper'))}]",
                  f"&lt;{num(s.get('elo0'), 0)}, {num(s.get('elo1'), 0)}&gt;", num(s.get("samples"))] for s in sprt]
    sprt_table = (table(["Gen", "vs gen", "Verdict", "LLR", "Bounds", "Elo0, Elo1", "Pairs"],
                        sprt_rows, numeric=(0, 1, 3, 4, 5, 6), cls="compact")
                  if sprt else empty("No SPRT verdict yet: each evaluated checkpoint is tested against the previous "
                                     "evaluated one."))
    gating = "on: only an accepted checkpoint plays self-play" if config.get("gating") else \
        "off: the SPRT is a verdict only; self-play always uses the newest net"
    first = sprt[0] if sprt else {}
    sprt_note = None if not sprt else (f"H0: Elo \u2264 Elo0 against H1: Elo \u2265 Elo1 ({e(first.get('elo_model') or 'normalized')} Elo), "
                 f"\u03b1 = {sig(first.get('alpha'), 2)}, \u03b2 = {sig(first.get('beta'), 2)}; accepted once the LLR "
                 f"reaches the upper bound, rejected at the lower. Gating {gating}.")
    return f"""<section id="strength">
  <h2>Strength <small>evaluation matches, never self-play</small></h2>
  <div class="grid">{charts}</div>
  <div class="grid">
    {card("Rating list", rating_table)}
    {card("SPRT verdicts (new checkpoint vs previous)", sprt_table, note=sprt_note)}
  </div>
  {card("Evaluation matches", eval_table, wide=True,
        note="Pentanomial counts of game pairs (same opening, colours swapped): LL, LD, DD+WL, WD, WW.")}
</section>"""


def learning(report: dict[str, Any]) -> str:
    series = report["series"]
    losses = report.get("losses") or {}
    config = _config(report)
    waits = config.get("min_games_before_learning")
    no_learning = "No learning step yet" + (f": learning starts after {waits} games." if waits else ".")
    rows = []
    for head in ("policy_loss", "value_loss", "total_loss"):
        h = losses.get(head)
        if h:
            rows.append([e(head.replace("_", " ")), sig(h.get("first"), 4), sig(h.get("last"), 4), sig(h.get("min"), 4)])
    summary_table = table(["Head", "First", "Last", "Min"], rows, numeric=(1, 2, 3)) if rows else empty(no_learning)
    facts = kv([("learning phases", num(losses.get("phases", 0))), ("optimizer steps", num(losses.get("steps", 0))),
                ("policy entropy, last", sig(losses.get("policy_entropy_last"), 4)),
                ("learning time", seconds((report.get("throughput") or {}).get("learning_seconds"))),
                ("steps per minute", num((report.get("throughput") or {}).get("learning_steps_per_minute"), 1))])
    return f"""<section id="learning">
  <h2>Learning</h2>
  <div class="grid">
    {card("Training loss per head", chart("chart-losses", bool(series["learning"]), no_learning),
          note="Mean loss of each learning phase by optimizer step; dotted: policy entropy (right axis).")}
    {card("Losses", summary_table + facts)}
  </div>
</section>"""


def selfplay(report: dict[str, Any]) -> str:
    series = report["series"]
    sc = report.get("scorecard") or {}
    results = sc.get("results") or {}
    no_games = "No self-play game has finished yet."
    has_games = bool(sc.get("games"))
    size = series["results"].get("bucket_size", 1)
    charts = (card(f"Self-play results over time (per {size} game{'s' if size != 1 else ''})",
                   chart("chart-results", has_games and bool(series["results"]["buckets"]), no_games), wide=True,
                   note="Both sides are the same net: these shares describe the games, not strength.")
              + card("Game length", chart("chart-length", bool(series["game_length"]["counts"]), no_games),
                     note="Plies per game; games at MAX_MOVES_PER_GAME are adjudicated.")
              + card("Move time", chart("chart-move-time", bool(series["move_time"]["counts"]), no_games),
                     note="Mean time per move of each game (its duration over its plies).")
              + card("Game duration", chart("chart-duration", bool(series["game_duration"]["counts"]), no_games))
              + card("Throughput and memory",
                     chart("chart-throughput", any(p.get("simulations_per_second") is not None
                                                    for p in series["throughput"]),
                           "No metric snapshot stored yet.")))
    colours = (results.get("by_colour") or {})
    colour_rows = [[e(side), num(c.get("wins")), num(c.get("draws")), num(c.get("losses")), pct(c.get("score")),
                    pct(c.get("win_rate"))] for side, c in colours.items()]
    colour_table = (table(["Colour", "W", "D", "L", "Score", "Win rate"], colour_rows,
                          numeric=(1, 2, 3, 4, 5)) if has_games else empty(no_games))
    terminations = sc.get("terminations") or {}
    term_table = (table(["Termination", "Games", "Share"],
                        [[e(k), num(v), pct(v / sc["games"])] for k, v in terminations.items()], numeric=(1, 2))
                  if terminations else empty(no_games))
    length = sc.get("length") or {}
    streaks = sc.get("streaks") or {}
    current = streaks.get("current") or {}
    adj = (report.get("adjudication") or {})
    facts = kv([
        ("games", num(sc.get("games", 0))),
        ("adjudicated (self-play)", f"{num(sc.get('adjudicated', 0))} ({num(results.get('adjudicated_decisive', 0))} "
                                    "decisive)"),
        ("adjudicated (evaluation)", f"{num((adj.get('evaluation') or {}).get('adjudicated'))} of "
                                     f"{num((adj.get('evaluation') or {}).get('games', 0))} games"),
        ("plies: mean / median", f"{num(length.get('mean'), 1)} / {num(length.get('median'), 1)}"),
        ("plies: min / max", f"{num(length.get('min'))} / {num(length.get('max'))}"),
        ("longest decisive / draw streak", f"{num(streaks.get('longest_decisive'))} / {num(streaks.get('longest_draw'))}"),
        ("current streak", f"{num(current.get('length'))} &times; {e(current.get('result'))}"
                           if current.get("result") else DASH),
        ("mean game duration", seconds((sc.get("duration") or {}).get("mean_s"))),
    ])
    return f"""<section id="selfplay">
  <h2>Self-play</h2>
  <div class="grid">{charts}</div>
  <div class="grid three">
    {card("Results by colour", colour_table)}
    {card("Terminations", term_table)}
    {card("Scorecard", facts)}
  </div>
</section>"""


_INDICATORS = {  # name: (label, value's unit, trend's unit, format of value and trend)
    "elo_progression": ("Elo progression", "newest rating", "Elo per 10 games", "elo"),
    "win_rate_trend": ("Decisive self-play games", "last window", "last &minus; first window", "share"),
    "loss_trend": ("Training loss", "newest total loss", "per step", "number"),
    "loss_spread": ("Loss spread", "std, last window", "ratio to first window", "number"),
    "game_length": ("Game length", "plies, last game", "plies per game", "number"),
    "high_confidence_moves": ("High-confidence moves", "p &ge; 0.6, last window", "last &minus; first window", "share"),
    "policy_entropy": ("Policy entropy", "nats, newest", "per step", "number"),
    "value_calibration": ("Value calibration", "expected calibration error", "", "number"),
}


def _formatted(value: Any, kind: str, trend: bool = False) -> str:
    if kind == "elo":
        return elo(value, signed=trend)
    if kind == "share":
        return f"{100 * value:+.1f} pp" if trend and _num(value) is not None else pct(value)
    return sig(value, 3 if trend else 4)


def _evidence(indicator: dict[str, Any]) -> str:
    d = indicator.get("detail") or {}
    name = indicator.get("name")
    parts = []
    if name == "elo_progression" and d.get("slope_low") is not None:
        parts.append(f"95% {interval(d['slope_low'], d['slope_high'], True)} Elo per 10 games over "
                     f"{num(d.get('points'))} checkpoints")
    p = d.get("p_value", d.get("decisive_p"))
    if _num(p) is not None:
        parts.append(f"p = {sig(p, 2)}")
    for key, label in (("n", "n"), ("games", "games"), ("moves", "moves"), ("samples", "samples")):
        if key in d and key != "p_value" and _num(d[key]) is not None and name != "elo_progression":
            parts.append(f"{label} = {num(d[key])}")
            break
    if indicator.get("verdict") == "insufficient data":
        for key in ("min_points", "min_games", "min_window", "min_samples"):
            have = d.get(key.removeprefix("min_"))
            if key in d and (_num(have) is None or have < d[key]):
                parts.append(f"needs {key.removeprefix('min_').replace('_', ' ')} &ge; {num(d[key])}")
                break
        else:
            if _num(p) is not None:
                parts.append("not significant either way")
    return " &middot; ".join(parts) or DASH


def analysis(report: dict[str, Any]) -> str:
    indicators = report.get("analysis") or []
    rows = []
    for ind in indicators:
        label, value_label, trend_label, kind = _INDICATORS.get(ind.get("name"), (e(ind.get("name")), "", "", ""))
        value, trend = ind.get("value"), ind.get("trend")
        rows.append([f"<strong>{label}</strong>", badge(ind.get("verdict")),
                     f"{_formatted(value, kind)} <span class=unit>{value_label}</span>" if value is not None else DASH,
                     f"{_formatted(trend, kind, True)} <span class=unit>{trend_label}</span>"
                     if trend is not None else DASH,
                     _evidence(ind)])
    body = (table(["Indicator", "Verdict", "Value", "Trend", "Evidence"], rows, cls="verdicts")
            if rows else empty("No indicator yet: the analyzer needs games, learning steps or evaluations."))
    return f"""<section id="analysis">
  <h2>Analyzer verdicts <small>two-sided tests at 5%, never eyeballed</small></h2>
  {card("Improvement indicators", body, wide=True)}
</section>"""


def alerts(report: dict[str, Any]) -> str:
    items = report.get("alerts") or []
    def context(a: dict[str, Any]) -> str:
        parts = [e(a["trigger"])] if a.get("trigger") else []
        parts += [f"{k} {num(a[k])}" for k in ("games", "step", "generation") if _num(a.get(k)) is not None]
        return " &middot; ".join(parts) or DASH

    rows = [[when(a.get("ts")), badge(a.get("severity")), f"<code>{e(a.get('name'))}</code>", e(a.get("message")),
             sig(a.get("value"), 4), sig(a.get("threshold"), 4), context(a)] for a in items]
    body = (table(["Time", "Severity", "Alert", "Message", "Value", "Threshold", "Context"], rows, numeric=(4, 5))
            if rows else empty("No alert was raised."))
    return f"""<section id="alerts">
  <h2>Alerts</h2>
  {card("Raised alerts", body, wide=True)}
</section>"""


def checkpoints(report: dict[str, Any]) -> str:
    items = report.get("checkpoints") or []
    rows = [[num(c.get("generation")), num(c.get("games")), f'<code title="{e(c.get("sha256"))}">'
             f'{e((c.get("sha256") or "")[:16])}</code>', f"<code>{e(c.get('path'))}</code>"] for c in items]
    body = (table(["Gen", "Games", "sha256", "File"], rows, numeric=(0, 1)) if rows
            else empty("No checkpoint saved yet."))
    return f"""<section id="checkpoints">
  <h2>Checkpoints</h2>
  {card("Saved networks", body, wide=True)}
</section>"""


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return e(", ".join(str(x) for x in v)) if v else DASH
    if isinstance(v, dict):
        return e(json.dumps(v, sort_keys=True))
    if isinstance(v, bool):
        return "true" if v else "false"
    return e(v)


def manifest(report: dict[str, Any]) -> str:
    m = report.get("manifest") or {}
    facts = kv([
        ("seed", e(m.get("seed"))), ("git revision", f"<code>{e(m.get('git_revision'))}</code>"),
        ("python", e(m.get("python"))), ("platform", e(m.get("platform"))), ("cpu count", e(m.get("cpu_count"))),
        ("torch threads", e(m.get("torch_threads"))),
        *[(k.replace("_", " "), f"<code>{e(v)}</code>") for k, v in (m.get("output") or {}).items()],
        ("report format", e(report.get("format"))),
    ])
    packages = (kv([(name, e(version)) for name, version in (m.get("packages") or {}).items()])
                if m.get("packages") else empty("No package versions recorded."))
    settings = "".join(f'<div class="setting"><span>{e(k.upper())}</span><code>{_value(v)}</code></div>'
                       for k, v in sorted((m.get("config") or {}).items()))
    config = f'<div class="settings">{settings}</div>' if settings else empty("No settings recorded.")
    return f"""<section id="manifest">
  <h2>Manifest <small>what produced this report</small></h2>
  <div class="grid">
    {card("Run", facts)}
    {card("Packages", packages)}
  </div>
  {card("Session settings", config, wide=True, note="As the session ran them; the environment names of each.")}
</section>"""


_NAV = (("summary", "Summary"), ("strength", "Strength"), ("learning", "Learning"), ("selfplay", "Self-play"),
        ("analysis", "Verdicts"), ("alerts", "Alerts"), ("checkpoints", "Checkpoints"), ("manifest", "Manifest"))


def label(name: Any) -> str:
    """A player or opponent name as a chart label: letters, digits and ` ._+-` only (plotly
    reads a few tags in its labels; no string of a session may bring markup there)."""
    return "".join(c if c.isalnum() or c in " ._+-/" else "?" for c in str(name))[:64]


def _chart_data(report: dict[str, Any]) -> dict[str, Any]:
    """What the charts draw: the series, with player and opponent names reduced to labels."""
    series = dict(report["series"])
    series["anchors"] = [{**a, "player": label(a.get("player"))} for a in series.get("anchors") or []]
    series["matches"] = {label(name): [{**p, "opponent": label(p.get("opponent"))} for p in points]
                         for name, points in (series.get("matches") or {}).items()}
    return {"series": series, "previous": PREVIOUS}


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (any report.json of this service; sections
    it lacks are rebuilt where possible, or shown empty)."""
    report = complete(report)
    title = f"continuous-play report {report.get('session_id') or ''}".strip()
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in _NAV)
    body = "\n".join([summary(report), strength(report), learning(report), selfplay(report), analysis(report),
                      alerts(report), checkpoints(report), manifest(report)])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="continuous-play">
<title>{e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{header(report)}
<nav class="nav"><div class="wrap">{nav}</div></nav>
<main class="wrap">
{body}
</main>
<footer class="wrap">Generated by continuous-play &middot; {e(report.get("format"))} &middot; self-contained: opens offline,
loads nothing from the network.</footer>
<script type="application/json" id="report-data">{script_json(report)}</script>
<script type="application/json" id="chart-data">{script_json(_chart_data(report))}</script>
<script>window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>
<script>{plotly_js()}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; --accent:#2563eb;
        --good:#15803d; --bad:#b91c1c; --warn:#b45309; --info:#1d4ed8; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin:0; background:var(--bg); color:var(--fg); font:14px/1.5 -apple-system, BlinkMacSystemFont,
       "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.92em; }
.wrap { max-width: 1280px; margin: 0 auto; padding: 0 24px; }
header.top { background: linear-gradient(135deg, #0f172a, #1e3a8a); color: #fff; padding: 22px 0 18px; }
.brand { font-size: 12px; letter-spacing: .12em; text-transform: uppercase; color: #93c5fd; font-weight: 600; }
.brand span { color: #cbd5e1; font-weight: 400; }
header h1 { margin: 6px 0 10px; font-size: 22px; font-weight: 600; display: flex; gap: 12px; align-items: center;
            flex-wrap: wrap; word-break: break-all; }
header h1 code { font-size: 20px; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; }
.chip { background: rgba(255,255,255,.1); border: 1px solid rgba(255,255,255,.18); border-radius: 999px;
        padding: 2px 12px; font-size: 12.5px; }
.chip span { color: #93c5fd; margin-right: 4px; }
.alert-box { margin-top: 14px; background: #fef2f2; color: #7f1d1d; border-radius: 8px; padding: 10px 14px; }
nav.nav { position: sticky; top: 0; z-index: 10; background: rgba(255,255,255,.95); border-bottom: 1px solid var(--line);
          backdrop-filter: blur(4px); }
nav.nav .wrap { display: flex; gap: 4px; overflow-x: auto; }
nav.nav a { color: var(--muted); text-decoration: none; padding: 10px 12px; font-weight: 500; white-space: nowrap;
            border-bottom: 2px solid transparent; }
nav.nav a:hover { color: var(--accent); border-bottom-color: var(--accent); }
main { padding-bottom: 24px; }
section { margin-top: 28px; scroll-margin-top: 56px; }
h2 { font-size: 18px; margin: 0 0 12px; font-weight: 650; }
h2 small { color: var(--muted); font-weight: 400; font-size: 13px; margin-left: 8px; }
h3 { font-size: 14px; margin: 0 0 10px; font-weight: 600; color: #323f4b; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(165px, 1fr)); gap: 12px; margin-top: 20px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px;
        box-shadow: 0 1px 2px rgba(15,23,42,.04); }
.tile-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile-value { font-size: 24px; font-weight: 650; margin: 2px 0; font-variant-numeric: tabular-nums; }
.tile-sub { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; margin-bottom: 16px;
        align-items: start; }
.grid.three { grid-template-columns: minmax(0, 1fr) minmax(0, 0.9fr) minmax(0, 1.1fr); }
table.compact td { white-space: nowrap; }
.settings { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); column-gap: 24px; }
.setting { display: flex; justify-content: space-between; gap: 12px; padding: 5px 2px; border-bottom: 1px solid var(--line); }
.setting span { color: var(--muted); font-size: 12.5px; }
.setting code { text-align: right; word-break: break-word; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px;
        box-shadow: 0 1px 2px rgba(15,23,42,.04); min-width: 0; }
.card.wide { grid-column: 1 / -1; }
section > .card { margin-bottom: 16px; }
.note { color: var(--muted); font-size: 12px; margin: 10px 0 0; }
.chart { width: 100%; }
.empty { border: 1px dashed #cbd2d9; border-radius: 8px; padding: 28px 16px; text-align: center; color: var(--muted);
         background: #fafbfc; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em;
           border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:hover { background: #f8fafc; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.kv th { font-weight: 500; color: var(--muted); width: 45%; font-size: 13px; }
table.kv td { word-break: break-word; }
.unit { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 10px; font-size: 12px; font-weight: 600;
         white-space: nowrap; border: 1px solid transparent; }
.badge.good { background: #dcfce7; color: var(--good); }
.badge.bad { background: #fee2e2; color: var(--bad); }
.badge.warn { background: #fef3c7; color: var(--warn); }
.badge.info { background: #dbeafe; color: var(--info); }
.badge.neutral { background: #eef2f6; color: #3e4c59; }
.badge.muted { background: transparent; color: var(--muted); border-color: #cbd2d9; font-weight: 500; }
header .badge { font-size: 13px; }
footer { color: var(--muted); font-size: 12px; padding: 16px 24px 32px; }
@media (max-width: 900px) { .grid, .grid.three { grid-template-columns: 1fr; } }
@media print { nav.nav { display: none; } header.top { background: #1e3a8a; -webkit-print-color-adjust: exact; }
               .card { break-inside: avoid; } }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var S = data.series;
  var COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  var BASE = {
    margin: {l: 60, r: 20, t: 10, b: 48}, autosize: true,
    font: {family: "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Arial, sans-serif", size: 12,
           color: "#323f4b"},
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    xaxis: {gridcolor: "#eef0f3", linecolor: "#cbd2d9", zeroline: false, automargin: true},
    yaxis: {gridcolor: "#eef0f3", linecolor: "#cbd2d9", zeroline: false, automargin: true},
    legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)"},
    hoverlabel: {bgcolor: "#fff", bordercolor: "#cbd2d9", font: {color: "#1f2933"}},
    bargap: 0.08
  };
  var CONFIG = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"]};

  function merge(a, b) {
    var out = {}, k;
    for (k in a) out[k] = a[k];
    for (k in b) {
      var v = b[k];
      out[k] = (v && typeof v === "object" && !Array.isArray(v) && a[k] && typeof a[k] === "object" &&
                !Array.isArray(a[k])) ? merge(a[k], v) : v;
    }
    return out;
  }
  function plot(id, traces, layout) {
    var el = document.getElementById(id);
    if (!el || !traces.length) return;
    Plotly.newPlot(el, traces, merge(BASE, layout || {}), CONFIG);
  }
  function pick(rows, key) { return rows.map(function (r) { return r[key]; }); }
  function fmt(v, d) { return v === null || v === undefined ? "\u2014" : Number(v).toFixed(d); }
  function xOf(p) { return p.games === null || p.games === undefined ? p.generation : p.games; }

  // Elo of each evaluated checkpoint with its 95% band; the anchors as dashed lines.
  (function () {
    var pts = S.elo;
    if (!pts.length) return;
    var x = pts.map(xOf);
    var text = pts.map(function (p) { return "gen " + p.generation; });
    var traces = [
      {x: x, y: pick(pts, "high"), mode: "lines", line: {width: 0, color: "rgba(37,99,235,0)"},
       hoverinfo: "skip", showlegend: false},
      {x: x, y: pick(pts, "low"), mode: "lines", fill: "tonexty", fillcolor: "rgba(37,99,235,0.14)",
       line: {width: 0, color: "rgba(37,99,235,0)"}, name: "95% interval", hoverinfo: "skip"},
      {x: x, y: pick(pts, "rating"), mode: "lines+markers", name: "checkpoint Elo", text: text,
       line: {color: COLORS[0], width: 2.5}, marker: {size: 7},
       customdata: pts.map(function (p) { return [p.low, p.high, p.match_games]; }),
       error_y: {type: "data", symmetric: false, color: "rgba(37,99,235,0.45)", thickness: 1.2, width: 3,
                 array: pts.map(function (p) { return p.high - p.rating; }),
                 arrayminus: pts.map(function (p) { return p.rating - p.low; })},
       hovertemplate: "%{text} at %{x} games<br><b>%{y:.0f} Elo</b> [%{customdata[0]:.0f}, " +
                      "%{customdata[1]:.0f}]<br>%{customdata[2]} match games<extra></extra>"}
    ];
    var shapes = [], notes = [];
    S.anchors.forEach(function (a, i) {
      shapes.push({type: "line", xref: "paper", x0: 0, x1: 1, y0: a.rating, y1: a.rating,
                   line: {color: "#9aa5b1", width: 1.2, dash: "dash"}});
      notes.push({xref: "paper", x: 1, xanchor: "right", y: a.rating, yanchor: "bottom", showarrow: false,
                  text: a.player + " " + fmt(a.rating, 0), font: {size: 11, color: "#616e7c"}});
    });
    plot("chart-elo", traces, {shapes: shapes, annotations: notes, hovermode: "closest",
                              xaxis: {title: {text: pts[0].games === null ? "generation" : "games played"}},
                              yaxis: {title: {text: "Elo (generation 0 = anchor)"}}});
  })();

  // Per-opponent match Elo differences.
  (function () {
    var names = Object.keys(S.matches);
    if (!names.length) return;
    var traces = names.map(function (name, i) {
      var pts = S.matches[name];
      return {x: pts.map(xOf), y: pick(pts, "elo"), name: name, mode: "lines+markers",
              line: {color: COLORS[(i + 1) % COLORS.length], width: 2}, marker: {size: 7},
              text: pts.map(function (p) { return "gen " + p.generation + " vs " + p.opponent; }),
              customdata: pts.map(function (p) { return [p.low, p.high, 100 * p.score, p.match_games]; }),
              error_y: {type: "data", symmetric: false, thickness: 1.2, width: 3,
                        array: pts.map(function (p) { return p.high - p.elo; }),
                        arrayminus: pts.map(function (p) { return p.elo - p.low; })},
              hovertemplate: "%{text}<br><b>%{y:+.0f} Elo</b> [%{customdata[0]:+.0f}, %{customdata[1]:+.0f}]" +
                             "<br>score %{customdata[2]:.1f}% over %{customdata[3]} games<extra></extra>"};
    });
    var first = S.matches[names[0]][0];
    plot("chart-matches", traces, {hovermode: "closest",
         shapes: [{type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: {color: "#9aa5b1", width: 1}}],
         xaxis: {title: {text: first.games === null ? "generation" : "games played"}},
         yaxis: {title: {text: "Elo difference vs opponent"}}});
  })();

  // Losses per head, policy entropy on the right axis.
  (function () {
    var rows = S.learning;
    if (!rows.length) return;
    var x = pick(rows, "step");
    var heads = [["total_loss", "total", COLORS[0]], ["policy_loss", "policy", COLORS[2]],
                 ["value_loss", "value", COLORS[1]]];
    var traces = heads.map(function (h) {
      return {x: x, y: pick(rows, h[0]), name: h[1] + " loss", mode: rows.length > 40 ? "lines" : "lines+markers",
              line: {color: h[2], width: 2}, marker: {size: 5},
              hovertemplate: h[1] + " %{y:.4f}<extra></extra>"};
    });
    if (rows.some(function (r) { return r.policy_entropy !== null && r.policy_entropy !== undefined; })) {
      traces.push({x: x, y: pick(rows, "policy_entropy"), name: "policy entropy", yaxis: "y2", mode: "lines",
                   line: {color: COLORS[4], width: 1.5, dash: "dot"},
                   hovertemplate: "entropy %{y:.3f} nats<extra></extra>"});
    }
    plot("chart-losses", traces, {hovermode: "x unified", margin: {r: 60},
         xaxis: {title: {text: "optimizer step"}}, yaxis: {title: {text: "loss"}},
         yaxis2: {title: {text: "entropy (nats)"}, overlaying: "y", side: "right", showgrid: false,
                  zeroline: false, automargin: true}});
  })();

  // W/D/L share per bucket of games, adjudicated share as a line.
  (function () {
    var b = S.results.buckets;
    if (!b.length) return;
    var x = b.map(function (r) { return r.first === r.last ? String(r.first) : r.first + "\u2013" + r.last; });
    function share(key) { return b.map(function (r) { return 100 * r[key] / r.games; }); }
    function counts(key) { return b.map(function (r) { return [r[key], r.games]; }); }
    var parts = [["white_wins", "white wins", "#93c5fd"], ["draws", "draws", "#cbd2d9"],
                 ["black_wins", "black wins", "#1e293b"]];
    var traces = parts.map(function (p) {
      return {type: "bar", x: x, y: share(p[0]), name: p[1], marker: {color: p[2]}, customdata: counts(p[0]),
              hovertemplate: p[1] + ": %{customdata[0]} of %{customdata[1]} (%{y:.0f}%)<extra></extra>"};
    });
    traces.push({type: "scatter", x: x, y: share("adjudicated"), name: "adjudicated", mode: "lines+markers",
                 line: {color: "#d97706", width: 2}, marker: {size: 6}, customdata: counts("adjudicated"),
                 hovertemplate: "adjudicated: %{customdata[0]} of %{customdata[1]} (%{y:.0f}%)<extra></extra>"});
    plot("chart-results", traces, {barmode: "stack", hovermode: "x unified", legend: {traceorder: "normal"},
         xaxis: {title: {text: "games (by number)"}, type: "category"},
         yaxis: {title: {text: "share of games (%)"}, range: [0, 100]}});
  })();

  function histogram(id, h, opts) {
    if (!h.counts.length) return;
    var scale = opts.scale || 1, integer = opts.integer;
    var x = [], widths = [], labels = [];
    for (var i = 0; i < h.counts.length; i++) {
      var lo = h.edges[i] * scale, hi = h.edges[i + 1] * scale;
      if (integer) {
        x.push((lo + hi - 1) / 2); widths.push((hi - lo) * 0.92);
        labels.push(hi - lo === 1 ? String(lo) : lo + "\u2013" + (hi - 1));
      } else {
        x.push((lo + hi) / 2); widths.push((hi - lo) * 0.92);
        labels.push(fmt(lo, opts.digits) + "\u2013" + fmt(hi, opts.digits));
      }
    }
    var shapes = [], notes = [];
    if (h.mean !== null) {
      var m = h.mean * scale;
      shapes.push({type: "line", x0: m, x1: m, yref: "paper", y0: 0, y1: 1,
                   line: {color: "#dc2626", width: 1.5, dash: "dash"}});
      notes.push({x: m, yref: "paper", y: 1, yanchor: "bottom", showarrow: false, xanchor: "left",
                  text: " mean " + fmt(m, opts.digits) + " " + opts.unit, font: {size: 11, color: "#b91c1c"}});
    }
    var lo0 = h.edges[0] * scale, hi0 = h.edges[h.edges.length - 1] * scale, pad = 0;
    if (integer && hi0 - lo0 < 10) pad = (10 - (hi0 - lo0)) / 2;  // a lone bar is not the whole axis
    var xaxis = {title: {text: opts.axis}};
    if (integer) { xaxis.tickformat = ",d"; xaxis.range = [lo0 - 0.5 - pad, hi0 - 0.5 + pad]; }
    var most = Math.max.apply(null, h.counts);
    plot(id, [{type: "bar", x: x, y: h.counts, width: widths, text: labels, textposition: "none",
               marker: {color: opts.color, line: {width: 0}}, name: opts.name,
               hovertemplate: "%{text} " + opts.unit + ": <b>%{y}</b> games<extra></extra>"}],
         {shapes: shapes, annotations: notes, hovermode: "closest", showlegend: false, margin: {t: 24},
          xaxis: xaxis, yaxis: {title: {text: "games"}, rangemode: "tozero", tickformat: ",d",
                                dtick: most <= 8 ? 1 : null}});
  }
  histogram("chart-length", S.game_length, {integer: true, unit: "plies", axis: "plies per game",
                                             color: COLORS[0], digits: 1, name: "games"});
  (function () {
    var h = S.move_time;
    if (!h.counts.length) return;
    var ms = h.median !== null && h.median < 1;
    histogram("chart-move-time", h, {scale: ms ? 1000 : 1, unit: ms ? "ms" : "s",
                                     axis: ms ? "milliseconds per move" : "seconds per move",
                                     color: COLORS[2], digits: ms ? 1 : 2, name: "games"});
  })();
  (function () {
    var h = S.game_duration;
    if (!h.counts.length) return;
    histogram("chart-duration", h, {unit: "s", axis: "seconds per game", color: COLORS[5], digits: 2,
                                    name: "games"});
  })();

  // Simulations per second and memory from the stored metric snapshots.
  (function () {
    var rows = S.throughput.filter(function (r) { return r.simulations_per_second !== null &&
                                                        r.simulations_per_second !== undefined; });
    if (!rows.length) return;
    var x = rows.map(function (r, i) { return r.ts || i; });
    var mode = rows.length > 40 ? "lines" : "lines+markers";
    var traces = [{x: x, y: pick(rows, "simulations_per_second"), name: "simulations/s", mode: mode,
                   line: {color: COLORS[0], width: 2}, hovertemplate: "%{y:,.0f} sims/s<extra></extra>"}];
    if (rows.some(function (r) { return r.rss_mb !== null && r.rss_mb !== undefined; })) {
      traces.push({x: x, y: pick(rows, "rss_mb"), name: "worker RSS (MB)", yaxis: "y2", mode: mode,
                   line: {color: COLORS[3], width: 1.5, dash: "dot"},
                   hovertemplate: "%{y:,.0f} MB<extra></extra>"});
    }
    plot("chart-throughput", traces, {hovermode: "x unified", margin: {r: 60},
         xaxis: {title: {text: rows[0].ts ? "time (UTC)" : "snapshot"}},
         yaxis: {title: {text: "simulations per second"}, rangemode: "tozero"},
         yaxis2: {title: {text: "RSS (MB)"}, overlaying: "y", side: "right", showgrid: false,
                  zeroline: false, tickformat: ",.0f", automargin: true}});
  })();
})();
"""
