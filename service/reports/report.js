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
