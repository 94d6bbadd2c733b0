"""The session report as one self-contained HTML file: `render_html(report) -> str`.

Everything the page needs is inside it: its style and chart script (report.css and
report.js, files of this package), plotly.js (inlined from the installed `plotly` package)
and the report itself as JSON, so it opens offline, from a file or a mail attachment, and
loads nothing from anywhere (a Content-Security-Policy meta tag forbids any network access,
so a regression shows as a console error rather than a silent fetch).

Tables are rendered here with every string escaped (`markup.escaped`); the charts are drawn
in the browser from the embedded JSON (`<`, `>` and `&` escaped as \\u sequences, so no
string of a session can close the script element). A section without data (no evaluation,
no learning step, no game yet) says so in words instead of drawing an empty chart.

Over 500 lines: one function per section of the page (header, summary, strength, learning,
self-play, value health and finishing games, fleet, verdicts, alerts, checkpoints,
manifest), each a template over its own keys of report.json, in the order the page shows
them; they share only `markup` (escaping, number formats, building blocks), which is
apart. Split further, the page would be read across files for no seam that the sections
do not already draw.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .builder import PREVIOUS, complete
from .markup import (
    DASH,
    as_number,
    badge,
    card,
    chart,
    elo,
    empty,
    escaped,
    interval,
    kv,
    num,
    pct,
    script_json,
    seconds,
    sig,
    table,
    tile,
    when,
)

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """A file the page inlines (report.css, report.js), shipped with this package as the
    dashboard's are (pyproject's package-data), read once."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.min.js of the installed plotly package (about 4.8 MB)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # cannot happen with plotly's build; never emit a broken page
        raise RuntimeError("plotly.js contains '</script'; it cannot be inlined")
    return js


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
        ("stop reason", escaped(report.get("stop_reason"))),
        ("generated", when(report.get("generated_at") or report.get("finished_at"))),
    ]
    meta = "".join(f'<span class="chip"><span>{escaped(k)}</span> {v}</span>' for k, v in chips)
    error = (
        f'<div class="alert-box"><strong>The session failed:</strong> <code>{escaped(report["error"])}</code></div>'
        if report.get("error")
        else ""
    )
    return f"""<header class="top">
  <div class="wrap">
    <div class="brand">continuous-play <span>session report</span></div>
    <h1><code id="session-id">{escaped(report.get("session_id"))}</code> {badge(state) if state else ""}</h1>
    <div class="chips">{meta}</div>
    {error}
  </div>
</header>"""


def summary(report: dict[str, Any]) -> str:
    """The page's summary cards. Not split: one card after another, in the page's order."""
    card_ = report.get("scorecard") or {}
    results = card_.get("results") or {}
    throughput = report.get("throughput") or {}
    losses = report.get("losses") or {}
    games = card_.get("games", 0)
    newest = report.get("elo")
    tiles = []
    if newest:
        tiles.append(
            tile(
                "Elo (newest)",
                elo(newest.get("rating")),
                f"gen {escaped(newest.get('generation'))} &middot; "
                f"95% {interval(newest.get('low'), newest.get('high'))}",
            )
        )
    else:
        tiles.append(tile("Elo (newest)", DASH, "no evaluation yet"))
    progression = _indicator(report, "elo_progression")
    detail = (progression or {}).get("detail") or {}
    if progression and progression.get("trend") is not None:
        tiles.append(
            tile(
                "Elo per 10 games",
                elo(progression["trend"], signed=True),
                f"95% {interval(detail.get('slope_low'), detail.get('slope_high'), True)} &middot; "
                f"{badge(progression.get('verdict'))}",
            )
        )
    else:
        tiles.append(tile("Elo per 10 games", DASH, "needs 2 evaluated checkpoints"))
    tiles.append(
        tile(
            "Self-play games",
            num(games),
            f"W {pct(results.get('white_win_rate'))} &middot; D {pct(results.get('draw_rate'))} &middot; "
            f"B {pct(results.get('black_win_rate'))}",
        )
    )
    adjudicated = card_.get("adjudicated", 0)
    tiles.append(
        tile(
            "Adjudicated",
            num(adjudicated),
            f"{pct(adjudicated / games) if games else DASH} of games &middot; "
            f"{num(results.get('adjudicated_decisive', 0))} decisive",
        )
    )
    tiles.append(
        tile(
            "Learning steps",
            num(losses.get("steps", 0)),
            f"{num(losses.get('phases', 0))} phases &middot; loss "
            f"{sig(((losses.get('total_loss') or {}).get('last')), 4)}",
        )
    )
    tiles.append(
        tile(
            "Games per minute",
            num(throughput.get("games_per_minute"), 1),
            f"{num(throughput.get('simulations_per_second_mean'), 0)} sims/s &middot; "
            f"{seconds(throughput.get('elapsed_s'))}",
        )
    )
    alerts = report.get("alerts") or []
    tiles.append(
        tile(
            "Alerts",
            num(len(alerts)),
            "none raised" if not alerts else ", ".join(sorted({escaped(a.get("name")) for a in alerts})),
        )
    )
    return f'<section id="summary" class="tiles">{"".join(tiles)}</section>'


