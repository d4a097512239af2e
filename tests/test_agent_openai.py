"""Acceptance 1 and 2: the tool-calling agent through the real openai client and the fake."""

from __future__ import annotations

from pathlib import Path

from bot import texts
from bot.agent import SEARCH_FIRST_CALL_ID
from bot.config import Settings
from bot.messages import Reply, ReplyKind
from bot.runtime import build_runtime
from storage import memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from storage.models import Base
from tests.core_support import kb_fixture, message, openai_agent, responder, write_docs  # noqa: F401
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, ToolCall, Turn, fake_openai_fixture  # noqa: F401

ANSWER = (
    "Open Settings, choose Security and click **Reset password** [1]. "
    "API tokens expire after 90 days [2]."
)


async def _collect(resp, msg) -> tuple[list[str], Reply]:
    deltas: list[str] = []
    final = None
    async for item in resp.stream(msg):
        if isinstance(item, Reply):
            final = item
        else:
            deltas.append(item)
    assert final is not None
    return deltas, final


async def test_two_tool_calls_then_streamed_cited_answer(
    db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    """On SQLite and on PostgreSQL (tool_metadata is JSONB there)."""
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "API tokens expire"})]),
        Turn(content=ANSWER, chunk_chars=5, prompt_tokens=120, completion_tokens=30),
    )
    agent = openai_agent(kb, fake_openai)
    deltas, reply = await _collect(responder(db, agent), message("How do I reset it?"))
    await agent.aclose()

    assert reply.kind is ReplyKind.ANSWER
    assert len(deltas) > 5 and "".join(deltas) == reply.text == ANSWER
    assert [s.url_or_path for s in reply.sources] == ["auth.md", "auth.md"]
    assert [s.heading for s in reply.sources] == ["Resetting your password", "API tokens"]

    # The fake saw three streamed requests: the question with the agent's own first search,
    # then each of the model's searches.
    assert len(fake_openai.requests) == 3
    first_search = fake_openai.requests[0]["messages"][-2:]
    assert first_search[0]["tool_calls"][0]["id"] == SEARCH_FIRST_CALL_ID
    assert first_search[0]["tool_calls"][0]["function"]["arguments"] == (
        '{"query": "How do I reset it?"}'
    )
    assert first_search[1]["role"] == "tool" and "[1]" in first_search[1]["content"]
    assert all(r["stream"] and r["model"] == "fake-gpt" for r in fake_openai.requests)
    tool_names = {t["function"]["name"] for t in fake_openai.requests[0]["tools"]}
    assert tool_names == {"search_knowledge_base", "escalate_to_human"}
    second, third = fake_openai.requests[1]["messages"], fake_openai.requests[2]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["arguments"] == '{"query": "reset password"}'
    assert second[-1]["role"] == "tool" and "[1]" in second[-1]["content"]
    assert "Reset password" in second[-1]["content"]
    assert third[-1]["role"] == "tool" and "90 days" in third[-1]["content"]

    stored = await memories.get_memory(db, memory_id=reply.memory_id)
    assert stored is not None and stored.role == "assistant" and stored.content == ANSWER
    meta = stored.tool_metadata
    assert [c["arguments"] for c in meta["tool_calls"]] == [
        {"query": "How do I reset it?"},
        {"query": "reset password"},
        {"query": "API tokens expire"},
    ]
    assert all(c["name"] == "search_knowledge_base" for c in meta["tool_calls"])
    assert meta["sources"][0]["source"] == "auth.md" and meta["sources"][0]["score"] > 0
    assert meta["cited"] == [1, 2]
    assert meta["model"] == "fake-gpt"
    assert meta["usage"]["prompt_tokens"] >= 120 and meta["usage"]["completion_tokens"] >= 30
    assert meta["usage"]["total_tokens"] > 0
    assert meta["latency_ms"] > 0 and meta["rounds"] == 3
    # The user's question is stored too, in the same session.
    rows = await memories.load_recent(db, session_id=reply.session_id, limit=10)
    assert [r.role for r in rows] == ["user", "assistant"]


async def test_no_answer_token_becomes_honest_reply(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "SAML"})]),
        Turn(content="NO_ANSWER The docs do not mention SAML.", chunk_chars=2),
    )
    agent = openai_agent(kb, fake_openai)
    deltas, reply = await _collect(responder(sqlite_db, agent), message("Do you support SAML?"))
    await agent.aclose()
    assert reply.kind is ReplyKind.NO_ANSWER
    assert "NO_ANSWER" not in "".join(deltas) and "NO_ANSWER" not in reply.text
    assert "human" in reply.text and reply.sources == ()


