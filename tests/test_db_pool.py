"""storage.db engine behaviour the benchmark tuning relies on: it must stay correct."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from storage import events, memories
from storage.db import Database, unreachable
from storage.models import Base


async def test_connections_cut_while_idle_are_replaced_transparently(pg_url: str) -> None:
    """A pooled PostgreSQL connection cut while idle (restart, failover) is pinged and replaced."""
    db = Database(pg_url, ping_after_idle_s=0.05)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await memories.append_memory(db, session_id="s", role="user", content="before")
        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/test", timeout=5)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                dsn.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
        assert killed >= 1
        await asyncio.sleep(0.1)  # let the connection count as idle
        await memories.append_memory(db, session_id="s", role="user", content="after")
        assert [m.content for m in await memories.load_recent(db, session_id="s", limit=5)] == [
            "before",
            "after",
        ]
    finally:
        await db.dispose()


async def test_sqlite_transactions_still_commit_and_roll_back(sqlite_db: Database) -> None:
    """The lean SQLite dialect skips only no-op commits/rollbacks, never real ones."""
    await memories.append_memory(sqlite_db, session_id="s", role="user", content="kept")
    try:
        async with sqlite_db.session() as session:
            await session.execute(
                text("INSERT INTO memories (session_id, role, content, created_at) "
                     "VALUES ('s', 'user', 'undone', '2025-01-01 00:00:00.000000')")
            )  # fmt: skip
            raise RuntimeError("abort the transaction")
    except RuntimeError:
        pass
    assert [m.content for m in await memories.load_recent(sqlite_db, session_id="s", limit=5)] == [
        "kept"
    ]
    async with sqlite_db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert not raw.driver_connection.in_transaction  # nothing left open in the pool


async def test_single_hop_sqlite_driver_behaves_like_sqlite3(sqlite_db: Database) -> None:
    """Row counts, many-row inserts, RETURNING and error types through storage.sqlite_driver."""
    rows = [{"s": "s", "c": f"m{i}", "t": "2025-01-01 00:00:00.000000"} for i in range(5)]
    async with sqlite_db.session() as session:
        await session.execute(
            text(
                "INSERT INTO memories (session_id, role, content, created_at) "
                "VALUES (:s, 'user', :c, :t)"
            ),
            rows,
        )  # fmt: skip (executemany)
        updated = await session.execute(
            text("UPDATE memories SET role = 'assistant' WHERE content IN ('m1', 'm2')")
        )
        assert updated.rowcount == 2
        returned = await session.execute(
            text("INSERT INTO memories (session_id, role, content, created_at) "
                 "VALUES ('s', 'user', 'r', '2025-01-01') RETURNING id, content")
        )  # fmt: skip
        assert returned.one().content == "r"
    assert await memories.count_memories(sqlite_db, session_id="s") == 6
    assert await events.claim_event(sqlite_db, platform="slack", event_id="E1")
    assert not await events.claim_event(sqlite_db, platform="slack", event_id="E1")  # unique
    with pytest.raises(IntegrityError):
        async with sqlite_db.session() as session:
            await session.execute(text("INSERT INTO memories (id, session_id) VALUES (1, NULL)"))


async def test_a_sqlite_write_commits_with_its_statement(sqlite_db: Database) -> None:
    """``Database.write()`` on SQLite: the statement commits in its own trip to the driver
    thread (another connection sees the row before the block ends), and a failed write leaves
    no transaction open and the next writes working."""
    async with sqlite_db.write() as conn:
        await conn.execute(
            text("INSERT INTO memories (session_id, role, content, created_at) "
                 "VALUES ('w', 'user', 'one', '2025-01-01 00:00:00.000000')")
        )  # fmt: skip
        assert await memories.count_memories(sqlite_db, session_id="w") == 1  # another connection
    assert await events.claim_event(sqlite_db, platform="slack", event_id="W1")
    assert not await events.claim_event(sqlite_db, platform="slack", event_id="W1")  # unique
    assert await events.finish_event(sqlite_db, platform="slack", event_id="W1", attempts=1)
    assert await events.event_status(sqlite_db, platform="slack", event_id="W1") == "answered"
    async with sqlite_db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert not raw.driver_connection.in_transaction  # nothing left open in the pool


async def test_a_claim_gives_up_on_a_held_write_lock_but_ordinary_writes_wait_for_it(
    sqlite_url: str,
) -> None:
    """The claim, on the ack path, waits only briefly for another process's write lock; the
    connection it used (the only one in the pool) then waits as long as ever for other writes,
    so a memory written during a short lock is stored, not lost to "database is locked"."""
    db = Database(sqlite_url, pool_size=1, max_overflow=0)
    path = make_url(sqlite_url).database
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            await events.claim_event(db, platform="slack", event_id="ev1", payload={})
        # The lock ends a little after the write starts waiting (its own thread: the event
        # loop is waiting on the write).
        threading.Timer(events.CLAIM_LOCK_WAIT * 1.5, other.execute, ("ROLLBACK",)).start()
        await memories.append_memory(db, session_id="s", role="user", content="kept")
        assert [m.content for m in await memories.load_recent(db, session_id="s", limit=5)] == [
            "kept"
        ]
        assert await events.claim_event(db, platform="slack", event_id="ev1", payload={})
    finally:
        other.close()
        await db.dispose()


async def test_a_claim_on_postgresql_gives_up_on_a_held_table_lock_but_other_writes_wait(
    pg_url: str,
) -> None:
    """A claim blocked by another transaction's lock on the ledger used to wait without limit
    (past Slack's 3 s, so nobody was told to retry); now it fails after CLAIM_LOCK_WAIT as on
    SQLite, as a passing fault (a 500 to Slack, TryLater), and the bound does not stay on the
    pooled connection: an ordinary write waits for the lock as before."""
    db = Database(pg_url, pool_size=1, max_overflow=0)
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    other = await asyncpg.connect(dsn, timeout=5)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        locked = other.transaction()
        await locked.start()
        await other.execute("LOCK TABLE processed_events IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(DBAPIError) as failed:
            await asyncio.wait_for(
                events.claim_event(db, platform="slack", event_id="ev1", payload={}), timeout=10
            )
        assert time.monotonic() - started < events.CLAIM_LOCK_WAIT + 2
        assert unreachable(failed.value)
        # The lock ends a little after the next write starts waiting for it.
        asyncio.get_running_loop().call_later(
            events.CLAIM_LOCK_WAIT * 1.5, lambda: asyncio.ensure_future(locked.rollback())
        )
        waited = time.monotonic()
        assert await events.renew_leases(db, platform="slack", owned=[("ev0", 1)]) == set()
        assert time.monotonic() - waited > events.CLAIM_LOCK_WAIT  # it waited, as ever
        assert await events.claim_event(db, platform="slack", event_id="ev1", payload={})
    finally:
        await other.close()
        await db.dispose()