def strength(report: dict[str, Any]) -> str:
    """The strength section: rating chart, rating list, matches. Not split: its HTML reads top to
    bottom as the page shows it."""
    series = report["series"]
    config = _config(report)
    interval_games = config.get("eval_interval_games")
    no_eval = (
        "No evaluation yet. Strength is measured only by evaluation matches against fixed anchors"
        + (f" (every {interval_games} games)" if interval_games else "")
        + "; self-play results say nothing about it."
    )
    charts = card(
        "Elo by games played (95% interval)",
        chart("chart-elo", bool(series["elo"]), no_eval),
        note="Maximum-likelihood rating list over all matches, generation 0 anchored; dashed lines: "
        "the anchors' fitted ratings.",
    ) + card(
        "Elo difference per match, by opponent (95% interval)",
        chart("chart-matches", bool(series["matches"]), no_eval),
        note="The candidate's logistic Elo against each opponent, from game pairs (pentanomial).",
    )
    ratings = report.get("rating_list") or []
    rating_rows = [
        [
            f"<code>{escaped(r['player'])}</code>",
            elo(r["rating"]),
            interval(r["low"], r["high"]),
            elo(
                ((r["high"] - r["low"]) / 2)
                if as_number(r["high"]) is not None and as_number(r["low"]) is not None
                else None
            ),
            num(r["games"]),
            f"<code>{escaped(r['yardstick'])}</code>" if r.get("yardstick") else DASH,
        ]
        for r in ratings
    ]
    rating_table = (
        table(["Player", "Elo", "95% interval", "&plusmn;", "Games", "Yardstick"], rating_rows, numeric=(1, 2, 3, 4))
        if ratings
        else empty(no_eval)
    )
    evaluations = report.get("evaluations") or []
    rated = {(r.get("yardstick"), r["player"]): r for r in ratings}  # a match's rating: its yardstick's list
    eval_rows = []
    for ev in evaluations:
        match = ev.get("match") or {}
        penta = ev.get("pentanomial")
        games = ev["wins"] + ev["draws"] + ev["losses"]
        eval_rows.append(
            [
                num(ev["generation"]),
                f"<code>{escaped(ev['opponent'])}</code>",
                num(games),
                f"{num(ev['wins'])} / {num(ev['draws'])} / {num(ev['losses'])}",
                pct(match.get("score")),
                escaped(" ".join(str(c) for c in penta)) if penta else DASH,
                f"{elo(match.get('elo'), True)} {interval(match.get('low'), match.get('high'), True)}"
                if match
                else DASH,
                num(ev.get("adjudicated")),
                elo((rated.get((ev.get("yardstick"), f"gen{ev['generation']}")) or {}).get("rating")),
            ]
        )
    eval_table = (
        table(
            [
                "Gen",
                "Opponent",
                "Games",
                "W / D / L",
                "Score",
                "Pentanomial",
                "Elo diff [95%]",
                "Adjudicated",
                "Gen Elo",
            ],
            eval_rows,
            numeric=(0, 2, 3, 4, 6, 7, 8),
        )
        if evaluations
        else empty(no_eval)
    )
    sprt = report.get("sprt") or []
    sprt_rows = [
        [
            num(s.get("generation")),
            num(s.get("against_generation")),
            badge(s.get("state")),
            f"{sig(s.get('llr'))}",
            f"[{sig(s.get('lower'))}, {sig(s.get('upper'))}]",
            f"&lt;{num(s.get('elo0'), 0)}, {num(s.get('elo1'), 0)}&gt;",
            num(s.get("samples")),
        ]
        for s in sprt
    ]
    sprt_table = (
        table(
            ["Gen", "vs gen", "Verdict", "LLR", "Bounds", "Elo0, Elo1", "Pairs"],
            sprt_rows,
            numeric=(0, 1, 3, 4, 5, 6),
            cls="compact",
        )
        if sprt
        else empty("No SPRT verdict yet: each evaluated checkpoint is tested against the previous evaluated one.")
    )
    gating = (
        "on: only an accepted checkpoint plays self-play"
        if config.get("gating")
        else "off: the SPRT is a verdict only; self-play always uses the newest net"
    )
    first = sprt[0] if sprt else {}
    sprt_note = (
        None
        if not sprt
        else (
            f"H0: Elo \u2264 Elo0 against H1: Elo \u2265 Elo1 ({escaped(first.get('elo_model') or 'normalized')} Elo), "
            f"\u03b1 = {sig(first.get('alpha'), 2)}, \u03b2 = {sig(first.get('beta'), 2)}; accepted once the LLR "
            f"reaches the upper bound, rejected at the lower. Gating {gating}."
        )
    )
    return f"""<section id="strength">
  <h2>Strength <small>evaluation matches, never self-play</small></h2>
  <div class="grid">{charts}</div>
  <div class="grid">
    {
        card(
            "Rating list",
            rating_table,
            note="One list per yardstick (evaluation cap / adjudication rule, e.g. cap150/stockfish300cp@d10): "
            "ratings made under different rules are fitted apart and never compared; the charts draw the first.",
        )
    }
    {card("SPRT verdicts (new checkpoint vs previous)", sprt_table, note=sprt_note)}
  </div>
  {
        card(
            "Evaluation matches",
            eval_table,
            wide=True,
            note="Pentanomial counts of game pairs (same opening, colours swapped): LL, LD, DD+WL, WD, WW.",
        )
    }
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
            rows.append(
                [escaped(head.replace("_", " ")), sig(h.get("first"), 4), sig(h.get("last"), 4), sig(h.get("min"), 4)]
            )
    summary_table = table(["Head", "First", "Last", "Min"], rows, numeric=(1, 2, 3)) if rows else empty(no_learning)
    facts = kv(
        [
            ("learning phases", num(losses.get("phases", 0))),
            ("optimizer steps", num(losses.get("steps", 0))),
            ("policy entropy, last", sig(losses.get("policy_entropy_last"), 4)),
            ("learning time", seconds((report.get("throughput") or {}).get("learning_seconds"))),
            ("steps per minute", num((report.get("throughput") or {}).get("learning_steps_per_minute"), 1)),
        ]
    )
    return f"""<section id="learning">
  <h2>Learning</h2>
  <div class="grid">
    {
        card(
            "Training loss per head",
            chart("chart-losses", bool(series["learning"]), no_learning),
            note="Mean loss of each learning phase by optimizer step; dotted: policy entropy (right axis).",
        )
    }
    {card("Losses", summary_table + facts)}
  </div>
