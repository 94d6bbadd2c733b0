"""What the test files share: helpers that were copied from file to file before.

`tests/` is on sys.path when pytest runs (tests/conftest.py is a rootdir conftest without an
`__init__.py`), so a test imports these as `from support.tiny import TINY`.

- `tiny`: the one tiny session config (TINY) and the settings, config and environment built
  from it, and the settings of a test that keeps everything under its tmp_path;
- `waiting`: `wait_for` (async) and `wait_for_sync`, polling until a condition holds, and
  `wait_for_session` on the API;
- `stored`: what the database holds for a session (its row, its game numbers, whether it ended);
- `cli`: the `continuous-play` console script in a subprocess, in a clean environment;
- `events`: events as the orchestrator reports them to its listeners;
- `report`: what the tests expect of a session's HTML report;
- `positions`: seeded random chess positions;
- `pg_cluster`: a private PostgreSQL cluster a test can stop and start;
- `browser`: headless Chromium through Playwright.
"""
