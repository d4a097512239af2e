"""End-to-end: signed Events API requests to the real bolt app, real Responder, real storage."""

from __future__ import annotations

import asyncio
import json

from storage import memories
from storage.db import Database
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness
from tests.fakes.slack_sender import (
    app_mention,
    message_deleted,
    message_edited,
    new_ts,
    thread_reply,
)

__all__ = ["api", "harness", "kb_uri"]
BOT = DEFAULT_BOT_USER


def answers(api: FakeSlackAPI, channel: str = "C0000001") -> list:
    return api.posted(channel)


async def test_mention_answered_once_in_thread_despite_retry_and_message_twin(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    ts = new_ts()
    mention = app_mention(text=f"<@{BOT}> how do I reset my password?", ts=ts)
    twin = app_mention(
        text=f"<@{BOT}> how do I reset my password?",
        ts=ts,
        event_type="message",
        channel_type="channel",
    )
    async with harness.sender() as sender:
        first = await sender.event(mention)
        retry = await sender.event(mention, retry_num=1)
        second = await sender.event(twin)
    assert (first.status, retry.status, second.status) == (200, 200, 200)
    await api.wait_for(lambda: [m for m in answers(api) if not m.streaming])
    await harness.bot.wait_idle()
    posted = answers(api)
    assert len(posted) == 1
    answer = posted[0]
    assert answer.thread_ts == ts
    assert "Reset password" in answer.text
    assert any(b.get("block_id") == "sb_feedback" for b in answer.blocks)


async def test_thread_follow_up_without_mention_uses_earlier_turns(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    root = new_ts()
    async with harness.sender() as sender:
        await sender.event(app_mention(text=f"<@{BOT}> how do I reset my password?", ts=root))
        await api.wait_for(lambda: len(answers(api)) == 1)
        await harness.bot.wait_idle()
        follow = app_mention(
            text="and when does the reset link expire?",
            thread_ts=root,
            event_type="message",
            channel_type="channel",
        )
        await sender.event(follow)
        # an unrelated thread the bot never joined is ignored
        other = app_mention(
            text="random chatter", thread_ts=new_ts(), event_type="message", channel_type="channel"
        )
        await sender.event(other)
        await api.wait_for(lambda: len(answers(api)) == 2)
        await harness.bot.wait_idle()
    assert all(m.thread_ts == root for m in answers(api))
    session = f"slack:T0000001:C0000001:{root}"
    turns = await memories.load_recent(sqlite_db, session_id=session, limit=10)
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
    assert "expire" in turns[2].content


async def test_dm_answered_and_bot_messages_ignored(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    async with harness.sender() as sender:
        dm = app_mention(
            text="when are invoices sent?",
            channel="D0000001",
            event_type="message",
            channel_type="im",
        )
        from_bot = app_mention(
            text="I am another bot",
            channel="D0000001",
            event_type="message",
            channel_type="im",
            extra={"bot_id": "BOTHER", "subtype": "bot_message"},
        )
        own = app_mention(
            text="my own echo",
            channel="D0000001",
            event_type="message",
            channel_type="im",
            user=BOT,
        )
        for body in (dm, from_bot, own):
            assert (await sender.event(body)).status == 200
        await api.wait_for(lambda: answers(api, "D0000001"))
        await harness.bot.wait_idle()
        await asyncio.sleep(0.1)
    posted = answers(api, "D0000001")
    assert len(posted) == 1
    assert posted[0].thread_ts is None  # DMs are answered directly
    assert "first day of every month" in posted[0].text


async def test_an_edit_is_reanswered_and_deleting_the_question_takes_every_version(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    ts = new_ts()
    async with harness.sender() as sender:
        await sender.event(
            app_mention(
                text="when are invoices sent?",
                ts=ts,
                channel="D0000001",
                event_type="message",
                channel_type="im",
            )
        )
        await api.wait_for(lambda: len(answers(api, "D0000001")) == 1)
        await harness.bot.wait_idle()
        edit = message_edited(
            channel="D0000001",
            original={"ts": ts, "text": "when are invoices sent?"},
            text="how do I reset my password?",
            channel_type="im",
        )
        deleted = message_deleted(
            channel="D0000001",
            deleted={"type": "message", "user": "UHUMAN001", "text": "x", "ts": ts},
            channel_type="im",
        )
        assert (await sender.event(edit)).status == 200
        await api.wait_for(lambda: len(answers(api, "D0000001")) == 2)
        await harness.bot.wait_idle()
        session = "slack:T0000001:D0000001"
        turns = await memories.load_recent(sqlite_db, session_id=session, limit=10)
        assert [t.content for t in turns if t.role == "user"] == [
            "when are invoices sent?",
            "how do I reset my password?",
        ]  # the edited question got its own answer
        answered = {m.ts for m in answers(api, "D0000001")}
        assert (await sender.event(deleted)).status == 200
        await harness.bot.wait_idle()
    # Deleting the question takes every version of it: both turns, both answers.
    assert answers(api, "D0000001") == []
    assert {c.params["ts"] for c in api.calls_to("chat.delete")} == answered
    assert await memories.load_recent(sqlite_db, session_id=session, limit=10) == []


async def test_url_verification_handshake(harness: SlackHarness, api: FakeSlackAPI) -> None:
    async with harness.sender() as sender:
        body = {"token": "legacy", "challenge": "c-123", "type": "url_verification"}
        response = await sender.post_raw(json.dumps(body), content_type="application/json")
    assert response.status == 200 and "c-123" in response.text
    assert not api.posted()


async def test_in_a_shared_thread_only_people_who_asked_the_bot_are_answered_unmentioned(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    """A teammate talking in the thread is not asking the bot; mentioning it makes them one
    of its askers there."""
    root = new_ts()
    async with harness.sender() as sender:

        async def say(text: str, user: str) -> None:
            await sender.event(thread_reply(text=text, thread_ts=root, user=user))
            await harness.bot.wait_idle()

        await sender.event(app_mention(text=f"<@{BOT}> how do I reset my password?", ts=root))
        await api.wait_for(lambda: len(answers(api)) == 1)
        await harness.bot.wait_idle()
        await say("I had the same problem with my password last week", "UTEAMMATE")
        await say("when are invoices sent?", "UHUMAN001")  # the asker, unmentioned
        await api.wait_for(lambda: len(answers(api)) == 2)
        await asyncio.sleep(0.3)
        assert len(answers(api)) == 2  # the teammate got no answer
        await say(f"<@{BOT}> how long does the reset link last?", "UTEAMMATE")
        await api.wait_for(lambda: len(answers(api)) == 3)
        await say("and how do I get a refund?", "UTEAMMATE")  # now one of its askers
        await api.wait_for(lambda: len(answers(api)) == 4)
        await harness.bot.wait_idle()