</section>"""


def selfplay(report: dict[str, Any]) -> str:
    """The self-play section: results, lengths, timings. Not split: its HTML reads top to bottom as
    the page shows it."""
    series = report["series"]
    sc = report.get("scorecard") or {}
    results = sc.get("results") or {}
    no_games = "No self-play game has finished yet."
    has_games = bool(sc.get("games"))
    size = series["results"].get("bucket_size", 1)
    charts = (
        card(
            f"Self-play results over time (per {size} game{'s' if size != 1 else ''})",
            chart("chart-results", has_games and bool(series["results"]["buckets"]), no_games),
            wide=True,
            note="Both sides are the same net: these shares describe the games, not strength.",
        )
        + card(
            "Game length",
            chart("chart-length", bool(series["game_length"]["counts"]), no_games),
            note="Plies per game; games at MAX_MOVES_PER_GAME are adjudicated.",
        )
        + card(
            "Move time",
            chart("chart-move-time", bool(series["move_time"]["counts"]), no_games),
            note="Mean time per move of each game (its duration over its plies).",
        )
        + card("Game duration", chart("chart-duration", bool(series["game_duration"]["counts"]), no_games))
        + card(
            "Throughput and memory",
            chart(
                "chart-throughput",
                any(p.get("simulations_per_second") is not None for p in series["throughput"]),
                "No metric snapshot stored yet.",
            ),
        )
    )
    colours = results.get("by_colour") or {}
    colour_rows = [
        [
            escaped(side),
            num(c.get("wins")),
            num(c.get("draws")),
            num(c.get("losses")),
            pct(c.get("score")),
            pct(c.get("win_rate")),
        ]
        for side, c in colours.items()
    ]
    colour_table = (
        table(["Colour", "W", "D", "L", "Score", "Win rate"], colour_rows, numeric=(1, 2, 3, 4, 5))
        if has_games
        else empty(no_games)
    )
    terminations = sc.get("terminations") or {}
    term_table = (
        table(
            ["Termination", "Games", "Share"],
            [[escaped(k), num(v), pct(v / sc["games"])] for k, v in terminations.items()],
            numeric=(1, 2),
        )
        if terminations
        else empty(no_games)
    )
    length = sc.get("length") or {}
    streaks = sc.get("streaks") or {}
    current = streaks.get("current") or {}
    adj = report.get("adjudication") or {}
    facts = kv(
        [
            ("games", num(sc.get("games", 0))),
            (
                "adjudicated (self-play)",
                f"{num(sc.get('adjudicated', 0))} ({num(results.get('adjudicated_decisive', 0))} decisive)",
            ),
            (
                "adjudicated (evaluation)",
                f"{num((adj.get('evaluation') or {}).get('adjudicated'))} of "
                f"{num((adj.get('evaluation') or {}).get('games', 0))} games",
            ),
            ("plies: mean / median", f"{num(length.get('mean'), 1)} / {num(length.get('median'), 1)}"),
            ("plies: min / max", f"{num(length.get('min'))} / {num(length.get('max'))}"),
            (
                "longest decisive / draw streak",
                f"{num(streaks.get('longest_decisive'))} / {num(streaks.get('longest_draw'))}",
            ),
            (
                "current streak",
                f"{num(current.get('length'))} &times; {escaped(current.get('result'))}"
                if current.get("result")
                else DASH,
            ),
            ("mean game duration", seconds((sc.get("duration") or {}).get("mean_s"))),
        ]
    )
    return f"""<section id="selfplay">
  <h2>Self-play</h2>
  <div class="grid">{charts}</div>
  <div class="grid three">
    {card("Results by colour", colour_table)}
    {card("Terminations", term_table)}
    {card("Scorecard", facts)}
  </div>
