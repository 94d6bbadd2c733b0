"""Alembic environment (the asyncio template): migrates `service.storage.models.Base.metadata`.

Two ways in:
- `alembic upgrade head` / `service.storage.database.upgrade(url)`: builds an async engine
  from `sqlalchemy.url` and migrates with `connection.run_sync` (asyncio.run: never call
  it from inside a running event loop);
- `service.storage.database.upgrade_engine(engine)`: passes an open connection in
  `config.attributes["connection"]`, migrated as is (the app's lifespan, tests).

SQLite uses batch mode (`render_as_batch`: ALTER TABLE by copy-and-move), with foreign keys
switched off meanwhile so that dropping a table being rebuilt cannot cascade-delete the
rows that reference it; `PRAGMA foreign_key_check` runs afterwards.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool

from service.storage.database import create_engine
from service.storage.models import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """`sqlalchemy.url` if set (`upgrade(url)`), else the service's DATABASE_URL setting."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from service.config import settings_or_exit

        url = settings_or_exit().database_url
    return url


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (`alembic upgrade head --sql`) without a database."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the pending revisions on a synchronous connection."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=sqlite, compare_type=True
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows breaking foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


async def run_async_migrations() -> None:
    """Connect with the async driver and migrate (the asyncio template, with the service's own
    `create_engine` in place of `async_engine_from_config`: it creates an SQLite file's folder
    and sets the same pragmas as the service)."""
    connectable = create_engine(database_url(), poolclass=pool.NullPool, **config.attributes.get("engine_kwargs", {}))
    try:
        async with connectable.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await connectable.dispose()


def run_migrations_online() -> None:
    """Migrate on the connection handed over by the caller, or on a new async engine."""
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_async_migrations())
    else:
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
