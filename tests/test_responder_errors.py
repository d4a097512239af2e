"""Acceptance 4: the Responder is the error boundary. Failures are real (a broken knowledge-base
folder, a dropped table, a failing or slow model server), never monkeypatched code."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import texts
from bot.messages import Reply, ReplyKind
from storage.db import Database
from storage.knowledge import TABLE_REFRESH_SECONDS, KnowledgeBase
from storage.models import Base
from tests.core_support import build_kb, kb_fixture, message, openai_agent, responder  # noqa: F401
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, Turn, fake_openai_fixture  # noqa: F401

SESSION = "slack:T1:C1:t1"


def _error_logged(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = [
        r for r in caplog.records if r.name == "bot.responder" and r.levelno >= logging.ERROR
    ]
    assert records, "the failure was not logged"
    record = records[-1]
    assert SESSION in record.getMessage()
    assert record.exc_info is not None  # the traceback goes to the operator's log
    return record


async def test_retrieval_failure(
    sqlite_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = build_kb(tmp_path)
    resp = responder(sqlite_db, kb=kb)
    assert (await resp.handle(message("How do I reset my password?"))).kind is ReplyKind.ANSWER

    # Break the knowledge base on disk: its table disappears. A small table's passages are
    # held in memory, so searches fail once the table is next looked at (its version is
    # re-read after TABLE_REFRESH_SECONDS).
    table_dir = next((tmp_path / "kb").glob("*.lance"))
    backup = tmp_path / "backup"
    shutil.copytree(table_dir, backup)
    shutil.rmtree(table_dir)
    await asyncio.sleep(TABLE_REFRESH_SECONDS + 0.5)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        reply = await resp.handle(message("When are invoices sent?"))
    assert reply.kind is ReplyKind.ERROR and reply.text == texts.ERROR_GENERIC
    assert "Traceback" not in reply.text and reply.session_id == SESSION
    _error_logged(caplog)

    # Repaired, the same Responder answers the next message.
    shutil.copytree(backup, table_dir)
    reply = await resp.handle(message("When are invoices sent?"))
    assert reply.kind is ReplyKind.ANSWER and reply.sources[0].url_or_path == "billing.md"


async def test_model_agent_with_a_broken_knowledge_base(
    sqlite_db: Database, tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent's own first search fails: small talk is still answered by the model (as
    before the agent searched first), a question whose search the model asks for gets the
    short error reply, and the operator's log says why each time."""
    kb = build_kb(tmp_path)
    agent = openai_agent(kb, fake_openai)
    resp = responder(sqlite_db, agent)
    shutil.rmtree(next((tmp_path / "kb").glob("*.lance")))
    await asyncio.sleep(TABLE_REFRESH_SECONDS + 0.5)

    fake_openai.queue(Turn(content="Hi! I answer questions from the docs."))
    with caplog.at_level(logging.WARNING):
        hello = await resp.handle(message("Hello there, who are you?"))
    assert hello.kind is ReplyKind.ANSWER and hello.text == "Hi! I answer questions from the docs."
    assert any("searching the question first failed" in r.getMessage() for r in caplog.records)
    sent = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]  # no search handed over

    caplog.clear()
    with caplog.at_level(logging.ERROR):
        reply = await resp.handle(message("When are invoices sent?"))  # the model searches
    assert reply.kind is ReplyKind.ERROR and reply.text == texts.ERROR_GENERIC
    _error_logged(caplog)
    await agent.aclose()