async def test_no_answer_said_mid_answer_is_still_a_refusal(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(Turn(content="I looked at the docs. NO_ANSWER: nothing about SAML."))
    agent = openai_agent(kb, fake_openai)
    _, reply = await _collect(responder(sqlite_db, agent), message("Do you support SAML?"))
    await agent.aclose()
    assert reply.kind is ReplyKind.NO_ANSWER and reply.text == texts.NOT_IN_DOCS


async def test_escalation_tool_opens_a_handoff(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("escalate_to_human", {"reason": "billing dispute"})]),
        Turn(content="I've asked a colleague to help."),
    )
    agent = openai_agent(kb, fake_openai)
    _, reply = await _collect(responder(sqlite_db, agent), message("I was double charged!"))
    await agent.aclose()
    assert reply.kind is ReplyKind.ESCALATED
    stored = await memories.get_memory(sqlite_db, memory_id=reply.memory_id)
    assert stored.tool_metadata["escalation_id"] == reply.escalation_id > 0


async def test_follow_ups_see_their_thread_only(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    agent = openai_agent(kb, fake_openai)  # default policy: search, then answer citing [1]
    resp = responder(sqlite_db, agent)
    first = await resp.handle(message("How do I reset my password?", thread="A"))
    assert first.kind is ReplyKind.ANSWER and "[1]" in first.text
    start = len(fake_openai.requests)
    await resp.handle(message("And how long is the link valid?", thread="A"))
    follow_up = fake_openai.requests[start]["messages"]
    contents = [m.get("content") for m in follow_up]
    assert "How do I reset my password?" in contents
    assert first.text in contents  # the earlier answer, as an assistant turn
    assert follow_up[-3] == {"role": "user", "content": "And how long is the link valid?"}
    assert follow_up[-1]["tool_call_id"] == SEARCH_FIRST_CALL_ID

    start = len(fake_openai.requests)
    await resp.handle(message("When are invoices sent?", thread="B"))
    other_thread = fake_openai.requests[start]["messages"]
    assert [m["role"] for m in other_thread] == ["system", "user", "assistant", "tool"]
    assert "reset my password" not in str(fake_openai.requests[start:])
    await agent.aclose()


async def test_long_thread_keeps_a_running_summary(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    agent = openai_agent(kb, fake_openai)
    resp = responder(sqlite_db, agent, turns=2)
    questions = [
        "How do I reset my password?",
        "When are invoices sent?",
        "How do refunds work?",
        "When do API tokens expire?",
        "Where are API tokens created?",
        "Can I download past invoices?",
    ]
    for q in questions:
        await resp.handle(message(q, thread="long"))
    last_question_request = next(
        r
        for r in reversed(fake_openai.requests)
        if r["messages"][-1].get("tool_call_id") == SEARCH_FIRST_CALL_ID
    )
    sent = last_question_request["messages"]
    summary = [m for m in sent if m["role"] == "system" and "Summary" in m["content"]]
    # After the fifth answer the three oldest turns were folded into the summary.
    assert summary and "How do I reset my password?" in summary[0]["content"]
    assert "How do refunds work?" in summary[0]["content"]
    turns = [m for m in sent if m["role"] in ("user", "assistant") and not m.get("tool_calls")]
    assert len(turns) == 2 * 2 + 1  # the window (2 turns) plus the new question
    assert turns[0]["content"] == "When do API tokens expire?"
    rows = await memories.load_recent(sqlite_db, session_id="slack:T1:C1:long", limit=100)
    assert [r.role for r in rows].count("summary") == 1
    await agent.aclose()


async def test_runtime_uses_openai_when_key_set(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    kb_dir = tmp_path / "kb"
    KnowledgeBase.open(str(kb_dir), None).ingest([write_docs(tmp_path / "docs")])
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'rt.db'}",
        kb_uri=str(kb_dir),
        embedder="none",
        openai_api_key=FAKE_API_KEY,
        openai_base_url=fake_openai.base_url,
        openai_model="model-from-settings",
    )
    runtime = await build_runtime(settings)
    try:
        async with runtime.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        reply = await runtime.responder.handle(message("When are invoices sent?"))
        assert reply.kind is ReplyKind.ANSWER and "[1]" in reply.text
        assert reply.sources[0].url_or_path == "billing.md"
        assert {r["model"] for r in fake_openai.requests} == {"model-from-settings"}
        assert fake_openai.headers[0]["Authorization"] == f"Bearer {FAKE_API_KEY}"
    finally:
        await runtime.aclose()


def test_fake_serves_embeddings_to_the_openai_embedder(tmp_path: Path) -> None:
    """The knowledge base with the OpenAI embedder, through the real (sync) client."""
    from storage.embeddings import make_embedder

    with FakeOpenAI().in_thread() as fake:
        embedder = make_embedder(
            "openai", openai_api_key=FAKE_API_KEY, openai_base_url=fake.base_url
        )
        assert embedder is not None and embedder.dimension == 1536
        kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
        kb.ingest([write_docs(tmp_path / "docs")])
        hits = kb.search("refunds within 14 days", mode="vector")
        assert hits and hits[0].source == "billing.md"
        assert fake.embedding_requests and fake.requests == []
