"""Session reports, JSON and HTML (DESIGN.md "Layout": reports/).

- `builder`: report.json's sections (scorecard, losses, throughput, manifest) and the series
  the charts draw, from plain rows; `complete` fills in what an older report.json lacks.
- `files`: a session's report from the database (`session_report`, for the API) and its files
  at the end of `continuous-play run` (`write_session_files`: games.pgn, metrics.json,
  report.json, report.html).
- `html`: `render_html(report)`, one self-contained page that opens offline (its style and
  chart script: report.css, report.js); `markup`: escaping, number formats, building blocks.
- `directory` / `__main__`: `continuous-play report --input DIR --output DIR` and
  `python -m service.reports --input DIR --output DIR`.
"""
