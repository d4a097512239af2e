"""The migration chain on real SQLite and PostgreSQL, with legacy data in the table.

Acceptance 2 (every legacy ``metadata`` value survives as ``tool_metadata``, down and up again)
and 4 (autogenerate finds no difference between the models and head).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage import memories, migrate
from storage.db import Database

HEAD = migrate.head_revision()
SUPPORT_TABLES = {"processed_events", "feedback", "escalations", "channel_settings"}

BIG = json.dumps(
    {"blob": "x" * 100_000, "items": [{"n": i, "s": f"é{i}"} for i in range(2_000)]},
    ensure_ascii=False,
)
# Raw JSON text exactly as a legacy deployment may have stored it (odd spacing and key order
# included: on SQLite and in PostgreSQL's json type the text must survive byte for byte).
LEGACY_METADATA: dict[str, str | None] = {
    "nested": '{"tool_calls": [{"name": "search", "args": {"q": "reset", "k": 5}}],'
    ' "scores": [0.91, 0.5], "ok": true, "deep": {"a": {"b": {"c": [1, 2, {"d": null}]}}}}',
    "unicode": '{"text": "Grüße — 日本語 🎉 עברית", "escaped": "\\u00e9\\n\\t\\"q\\"",'
    '  "z": 1,   "a": 2}',
    "json_null": "null",
    "sql_null": None,
    "large": BIG,
}


async def execute(url: str, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run one statement on a fresh connection and commit; returns the rows if any."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params or {})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


async def insert_legacy_rows(url: str) -> None:
    cast = "CAST(:m AS JSON)" if is_pg(url) else ":m"
    # asyncpg wants a datetime; SQLite gets the text SQLAlchemy would have written.
    stamp = datetime(2024, 1, 2, 3, 4, 5, 6) if is_pg(url) else "2024-01-02 03:04:05.000006"
    for session_id, raw in LEGACY_METADATA.items():
        await execute(
            url,
            "INSERT INTO memories (session_id, content, metadata, timestamp) "
            f"VALUES (:s, :c, {cast}, :t)",
            {"s": session_id, "c": f"content of {session_id}", "m": raw, "t": stamp},
        )
    # A legacy row with NULLs where the current model has NOT NULL columns.
    await execute(url, "INSERT INTO memories (session_id) VALUES ('nulls')")


async def stored_metadata(url: str, column: str) -> dict[str, str | None]:
    """session_id -> the stored JSON as text (None for SQL NULL), straight from the database."""
    as_text = f"CAST({column} AS TEXT)" if is_pg(url) else column
    rows = await execute(
        url, f"SELECT session_id, {as_text} FROM memories WHERE session_id != 'nulls'"
    )
    return {session_id: raw for session_id, raw in rows}


async def assert_metadata_kept(url: str, column: str, *, byte_exact: bool) -> None:
    stored = await stored_metadata(url, column)
    assert set(stored) == set(LEGACY_METADATA)
    for session_id, original in LEGACY_METADATA.items():
        if original is None:
            assert stored[session_id] is None, "SQL NULL must stay SQL NULL"
        elif byte_exact:
            assert stored[session_id] == original, session_id
        else:  # JSONB keeps the value, not the spelling (key order, spaces, escapes)
            assert stored[session_id] is not None
            assert json.loads(stored[session_id]) == json.loads(original), session_id
    assert stored["json_null"] == "null", "JSON null must stay JSON null, not SQL NULL"


async def table_names(url: str) -> set[str]:
    if is_pg(url):
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {name for (name,) in await execute(url, sql)}


async def test_legacy_data_survives_the_chain_up_down_and_up(any_db_url: str) -> None:
    url = any_db_url
    result = await migrate.upgrade(url, "0001_legacy")
    assert result.after == "0001_legacy"
    await insert_legacy_rows(url)
    ids_before = await execute(url, "SELECT id, session_id FROM memories ORDER BY id")

    await migrate.upgrade(url, "0002_rename_metadata")
    # The rename itself is lossless byte for byte on both databases.
    await assert_metadata_kept(url, "tool_metadata", byte_exact=True)

    assert (await migrate.upgrade(url)).after == HEAD
    await assert_metadata_kept(url, "tool_metadata", byte_exact=not is_pg(url))
    assert await migrate.check(url) == []
    assert await execute(url, "SELECT id, session_id FROM memories ORDER BY id") == ids_before
    await assert_rows_read_through_the_models(url)

    # Down to the legacy revision (the base of the data): the old column is back, values kept.
    result = await migrate.downgrade(url, "0001_legacy")
    assert (result.before, result.after) == (HEAD, "0001_legacy")
    assert await table_names(url) == {"memories", "alembic_version"}
    await assert_metadata_kept(url, "metadata", byte_exact=not is_pg(url))

    assert (await migrate.upgrade(url)).after == HEAD
    await assert_metadata_kept(url, "tool_metadata", byte_exact=not is_pg(url))
    assert await execute(url, "SELECT id, session_id FROM memories ORDER BY id") == ids_before
    assert await migrate.check(url) == []
    await assert_rows_read_through_the_models(url)


async def assert_rows_read_through_the_models(url: str) -> None:
    db = Database(url)
    try:
        for session_id, raw in LEGACY_METADATA.items():
            [memory] = await memories.load_recent(db, session_id=session_id, limit=5)
            assert memory.tool_metadata == (json.loads(raw) if raw is not None else None)
            assert memory.role == "user"
            assert memory.content == f"content of {session_id}"
            # legacy naive timestamps were UTC; they come back zone-aware on both databases
            assert memory.created_at == datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        [nulls] = await memories.load_recent(db, session_id="nulls", limit=5)
        assert nulls.content == "" and nulls.created_at is not None
        # New rows follow the legacy ones and have the full current shape.
        added = await memories.append_memory(
            db, session_id="new", role="assistant", content="new", tool_metadata={"k": [1]}
        )
        [legacy_max] = await execute(url, "SELECT MAX(id) FROM memories WHERE session_id != 'new'")
        assert added.id > legacy_max[0]
        assert await memories.forget_session(db, session_id="new") == 1
    finally:
        await db.dispose()


async def test_every_revision_downgrades_and_base_is_empty(any_db_url: str) -> None:
    url = any_db_url
    revisions = migrate.known_revisions()
    assert revisions[:4] == [
        "0001_legacy",
        "0002_rename_metadata",
        "0003_memories_current",
        "0004_support_tables",
    ]
    for revision in revisions:  # one step at a time, up...
        assert (await migrate.upgrade(url, "+1")).after == revision
    assert await migrate.check(url) == []
    assert await table_names(url) >= {"memories", "alembic_version", *SUPPORT_TABLES}
    for expected in [*reversed(revisions[:-1]), None]:  # ...and down
        assert (await migrate.downgrade(url, "-1")).after == expected
    assert await table_names(url) == {"alembic_version"}
    assert (await migrate.current(url)).revision is None
    assert (await migrate.upgrade(url)).after == migrate.head_revision()
    assert await migrate.check(url) == []


async def test_check_reports_a_difference(any_db_url: str) -> None:
    await migrate.upgrade(any_db_url)
    await execute(any_db_url, "DROP INDEX ix_memories_session_id_id")
    differences = await migrate.check(any_db_url)
    assert any(
        diff[0] == "add_index" and diff[1].name == "ix_memories_session_id_id"
        for diff in differences
    )


@pytest.mark.parametrize("varchar", ["VARCHAR", "VARCHAR(255)"])
async def test_unversioned_legacy_database_is_adopted(any_db_url: str, varchar: str) -> None:
    url = any_db_url
    id_column = "id SERIAL PRIMARY KEY" if is_pg(url) else "id INTEGER NOT NULL PRIMARY KEY"
    await execute(
        url,
        f"CREATE TABLE memories ({id_column}, session_id {varchar}, content TEXT, "
        "metadata JSON, timestamp TIMESTAMP)",
    )
    await execute(url, "CREATE INDEX ix_memories_session_id ON memories (session_id)")
    await insert_legacy_rows(url)
    state = await migrate.current(url)
    assert state.revision is None and state.legacy_unversioned

    result = await migrate.upgrade(url)
    assert result.adopted_legacy and result.after == HEAD
    await assert_metadata_kept(url, "tool_metadata", byte_exact=not is_pg(url))
    assert await migrate.check(url) == []

    again = await migrate.upgrade(url)
    assert not again.changed and again.after == HEAD


async def test_unknown_revisions_are_refused(sqlite_url: str) -> None:
    await migrate.upgrade(sqlite_url)
    with pytest.raises(migrate.UnknownRevisionError, match="9999_nope"):
        await migrate.upgrade(sqlite_url, "9999_nope")
    await execute(sqlite_url, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    for call in (migrate.current, migrate.upgrade, migrate.check):
        with pytest.raises(migrate.UnknownRevisionError, match="0099_from_the_future"):
            await call(sqlite_url)
    with pytest.raises(migrate.UnknownRevisionError):
        await migrate.downgrade(sqlite_url, "base")


async def test_unversioned_non_legacy_tables_are_not_guessed(sqlite_url: str) -> None:
    await execute(sqlite_url, "CREATE TABLE something_else (id INTEGER PRIMARY KEY)")
    with pytest.raises(migrate.UnversionedDatabaseError, match="something_else"):
        await migrate.upgrade(sqlite_url)


async def test_a_failed_sqlite_migration_changes_nothing(sqlite_url: str) -> None:
    """DDL runs in one transaction on SQLite too: a failure half-way leaves the database as is."""
    await migrate.upgrade(sqlite_url, "0002_rename_metadata")
    await insert_rows_after_rename(sqlite_url)
    # Make 0003 fail at its very end, after the table was rebuilt and every row copied.
    await execute(sqlite_url, "CREATE TABLE block (x INTEGER)")
    await execute(sqlite_url, "CREATE INDEX ix_memories_session_id_id ON block (x)")
    with pytest.raises(migrate.MigrationError, match="rolled back"):
        await migrate.upgrade(sqlite_url)
    assert (await migrate.current(sqlite_url)).revision == "0002_rename_metadata"
    assert await table_names(sqlite_url) == {"memories", "alembic_version", "block"}
    rows = await execute(sqlite_url, "SELECT session_id, tool_metadata FROM memories")
    assert rows == [("s", '{"kept": true}')]


async def insert_rows_after_rename(url: str) -> None:
    await execute(
        url,
        "INSERT INTO memories (session_id, content, tool_metadata) VALUES ('s', 'c', :m)",
        {"m": '{"kept": true}'},
    )


async def test_concurrent_upgrades_serialize(any_db_url: str) -> None:
    """Two release processes migrating at once: one upgrades, the other waits and finds head."""
    results = await asyncio.wait_for(
        asyncio.gather(*(migrate.upgrade(any_db_url) for _ in range(3))), timeout=60
    )
    assert sorted(r.before is None for r in results) == [False, False, True]
    assert {r.after for r in results} == {HEAD}
    assert await migrate.check(any_db_url) == []
