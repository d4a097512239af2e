"""Streaming answers (chat.startStream/appendStream/stopStream) and the chat.update fallback,
driven by scripted model answers from the OpenAI fake through the real openai client."""

from __future__ import annotations

import itertools

from adapters.slack.render import MAX_BLOCKS, MESSAGE_TEXT_LIMIT, SECTION_LIMIT
from bot import texts
from storage import memories
from storage.db import Database
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, ToolCall, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, MARKDOWN_LIMIT, FakeMessage, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "fake_openai", "kb_uri"]
BOT = DEFAULT_BOT_USER


async def _start(
    api: FakeSlackAPI,
    db: Database,
    url: str,
    kb: str,
    model: FakeOpenAI,
    openai_timeout: float = 30.0,
    **options: object,
) -> SlackHarness:
    settings = slack_settings(
        url,
        kb,
        api,
        openai_api_key=FAKE_API_KEY,
        openai_base_url=model.base_url,
        openai_model="fake-gpt",
        openai_max_retries=0,
        openai_timeout=openai_timeout,
    )
    return await SlackHarness.start(api, settings, db=db, **options)


def long_answer(size: int = 10_000) -> str:
    parts, i = [], 0
    while sum(map(len, parts)) < size + 500:
        parts.append(f"### Step {i}\nRun **this** carefully (see [the guide](https://d.io/{i})).\n")
        parts.append("```python\n" + "\n".join(f"print('line {i}-{j}')" for j in range(30)))
        parts.append("\n```\n")
        i += 1
    text = "".join(parts)
    # end exactly at ``size`` characters, after a complete fence
    cut = text.rfind("\n```\n", 0, size) + len("\n```\n")
    return text[:cut] + "x" * (size - cut)


def _script_answer(model: FakeOpenAI, content: str, *, chunk_chars: int = 400) -> None:
    model.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "steps"})]),
        Turn(content=content, chunk_chars=chunk_chars),
    )


def _fences_balanced(text: str) -> bool:
    return sum(1 for line in text.split("\n") if line.strip().startswith("```")) % 2 == 0


async def _answer_in_thread(
    api: FakeSlackAPI,
    db: Database,
    url: str,
    kb: str,
    model: FakeOpenAI,
    text: str,
    *,
    chunk_chars: int = 400,
    **options: object,
) -> str:
    """A mention in a channel whose answer is ``text``; returns the thread once it is answered
    (the last message carries the buttons) and the bot is idle."""
    _script_answer(model, text, chunk_chars=chunk_chars)
    h = await _start(api, db, url, kb, model, **options)
    try:
        ts = new_ts()
        async with h.sender() as sender:
            await sender.event(app_mention(text=f"<@{BOT}> list the steps", ts=ts))
        await api.wait_for(
            lambda: any(
                b.get("block_id") == "sb_human"
                for m in api.posted()
                if not m.streaming
                for b in m.blocks
            ),
            timeout=20,
        )
        await h.bot.wait_idle()
    finally:
        await h.close()
    return ts


def _within_slack_limits(message: FakeMessage) -> bool:
    return (
        len(message.text) <= (MARKDOWN_LIMIT if message.streamed else MESSAGE_TEXT_LIMIT)
        and len(message.blocks) <= MAX_BLOCKS
        and all(
            len(block["text"]["text"]) <= SECTION_LIMIT
            for block in message.blocks
            if block["type"] == "section"
        )
    )


