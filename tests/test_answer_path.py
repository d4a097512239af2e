"""What one answered message costs the database: statements counted on the real engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from bot.memory import ASSISTANT, SUMMARY, USER, MemoryPolicy
from bot.messages import ReplyKind
from storage import memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import kb_fixture, message, openai_agent, responder, write_docs  # noqa: F401
from tests.fakes.openai_server import FakeOpenAI, fake_openai_fixture  # noqa: F401


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()).upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_an_answer_reads_memory_once_and_writes_it_once(
    db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    agent = openai_agent(kb, fake_openai)
    bot = responder(db, agent)
    first = await bot.handle(message("How do I reset my password?"))  # warms the pool
    assert first is not None and first.kind is ReplyKind.ANSWER
    with statements(db) as seen:
        reply = await bot.handle(message("And API tokens?", msg_id="m2"))
    await agent.aclose()
    assert reply is not None and reply.kind is ReplyKind.ANSWER

    memory_sql = [s for s in seen if "MEMORIES" in s]
    assert [s.split()[0] for s in memory_sql] == ["SELECT", "INSERT"], memory_sql
    # Both rows, in order, with their own metadata: the question's message id and author, the
    # answer's agent details.
    rows = await memories.export_session(db, session_id=reply.session_id)
    assert [(r.role, r.content) for r in rows[-2:]] == [
        ("user", "And API tokens?"),
        ("assistant", reply.text),
    ]
    assert rows[-2].tool_metadata == {"message_id": "m2", "author_id": "U1"}
    assert rows[-2].created_at is not None and rows[-1].created_at is not None
    assert rows[-1].id == reply.memory_id and rows[-1].tool_metadata["agent"] == "openai"
    # One model call per answer (the agent searched first), both over one pooled keep-alive
    # connection (a new TCP connection per call cost more CPU than parsing the whole stream).
    assert len(fake_openai.client_ports) == 2 and len(set(fake_openai.client_ports)) == 1
    # The second question saw the first turn as history, then its own search.
    sent = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user", "assistant", "tool"]


async def _reference_context(db: Database, policy: MemoryPolicy, session_id: str) -> tuple:
    """What load() must return, computed the plain way from every row of the session."""
    rows = await memories.export_session(db, session_id=session_id)
    summaries = [r for r in rows if r.role == SUMMARY]
    summary = summaries[-1] if summaries else None
    covered = int((summary.tool_metadata or {}).get("covers_through", 0)) if summary else 0
    turns = [r for r in rows if r.role in (USER, ASSISTANT) and r.id > covered]
    turns = turns[-(policy.window + policy.SLACK) :]
    return ([(r.role, r.content) for r in turns], summary.content if summary else None)


@pytest.mark.parametrize(
    ("before", "summarized", "after"),
    [
        (0, False, 3),  # a new thread
        (0, False, 40),  # many turns, never compacted: more rows than one query reads
        (30, True, 5),  # the usual: a summary, then a few turns
        (30, True, 40),  # compaction lagging: the summary is older than the newest rows
    ],
)
async def test_load_matches_the_plain_computation(
    db: Database, before: int, summarized: bool, after: int
) -> None:
    policy = MemoryPolicy(db, turns=3)
    session = f"s-{before}-{summarized}-{after}"

    async def add(n: int, start: int) -> list[int]:
        rows = [(USER if i % 2 == 0 else ASSISTANT, f"row {i}", None) for i in range(start, n)]
        return await memories.append_memories(db, rows, session_id=session) if rows else []

    ids = await add(before, 0)
    if summarized:
        await memories.append_memories(
            db, [(SUMMARY, "earlier", {"covers_through": ids[-3]})], session_id=session
        )
    await add(before + after, before)
    context = await policy.load(session)
    history, summary = await _reference_context(db, policy, session)
    assert [(m["role"], m["content"]) for m in context.history] == history
    assert context.summary == summary and context.unsummarized == len(history)