</section>"""


def _actor_row(stored: dict[str, Any], now: dict[str, Any], games: int) -> list[str]:
    """A row of the fleet's table: an actor's stored games (`stored`, {} for one with none
    yet) and its figures in the newest metric snapshot (`now`, {} for one gone since)."""
    played = as_number(stored.get("games"))
    return [
        num(stored.get("actor", now.get("actor"))),
        num(stored.get("games", 0)),
        pct(played / games) if games and played is not None else DASH,
        f"{num(stored.get('first_game'))} &ndash; {num(stored.get('last_game'))}" if stored else DASH,
        f"{num(stored.get('generation_min'))} &ndash; {num(stored.get('generation_max'))}" if stored else DASH,
        num(stored.get("generation_lag_mean"), 2),
        num(stored.get("generation_lag_max")),
        badge(now["state"]) if now.get("state") else DASH,
        num(now.get("simulations_per_second"), 0),
    ]


def fleet(report: dict[str, Any]) -> str:
    """The fleet section: actors, their games and lag. Not split: its HTML reads top to bottom as
    the page shows it."""
    f = report.get("fleet")
    if not f:
        older = empty("This report has no fleet section: it was written before self-play ran as a fleet.")
        return f"""<section id="fleet">
  <h2>Fleet</h2>
  {card("Self-play actors", older, wide=True)}