async def test_streamed_answer_in_thread_has_full_text_and_buttons(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    text = long_answer()
    assert len(text) == 10_000
    ts = await _answer_in_thread(api, sqlite_db, sqlite_url, kb_uri, fake_openai, text)
    [message] = api.posted()
    assert message.streamed and message.thread_ts == ts
    stored = await memories.load_recent(
        sqlite_db, session_id=f"slack:T0000001:C0000001:{ts}", limit=2
    )
    assert message.text == stored[-1].content  # every character streamed, in order
    assert text in message.text
    assert len(api.calls_to("chat.startStream")) == 1
    assert all(len(c.params["markdown_text"]) <= 4000 for c in api.calls_to("chat.appendStream"))
    assert [b.get("block_id") for b in message.blocks][-2:] == ["sb_feedback", "sb_human"]


async def test_fallback_updates_then_splits_within_limits(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    api.unsupported.add("chat.startStream")
    text = long_answer()
    ts = await _answer_in_thread(
        api, sqlite_db, sqlite_url, kb_uri, fake_openai, text, chunk_chars=200
    )
    posted = api.posted()
    assert len(posted) >= 4 and all(m.thread_ts == ts and not m.streamed for m in posted)
    for message in posted:
        assert _within_slack_limits(message)
        for block in message.blocks:
            if block["type"] == "section":
                assert _fences_balanced(block["text"]["text"])
    joined = "\n".join(m.text for m in posted)
    for i in range(10):
        assert joined.count(f"print('line {i}-29')") == 1
    assert "<https://d.io/0|the guide>" in joined  # Markdown link -> mrkdwn


async def test_an_answer_longer_than_one_streamed_message_goes_on_in_the_next(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """A streamed message holds 12,000 characters of Markdown: Slack refused the append past
    that (msg_too_long) and the asker got the apology under a cut answer."""
    text = long_answer(28_000)
    ts = await _answer_in_thread(
        api, sqlite_db, sqlite_url, kb_uri, fake_openai, text, chunk_chars=1000
    )
    posted = api.posted()
    assert len(posted) >= 3 and all(m.streamed and m.thread_ts == ts for m in posted)
    assert all(_within_slack_limits(m) and _fences_balanced(m.text) for m in posted)
    assert texts.ERROR_GENERIC not in [m.text for m in posted]
    joined = "\n".join(m.text for m in posted)
    for i in range(text.count("### Step")):
        assert joined.count(f"print('line {i}-29')") == 1
    assert [b.get("block_id") for b in posted[-1].blocks][-2:] == ["sb_feedback", "sb_human"]
    assert all(not m.blocks for m in posted[:-1])


async def test_a_message_slack_refuses_as_too_long_is_cut_smaller_not_apologised_for(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """Slack counts length its own way (multi-byte text, entities): when it answered
    msg_too_long for a part that fits by our count, the asker got the apology instead."""
    api.unsupported.add("chat.startStream")
    api.error("chat.postMessage", "msg_too_long", after=1)  # the answer's second part
    text = long_answer(6_000)
    await _answer_in_thread(api, sqlite_db, sqlite_url, kb_uri, fake_openai, text)
    posted = api.posted()
    assert texts.ERROR_GENERIC not in [m.text for m in posted]
    assert len(posted) >= 4 and all(_within_slack_limits(m) for m in posted)
    assert all(_fences_balanced(m.text) for m in posted)
    joined = "\n".join(m.text for m in posted)
    for i in range(text.count("### Step")):
        assert joined.count(f"print('line {i}-29')") == 1
    assert [b.get("block_id") for b in posted[-1].blocks][-2:] == ["sb_feedback", "sb_human"]


async def test_fallback_edits_at_most_about_once_a_second_per_channel(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """Not in a thread (a DM): post + chat.update, throttled to the channel's limit."""
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "password"})]),
        Turn(content="word " * 60, chunk_chars=5, chunk_delay=0.04),  # ~2.4 s of streaming
    )
    h = await _start(api, sqlite_db, sqlite_url, kb_uri, fake_openai, update_interval=1.0)
    try:
        async with h.sender() as sender:
            await sender.event(
                app_mention(
                    text="tell me", channel="D0000009", event_type="message", channel_type="im"
                )
            )
        await api.wait_for(
            lambda: any(
                m.blocks and m.blocks[-1].get("block_id") == "sb_human"
                for m in api.posted("D0000009")
            ),
            timeout=15,
        )
        await h.bot.wait_idle()
    finally:
        await h.close()
    assert not api.calls_to("chat.startStream")
    [message] = api.posted("D0000009")
    assert message.text.strip() == ("word " * 60).strip()
    sends = [c.at for c in api.calls if c.method in ("chat.postMessage", "chat.update")]
    intermediate = sends[:-1]  # the final update is always sent
    assert len(intermediate) >= 2
    gaps = [b - a for a, b in itertools.pairwise(intermediate)]
    assert all(g >= 0.9 for g in gaps), gaps


async def test_an_answer_ending_in_whitespace_is_streamed_once(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """The final text is the streamed text stripped. When the trailing newline had already been
    streamed, the final no longer started with what was shown: the stream was closed as it was
    and the same answer posted again under it."""
    answer = "Open Settings, choose Security and click Reset password [1].\n\n"
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset"})]),
        # The last piece carries words and the newlines: it is streamed before the final.
        Turn(content=answer, chunk_chars=40, chunk_delay=0.15),
    )
    h = await _start(api, sqlite_db, sqlite_url, kb_uri, fake_openai)
    try:
        ts = new_ts()
        async with h.sender() as sender:
            await sender.event(app_mention(text=f"<@{BOT}> how do I reset my password?", ts=ts))
        await api.wait_for(lambda: api.calls_to("chat.stopStream"))
        await h.bot.wait_idle()
    finally:
        await h.close()
    [message] = api.posted()
    assert message.streamed and not message.streaming and message.thread_ts == ts
    assert message.text.strip() == answer.strip()
    assert [b.get("block_id") for b in message.blocks][-2:] == ["sb_feedback", "sb_human"]


async def test_an_answer_stalling_after_two_streamed_messages_leaves_only_the_apology(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # The model streams more than one streamed message holds, then goes silent past the
    # timeout: the apology took the last streamed message's place, and the first one kept
    # the half answer above it for good.
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "steps"})]),
        Turn(
            content=long_answer(28_000), chunk_chars=1000, chunk_delay=0.3, stall_after=15, stall=5
        ),
    )
    h = await _start(api, sqlite_db, sqlite_url, kb_uri, fake_openai, openai_timeout=1.5)
    try:
        async with h.sender() as sender:
            await sender.event(app_mention(text=f"<@{BOT}> list the steps", ts=new_ts()))
        await api.wait_for(lambda: len(api.calls_to("chat.startStream")) == 2, timeout=20)
        await api.wait_for(
            lambda: texts.ERROR_MODEL_TIMEOUT in [m.text for m in api.posted()], timeout=20
        )
        await h.bot.wait_idle()
    finally:
        await h.close()
    assert [m.text for m in api.posted()] == [texts.ERROR_MODEL_TIMEOUT]
