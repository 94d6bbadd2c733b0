"""What the test files share: helpers that were copied from file to file before.

`tests/` is on sys.path when pytest runs (tests/conftest.py is a rootdir conftest without an
`__init__.py`), so a test imports these as `from support.tiny import TINY`.

- `positions`: seeded random chess positions;
- `pg_cluster`: a private PostgreSQL cluster a test can stop and start;
- `browser`: headless Chromium through Playwright.
"""