</section>"""
    latest = f.get("latest") or {}
    live = {a.get("actor"): a for a in latest.get("actors") or []}
    games = f.get("games") or 0
    stored = {a.get("actor"): a for a in f.get("actors") or []}
    rows = [_actor_row(a, live.get(actor) or {}, games) for actor, a in stored.items()]
    rows += [_actor_row({}, now, games) for actor, now in live.items() if actor not in stored]  # no game stored yet
    actor_table = (
        table(
            [
                "Actor",
                "Games",
                "Share",
                "First &ndash; last game",
                "Generations",
                "Lag mean",
                "Lag max",
                "State",
                "Sims/s",
            ],
            rows,
            numeric=(0, 1, 2, 5, 6, 8),
        )
        if rows
        else empty("No self-play game has finished yet.")
    )
    lag = f.get("generation_lag") or {}
    lag_table = (
        table(
            ["Generation lag", "Games", "Share"],
            [
                [num(c.get("lag")), num(c.get("games")), pct(c["games"] / lag["games"]) if lag.get("games") else DASH]
                for c in lag.get("counts") or []
            ],
            numeric=(0, 1, 2),
            cls="compact",
        )
        if lag
        else empty("No game recorded its generation lag (sessions older than the fleet did not).")
    )
    target = f.get("train_samples_per_position")
    bound = f.get("max_generation_lag")
    facts = kv(
        [
            ("self-play actors (setting)", escaped(f.get("selfplay_actors"))),
            ("actors that played", num(len(f.get("actors") or []))),
            ("actor replacements", num(f.get("replacements", 0))),
            ("simulations/s, all actors", num(latest.get("simulations_per_second"), 0)),
            ("learner steps/s", num(latest.get("learner_steps_per_second"), 2)),
            (
                "samples per position (actual / target)",
                f"{num(latest.get('samples_per_position'), 2)} / {num(target, 2)}",
            ),
            ("generation self-play plays", num(latest.get("generation"))),
            ("generation lag: mean / max", f"{num(lag.get('mean'), 2)} / {num(lag.get('max'))}"),
            (
                "games behind the newest generation",
                f"{num(lag.get('lagging'))} of {num(lag.get('games'))}" if lag else DASH,
            ),
            ("max generation lag (setting)", "no bound" if bound is None else num(bound)),
        ]
    )
    replaced = f.get("replaced") or []
    replaced_table = (
        table(
            ["Time", "Actor", "Replaced by", "Exit code", "Reason"],
            [
                [
                    when(r.get("ts")),
                    num(r.get("actor")),
                    num(r.get("replacement")),
                    escaped(r.get("exitcode")),
                    escaped(r.get("reason")),
                ]
                for r in replaced
            ],
            numeric=(1, 2, 3),
        )
        if replaced
        else empty("No actor died.")
    )
    stamp = f"latest metric snapshot {when(latest.get('ts'))}" if latest.get("ts") else "no metric snapshot stored yet"
    return f"""<section id="fleet">
  <h2>Fleet <small>self-play actors and the learner; state and rates: {stamp}</small></h2>
  {
        card(
            "Games per actor",
            actor_table,
            wide=True,
            note="An actor that dies is replaced under a new number. Generation lag of a game: the learner's newest "
            "generation when the game arrived minus the generation that started it.",
        )
    }
  <div class="grid three">
    {card("Learner and actors", facts)}
    {card("Generation lag of games", lag_table)}
    {card("Actor replacements", replaced_table)}
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
        return f"{100 * value:+.1f} pp" if trend and as_number(value) is not None else pct(value)
    return sig(value, 3 if trend else 4)


