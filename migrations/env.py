"""Alembic environment for supportbot.

The database URL always comes from the caller, never from an ini file:

* ``storage.migrate`` (what ``supportbot db ...`` uses) passes an open connection in
  ``config.attributes["connection"]``; the migrations then run inside the caller's transaction.
* A developer running the ``alembic`` command passes ``-x url=...`` (or sets
  ``sqlalchemy.url`` on the Config), e.g. to autogenerate a new revision.

SQLite cannot ALTER most things, so operations are rendered as batch operations there
(``render_as_batch``), which rebuild the table and copy every row.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection, make_url

from storage.migrate import configure_context_options, make_migration_engine

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url on the Config")
    return url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **configure_context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = make_migration_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    url = _url()
    dialect = make_url(url).get_backend_name()
    context.configure(url=url, literal_binds=True, **configure_context_options(dialect))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_with_own_engine(_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
