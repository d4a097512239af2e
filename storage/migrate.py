"""Alembic, driven from code: upgrade, downgrade, current revision, model/database comparison.

``supportbot db ...`` calls these; no ``alembic.ini`` is needed. The revisions live in the
installed ``migrations`` package and are found through its path, so they work from a normal
(non-editable) install.

Each call opens its own short-lived engine and runs everything in ONE transaction: on SQLite the
driver's implicit transaction handling is replaced by an explicit ``BEGIN`` so that DDL (table
rebuilds included) is transactional too, and a failed migration leaves the database as it was.

A database that has the legacy ``memories`` table but no ``alembic_version`` (an old
``customer_support.db``) is adopted: stamped at the legacy revision, then upgraded.

Failures raise :class:`MigrationError` subclasses whose message is one line fit for an operator
(no secrets); ``storage`` does not know about the CLI, which maps them to its own errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event, inspect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import migrations
from storage.models import Base
from storage.schema_revision import VERSION_TABLE
from storage.sqlite_wal import ensure_wal

LEGACY_REVISION = "0001_legacy"
MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_KEY = 0x5B0_7001  # any fixed number; shared by every supportbot migrator

# Tables that migrations create for third-party stores (e.g. slack_sdk's installation store)
# and that have no model in storage.models; the model/database comparison leaves them alone.
UNMODELLED_TABLES: set[str] = set()

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}

T = TypeVar("T")


class MigrationError(Exception):
    """A migration command could not run; ``str()`` is one line for the operator."""


class InvalidDatabaseUrlError(MigrationError):
    """The URL cannot be parsed or names a database this project does not support."""


class DatabaseUnreachableError(MigrationError):
    """Connecting failed: server down, wrong host/port/credentials, unopenable file."""


class UnknownRevisionError(MigrationError):
    """A revision (in the database or asked for) that this version of the code does not have."""


class UnversionedDatabaseError(MigrationError):
    """Tables exist but there is no migration history, and they are not the legacy schema."""


@dataclass(frozen=True)
class SchemaState:
    revision: str | None  # None: no alembic_version row (empty, or an unadopted legacy database)
    head: str
    legacy_unversioned: bool = False

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None
    adopted_legacy: bool = False

    @property
    def changed(self) -> bool:
        return self.adopted_legacy or self.before != self.after


# --- revisions ---------------------------------------------------------------------------------


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "the migrations package has no revisions"
    return head


def known_revisions() -> list[str]:
    """Every revision id, oldest first."""
    return [rev.revision for rev in reversed(list(script_directory().walk_revisions()))]


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# --- engine and Alembic context ----------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InvalidDatabaseUrlError(f"invalid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise InvalidDatabaseUrlError(
            f"unsupported database {backend!r} in {safe_url(url)}: use sqlite or postgresql"
        )
    # Accept plain sqlite:// and postgresql:// too; the engine needs the async drivers.
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the driver (it would not wrap DDL in a transaction);
    # foreign keys off so rebuilding a referenced table cannot cascade into the referrers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    ensure_wal(cursor, timeout_s=SQLITE_BUSY_TIMEOUT_MS / 1000)
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE: take the write lock up front, so a concurrent writer waits for us (busy timeout)
    # instead of failing our migration half-way with "database is locked".
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_migration_engine(url: str) -> AsyncEngine:
    """A pool-less engine whose transactions cover DDL on SQLite as well as PostgreSQL."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            parsed, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        parsed, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_S}
    )


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave tables without a model (third-party stores) out of the comparison."""
    return not (type_ == "table" and reflected and compare_to is None and name in UNMODELLED_TABLES)


def configure_context_options(dialect_name: str) -> dict[str, Any]:
    """Options for Alembic's context, shared by env.py and the comparison in :func:`check`."""
    return {
        "target_metadata": Base.metadata,
        "render_as_batch": dialect_name == "sqlite",
        "transactional_ddl": True,
        "compare_type": True,
        "compare_server_default": True,
        "include_object": include_object,
        "version_table": VERSION_TABLE,
    }


async def _in_transaction(url: str, work: Callable[[Connection], T]) -> T:
    """Run ``work`` on one connection inside one transaction (committed if it returns)."""
    engine = make_migration_engine(url)
    try:
        _check_sqlite_folder(engine.url)
        try:
            conn = await engine.connect()
        except Exception as exc:  # every driver reports "cannot connect" differently
            if engine.url.get_backend_name() == "sqlite":
                # aiosqlite stops its worker thread after a failed connect; let it finish
                # before the event loop closes, or the thread dies with a traceback.
                await asyncio.sleep(0.1)
            raise DatabaseUnreachableError(
                f"cannot connect to the database {safe_url(url)}: {_first_line(exc)}"
            ) from None
        try:
            async with conn.begin():
                return await conn.run_sync(work)
        except MigrationError:
            raise
        except CommandError as exc:
            raise MigrationError(_first_line(exc)) from None
        except (SQLAlchemyError, OSError) as exc:
            raise MigrationError(
                f"migration failed and was rolled back: {_first_line(exc)}"
            ) from None
        finally:
            await conn.close()
    finally:
        await engine.dispose()