def _evidence(indicator: dict[str, Any]) -> str:
    d = indicator.get("detail") or {}
    name = indicator.get("name")
    parts = []
    if name == "elo_progression" and d.get("slope_low") is not None:
        parts.append(
            f"95% {interval(d['slope_low'], d['slope_high'], True)} Elo per 10 games over "
            f"{num(d.get('points'))} checkpoints"
        )
    p = d.get("p_value", d.get("decisive_p"))
    if as_number(p) is not None:
        parts.append(f"p = {sig(p, 2)}")
    for key, label in (("n", "n"), ("games", "games"), ("moves", "moves"), ("samples", "samples")):
        if key in d and key != "p_value" and as_number(d[key]) is not None and name != "elo_progression":
            parts.append(f"{label} = {num(d[key])}")
            break
    if indicator.get("verdict") == "insufficient data":
        for key in ("min_points", "min_games", "min_window", "min_samples"):
            have = d.get(key.removeprefix("min_"))
            if key in d and (as_number(have) is None or have < d[key]):
                parts.append(f"needs {key.removeprefix('min_').replace('_', ' ')} &ge; {num(d[key])}")
                break
        else:
            if as_number(p) is not None:
                parts.append("not significant either way")
    return " &middot; ".join(parts) or DASH


def finishing(report: dict[str, Any]) -> str:
    """The value head's health (its calibration against results) and the share of self-play
    games that reach the move cap: does the engine predict results, and does it finish games?
    Not split: its HTML reads top to bottom as the page shows it."""
    health = report.get("value_health")
    if health and health.get("positions"):
        rows = [
            [
                f"{num(b.get('low'), 1)}&ndash;{num(b.get('high'), 1)}",
                num(b.get("count")),
                pct(b.get("predicted")),
                pct(b.get("actual")),
            ]
            for b in health.get("bins") or []
        ]
        rates = health.get("base_rates") or {}
        body = table(["Predicted score", "Positions", "Mean predicted", "Mean actual"], rows, numeric=(1, 2, 3)) + kv(
            [
                (
                    "games",
                    f"{num(health.get('games'))} (games {num(health.get('first_game'))}&ndash;"
                    f"{num(health.get('last_game'))})",
                ),
                ("positions", num(health.get("positions"))),
                (
                    "results (side to move)",
                    f"{pct(rates.get('win'))} W / {pct(rates.get('draw'))} D / {pct(rates.get('loss'))} L",
                ),
                (
                    "Brier score (constant prior)",
                    f"{sig(health.get('brier'), 3)} ({sig(health.get('brier_prior'), 3)})",
                ),
                ("expected calibration error", pct(health.get("ece"))),
            ]
        )
    else:
        body = empty("No self-play game with recorded root values yet.")
    share = (report.get("series") or {}).get("cap_share") or {}
    buckets = share.get("buckets") or []
    cap_rows = [
        [
            f"{num(b.get('first'))}&ndash;{num(b.get('last'))}",
            num(b.get("games")),
            num(b.get("move_cap")),
            pct(b.get("share")),
        ]
        for b in buckets
    ]
    cap_body = (
        table(["Games", "Played", "At the cap", "Share"], cap_rows, numeric=(1, 2, 3))
        + kv(
            [
                (
                    "all games at the cap",
                    f"{num(share.get('move_cap'))} of {num(share.get('games'))} ({pct(share.get('share'))})",
                )
            ]
        )
        if buckets
        else empty("No self-play game has finished yet.")
    )
    return f"""<section id="finishing">
  <h2>Value health and finishing games <small>does the value predict results; are won games finished</small></h2>
  <div class="grid">
    {
        card(
            "Value calibration",
            body,
            note="The search's root value at each position of the newest games "
            "against the game's result from the side to move; each value was predicted before its game ended.",
        )
    }
    {
        card(
            "Self-play games at the move cap",
            cap_body,
            note="Games cut at MAX_MOVES_PER_GAME (adjudicated): "
            "the share should fall as the engine learns to convert won positions to mate.",
        )
    }
  </div>
</section>"""


