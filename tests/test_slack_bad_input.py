"""Bad input and a failing Web API: clear rejections, nothing processed twice or lost."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Memory, ProcessedEvent
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, event_callback
from tests.inbox_support import ledger

__all__ = ["api", "harness", "kb_uri"]
BOT = DEFAULT_BOT_USER


async def _ledger_rows(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)


async def _answered_after(harness: SlackHarness, api: FakeSlackAPI, text: str) -> None:
    """The server still works: a normal mention is answered."""
    async with harness.sender() as sender:
        assert (await sender.event(app_mention(text=f"<@{BOT}> {text}"))).status == 200
    await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
    await harness.bot.wait_idle()


async def test_unsigned_badly_signed_and_stale_requests_are_rejected(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    body = json.dumps(app_mention(text=f"<@{BOT}> how do I reset my password?"))
    async with harness.sender() as sender:
        unsigned = await sender.post_raw(body, content_type="application/json", signed=False)
        wrong = await sender.post_raw(body, content_type="application/json", secret="not-it")
        stale = await sender.post_raw(
            body, content_type="application/json", timestamp=int(time.time()) - 6 * 60
        )
        form = await sender.post_raw(
            "command=%2Fask&text=hi",
            content_type="application/x-www-form-urlencoded",
            secret="not-it",
        )
        garbage = await sender.post_raw("{not json", content_type="application/json", signed=False)
    statuses = [r.status for r in (unsigned, wrong, stale, form, garbage)]
    assert statuses == [401, 401, 401, 401, 401]
    await harness.bot.wait_idle()
    assert await _ledger_rows(sqlite_db) == 0
    assert not api.calls and not api.posted()


async def test_malformed_unknown_and_huge_requests_do_not_crash(
    harness: SlackHarness, api: FakeSlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="adapters.slack")
    async with harness.sender() as sender:
        malformed = await sender.post_raw(
            '{"type": "event_callback", "event": {', content_type="application/json"
        )
        not_object = await sender.post_raw("[1, 2, 3]", content_type="application/json")
        unknown = await sender.event(event_callback({"type": "reaction_added", "user": "U1"}))
        huge_text = "why? " * 40_000  # 200,000 characters
        huge = await sender.event(app_mention(text=f"<@{BOT}> {huge_text}", channel="C0000002"))
    assert (malformed.status, not_object.status) == (400, 400)
    assert unknown.status == 200 and huge.status == 200
    assert "ignoring reaction_added event" in caplog.text
    assert "rejected a malformed Slack request body" in caplog.text
    await api.wait_for(lambda: [m for m in api.posted("C0000002") if not m.streaming])
    await harness.bot.wait_idle()
    [answer] = api.posted("C0000002")  # answered once, with the "I only read the start" note
    assert "first 4,000 characters" in answer.text
    await _answered_after(harness, api, "how do I reset my password?")


async def test_signed_requests_with_fields_of_the_wrong_type_get_a_400_not_a_500(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Correctly signed JSON whose fields have the wrong types used to crash bolt's authorization
    or our middleware (a 500, which Slack retries, each retry failing again)."""
    mention = app_mention(text=f"<@{BOT}> how do I reset my password?")
    event = mention["event"]
    bodies = [
        {**mention, "event": "app_mention"},
        {**mention, "event": [event]},
        {**mention, "event": {**event, "type": "message", "thread_ts": {"ts": "1.2"}}},
        {**mention, "event": {**event, "text": ["hi"]}},
    ]
    clicks = [
        {"type": "block_actions", "actions": "sb_helpful", "user": {"id": "U1"}},
        {"type": "block_actions", "actions": [{"action_id": "sb_helpful"}], "user": "U1"},
    ]
    async with harness.sender() as sender:
        sent = [await sender.event(body) for body in bodies]
        sent += [await sender.interaction(click) for click in clicks]
        unsigned = await sender.post_raw(
            json.dumps(bodies[0]), content_type="application/json", secret="not-it"
        )
    assert [r.status for r in sent] == [400] * len(sent)
    assert unsigned.status == 401
    assert "is not" in caplog.text and "Traceback" not in caplog.text
    await harness.bot.wait_idle()
    assert await _ledger_rows(sqlite_db) == 0
    await _answered_after(harness, api, "how do I reset my password?")


