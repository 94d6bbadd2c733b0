"""Storage: SQLAlchemy 2 async models, repositories and the compact policy codec.

- `models`: the tables (sessions, games, checkpoints, evaluations, metric_snapshots, events).
- `codec`: per-game policy targets, root values and full-search flags as compact bytes.
- `database`: engines (SQLite with WAL, or PostgreSQL via asyncpg), sessions, migrations.
- `repositories`: short async functions over an `AsyncSession`; the caller owns the
  transaction (`async with db.begin(): ...`) unless a function says otherwise.

Alembic migrations (the repository's `migrations/` folder) are the only way the schema changes.
"""
