"""A forgotten conversation keeps a record of who asked there (an id, no words). Exports and
counts of memories must not show it as an empty turn: `supportbot memories export` prints it
with content null, and `supportbot purge` does not count it among the memories it deleted."""

from __future__ import annotations

from datetime import timedelta

from bot.memory import MemoryPolicy
from storage import memories, retention
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import conversation, kb_fixture, message, responder  # noqa: F401


async def _asked_then_forgotten(db: Database, kb: KnowledgeBase) -> str:
    answering = responder(db, kb=kb)
    async for _ in answering.stream(message("How do I reset my password?", user="U7")):
        pass
    session = conversation().session_id
    assert [m.role for m in await memories.export_session(db, session_id=session)] == [
        "user",
        "assistant",
    ]
    assert await MemoryPolicy(db, turns=5).forget(conversation()) == 2
    return session


async def test_an_export_labels_the_record_of_who_asked(db: Database, kb: KnowledgeBase) -> None:
    session = await _asked_then_forgotten(db, kb)
    [record] = await memories.export_session(db, session_id=session)
    assert record.role == memories.ASKER_ROLE and record.content is None
    assert record.tool_metadata == {memories.AUTHOR_KEY: "U7"}
    line = record.model_dump(by_alias=True)
    assert line["content"] is None and line["metadata"] == {"author_id": "U7"}


async def test_a_purge_counts_turns_not_records_of_who_asked(
    db: Database, kb: KnowledgeBase
) -> None:
    session = await _asked_then_forgotten(db, kb)
    async for _ in responder(db, kb=kb).stream(message("When are invoices sent?", user="U7")):
        pass
    assert len(await memories.export_session(db, session_id=session)) == 3  # record + a turn
    purged = await retention.purge_older_than(db, age=timedelta(seconds=-60))  # everything
    assert purged.memories == 2
    assert await memories.export_session(db, session_id=session) == []
