"""/ask, /forget, and the buttons under answers (feedback, hand-off, resolve, share)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select, text

from adapters.slack import render
from bot import texts
from storage import feedback, memories
from storage.db import Database
from storage.models import Base, Escalation
from tests.core_support import words_held
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, ToolCall, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeMessage, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import SlackSender, app_mention, block_action, new_ts

__all__ = ["api", "fake_openai", "harness", "kb_uri"]
BOT = DEFAULT_BOT_USER


def _as_payload_message(message: FakeMessage) -> dict[str, Any]:
    """The ``message`` Slack puts in a block_actions payload for a click on ``message``."""
    payload = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
    if message.thread_ts:
        payload["thread_ts"] = message.thread_ts
    return payload


def _button(message: FakeMessage | dict[str, Any], action_id: str) -> dict[str, Any]:
    blocks = message.blocks if isinstance(message, FakeMessage) else message["blocks"]
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button")


async def _answered(h: SlackHarness, sender: SlackSender) -> FakeMessage:
    """A question mentioning the bot in a channel, once its answer is finished."""
    await sender.event(app_mention(text=f"<@{BOT}> when are invoices sent?"))
    await h.api.wait_for(lambda: h.api.posted() and not h.api.posted()[0].streaming)
    await h.bot.wait_idle()
    [answer] = h.api.posted()
    return answer


async def test_an_ask_refusal_offers_a_human_the_way_that_works_there(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    # `/ask` answers privately, with only "Share in channel": its refusal said "Use the *Talk
    # to a human* button", which it does not have. It now says to ask by mentioning the bot,
    # whose reply (a refusal too) has that button.
    question = "How do I configure the quantum flux capacitor?"
    async with harness.sender() as sender:
        await sender.command("/ask", question, response_url=api.response_url("ask"))
        await api.wait_for(lambda: api.responses.get("ask"))
        await sender.event(app_mention(text=f"<@{BOT}> {question}"))
        await api.wait_for(lambda: api.posted() and not api.posted()[0].streaming)
        await harness.bot.wait_idle()
    [refusal] = api.responses["ask"]
    assert "mention me with your question in the channel" in refusal["text"]
    assert "button (or say" not in refusal["text"]
    assert render.ACTION_HUMAN not in json.dumps(refusal["blocks"])
    [mentioned] = api.posted()
    assert "Talk to a human" in mentioned.text and "mention me" not in mentioned.text
    assert _button(mentioned, render.ACTION_HUMAN)


async def test_ask_is_acked_before_the_answer_and_answered_ephemerally(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset"})], delay=1.0),
        Turn(content="Open Settings › Security and click **Reset password** [1]."),
    )
    settings = slack_settings(
        sqlite_url, kb_uri, api, openai_api_key=FAKE_API_KEY, openai_base_url=fake_openai.base_url
    )
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        async with h.sender() as sender:
            acked = await sender.command(
                "/ask", "how do I reset my password?", response_url=api.response_url("r1")
            )
            assert acked.status == 200 and acked.elapsed < 0.5
            assert api.responses.get("r1") is None  # the answer is not ready yet
            await api.wait_for(lambda: api.responses.get("r1"))
            await h.bot.wait_idle()
            [answer] = api.responses["r1"]
            assert answer["response_type"] == "ephemeral"
            assert "*Reset password*" in answer["text"]
            share = _button(answer, "sb_share")
            assert not api.posted()  # nothing public yet

            click = block_action(
                action_id="sb_share",
                value=share["value"],
                message=None,
                ephemeral=True,
                response_url=api.response_url("r1"),
            )
            assert (await sender.interaction(click)).status == 200
            await api.wait_for(lambda: api.posted())
            await h.bot.wait_idle()
    finally:
        await h.close()
    [public] = api.posted()
    assert "*Reset password*" in public.text and public.thread_ts is None
    assert "<@UHUMAN001> shared an answer:" in json.dumps(public.blocks)
    assert api.responses["r1"][-1] == {"delete_original": True}


async def test_ask_without_text_shows_usage_and_forget_clears_memory(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    async with harness.sender() as sender:
        await sender.command("/ask", "  ", response_url=api.response_url("u"))
        await api.wait_for(lambda: api.responses.get("u"))
        assert api.responses["u"][0]["text"].startswith("Usage:")

        await sender.command("/ask", "when are invoices sent?", response_url=api.response_url("a"))
        await api.wait_for(lambda: api.responses.get("a"))
        await harness.bot.wait_idle()
        session = "slack:T0000001:C0000001:ask-UHUMAN001"
        assert await memories.count_memories(sqlite_db, session_id=session) == 2

        await sender.command("/forget", "", response_url=api.response_url("f"))
        await api.wait_for(lambda: api.responses.get("f"))
        await harness.bot.wait_idle()
    assert await words_held(sqlite_db, session) == []
    # The reply says how a thread's memory is cleared, which a slash command cannot reach.
    forgot = api.responses["f"][0]["text"]
    assert forgot.startswith(texts.forgotten(2)) and "reply “forget” in that thread" in forgot


async def test_feedback_buttons_store_a_vote_and_thank_in_place(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    async with harness.sender() as sender:
        answer = await _answered(harness, sender)
        helpful = _button(answer, "sb_helpful")
        click = block_action(
            action_id="sb_helpful", value=helpful["value"], message=_as_payload_message(answer)
        )
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.calls_to("chat.update"))
        await harness.bot.wait_idle()
    [vote] = await feedback.list_feedback(sqlite_db)
    assert vote.value == 1 and vote.user_id == "UHUMAN001"
    assert vote.memory_id == json.loads(helpful["value"])["m"]
    ids = [b.get("block_id") for b in answer.blocks]
    assert "sb_feedback" not in ids and "sb_human" in ids  # buttons replaced by the thanks
    assert texts.FEEDBACK_THANKS_HELPFUL in json.dumps(answer.blocks)


async def test_talk_to_a_human_escalates_and_mark_resolved_closes_it(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = slack_settings(sqlite_url, kb_uri, api, slack_escalation_target="CSUPPORT")
    api.channel_members["CSUPPORT"] = ["UOTHER01", "UOTHER02", "USUPPORT"]  # two pages
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        root = new_ts()
        async with h.sender() as sender:
            await sender.event(app_mention(text=f"<@{BOT}> can I pay in bitcoin?", ts=root))
            await api.wait_for(lambda: api.posted() and not api.posted()[0].streaming)
            await h.bot.wait_idle()
            [answer] = api.posted("C0000001")
            human = _button(answer, "sb_human")
            click = block_action(
                action_id="sb_human", value=human["value"], message=_as_payload_message(answer)
            )
            assert (await sender.interaction(click)).status == 200
            await api.wait_for(lambda: len(api.posted("C0000001")) == 2 and api.posted("CSUPPORT"))
            await h.bot.wait_idle()
            handoff = api.posted("C0000001")[1]
            assert handoff.thread_ts == root and texts.ESCALATION_OPENED in handoff.text
            assert "sb_human" not in [b.get("block_id") for b in answer.blocks]
            async with sqlite_db.sessions() as session:
                escalation = (await session.scalars(select(Escalation))).one()
            assert escalation.status == "open" and escalation.requested_by == "UHUMAN001"
            [notice] = api.posted("CSUPPORT")
            assert escalation.notice_ref == f"CSUPPORT:{notice.ts}"

            resolve = _button(handoff, "sb_resolve")
            click = block_action(
                action_id="sb_resolve",
                value=resolve["value"],
                user="USUPPORT",
                message=_as_payload_message(handoff),
            )
            assert (await sender.interaction(click)).status == 200
            await api.wait_for(lambda: texts.ESCALATION_RESOLVED in json.dumps(handoff.blocks))
            await h.bot.wait_idle()
            # The second click of a double click lands after the first resolved it: told to
            # the clicker alone, it must not replace the "resolved" note everyone sees.
            again = block_action(
                action_id="sb_resolve",
                value=resolve["value"],
                user="USUPPORT",
                message=click["message"],
            )
            assert (await sender.interaction(again)).status == 200
            await api.wait_for(lambda: api.calls_to("chat.postEphemeral"))
            await h.bot.wait_idle()
    finally:
        await h.close()
    async with sqlite_db.sessions() as session:
        escalation = (await session.scalars(select(Escalation))).one()
    assert escalation.status == "resolved" and escalation.resolved_by == "USUPPORT"
    assert "sb_resolve" not in [b.get("block_id") for b in handoff.blocks]
    assert texts.ESCALATION_RESOLVED in json.dumps(handoff.blocks)
    assert texts.ESCALATION_NOT_OPEN not in json.dumps(handoff.blocks)
    [told] = api.calls_to("chat.postEphemeral")
    assert told.params["user"] == "USUPPORT" and texts.ESCALATION_NOT_OPEN in told.params["text"]


async def test_ephemeral_answer_falls_back_to_post_ephemeral(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    """A response_url that no longer works (expired, used 5 times): chat.postEphemeral."""
    dead_url = f"http://127.0.0.1:{api.port}/expired-response-url"
    async with harness.sender() as sender:
        assert (
            await sender.command("/ask", "when are invoices sent?", response_url=dead_url)
        ).status == 200
        await api.wait_for(lambda: api.ephemerals)
        await harness.bot.wait_idle()
    [ephemeral] = api.ephemerals
    assert ephemeral.params["user"] == "UHUMAN001" and ephemeral.params["channel"] == "C0000001"
    assert "first day of every month" in ephemeral.params["text"]


async def test_a_double_click_on_feedback_stores_one_vote_and_thanks_every_time(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, caplog: Any
) -> None:
    """Clicks arriving together (a double click) each found no vote yet: all but one insert hit
    the unique (answer, user) constraint and replaced the thanks with an apology. A slow insert
    (a trigger on PostgreSQL) makes the clicks overlap every time."""
    db = Database(pg_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            text(
                "CREATE FUNCTION slow_vote() RETURNS trigger AS $$ BEGIN "
                "PERFORM pg_sleep(0.3); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER slow_vote BEFORE INSERT ON feedback FOR EACH ROW "
                "EXECUTE FUNCTION slow_vote()"
            )
        )
    h = await SlackHarness.start(api, slack_settings(pg_url, kb_uri, api), db=db)
    try:
        async with h.sender() as sender:
            await sender.event(app_mention(text=f"<@{BOT}> when are invoices sent?"))
            await api.wait_for(lambda: api.posted() and not api.posted()[0].streaming)
            await h.bot.wait_idle()
            [answer] = api.posted()
            helpful = _button(answer, "sb_helpful")
            message = _as_payload_message(answer)
            clicks = [
                block_action(action_id="sb_helpful", value=helpful["value"], message=message)
                for _ in range(2)
            ]
            acks = await asyncio.gather(*(sender.interaction(click) for click in clicks))
            assert [ack.status for ack in acks] == [200, 200]
            await api.wait_for(lambda: len(api.calls_to("chat.update")) == 2)
            await h.bot.wait_idle()
        [vote] = await feedback.list_feedback(db)
    finally:
        await h.close()
        await db.dispose()
    assert vote.value == 1 and vote.user_id == "UHUMAN001"
    for update in api.calls_to("chat.update"):
        assert texts.FEEDBACK_THANKS_HELPFUL in json.dumps(update.params["blocks"])
    assert "feedback failed" not in caplog.text


async def test_a_button_whose_value_has_the_wrong_types_is_unusable_not_a_crash(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database, caplog: Any
) -> None:
    """{"m": "abc"} passed the "is there an m" check and crashed int(): the click was logged
    as a failed action with a traceback and the clicker was told something went wrong."""
    caplog.set_level("WARNING")
    async with harness.sender() as sender:
        answer = await _answered(harness, sender)
        for action_id, value in (
            ("sb_helpful", '{"m": "abc", "s": "x"}'),
            ("sb_resolve", '{"e": "abc"}'),
            ("sb_share", '{"m": [1]}'),
        ):
            click = block_action(
                action_id=action_id, value=value, message=_as_payload_message(answer)
            )
            assert (await sender.interaction(click)).status == 200
        await asyncio.sleep(0.3)
        await harness.bot.wait_idle()
    assert caplog.text.count("unusable button") == 3
    assert "Traceback" not in caplog.text and "failed (attempt" not in caplog.text
    assert not await feedback.list_feedback(sqlite_db)
    assert texts.ERROR_GENERIC not in json.dumps([m.text for m in api.posted()])


async def test_a_click_slack_keeps_failing_is_told_to_the_clicker_alone(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    # "Helpful" is clicked on an answer in a channel, and Slack answers 500 to the edit that
    # thanks the clicker, past slack_sdk's retries. The apology went to the whole channel, in
    # the answer's thread, as if the answer had failed; it is the clicker's, privately.
    async with harness.sender() as sender:
        answer = await _answered(harness, sender)
        api.fail("chat.update", status=500, times=3)
        click = block_action(
            action_id="sb_helpful",
            value=_button(answer, "sb_helpful")["value"],
            message=_as_payload_message(answer),
            response_url=api.response_url("clicker"),
        )
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.responses.get("clicker"), timeout=10)
        await harness.bot.wait_idle()
    assert api.posted() == [answer]
    [note] = api.responses["clicker"]
    assert note["text"] == texts.ERROR_GENERIC and note["response_type"] == "ephemeral"
    [vote] = await feedback.list_feedback(sqlite_db)
    assert vote.value == 1
