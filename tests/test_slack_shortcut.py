""" "Ask supportbot" on a message (the Slack message shortcut), through real slack_bolt and
slack_sdk against the fake Slack: answered in the message's thread, once, for its author."""

from __future__ import annotations

import asyncio
import json

import pytest

from adapters.slack.delivery import CREATE_RETRY_DELAYS
from adapters.slack.manifest import build_manifest
from adapters.slack.render import markdown_to_mrkdwn
from bot import texts
from storage import events, memories
from storage.db import Database
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, message_shortcut, new_ts
from tests.inbox_support import ledger, model_runs

__all__ = ["api", "fake_openai", "harness", "kb_uri"]
pytestmark = pytest.mark.timeout(90)
BOT = DEFAULT_BOT_USER
CHANNEL = "C0000001"
AUTHOR = "UASKER001"  # wrote the question, never mentioned the bot
HELPER = "UHELPER01"  # pointed the bot at it
NOT_IN_CHANNEL = markdown_to_mrkdwn(texts.SLACK_ASK_MESSAGE_NOT_IN_CHANNEL)


def _answers(api: FakeSlackAPI) -> list:
    """The bot's finished messages (people's messages in the fake carry their user)."""
    return [m for m in api.posted() if m.user is None and not m.streaming]


def _notes(api: FakeSlackAPI, key: str) -> list[str]:
    return [r["text"] for r in api.responses.get(key, [])]


