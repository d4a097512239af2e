"""SQLAlchemy's aiosqlite dialect with fewer trips to the driver thread.

aiosqlite runs sqlite3 in a worker thread; every call is a hop there and back (queue, thread
wake-up, event-loop wake-up), and for a short indexed query the hops cost far more than
SQLite itself. SQLAlchemy's adapter makes 6 of them to load a few rows (cursor, execute,
fetchall, close, and two rollbacks) and 5 to insert one. This dialect makes 1 and 2:

* a statement runs as ONE function in the worker thread: cursor, execute, fetch, close;
* commit and rollback are skipped when sqlite3's ``in_transaction`` says there is nothing to
  end (after a read, or when the pool takes back a connection whose work was committed);
  sqlite3 itself would do nothing for those calls;
* a statement run with the execution option ``COMMIT_IN_STATEMENT`` (``Database.write()``:
  one write statement, then commit) commits in the same trip, so a write costs one trip, not
  two, and holds SQLite's write lock only while the worker runs it, not across a round trip
  through the event loop (other connections' writers wait on that lock);
* a statement run with the execution option ``BUSY_TIMEOUT_MS`` waits at most that long for
  another connection's write lock (set and restored in the same trip), where the connection's
  own busy timeout is long: a claim that must answer Slack within 3 s gives up in time.

Used through the URL scheme ``sqlite+aiosqlite_lean`` (``storage.db.make_engine`` switches
``sqlite+aiosqlite`` URLs to it). The one-hop cursor relies on the adapter layout of
SQLAlchemy 2.1 and on aiosqlite's worker queue, which SQLAlchemy's own adapter also uses; with a
layout it does not recognise, the stock cursor is kept and only the commit/rollback skip applies.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite

# Execution option: commit right after the statement, in the same trip to the worker thread.
COMMIT_IN_STATEMENT = "supportbot_commit_in_statement"
# Execution option: milliseconds this statement waits for a write lock held elsewhere.
BUSY_TIMEOUT_MS = "supportbot_busy_timeout_ms"


def _busy_timeout(conn: Any, milliseconds: int) -> int:
    """Set the connection's busy timeout; returns the one it had."""
    before = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout={int(milliseconds)}")
    return int(before)


def _run_statement(
    conn: Any,
    operation: str,
    parameters: Any,
    many: bool,
    commit: bool = False,
    busy_ms: int | None = None,
) -> tuple[Any, int, int | None, list[Any]]:
    """Runs in aiosqlite's worker thread, on its sqlite3 connection."""
    if busy_ms is None:
        return _run(conn, operation, parameters, many, commit)
    before = _busy_timeout(conn, busy_ms)
    try:
        return _run(conn, operation, parameters, many, commit)
    finally:
        _busy_timeout(conn, before)


def _run(
    conn: Any, operation: str, parameters: Any, many: bool, commit: bool
) -> tuple[Any, int, int | None, list[Any]]:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        result = cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()
    if commit and conn.in_transaction:
        conn.commit()  # on failure the transaction stays open; SQLAlchemy rolls it back
    return result


class SingleHopCursor(sa_aiosqlite.AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement costs one trip to the worker thread."""

    __slots__ = ("_busy_ms", "_commit", "_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing to close in the worker: it closed already

    def __init__(self, adapt_connection: Any) -> None:  # no driver cursor: no hop
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = {}
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._commit = False  # set by the dialect for the next statement (COMMIT_IN_STATEMENT)
        self._busy_ms: int | None = None  # likewise (BUSY_TIMEOUT_MS)

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        driver = self._connection  # the aiosqlite.Connection
        commit, self._commit = self._commit, False
        busy_ms, self._busy_ms = self._busy_ms, None
        async with self._adapt_connection._execute_mutex:
            result = await driver._execute(
                _run_statement, driver._conn, operation, parameters, many, commit, busy_ms
            )
        self._description, self._rowcount, self._lastrowid, rows = result
        self._rows = collections.deque(rows)


class SingleHopConnection(sa_aiosqlite.AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = SingleHopCursor


def _layout_supported() -> bool:
    cursor = sa_aiosqlite.AsyncAdapt_aiosqlite_cursor
    return all(
        hasattr(cursor, name) for name in ("_execute_async", "_executemany_async", "_rows")
    ) and hasattr(sa_aiosqlite.AsyncAdapt_aiosqlite_connection, "_cursor_cls")


class SingleHopDbapi(sa_aiosqlite.AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *args: Any, **kwargs: Any) -> Any:
        connection = super().connect(*args, **kwargs)
        # Same slots, so the stock adapter can become ours in place (its connect() hard-codes
        # the class it builds).
        connection.__class__ = SingleHopConnection
        return connection


class LeanAioSqliteDialect(sa_aiosqlite.SQLiteDialect_aiosqlite):
    supports_statement_cache = True  # a subclass must say so, or SQLAlchemy stops caching SQL

    @classmethod
    def import_dbapi(cls) -> Any:
        if not _layout_supported():
            return super().import_dbapi()
        return SingleHopDbapi(__import__("aiosqlite"), __import__("sqlite3"))

    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        _commit_in_statement(cursor, context)
        super().do_execute(cursor, statement, parameters, context)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        _commit_in_statement(cursor, context)
        super().do_executemany(cursor, statement, parameters, context)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        _commit_in_statement(cursor, context)
        super().do_execute_no_params(cursor, statement, context)

    def do_rollback(self, dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            super().do_rollback(dbapi_connection)

    def do_commit(self, dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            super().do_commit(dbapi_connection)


def _commit_in_statement(cursor: Any, context: Any) -> None:
    """Hand the statement's execution options (commit, busy timeout) to our cursor."""
    if context is None or not isinstance(cursor, SingleHopCursor):
        return
    options = context.execution_options
    if options.get(COMMIT_IN_STATEMENT):
        cursor._commit = True
    if options.get(BUSY_TIMEOUT_MS) is not None:
        cursor._busy_ms = int(options[BUSY_TIMEOUT_MS])


registry.register("sqlite.aiosqlite_lean", __name__, "LeanAioSqliteDialect")
