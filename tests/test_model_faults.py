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
from tests import discord_fixtures, model_support
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api
from tests.model_support import RunDiscord, StartSlack, ask_in_dm, ask_slack, responder_error

pytestmark = pytest.mark.timeout(60)
world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai
slack_with_model = model_support.slack_with_model
discord_with_model = model_support.discord_with_model
__all__ = ["api"]

PARTIAL = "To reset your password, open Settings and then "


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_model_failing_past_its_retries_is_one_log_line_and_one_apology(
    status: int,
    api: FakeSlackAPI,
    slack_with_model: StartSlack,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_openai.fail_next(status, retry_after_ms=None)
    h = await slack_with_model(openai_max_retries=0)
    try:
        with caplog.at_level(logging.ERROR, logger="bot.responder"):
            failed = await ask_slack(h, api, "how do I reset my password?")
        answered = await ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    assert failed == [texts.ERROR_MODEL_UNAVAILABLE]
    record = responder_error(caplog)
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
    fault: str, api: FakeSlackAPI, slack_with_model: StartSlack, fake_openai: FakeOpenAI
) -> None:
    """In a thread the answer is streamed (chat.startStream): the streamed start of a failed
    answer is replaced by the apology, not left beside it."""
    turn, apology = CUT_OR_FILTERED[fault]
    fake_openai.queue(turn)
    h = await slack_with_model(openai_max_retries=0)
    try:
        shown = await ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    assert shown == [apology]


@pytest.mark.parametrize("fault", list(CUT_OR_FILTERED))
async def test_discord_answer_cut_or_filtered_becomes_one_apology(
    fault: str, world: DiscordWorld, discord_with_model: RunDiscord, fake_openai: FakeOpenAI
) -> None:
    turn, apology = CUT_OR_FILTERED[fault]
    fake_openai.queue(turn)
    async with discord_with_model():
        _, messages = await ask_in_dm(world, "how do I reset my password?")
    assert [m["content"] for m in messages] == [apology]


async def test_an_answer_cut_at_the_token_limit_says_so(
    world: DiscordWorld, discord_with_model: RunDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(Turn(content=PARTIAL, finish_reason="length"))
    async with discord_with_model():
        _, [message] = await ask_in_dm(world, "how do I reset my password?")
    assert message["content"].startswith(PARTIAL.strip())
    assert message["content"].endswith(texts.ANSWER_CUT_SHORT)


async def test_a_conversation_too_long_for_the_model_is_answered_without_its_history(
    world: DiscordWorld,
    discord_with_model: RunDiscord,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first_question = "How do I reset my password?"
    async with discord_with_model():
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
    assert "According to the docs" in answers[1]["content"]
    refused, retried = fake_openai.messages_sent()[-2:]
    assert first_question in str(refused)
    assert first_question not in str(retried)  # asked again without the earlier turns
    assert retried[0]["role"] == "system" and retried[-1]["role"] == "tool"
    assert any("too long for the model" in r.getMessage() for r in caplog.records)


async def test_malformed_tool_calls_are_told_to_the_model_and_the_answer_goes_on(
    world: DiscordWorld, discord_with_model: RunDiscord, fake_openai: FakeOpenAI
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
    async with discord_with_model():
        _, [message] = await ask_in_dm(world, "how do I reset my password?")
    told = [m["content"] for m in fake_openai.messages_sent()[-1] if m.get("role") == "tool"]
    assert any("invalid arguments" in t for t in told)
    assert any("unknown tool" in t for t in told)
    assert "Traceback" not in message["content"]
    assert "According to the docs" in message["content"]


async def _apology_after_retries(
    start: StartSlack, api: FakeSlackAPI, caplog: pytest.LogCaptureFixture, **settings: object
) -> tuple[list[str], logging.LogRecord]:
    """Ask once through a bot that retries the model; what the asker saw and the log line."""
    h = await start(**settings)
    try:
        with caplog.at_level(logging.ERROR, logger="bot.responder"):
            failed = await ask_slack(h, api, "how do I reset my password?")
    finally:
        await h.close()
    return failed, responder_error(caplog)


async def test_a_rate_limit_asking_to_wait_a_minute_is_an_apology_at_once_not_after_minutes(
    api: FakeSlackAPI,
    slack_with_model: StartSlack,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK would wait out a Retry-After of up to two minutes on each of its retries; past
    what an asker tolerates (20 s by default) the request is not retried at all."""
    fake_openai.fail_next(429, times=4, retry_after_ms=60_000)
    failed, record = await _apology_after_retries(slack_with_model, api, caplog)  # 3 retries
    assert failed == [texts.ERROR_MODEL_UNAVAILABLE]
    assert len(fake_openai.requests) == 1  # asked once, not retried after 60 s three times
    assert "rate limited and asked to wait 60 s" in record.getMessage() and not record.exc_info


async def test_retries_that_together_wait_too_long_end_in_an_apology(
    api: FakeSlackAPI,
    slack_with_model: StartSlack,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each Retry-After is short enough to wait out, but one request (its tries and waits)
    may take only one timeout plus the longest wait: 0.2 + 0.5 s here, where three waits of
    0.4 s would come first."""
    fake_openai.fail_next(429, times=4, retry_after_ms=400)
    failed, record = await _apology_after_retries(
        slack_with_model,
        api,
        caplog,
        openai_timeout=0.2,
        openai_max_retry_wait=0.5,
        openai_max_retries=3,
    )
    assert failed == [texts.ERROR_MODEL_TIMEOUT]
    assert len(fake_openai.requests) < 4  # the last retry was never sent
    assert "did not start answering in time" in record.getMessage() and not record.exc_info