def analysis(report: dict[str, Any]) -> str:
    indicators = report.get("analysis") or []
    rows = []
    for ind in indicators:
        label, value_label, trend_label, kind = _INDICATORS.get(ind.get("name"), (escaped(ind.get("name")), "", "", ""))
        value, trend = ind.get("value"), ind.get("trend")
        rows.append(
            [
                f"<strong>{label}</strong>",
                badge(ind.get("verdict")),
                f"{_formatted(value, kind)} <span class=unit>{value_label}</span>" if value is not None else DASH,
                f"{_formatted(trend, kind, True)} <span class=unit>{trend_label}</span>" if trend is not None else DASH,
                _evidence(ind),
            ]
        )
    body = (
        table(["Indicator", "Verdict", "Value", "Trend", "Evidence"], rows, cls="verdicts")
        if rows
        else empty("No indicator yet: the analyzer needs games, learning steps or evaluations.")
    )
    return f"""<section id="analysis">
  <h2>Analyzer verdicts <small>two-sided tests at 5%, never eyeballed</small></h2>
  {card("Improvement indicators", body, wide=True)}
</section>"""


def alerts(report: dict[str, Any]) -> str:
    items = report.get("alerts") or []

    def context(a: dict[str, Any]) -> str:
        parts = [escaped(a["trigger"])] if a.get("trigger") else []
        parts += [f"{k} {num(a[k])}" for k in ("games", "step", "generation") if as_number(a.get(k)) is not None]
        return " &middot; ".join(parts) or DASH

    rows = [
        [
            when(a.get("ts")),
            badge(a.get("severity")),
            f"<code>{escaped(a.get('name'))}</code>",
            escaped(a.get("message")),
            sig(a.get("value"), 4),
            sig(a.get("threshold"), 4),
            context(a),
        ]
        for a in items
    ]
    body = (
        table(["Time", "Severity", "Alert", "Message", "Value", "Threshold", "Context"], rows, numeric=(4, 5))
        if rows
        else empty("No alert was raised.")
    )
    return f"""<section id="alerts">
  <h2>Alerts</h2>
  {card("Raised alerts", body, wide=True)}
</section>"""


def checkpoints(report: dict[str, Any]) -> str:
    items = report.get("checkpoints") or []
    rows = [
        [
            num(c.get("generation")),
            num(c.get("games")),
            f'<code title="{escaped(c.get("sha256"))}">{escaped((c.get("sha256") or "")[:16])}</code>',
            f"<code>{escaped(c.get('path'))}</code>",
        ]
        for c in items
    ]
    body = (
        table(["Gen", "Games", "sha256", "File"], rows, numeric=(0, 1)) if rows else empty("No checkpoint saved yet.")
    )
    return f"""<section id="checkpoints">
  <h2>Checkpoints</h2>
  {card("Saved networks", body, wide=True)}
</section>"""


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return escaped(", ".join(str(x) for x in v)) if v else DASH
    if isinstance(v, dict):
        return escaped(json.dumps(v, sort_keys=True))
    if isinstance(v, bool):
        return "true" if v else "false"
    return escaped(v)