async def test_an_event_arriving_while_auth_test_fails_is_not_acked_and_its_retry_answered(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    """bolt acked such an event with a 200 (a "reinstall this app" text) without our claim, so
    Slack never sent it again and the question was lost. A 500 makes Slack retry it."""
    api.fail("auth.test", status=500, times=1)
    body = app_mention(text=f"<@{BOT}> how do I reset my password?")
    async with harness.sender() as sender:
        first = await sender.event(body)
        assert first.status == 500 and first.elapsed < 2.0
        assert await _ledger_rows(sqlite_db) == 0
        assert (await sender.event(body, retry_num=1)).status == 200
    await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
    await harness.bot.wait_idle()
    [answer] = api.posted()
    assert "Reset password" in answer.text
    assert len(api.calls_to("auth.test")) == 2


async def test_a_revoked_bot_token_is_still_refused_without_an_answer(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    api.error("auth.test", "token_revoked", times=1)
    async with harness.sender() as sender:
        refused = await sender.event(app_mention(text=f"<@{BOT}> how do I reset my password?"))
    assert refused.status == 200 and "reinstall" in refused.text
    assert await _ledger_rows(sqlite_db) == 0


@pytest.mark.parametrize("odd", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
async def test_a_question_with_characters_postgresql_cannot_store_is_answered(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, odd: str
) -> None:
    """PostgreSQL cannot store NUL or a lone surrogate (valid JSON escapes): the claim failed
    (a 500) on every retry, so the question was never answered."""
    h = await SlackHarness.start(api, slack_settings(any_db_url, kb_uri, api), db=db)
    try:
        async with h.sender() as sender:
            body = app_mention(text=f"<@{BOT}> how do I reset my{odd} password?{odd}")
            assert (await sender.event(body)).status == 200
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
    finally:
        await h.close()
    [answer] = api.posted()
    assert "Reset password" in answer.text
    [row] = (await ledger(db, "slack")).values()
    assert row.status == "answered" and odd not in row.payload["msg"]["text"]


async def test_server_errors_and_rate_limits_are_retried_into_one_answer(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    api.fail("chat.startStream", status=500, times=1)
    api.fail("chat.stopStream", status=429, times=1, retry_after=1)
    async with harness.sender() as sender:
        await sender.event(app_mention(text=f"<@{BOT}> how do I reset my password?"))
    await api.wait_for(lambda: [m for m in api.posted() if not m.streaming], timeout=15)
    await harness.bot.wait_idle()
    [answer] = api.posted()
    assert "Reset password" in answer.text
    stops = api.calls_to("chat.stopStream")
    assert len(stops) == 2 and stops[1].at - stops[0].at >= 0.9  # waited for Retry-After
    assert len(api.calls_to("chat.startStream")) == 2


async def test_a_web_api_failing_past_the_client_retries_is_answered_a_little_later(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    # DM: the answer is posted with chat.postMessage; the first three calls fail (one call and
    # both of the client's retries). That used to lose the answer and post an apology; the
    # inbox now hands the work back and a second attempt answers.
    harness.bot.inbox.try_later_delays = (0.2, 0.2)
    api.fail("chat.postMessage", status=500, times=3)
    async with harness.sender() as sender:
        await sender.event(
            app_mention(
                text="when are invoices sent?",
                channel="D0000003",
                event_type="message",
                channel_type="im",
            )
        )
    await api.wait_for(lambda: api.posted("D0000003"), timeout=15)
    await harness.bot.wait_idle()
    [answer] = api.posted("D0000003")
    assert "first day of every month" in answer.text
    assert len(api.calls_to("chat.postMessage")) == 4
    [row] = (await ledger(sqlite_db, "slack")).values()
    assert (row.status, row.attempts) == ("answered", 2)
    # The failed attempt kept the question; the second one replaced it with the whole turn
    # (the question used to be stored twice, and read back by the retry as its own history).
    async with sqlite_db.sessions() as session:
        turns = (await session.scalars(select(Memory.role).order_by(Memory.id))).all()
    assert turns == ["user", "assistant"]
