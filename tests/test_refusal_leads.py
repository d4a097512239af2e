"""A refusal points to the pages nearest the question ("closest pages in the docs"), apart from
sources: the bot does not claim they answer it. Offline and model answers, Slack, Discord, the
console and ``ask --json``."""

from __future__ import annotations

from adapters.console import render_sources
from adapters.discord import render as discord_render
from adapters.slack import render as slack_render
from bot import texts
from bot.agent import AgentRequest, AgentResult, OfflineAgent
from bot.commands.chat import reply_json
from bot.messages import Reply, ReplyKind, Source
from storage import memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import kb_fixture, message, openai_agent, responder  # noqa: F401
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn, fake_openai_fixture  # noqa: F401
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "harness", "kb_uri"]

# Refused (PayPal is named nowhere in the docs) but about what billing.md covers.
UNCOVERED_BUT_NEAR = "Can I pay my invoices with PayPal?"
OFF_TOPIC = "What's the weather like in Lisbon tomorrow?"


async def _result(agent: OfflineAgent, question: str) -> AgentResult:
    result = None
    async for item in agent.run(AgentRequest(question=question)):
        if isinstance(item, AgentResult):
            result = item
    assert result is not None
    return result


async def test_offline_refusal_offers_the_nearest_pages_but_no_sources(kb: KnowledgeBase) -> None:
    near = await _result(OfflineAgent(kb), UNCOVERED_BUT_NEAR)
    assert near.kind is ReplyKind.NO_ANSWER and near.sources == ()
    assert [s.url_or_path for s in near.related] == ["billing.md"]
    assert near.related[0].heading == "Invoices" and "first day" in near.related[0].snippet
    # Nothing in the docs shares a word with it: no lead rather than noise.
    assert (await _result(OfflineAgent(kb), OFF_TOPIC)).related == ()
    # An answer cites its sources; it has no leads.
    answer = await _result(OfflineAgent(kb), "How do I reset my password?")
    assert answer.kind is ReplyKind.ANSWER and answer.related == ()


async def test_responder_passes_leads_on_and_records_them(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    resp = responder(sqlite_db, kb=kb)
    reply = None
    async for item in resp.stream(message(UNCOVERED_BUT_NEAR)):
        if isinstance(item, Reply):
            reply = item
    assert reply is not None and reply.kind is ReplyKind.NO_ANSWER
    assert [s.url_or_path for s in reply.related] == ["billing.md"] and reply.sources == ()
    rows = await memories.load_recent(sqlite_db, session_id=reply.session_id, limit=5)
    assert rows[-1].tool_metadata["related"] == ["billing.md"]
    payload = reply_json(reply)
    assert payload["sources"] == [] and payload["related"][0]["path"] == "billing.md"


async def test_model_refusal_offers_the_pages_it_searched(
    sqlite_db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "invoices PayPal"})]),
        Turn(content="NO_ANSWER The docs do not mention PayPal."),
    )
    agent = openai_agent(kb, fake_openai)
    reply = None
    async for item in responder(sqlite_db, agent).stream(message(UNCOVERED_BUT_NEAR)):
        if isinstance(item, Reply):
            reply = item
    await agent.aclose()
    assert reply is not None and reply.kind is ReplyKind.NO_ANSWER and reply.sources == ()
    assert "billing.md" in [s.url_or_path for s in reply.related]


def test_renderers_list_leads_under_their_own_heading() -> None:
    lead = Source("Billing", "billing.md", "Invoices are sent monthly.", heading="Invoices")
    refusal = Reply(texts.NOT_IN_DOCS, kind=ReplyKind.NO_ANSWER, related=(lead,), memory_id=3)
    blocks = slack_render.footer_blocks(refusal)
    related = [b for b in blocks if b.get("block_id") == "sb_related"]
    assert len(related) == 1 and texts.RELATED_HEADING in related[0]["elements"][0]["text"]
    assert "billing.md" in related[0]["elements"][1]["text"]
    assert not any(b.get("block_id") == "sb_sources" for b in blocks)
    embed = discord_render.render_reply(refusal)[-1].embeds[0]
    assert embed["title"] == texts.RELATED_HEADING and "billing.md" in embed["fields"][0]["value"]
    printed = render_sources(refusal.related, texts.RELATED_HEADING)
    assert printed.startswith(texts.RELATED_HEADING) and "(billing.md)" in printed


async def test_slack_refusal_shows_the_leads_block(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    ts = new_ts()
    async with harness.sender() as sender:
        sent = await sender.event(
            app_mention(text=f"<@{DEFAULT_BOT_USER}> {UNCOVERED_BUT_NEAR}", ts=ts)
        )
    assert sent.status == 200
    await api.wait_for(lambda: [m for m in api.posted("C0000001") if not m.streaming])
    await harness.bot.wait_idle()
    (refusal,) = api.posted("C0000001")
    assert "couldn't find this" in refusal.text
    related = [b for b in refusal.blocks if b.get("block_id") == "sb_related"]
    assert related and "billing.md" in json_text(related[0])


def json_text(block: dict) -> str:
    return " ".join(str(e.get("text", "")) for e in block.get("elements", []))
