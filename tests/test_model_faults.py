"""Model faults seen by the asker and the operator, through the real openai client against the
fake OpenAI and the real Slack (bolt) and Discord (discord.py) clients against their fakes.

Whatever the model does (fails past its retries, cuts its stream, stops for its content filter
or its token limit, refuses a conversation too long for its context), the asker gets one short
honest message and never half an answer, and the operator one line saying why.
"""

from __future__ import annotations

import logging

import pytest

from bot import texts
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import start_model_bot
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api
from tests.fakes.slack_harness import SlackHarness, start_model_harness
from tests.fakes.slack_sender import app_mention, new_ts

pytestmark = pytest.mark.timeout(60)
world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai
__all__ = ["api"]

PARTIAL = "To reset your password, open Settings and then "


async def _slack(
    api: FakeSlackAPI, db: Database, url: str, kb: str, model: FakeOpenAI
) -> SlackHarness:
    return await start_model_harness(api, db, url, kb, model, openai_max_retries=0)


async def _ask_slack(h: SlackHarness, api: FakeSlackAPI, question: str) -> list[str]:
    """Mention the bot in a new thread; the texts of the bot's messages in it, once done."""
    ts = new_ts()
    async with h.sender() as sender:
        response = await sender.event(app_mention(text=f"<@{DEFAULT_BOT_USER}> {question}", ts=ts))
    assert response.status == 200
    await h.bot.wait_idle()
    return [m.text for m in api.posted() if m.thread_ts == ts and not m.deleted]


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_model_failing_past_its_retries_is_one_log_line_and_one_apology(
    status: int,
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_openai.fail_next(status, retry_after_ms=None)
    h = await _slack(api, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        with caplog.at_level(logging.ERROR, logger="bot.responder"):
            failed = await _ask_slack(h, api, "how do I reset my password?")
        answered = await _ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    assert failed == [texts.ERROR_MODEL_UNAVAILABLE]
    [record] = [r for r in caplog.records if r.name == "bot.responder"]
    assert not record.exc_info  # an expected fault: no traceback in the operator's log
    assert f"HTTP {status}" in record.getMessage()
    assert len(answered) == 1 and "Reset password" in answered[0]  # the next one is answered


CUT_OR_FILTERED = {
    "connection dropped": (
        Turn(content=PARTIAL * 4, chunk_chars=8, abort_after=3),
        texts.ERROR_MODEL_UNAVAILABLE,
    ),
    "body ends without a finish reason": (
        Turn(content=PARTIAL, chunk_chars=8, end_early=True),
        texts.ERROR_MODEL_UNAVAILABLE,
    ),
    "content filter": (
        Turn(content=PARTIAL, chunk_chars=8, finish_reason="content_filter"),
        texts.ERROR_MODEL_FILTERED,
    ),
}


@pytest.mark.parametrize("fault", list(CUT_OR_FILTERED))
async def test_slack_answer_cut_mid_stream_leaves_only_the_apology(
    fault: str,
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
) -> None:
    """In a thread the answer is streamed (chat.startStream): the streamed start of a failed
    answer is replaced by the apology, not left beside it."""
    turn, apology = CUT_OR_FILTERED[fault]
    fake_openai.queue(turn)
    h = await _slack(api, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        shown = await _ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    assert shown == [apology]


@pytest.mark.parametrize("fault", list(CUT_OR_FILTERED))
async def test_discord_answer_cut_or_filtered_becomes_one_apology(
    fault: str,
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
) -> None:
    turn, apology = CUT_OR_FILTERED[fault]
    fake_openai.queue(turn)
    running = await start_model_bot(world, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        dm = await world.dm("how do I reset my password?")
        messages = await world.bot_messages(dm["channel_id"])
    finally:
        await running.stop()
    assert [m["content"] for m in messages] == [apology]


async def test_an_answer_cut_at_the_token_limit_says_so(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.queue(Turn(content=PARTIAL, finish_reason="length"))
    running = await start_model_bot(world, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        dm = await world.dm("how do I reset my password?")
        [message] = await world.bot_messages(dm["channel_id"])
    finally:
        await running.stop()
    assert message["content"].startswith(PARTIAL.strip())
    assert message["content"].endswith(texts.ANSWER_CUT_SHORT)


async def test_a_conversation_too_long_for_the_model_is_answered_without_its_history(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first_question = "How do I reset my password?"
    running = await start_model_bot(world, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        first = await world.say(first_question, mention=True)
        thread_id = first["id"]
        await world.bot_messages(thread_id, 1)
        # The follow-up's request carries the thread's history; the model refuses its length.
        fake_openai.fail_next(
            400,
            code="context_length_exceeded",
            message="This model's maximum context length is 8192 tokens.",
        )
        with caplog.at_level(logging.WARNING, logger="bot.agent"):
            await world.say("Where can I download past invoices?", channel_id=thread_id)
            answers = await world.bot_messages(thread_id, 2)
    finally:
        await running.stop()
    assert "According to the docs" in answers[1]["content"]
    refused, retried = fake_openai.messages_sent()[-2:]
    assert first_question in str(refused)
    assert first_question not in str(retried)  # asked again without the earlier turns
    assert retried[0]["role"] == "system" and retried[-1]["role"] == "tool"
    assert any("too long for the model" in r.getMessage() for r in caplog.records)


async def test_malformed_tool_calls_are_told_to_the_model_and_the_answer_goes_on(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.queue(
        Turn(
            tool_calls=[
                ToolCall("search_knowledge_base", '{"query": "pass'),
                ToolCall("drop_all_tables", {}),
            ]
        ),
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
    )
    running = await start_model_bot(world, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        dm = await world.dm("how do I reset my password?")
        [message] = await world.bot_messages(dm["channel_id"])
    finally:
        await running.stop()
    told = [m["content"] for m in fake_openai.messages_sent()[-1] if m.get("role") == "tool"]
    assert any("invalid arguments" in t for t in told)
    assert any("unknown tool" in t for t in told)
    assert "Traceback" not in message["content"]
    assert "According to the docs" in message["content"]


async def test_a_rate_limit_asking_to_wait_a_minute_is_an_apology_at_once_not_after_minutes(
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK would wait out a Retry-After of up to two minutes on each of its retries; past
    what an asker tolerates (20 s by default) the request is not retried at all."""
    fake_openai.fail_next(429, times=4, retry_after_ms=60_000)
    h = await start_model_harness(api, sqlite_db, sqlite_url, kb_uri, fake_openai)  # 3 retries
    try:
        with caplog.at_level(logging.ERROR, logger="bot.responder"):
            failed = await _ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    assert failed == [texts.ERROR_MODEL_UNAVAILABLE]
    assert len(fake_openai.requests) == 1  # asked once, not retried after 60 s three times
    [record] = [r for r in caplog.records if r.name == "bot.responder"]
    assert "rate limited and asked to wait 60 s" in record.getMessage() and not record.exc_info


async def test_retries_that_together_wait_too_long_end_in_an_apology(
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each Retry-After is short enough to wait out, but one request (its tries and waits)
    may take only one timeout plus the longest wait: 0.2 + 0.5 s here, where three waits of
    0.4 s would come first."""
    fake_openai.fail_next(429, times=4, retry_after_ms=400)
    h = await start_model_harness(
        api,
        sqlite_db,
        sqlite_url,
        kb_uri,
        fake_openai,
        openai_timeout=0.2,
        openai_max_retry_wait=0.5,
        openai_max_retries=3,
    )
    try:
        with caplog.at_level(logging.ERROR, logger="bot.responder"):
            failed = await _ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    assert failed == [texts.ERROR_MODEL_TIMEOUT]
    assert len(fake_openai.requests) < 4  # the last retry was never sent
    [record] = [r for r in caplog.records if r.name == "bot.responder"]
    assert "did not start answering in time" in record.getMessage() and not record.exc_info