async def test_a_question_nobody_addressed_is_answered_in_its_thread_for_its_author(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    h = await SlackHarness.start(api, slack_settings(any_db_url, kb_uri, api), db=db)
    try:
        question = api.add_user_message(CHANNEL, "how do I reset my password?", user=AUTHOR)
        async with h.sender() as sender:
            click = message_shortcut(
                {"user": AUTHOR, "text": question.text, "ts": question.ts},
                user=HELPER,
                response_url=api.response_url("click"),
            )
            acked = await sender.interaction(click)
            assert acked.status == 200 and acked.elapsed < 1.0
            await api.wait_for(lambda: _answers(api))
            await h.bot.wait_idle()
            [answer] = _answers(api)
            assert answer.thread_ts == question.ts  # in the question's thread
            assert "Reset password" in answer.text

            # The question's author, not the clicker, is the asker: their follow-up in the
            # thread is answered without a mention; the clicker's chatter there is not.
            def in_thread(text: str, user: str) -> dict:
                return app_mention(
                    text=text, event_type="message", user=user, thread_ts=question.ts
                )

            await sender.event(in_thread("and where can I download past invoices?", AUTHOR))
            await api.wait_for(lambda: len(_answers(api)) == 2)
            await sender.event(in_thread("I had that too last week", HELPER))
            await asyncio.sleep(0.5)
            await h.bot.wait_idle()
    finally:
        await h.close()
    assert len(_answers(api)) == 2
    assert "Billing page" in _answers(api)[1].text
    assert not api.responses.get("click")  # nothing went wrong: no private note
    session = f"slack:T0000001:{CHANNEL}:{question.ts}"
    rows = await memories.load_recent(db, session_id=session, limit=10)
    asked = sorted((r for r in rows if r.role == "user"), key=lambda r: r.id)
    assert asked[0].content == "how do I reset my password?"
    assert asked[0].tool_metadata[memories.AUTHOR_KEY] == AUTHOR
    assert (
        await memories.question_author(
            db, session_id=session, message_id=question.ts, roles=("user",)
        )
        == AUTHOR
    )  # the thread's asker (may clear it with /forget)
    [row] = [r for r in (await ledger(db, "slack")).values() if r.event_id.endswith(question.ts)]
    assert row.event_id == f"msg:T0000001:{CHANNEL}:{question.ts}"
    assert row.status == events.ANSWERED


async def test_a_double_click_answers_once_and_tells_the_second_click(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    settings = slack_settings(
        any_db_url, kb_uri, api, openai_api_key=FAKE_API_KEY, openai_base_url=fake_openai.base_url
    )
    h = await SlackHarness.start(api, settings, db=db)
    try:
        question = api.add_user_message(CHANNEL, "when are invoices sent?", user=AUTHOR)
        message = {"user": AUTHOR, "text": question.text, "ts": question.ts}
        async with h.sender() as sender:
            first, second = await asyncio.gather(
                sender.interaction(message_shortcut(message, response_url=api.response_url("one"))),
                sender.interaction(message_shortcut(message, response_url=api.response_url("two"))),
            )
            assert first.status == second.status == 200
            await api.wait_for(lambda: _answers(api))
            await api.wait_for(lambda: api.responses.get("one") or api.responses.get("two"))
            await h.bot.wait_idle()
            await asyncio.sleep(0.3)
    finally:
        await h.close()
    assert len(_answers(api)) == 1
    assert model_runs(fake_openai) == ["when are invoices sent?"]
    notes = _notes(api, "one") + _notes(api, "two")
    assert notes == [texts.ASK_MESSAGE_ALREADY]


async def test_a_message_already_answered_as_a_mention_is_not_answered_again(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    ts = new_ts()
    async with harness.sender() as sender:
        text = f"<@{BOT}> where can I download past invoices?"
        await sender.event(app_mention(text=text, ts=ts, user=AUTHOR))
        await api.wait_for(lambda: _answers(api))
        await harness.bot.wait_idle()
        click = message_shortcut(
            {"user": AUTHOR, "text": text, "ts": ts}, response_url=api.response_url("late")
        )
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.responses.get("late"))
        await harness.bot.wait_idle()
    assert len(_answers(api)) == 1
    assert _notes(api, "late") == [texts.ASK_MESSAGE_ALREADY]


async def test_a_message_in_a_thread_is_answered_in_that_thread(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    root = api.add_user_message(CHANNEL, "release day!", user="UOTHER001")
    reply = api.add_user_message(
        CHANNEL, "how do I reset my password?", user=AUTHOR, thread_ts=root.ts
    )
    message = {"user": AUTHOR, "text": reply.text, "ts": reply.ts, "thread_ts": root.ts}
    async with harness.sender() as sender:
        await sender.interaction(message_shortcut(message, response_url=api.response_url("t")))
        await api.wait_for(lambda: _answers(api))
        await harness.bot.wait_idle()
    [answer] = _answers(api)
    assert answer.thread_ts == root.ts
    session = f"slack:T0000001:{CHANNEL}:{root.ts}"
    assert await memories.count_memories(sqlite_db, session_id=session) == 2


@pytest.mark.parametrize(
    ("message", "note"),
    [
        ({"bot_id": "BOTHER001", "text": "Deploy finished"}, texts.ASK_MESSAGE_FROM_BOT),
        ({"user": BOT, "text": "an answer of mine"}, texts.ASK_MESSAGE_FROM_BOT),
        ({"user": AUTHOR, "text": "  "}, texts.ASK_MESSAGE_EMPTY),
        (
            {"user": AUTHOR, "text": "", "files": [{"id": "F1", "name": "log.png"}]},
            texts.ASK_MESSAGE_ONLY_ATTACHMENTS,
        ),
    ],
)
async def test_what_cannot_be_asked_is_told_to_the_clicker_alone(
    harness: SlackHarness, api: FakeSlackAPI, message: dict, note: str
) -> None:
    async with harness.sender() as sender:
        click = message_shortcut({**message, "ts": new_ts()}, response_url=api.response_url("n"))
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.responses.get("n"))
        await harness.bot.wait_idle()
    assert _notes(api, "n") == [note]
    assert api.responses["n"][0]["response_type"] == "ephemeral"
    assert not api.posted()


@pytest.mark.parametrize("channel", ["C0000009", "G0000009"])
async def test_a_channel_the_bot_is_not_in_tells_the_clicker_how_to_add_it(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database, channel: str
) -> None:
    api.outside.add(channel)
    question = api.add_user_message(channel, "how do I reset my password?", user=AUTHOR)
    message = {"user": AUTHOR, "text": question.text, "ts": question.ts}
    async with harness.sender() as sender:
        click = message_shortcut(message, channel=channel, response_url=api.response_url("out"))
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.responses.get("out"))
        await harness.bot.wait_idle()
    assert _notes(api, "out") == [NOT_IN_CHANNEL]
    assert not _answers(api)
    session = f"slack:T0000001:{channel}:{question.ts}"
    assert await memories.count_memories(sqlite_db, session_id=session) == 0  # never asked


async def test_removed_between_the_look_and_the_post_still_tells_the_clicker(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    question = api.add_user_message(CHANNEL, "how do I reset my password?", user=AUTHOR)
    api.error("chat.startStream", "not_in_channel")
    api.error("chat.postMessage", "not_in_channel")
    message = {"user": AUTHOR, "text": question.text, "ts": question.ts}
    async with harness.sender() as sender:
        await sender.interaction(message_shortcut(message, response_url=api.response_url("r")))
        await api.wait_for(lambda: api.responses.get("r"))
        await harness.bot.wait_idle()
    assert _notes(api, "r") == [NOT_IN_CHANNEL]
    assert not _answers(api)


async def test_a_malformed_shortcut_is_refused(harness: SlackHarness) -> None:
    click = message_shortcut({"user": AUTHOR, "text": 42, "ts": new_ts()})
    async with harness.sender() as sender:
        refused = await sender.interaction(click)
    assert refused.status == 400


def test_the_manifest_offers_the_shortcut() -> None:
    manifest = build_manifest("https://bot.example.com")
    [shortcut] = manifest["features"]["shortcuts"]
    assert shortcut == {
        "name": "Ask supportbot",
        "type": "message",
        "callback_id": "ask_supportbot",
        "description": "Answer this message's question in its thread",
    }
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    json.dumps(manifest)  # serialisable as is


async def test_another_attempt_keeps_the_bots_older_replies_in_a_busy_thread(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """The question is an old message of a thread where the bot has answered since: when the
    first attempt meets a passing fault, the next one removes only what was posted after the
    click, never the bot's earlier answer in that thread."""
    settings = slack_settings(sqlite_url, kb_uri, api, lease_seconds=1.0, recover_every=0.2)
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    h.bot.inbox.try_later_delays = (0.2, 0.2)
    try:
        root = api.add_user_message(CHANNEL, "release day!", user="UOTHER001")
        old = api.add_user_message(
            CHANNEL, "how do I reset my password?", user=AUTHOR, thread_ts=root.ts
        )
        async with h.sender() as sender:
            await sender.event(
                app_mention(
                    text=f"<@{BOT}> when are invoices sent?", user="UOTHER001", thread_ts=root.ts
                )
            )
            await api.wait_for(lambda: _answers(api))
            await h.bot.wait_idle()
            [earlier] = _answers(api)
            for method in ("chat.startStream", "chat.postMessage"):  # its first attempt
                api.fail(method, status=500, times=len(CREATE_RETRY_DELAYS) + 1)
            message = {"user": AUTHOR, "text": old.text, "ts": old.ts, "thread_ts": root.ts}
            await sender.interaction(message_shortcut(message))
            await api.wait_for(lambda: len(_answers(api)) == 2, timeout=15)
            await h.bot.wait_idle()
    finally:
        await h.close()
    assert h.bot.inbox.stats.retried == 1  # answered by a second attempt
    answers = _answers(api)
    assert earlier in answers  # still there
    assert "Reset password" in answers[1].text and answers[1].thread_ts == root.ts


async def test_a_mention_whose_answer_failed_is_answered_when_asked_about(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    # Slack refused the mention's answer: its row failed and the asker got the short note.
    # That used to count as "taken": the shortcut told the clicker so and nothing was
    # answered. A failed earlier attempt no longer blocks an explicit ask.
    ts = new_ts()
    text = f"<@{BOT}> how do I reset my password?"
    api.error("chat.startStream", "restricted_action")
    api.error("chat.postMessage", "restricted_action")
    async with harness.sender() as sender:
        await sender.event(app_mention(text=text, ts=ts, user=AUTHOR))
        await harness.bot.wait_idle()
        [row] = (await ledger(sqlite_db, "slack")).values()
        assert row.status == events.FAILED
        click = message_shortcut(
            {"user": AUTHOR, "text": text, "ts": ts}, response_url=api.response_url("again")
        )
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: [m for m in _answers(api) if "Reset password" in m.text])
        await harness.bot.wait_idle()
    assert not api.responses.get("again")  # not "already taken"
    [answer] = [m for m in _answers(api) if "Reset password" in m.text]
    assert answer.thread_ts == ts
    [row] = (await ledger(sqlite_db, "slack")).values()
    assert row.status == events.ANSWERED