def manifest(report: dict[str, Any]) -> str:
    m = report.get("manifest") or {}
    facts = kv(
        [
            ("seed", escaped(m.get("seed"))),
            ("git revision", f"<code>{escaped(m.get('git_revision'))}</code>"),
            ("python", escaped(m.get("python"))),
            ("platform", escaped(m.get("platform"))),
            ("cpu count", escaped(m.get("cpu_count"))),
            ("torch threads", escaped(m.get("torch_threads"))),
            ("inference backend", escaped((m.get("inference") or {}).get("backend"))),
            *[(k.replace("_", " "), f"<code>{escaped(v)}</code>") for k, v in (m.get("output") or {}).items()],
            ("report format", escaped(report.get("format"))),
        ]
    )
    packages = (
        kv([(name, escaped(version)) for name, version in (m.get("packages") or {}).items()])
        if m.get("packages")
        else empty("No package versions recorded.")
    )
    settings = "".join(
        f'<div class="setting"><span>{escaped(k.upper())}</span><code>{_value(v)}</code></div>'
        for k, v in sorted((m.get("config") or {}).items())
    )
    config = f'<div class="settings">{settings}</div>' if settings else empty("No settings recorded.")
    return f"""<section id="manifest">
  <h2>Manifest <small>what produced this report</small></h2>
  <div class="grid">
    {card("Run", facts)}
    {card("Packages", packages)}
  </div>
  {card("Session settings", config, wide=True, note="As the session ran them; the environment names of each.")}
</section>"""


_NAV = (
    ("summary", "Summary"),
    ("strength", "Strength"),
    ("learning", "Learning"),
    ("selfplay", "Self-play"),
    ("finishing", "Value"),
    ("fleet", "Fleet"),
    ("analysis", "Verdicts"),
    ("alerts", "Alerts"),
    ("checkpoints", "Checkpoints"),
    ("manifest", "Manifest"),
)


def label(name: Any) -> str:
    """A player or opponent name as a chart label: letters, digits and ` ._+-` only (plotly
    reads a few tags in its labels; no string of a session may bring markup there)."""
    return "".join(c if c.isalnum() or c in " ._+-/" else "?" for c in str(name))[:64]


def _chart_data(report: dict[str, Any]) -> dict[str, Any]:
    """What the charts draw: the series, with player and opponent names reduced to labels."""
    series = dict(report["series"])
    series["anchors"] = [{**a, "player": label(a.get("player"))} for a in series.get("anchors") or []]
    series["matches"] = {
        label(name): [{**p, "opponent": label(p.get("opponent"))} for p in points]
        for name, points in (series.get("matches") or {}).items()
    }
    return {"series": series, "previous": PREVIOUS}


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (any report.json of this service; sections
    it lacks are rebuilt where possible, or shown empty)."""
    report = complete(report)
    title = f"continuous-play report {report.get('session_id') or ''}".strip()
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in _NAV)
    report_format = escaped(report.get("format"))
    body = "\n".join(
        [
            summary(report),
            strength(report),
            learning(report),
            selfplay(report),
            finishing(report),
            fleet(report),
            analysis(report),
            alerts(report),
            checkpoints(report),
            manifest(report),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{escaped(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="continuous-play">
<title>{escaped(title)}</title>
<style>
{asset("report.css")}</style>
</head>
<body>
{header(report)}
<nav class="nav"><div class="wrap">{nav}</div></nav>
<main class="wrap">
{body}
</main>
<footer class="wrap">Generated by continuous-play &middot; {report_format} &middot; self-contained: opens offline,
loads nothing from the network.</footer>
<script type="application/json" id="report-data">{script_json(report)}</script>
<script type="application/json" id="chart-data">{script_json(_chart_data(report))}</script>
<script>window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>
<script>{plotly_js()}</script>
<script>
{asset("report.js")}</script>
</body>
</html>
"""
