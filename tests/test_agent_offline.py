"""Acceptance 3: the offline answerer on the bundled sample docs (cited answer or NO_ANSWER)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import texts
from bot.agent import AgentRequest, AgentResult, NoAnswerGate, OfflineAgent
from bot.grounding import content_words, decide, named_terms, within_one_edit
from bot.memory import ConversationContext
from bot.messages import ReplyKind
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import message, responder

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "bot" / "sample_docs"

ANSWERABLE = [
    (
        "How many approvals does a protected environment need by default?",
        "configuration/environments.md",
        "one approval",
    ),
    ("When do admin tokens expire by default?", "auth/api-keys.md", "90 days"),
    ("How many times are failed webhook deliveries retried?", "webhooks.html", "8 times"),
    ("webhok retrys how many tims", "webhooks.html", "8 times"),
    ("Which port serves the Prometheus metrics?", "operations/backup-and-upgrade.md", "9420"),
]
UNCOVERED = [
    "Does Flagpole have a GraphQL API?",
    "How do I configure LDAP authentication?",
    "Can I pay my invoice with PayPal?",
    "What does error FP-3001 mean?",
    "Is there a dark mode in the web interface?",
]


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = KnowledgeBase.open(str(tmp_path_factory.mktemp("sample") / "kb"), None)
    kb.ingest([SAMPLE_DOCS])
    return kb


async def _run(agent: OfflineAgent, question: str, **context: object) -> tuple[str, AgentResult]:
    streamed = ""
    result = None
    request = AgentRequest(question=question, context=ConversationContext(**context))
    async for item in agent.run(request):
        if isinstance(item, AgentResult):
            result = item
        else:
            streamed += item
    assert result is not None
    return streamed, result


@pytest.mark.parametrize(("question", "source", "fact"), ANSWERABLE)
async def test_answerable_questions_get_cited_answers(
    sample_kb: KnowledgeBase, question: str, source: str, fact: str
) -> None:
    streamed, result = await _run(OfflineAgent(sample_kb), question)
    assert result.kind is ReplyKind.ANSWER
    assert streamed == result.text
    assert result.text.startswith(texts.OFFLINE_LABEL)
    assert "[1]" in result.text and source in [s.url_or_path for s in result.sources]
    assert fact in result.text  # the extract carries the fact, not just the heading
    meta = result.tool_metadata
    assert meta["agent"] == "offline" and meta["tool_calls"][0]["name"] == "search_knowledge_base"
    assert meta["sources"] and meta["decision"]["answerable"] is True


@pytest.mark.parametrize("question", UNCOVERED)
async def test_uncovered_questions_get_no_answer(sample_kb: KnowledgeBase, question: str) -> None:
    streamed, result = await _run(OfflineAgent(sample_kb), question)
    assert result.kind is ReplyKind.NO_ANSWER
    assert result.text == streamed == texts.NOT_IN_DOCS and result.sources == ()
    assert result.tool_metadata["decision"]["answerable"] is False


async def test_empty_knowledge_base_says_not_in_docs(tmp_path: Path) -> None:
    empty = KnowledgeBase.open(str(tmp_path / "nothing"), None)
    _, result = await _run(OfflineAgent(empty), "How do I reset my password?")
    assert result.kind is ReplyKind.NO_ANSWER


async def test_short_follow_up_searches_with_the_previous_question(
    sample_kb: KnowledgeBase,
) -> None:
    history = [
        {"role": "user", "content": "How many times are failed webhook deliveries retried?"},
        {"role": "assistant", "content": "8 times [1]"},
    ]
    _, result = await _run(OfflineAgent(sample_kb), "and the timeout?", history=history)
    assert result.kind is ReplyKind.ANSWER
    assert result.sources[0].url_or_path == "webhooks.html"


async def test_responder_stores_offline_answer(sqlite_db: Database, sample_kb: KnowledgeBase):
    reply = await responder(sqlite_db, kb=sample_kb).handle(
        message("Which port serves the Prometheus metrics?")
    )
    assert reply.kind is ReplyKind.ANSWER and reply.memory_id is not None
    assert reply.sources[0].snippet


def test_grounding_helpers() -> None:
    assert within_one_edit("webhok", "webhook") and within_one_edit("buisness", "business")
    assert not within_one_edit("graphql", "graph") and not within_one_edit("ldap", "lap-top")
    assert "flag" in content_words("Flags!") and "how" not in content_words("how")
    assert named_terms("Does Flagpole have a GraphQL API?") >= {"flagpol", "graphql", "api"}
    assert named_terms("how do i do it") == set()
    assert decide("anything", []).answerable is False


def test_no_answer_gate_hides_the_token() -> None:
    gate = NoAnswerGate()
    assert gate.feed("NO_") == [] and gate.feed("ANSWER not here") == []
    assert gate.refused and gate.finish() == []
    gate = NoAnswerGate()
    assert gate.feed("N") == [] and gate.feed("ope, it is [1]") == ["Nope, it is [1]"]
    assert gate.feed(" more") == [" more"] and gate.answer_text == "Nope, it is [1] more"
    gate = NoAnswerGate()
    assert gate.feed("NO") == [] and gate.finish() == ["NO"]
    gate = NoAnswerGate()
    assert gate.feed("Let me check.") == ["Let me check."]
    gate.paragraph_break()
    assert gate.feed("It is 8 [1].") == ["\n\nIt is 8 [1]."]


async def test_the_cited_numbers_name_the_quoted_pages(tmp_path: Path) -> None:
    """``cited`` holds numbers into the answer's retrieved ``sources`` (the report counts the
    pages they name); the offline answer recorded 1..k instead, so the report credited the
    top search results rather than the pages it quoted."""
    from bot.report import cited_sources

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "http2.md").write_text(
        "# HTTP/2\n\nHTTP/2 is a binary protocol that multiplexes concurrent requests over one "
        "TCP stream and compresses headers.\n\n## Enabling HTTP/2\n\nWhen using the client, "
        "HTTP/2 support is not enabled by default. You can enable it by passing http2=True.\n",
        encoding="utf-8",
    )
    (docs / "index.md").write_text(
        "# Kestrel\n\n## Dependencies\n\nThe project relies on these libraries:\n\n"
        "* `h11` - HTTP/1.1 support.\n* `h2` - HTTP/2 support. *(Optional, with "
        "`kestrel[http2]`)*\n",
        encoding="utf-8",
    )
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([docs])
    question = "How do I enable HTTP/2, and which libraries does the project rely on?"
    result = None
    async for item in OfflineAgent(kb).run(AgentRequest(question=question)):
        if isinstance(item, AgentResult):
            result = item
    assert result is not None and result.kind is ReplyKind.ANSWER
    shown = [source.url_or_path for source in result.sources]
    assert shown == ["http2.md", "index.md"]
    retrieved = {s["n"]: s["source"] for s in result.tool_metadata["sources"]}
    assert [retrieved[n] for n in result.tool_metadata["cited"]] == shown
    assert sorted(cited_sources(result.tool_metadata)) == sorted(shown)