async def test_memory_storage_failure(
    db: Database, kb: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    resp = responder(db, kb=kb)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE feedback"))
        await conn.execute(text("DROP TABLE memories"))
    with caplog.at_level(logging.ERROR):
        reply = await resp.handle(message("How do I reset my password?"))
    assert reply.kind is ReplyKind.ERROR and reply.text == texts.ERROR_GENERIC
    _error_logged(caplog)

    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    reply = await resp.handle(message("How do I reset my password?"))
    assert reply.kind is ReplyKind.ANSWER and reply.memory_id is not None


async def test_model_server_errors_are_retried_then_reported(
    sqlite_db: Database,
    kb: KnowledgeBase,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = openai_agent(kb, fake_openai, max_retries=2)
    resp = responder(sqlite_db, agent)

    # Two 429s then success: the client retried twice (honouring retry-after-ms) and answered.
    fake_openai.fail_next(429, times=2)
    reply = await resp.handle(message("How do I reset my password?"))
    assert reply.kind is ReplyKind.ANSWER
    assert fake_openai.failures_served == 2
    retry_counts = [h.get("x-stainless-retry-count") for h in fake_openai.headers[:3]]
    assert retry_counts == ["0", "1", "2"]

    # 500 on every attempt: 1 try + 2 retries, then a friendly error.
    before = len(fake_openai.requests)
    fake_openai.fail_next(500, times=3)
    with caplog.at_level(logging.ERROR):
        reply = await resp.handle(message("When are invoices sent?"))
    assert reply.kind is ReplyKind.ERROR and reply.text == texts.ERROR_MODEL_UNAVAILABLE
    assert len(fake_openai.requests) - before == 3 and fake_openai.failures_served == 5
    _error_logged(caplog)
    assert FAKE_API_KEY not in caplog.text  # no credentials in the operator's log

    # The next message works.
    reply = await resp.handle(message("When are invoices sent?"))
    assert reply.kind is ReplyKind.ANSWER
    await agent.aclose()


async def test_model_timeout_apologises(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    agent = openai_agent(kb, fake_openai, timeout=0.3, max_retries=0)
    resp = responder(sqlite_db, agent)
    fake_openai.queue(Turn(content="too late", delay=1.0))
    deltas: list[str] = []
    final: Reply | None = None
    async for item in resp.stream(message("How do I reset my password?")):
        if isinstance(item, Reply):
            final = item
        else:
            deltas.append(item)
    assert final is not None and final.kind is ReplyKind.ERROR
    assert final.text == texts.ERROR_MODEL_TIMEOUT and deltas == []
    reply = await resp.handle(message("How do I reset my password?"))
    assert reply.kind is ReplyKind.ANSWER
    await agent.aclose()


async def test_model_unreachable(sqlite_db: Database, kb: KnowledgeBase) -> None:
    fake = FakeOpenAI()
    await fake.start()
    agent = openai_agent(kb, fake, max_retries=0)
    await fake.close()  # nothing listens on that port any more
    reply = await responder(sqlite_db, agent).handle(message("How do I reset my password?"))
    assert reply.kind is ReplyKind.ERROR and reply.text == texts.ERROR_MODEL_UNAVAILABLE
    await agent.aclose()


async def test_feedback_and_escalation_round_trip(sqlite_db: Database, kb: KnowledgeBase) -> None:
    resp = responder(sqlite_db, kb=kb)
    answer = await resp.handle(message("How do I reset my password?"))
    thanks = await resp.feedback(
        memory_id=answer.memory_id, session_id=answer.session_id, user_id="U1", helpful=True
    )
    assert thanks.kind is ReplyKind.INFO and thanks.text == texts.FEEDBACK_THANKS_HELPFUL
    stale = await resp.feedback(
        memory_id=answer.memory_id + 1000, session_id=answer.session_id, user_id="U1", helpful=False
    )
    assert stale.kind is ReplyKind.INFO and stale.text == texts.FEEDBACK_UNKNOWN_ANSWER
    opened = await resp.escalate(
        conversation=message("x").conversation, requested_by="U1", reason="stuck"
    )
    reply, escalation_id = opened.reply, opened.escalation_id
    assert reply.kind is ReplyKind.ESCALATED and escalation_id > 0
    assert reply.text == texts.ESCALATION_OPENED and reply.escalation_id == escalation_id
    found = await resp.escalate(
        conversation=message("x").conversation, requested_by="U2", reason="me too"
    )
    again, same_id = found.reply, found.escalation_id
    assert same_id == escalation_id and again.text == texts.ESCALATION_ALREADY_OPEN
    done = await resp.resolve_escalation(escalation_id=escalation_id, resolved_by="agent1")
    assert done.text == texts.ESCALATION_RESOLVED
    twice = await resp.resolve_escalation(escalation_id=escalation_id, resolved_by="agent1")
    assert twice.text == texts.ESCALATION_NOT_OPEN


async def test_model_connection_lost_mid_stream(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    agent = openai_agent(kb, fake_openai, max_retries=0)
    resp = responder(sqlite_db, agent)
    fake_openai.queue(Turn(content="This answer will never finish " * 5, abort_after=3))
    items = [item async for item in resp.stream(message("How do I reset my password?"))]
    deltas, final = items[:-1], items[-1]
    assert deltas and all(isinstance(d, str) for d in deltas)  # the start was streamed
    assert isinstance(final, Reply) and final.kind is ReplyKind.ERROR
    assert final.text == texts.ERROR_MODEL_UNAVAILABLE
    assert (await resp.handle(message("How do I reset my password?"))).kind is ReplyKind.ANSWER
    await agent.aclose()
