"""What the asker sees on Slack while a slow model thinks, and when Slack expires a stream:
real bolt and slack_sdk against the loopback Slack fake, answers from the OpenAI fake through
the real openai client, and (for a crash) the real `supportbot serve` process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot import texts
from storage import events
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, RESPONSE_URL, FakeMessage, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SIGNING_SECRET, SlackHarness
from tests.fakes.slack_sender import SlackSender, app_mention, new_ts
from tests.inbox_support import ledger
from tests.model_support import start_slack_with_model
from tests.process_support import events_url, kill, mention, serve, slack_env

__all__ = ["api", "fake_openai", "kb_uri"]
pytestmark = pytest.mark.timeout(90)
ANSWER = "To reset your password, open Settings and choose Reset password."
STEPS = "".join(f"Step {i}: open Settings and check item {i}.\n" for i in range(12))


@pytest.fixture
async def harness(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> AsyncIterator[SlackHarness]:
    # A short progress delay keeps the tests quick; the model below is slower than it.
    h = await start_slack_with_model(
        api, sqlite_db, sqlite_url, kb_uri, fake_openai, openai_max_retries=0, progress_after=0.3
    )
    try:
        yield h
    finally:
        await h.close()


async def _ask(h: SlackHarness, event: dict[str, Any]) -> None:
    async with h.sender() as sender:
        assert (await sender.event(event)).status == 200
    await h.bot.wait_idle(timeout=30)


def _buttons(message: FakeMessage) -> list[str]:
    return [e.get("action_id", "") for b in message.blocks for e in b.get("elements") or []]


async def test_a_slow_answer_in_a_thread_begins_its_own_message_which_becomes_the_answer(
    api: FakeSlackAPI, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    # The model takes 1.5 s before its first word. A mention in a channel used to show
    # nothing at all meanwhile (only Assistant threads had a status); now the answer's own
    # streamed message begins once the core finds the answer slow, and the words go into it.
    fake_openai.queue(Turn(content=ANSWER, delay=1.5))
    ts = new_ts()
    await _ask(harness, app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset it?", ts=ts))
    first = api.calls_to("chat.startStream")[0]
    assert not first.params.get("markdown_text")  # begun before the model said anything
    [answer] = api.posted()
    assert answer.thread_ts == ts and not answer.streaming
    assert ANSWER in answer.text and "sb_helpful" in _buttons(answer)
    assert len(api.calls_to("chat.startStream")) == 1 and not api.calls_to("chat.postMessage")


async def test_a_slow_answer_in_a_dm_posts_a_note_that_becomes_the_answer(
    api: FakeSlackAPI, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    # A top-level DM cannot stream: a short note is posted, and the answer replaces it.
    fake_openai.queue(Turn(content=ANSWER, delay=1.5))
    dm = app_mention(
        text="how do I reset it?", channel="D0000001", event_type="message", channel_type="im"
    )
    await _ask(harness, dm)
    [note] = api.calls_to("chat.postMessage")
    assert note.params["text"] == texts.SLACK_ANSWER_COMING
    [answer] = api.posted("D0000001")
    assert "Reset password" in answer.text and texts.SLACK_ANSWER_COMING not in answer.text
    assert "sb_helpful" in _buttons(answer)


async def test_a_slow_answer_that_fails_leaves_one_apology_and_no_empty_message(
    api: FakeSlackAPI, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    # The model drops the connection after its long silence: the message begun for the
    # answer carries the apology; nothing empty or still streaming is left in the thread.
    fake_openai.queue(Turn(content=ANSWER, delay=1.0, abort_after=0))
    ts = new_ts()
    await _ask(harness, app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset it?", ts=ts))
    [reply] = api.posted()
    assert reply.text.strip() and not reply.streaming
    assert "Sorry" in reply.text or "sorry" in reply.text


async def test_fast_answers_cost_no_progress_calls(
    api: FakeSlackAPI, harness: SlackHarness
) -> None:
    # The default model answers at once: each answer is one message (a stream started with its
    # first words, or a post), as before; no note, no empty stream, no deletion.
    stamps = [new_ts() for _ in range(5)]
    async with harness.sender() as sender:
        for ts in stamps:
            event = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset it?", ts=ts)
            assert (await sender.event(event)).status == 200
    await harness.bot.wait_idle(timeout=30)
    assert all(c.params.get("markdown_text") for c in api.calls_to("chat.startStream"))
    posts = api.calls_to("chat.postMessage")
    assert all(c.params["text"] != texts.SLACK_ANSWER_COMING for c in posts)
    assert not api.calls_to("chat.delete")
    assert len(api.posted()) == 5 and not [m for m in api.posted() if m.streaming]


async def test_a_stream_slack_expired_still_delivers_the_whole_answer(
    api: FakeSlackAPI, sqlite_db: Database, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    # Slack ends a stream about five minutes after it began; the rest of the answer was then
    # refused (message_not_in_streaming_state) and the asker got an apology in place of the
    # answer. Now the partial message goes and the finished answer is posted whole.
    fake_openai.queue(Turn(content=STEPS, chunk_chars=20, stall_after=3, stall=1.5))
    ts = new_ts()
    async with harness.sender() as sender:
        event = app_mention(text=f"<@{DEFAULT_BOT_USER}> list the steps", ts=ts)
        assert (await sender.event(event)).status == 200
    await api.wait_for(lambda: [m for m in api.posted() if m.streaming and m.text], timeout=20)
    assert api.expire_streams() == 1
    await harness.bot.wait_idle(timeout=30)
    [answer] = api.posted()
    assert answer.thread_ts == ts and not answer.streamed
    assert "Step 0" in answer.text and "Step 11" in answer.text
    assert "sb_helpful" in _buttons(answer)
    assert [m for m in api.messages.values() if m.deleted and m.streamed]  # the partial one
    [row] = (await ledger(sqlite_db, "slack")).values()
    assert row.status == events.ANSWERED


def _slow_first_answer(env: dict[str, str], model: FakeOpenAI) -> dict[str, str]:
    """``env`` for a process whose first answer takes 30 s and is slow after 0.5 s."""
    model.queue(Turn(content=ANSWER, delay=30.0))
    return {**env, "SUPPORTBOT_PROGRESS_AFTER": "0.5"}


async def test_a_process_killed_while_a_slow_answer_began_leaves_no_stray_message(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # `serve` begins the slow answer's message, then is killed (SIGKILL). The process that
    # takes the work over removes that begun message as it would half an answer, and answers
    # once.
    async with FakeOpenAI() as model:
        env = _slow_first_answer(slack_env(sqlite_url, kb_uri, model, api), model)
        proc = await serve(env, "--workers", "0")
        try:
            ts = new_ts()
            await mention(env, ts)
            [begun] = await api.wait_for(lambda: api.posted(), timeout=20)
            assert begun.streaming and not begun.text
            await kill(proc)
            proc = await serve(env, "--workers", "0")
            await api.wait_for(
                lambda: [m for m in api.posted() if not m.streaming and m.text], timeout=40
            )
            await asyncio.sleep(1.5)
            [answer] = api.posted()
            assert answer.thread_ts == ts and "Reset password" in answer.text
            assert api.messages[(begun.channel, begun.ts)].deleted
        finally:
            await kill(proc)


async def test_a_slow_answer_to_ask_shows_a_private_note_that_the_answer_replaces(
    api: FakeSlackAPI, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    # /ask answers privately through its response_url; with a slow model the asker used to
    # see nothing at all until the answer came.
    fake_openai.queue(Turn(content=ANSWER, delay=1.5))
    async with harness.sender() as sender:
        await sender.command("/ask", "how do I reset it?", response_url=api.response_url("slow"))
        await api.wait_for(lambda: len(api.responses.get("slow", [])) >= 2, timeout=30)
    await harness.bot.wait_idle(timeout=30)
    note, answer = api.responses["slow"]
    assert note["text"] == texts.SLACK_ANSWER_COMING and note["response_type"] == "ephemeral"
    assert "replace_original" not in note
    assert ANSWER in answer["text"] and answer["replace_original"] is True


async def test_a_fast_answer_to_ask_comes_without_a_note(
    api: FakeSlackAPI, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(Turn(content=ANSWER))
    async with harness.sender() as sender:
        await sender.command("/ask", "how do I reset it?", response_url=api.response_url("fast"))
        await api.wait_for(lambda: api.responses.get("fast"), timeout=30)
    await harness.bot.wait_idle(timeout=30)
    [answer] = api.responses["fast"]
    assert ANSWER in answer["text"] and "replace_original" not in answer


async def test_ask_killed_after_its_note_is_answered_in_the_notes_place_after_restart(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # `/ask` showed its private "Looking into it…" note, then `serve` was SIGKILLed. The next
    # process answered as a new private message: the note stayed above the answer for good.
    async with FakeOpenAI() as model:
        env = _slow_first_answer(slack_env(sqlite_url, kb_uri, model, api), model)
        proc = await serve(env, "--workers", "0")
        try:
            async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
                url = api.response_url("ask")
                sent = await sender.command("/ask", "how do I reset it?", response_url=url)
                assert sent.status == 200
            await api.wait_for(lambda: api.responses.get("ask"), timeout=20)
            await asyncio.sleep(1.0)  # the note recorded, the model still thinking
            await kill(proc)
            proc = await serve(env, "--workers", "0")
            await api.wait_for(lambda: len(api.responses["ask"]) >= 2, timeout=30)
            await asyncio.sleep(1.5)
        finally:
            await kill(proc)
    note, answer = api.responses["ask"]
    assert note["text"] == texts.SLACK_ANSWER_COMING
    assert "Reset password" in answer["text"] and answer["replace_original"] is True
    [row] = (await ledger(sqlite_db, "slack")).values()
    assert (row.status, row.attempts) == (events.ANSWERED, 2)


async def test_a_slow_ask_that_fails_is_apologised_for_in_its_notes_place(
    api: FakeSlackAPI, harness: SlackHarness, fake_openai: FakeOpenAI
) -> None:
    # The note is shown, then the answer cannot be delivered (the response_url refuses it and
    # chat.postEphemeral fails past slack_sdk's retries): the apology replaces the note.
    fake_openai.queue(Turn(content=ANSWER, delay=1.5))
    api.fail(RESPONSE_URL, status=404, after=1)
    api.fail("chat.postEphemeral", status=500, times=3)
    async with harness.sender() as sender:
        await sender.command("/ask", "how do I reset it?", response_url=api.response_url("fails"))
        await api.wait_for(lambda: len(api.responses.get("fails", [])) >= 2, timeout=30)
    await harness.bot.wait_idle(timeout=30)
    note, apology = api.responses["fails"]
    assert note["text"] == texts.SLACK_ANSWER_COMING
    assert apology["text"] == texts.ERROR_GENERIC and apology["replace_original"] is True
