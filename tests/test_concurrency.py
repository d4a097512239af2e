"""Acceptance 7: 8 concurrent writers x 1,000 memories into ONE session lose nothing.

Each writer has its own Database (engine and pool), as separate processes or replicas would, so
on SQLite they really contend for the write lock (WAL + busy timeout must absorb it: a
"database is locked" error would fail the append and this test).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from storage import memories
from storage.db import Database
from storage.models import Base, Memory

WRITERS = 8
PER_WRITER = 1_000
SESSION = "slack:T1:C1:1700000000.000100"


async def write(url: str, writer: int) -> None:
    db = Database(url)
    try:
        for i in range(PER_WRITER):
            await memories.append_memory(
                db,
                session_id=SESSION,
                role="user" if i % 2 else "assistant",
                content=f"w{writer}-{i}",
                tool_metadata={"writer": writer, "i": i},
            )
    finally:
        await db.dispose()


async def test_concurrent_writers_lose_nothing(any_db_url: str) -> None:
    setup = Database(any_db_url)
    async with setup.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(write(any_db_url, w) for w in range(WRITERS))), timeout=150
        )

        assert await memories.count_memories(setup, session_id=SESSION) == WRITERS * PER_WRITER
        async with setup.sessions() as session:
            rows = (
                await session.execute(
                    select(Memory.id, Memory.content, Memory.tool_metadata).order_by(Memory.id)
                )
            ).all()
        assert len({row.id for row in rows}) == WRITERS * PER_WRITER
        for writer in range(WRITERS):
            mine = [row for row in rows if row.tool_metadata["writer"] == writer]
            # every append of every writer is there, in the order it was made
            assert [row.content for row in mine] == [f"w{writer}-{i}" for i in range(PER_WRITER)]
        last = await memories.load_recent(setup, session_id=SESSION, limit=20)
        assert [m.id for m in last] == [row.id for row in rows[-20:]]
    finally:
        await setup.dispose()