def _check_sqlite_folder(url: URL) -> None:
    """A SQLite file in a folder that does not exist: say so before the driver fails."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if url.database.startswith("file:"):
        return
    folder = Path(url.database).expanduser().parent
    if not folder.is_dir():
        raise DatabaseUnreachableError(
            f"cannot connect to the database {url.render_as_string(hide_password=True)}: "
            f"the folder {folder} does not exist"
        )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # DBAPI errors wrapped by SQLAlchemy
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return f"{type(orig or exc).__name__}: {text.splitlines()[0]}"


# --- inspecting a database ---------------------------------------------------------------------


def _serialize_migrations(conn: Connection) -> None:
    """One migrator at a time (two release processes at once): the second waits, then no-ops.

    SQLite already has the write lock from ``BEGIN IMMEDIATE``; PostgreSQL takes a
    transaction-scoped advisory lock, released by the commit or rollback.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")


def _state(conn: Connection) -> SchemaState:
    head = head_revision()
    revision = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    if revision is not None and revision not in known_revisions():
        raise UnknownRevisionError(
            f"the database is at revision {revision!r}, which this version of supportbot does not "
            f"know (its newest is {head!r}); it was probably migrated by a newer version: run "
            "that version, or downgrade the database with it first"
        )
    legacy = False
    if revision is None:
        tables = set(inspect(conn).get_table_names()) - {VERSION_TABLE}
        if "memories" in tables:
            columns = {c["name"] for c in inspect(conn).get_columns("memories")}
            legacy = "metadata" in columns
        if tables and not legacy:
            raise UnversionedDatabaseError(
                "the database has tables (" + ", ".join(sorted(tables)) + ") but no migration "
                "history and they are not the legacy schema; refusing to guess its revision "
                "(use an empty database, or back this one up and remove its tables)"
            )
    return SchemaState(revision=revision, head=head, legacy_unversioned=legacy)


def _check_target(target: str) -> None:
    """Reject a named revision this code does not have (relative targets are Alembic's job)."""
    if target in ("head", "heads", "base") or target.startswith(("+", "-")) or "@" in target:
        return
    if target not in known_revisions():
        raise UnknownRevisionError(
            f"unknown revision {target!r}; known revisions: {', '.join(known_revisions())}"
        )


# --- public API --------------------------------------------------------------------------------


async def current(url: str) -> SchemaState:
    """Which revision the database is at (raises for one this code does not know)."""
    return await _in_transaction(url, _state)


async def upgrade(url: str, rev: str = "head") -> MigrationResult:
    """Upgrade to ``rev``, adopting a legacy unversioned database first. Idempotent."""
    _check_target(rev)

    def work(conn: Connection) -> MigrationResult:
        _serialize_migrations(conn)
        state = _state(conn)
        config = _alembic_config(conn)
        if state.legacy_unversioned:
            command.stamp(config, LEGACY_REVISION)
        command.upgrade(config, rev)
        # An adopted database counts as having been at the legacy revision.
        before = LEGACY_REVISION if state.legacy_unversioned else state.revision
        after = _state(conn).revision
        return MigrationResult(before, after, adopted_legacy=state.legacy_unversioned)

    return await _in_transaction(url, work)


async def downgrade(url: str, rev: str) -> MigrationResult:
    """Downgrade to ``rev`` (a revision id, ``-1`` or ``base``)."""
    _check_target(rev)

    def work(conn: Connection) -> MigrationResult:
        _serialize_migrations(conn)
        state = _state(conn)
        if state.legacy_unversioned:
            raise MigrationError(
                "the database is an unadopted legacy database; run the upgrade first"
            )
        command.downgrade(_alembic_config(conn), rev)
        return MigrationResult(state.revision, _state(conn).revision)

    return await _in_transaction(url, work)


async def check(url: str) -> list[Any]:
    """Differences between the models and the database (Alembic autogenerate); [] = in sync."""

    def work(conn: Connection) -> list[Any]:
        _state(conn)
        context = MigrationContext.configure(
            conn, opts=configure_context_options(conn.dialect.name)
        )
        return list(compare_metadata(context, Base.metadata))

    return await _in_transaction(url, work)
