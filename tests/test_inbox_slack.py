"""The inbox under faults, through the real Slack adapter and the fakes (issue 11, items 1, 2
and 4), on SQLite and PostgreSQL: a slow model, a failing finish, give-up."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest

from bot import texts
from bot.inbox import SESSION_KEY
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, message_to_record
from storage import events
from storage.db import Database
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, ToolCall, Turn
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import RETRY_SOON, SlackHarness, running_harness, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts
from tests.inbox_support import INBOX_FAST, finish_fails_once, ledger, model_runs, slow_policy

__all__ = ["api", "kb_uri"]
pytestmark = pytest.mark.timeout(90)
BOT = DEFAULT_BOT_USER
QUESTIONS = [
    "how do I reset my password?",
    "where can I download past invoices?",
    "when are invoices sent?",
]


def _answers(api: FakeSlackAPI) -> Counter[str]:
    """Finished bot messages per thread."""
    return Counter(m.thread_ts or m.ts for m in api.posted() if not m.streaming)


def _inbox(
    api: FakeSlackAPI,
    db: Database,
    url: str,
    kb_uri: str,
    model: FakeOpenAI | None = None,
    *,
    try_later_delays: tuple[float, ...] | None = None,
    **settings: Any,
) -> AbstractAsyncContextManager[SlackHarness]:
    """A started harness whose leases and recovery come round within a test (``settings``
    override them), answering with ``model`` when one is given (else offline);
    ``try_later_delays``: how soon work a passing fault handed back is tried again."""
    values: dict[str, Any] = {**INBOX_FAST, **settings}
    if model is not None:
        values.update(openai_api_key=FAKE_API_KEY, openai_base_url=model.base_url)
    return running_harness(
        api,
        slack_settings(url, kb_uri, api, **values),
        db=db,
        try_later_delays=try_later_delays,
    )


async def _dm(h: SlackHarness, channel: str, text: str) -> None:
    """A direct message to the bot, acked."""
    async with h.sender() as sender:
        dm = app_mention(text=text, channel=channel, event_type="message", channel_type="im")
        assert (await sender.event(dm)).status == 200


async def _ask(h: SlackHarness, questions: list[str]) -> list[str]:
    threads = []
    async with h.sender() as sender:
        for question in questions:
            ts = new_ts()
            assert (
                await sender.event(app_mention(text=f"<@{BOT}> {question}", ts=ts))
            ).status == 200
            threads.append(ts)
    return threads


async def test_slow_model_is_answered_once_despite_a_short_lease(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """Lease 1 s, recovery every 0.3 s in the same process, a model taking 3 s per answer."""
    async with FakeOpenAI(policy=slow_policy(1.5)) as model:
        async with _inbox(api, db, any_db_url, kb_uri, model) as h:
            threads = await _ask(h, QUESTIONS)
            await api.wait_for(lambda: len(_answers(api)) == len(threads), timeout=30)
            await h.bot.wait_idle(15)
            await asyncio.sleep(1.5)  # several leases and recovery passes later: nothing more
        assert _answers(api) == Counter(threads)
        assert sorted(model_runs(model)) == sorted(QUESTIONS)
    rows = await ledger(db, "slack")
    assert {row.status for row in rows.values()} == {events.ANSWERED}
    assert all(row.attempts == 1 for row in rows.values())  # never taken over


async def test_a_failing_finish_after_the_post_neither_repeats_nor_apologises(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    async with _inbox(api, db, any_db_url, kb_uri) as h:
        async with finish_fails_once(db, lambda: h.bot.inbox.stats.finish_retries >= 1):
            [thread] = await _ask(h, QUESTIONS[:1])
            await api.wait_for(lambda: _answers(api), timeout=15)
        await h.bot.wait_idle(20)
        await asyncio.sleep(1.5)  # past the lease and several recovery passes
    assert _answers(api) == Counter([thread])
    assert not [m for m in api.posted() if texts.ERROR_GENERIC in m.text]
    assert h.bot.inbox.stats.finish_retries >= 1
    [row] = (await ledger(db, "slack")).values()
    assert (row.status, row.attempts) == (events.ANSWERED, 1)


async def test_one_slot_and_a_burst_every_question_answered_or_told(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """One answer slot, a short lease, a burst of 6 (waiting work keeps its lease alive), plus
    two questions whose processes died too often: their askers are told once."""
    async with FakeOpenAI(policy=slow_policy(0.2)) as model:
        dead = [await _abandoned(db, attempts=events.MAX_ATTEMPTS) for _ in range(2)]
        one_slot = {"answer_slots": 1, "lease_seconds": 0.5, "recover_every": 0.2}
        async with _inbox(api, db, any_db_url, kb_uri, model, **one_slot) as h:
            threads = await _ask(h, [f"{QUESTIONS[i % 3]} ({i})" for i in range(6)])
            await api.wait_for(lambda: len(_answers(api)) == 8, timeout=40)
            await h.bot.wait_idle(15)
            await asyncio.sleep(1.0)
            assert await h.bot.recover_expired() == 0  # nothing left, and no second note
        assert len(model_runs(model)) == 6
    answers = _answers(api)
    assert answers == Counter(threads + dead)
    told = [m for m in api.posted() if m.text == texts.INBOX_GAVE_UP]
    assert sorted(m.thread_ts for m in told) == sorted(dead)
    rows = await ledger(db, "slack")
    assert Counter(row.status for row in rows.values()) == {events.ANSWERED: 6, events.FAILED: 2}


async def _abandoned(db: Database, *, attempts: int) -> str:
    """A question acked by processes that all died: expired lease, ``attempts`` tries used."""
    ts = new_ts()
    key = ConversationKey(Platform.SLACK, "T0000001", "C0000001", ts)
    msg = IncomingMessage(
        id=ts, conversation=key, author=Author("UHUMAN001"), text="lost?", mentions_bot=True
    )
    payload = {
        "team_id": "T0000001",
        "kind": "message",
        "msg": message_to_record(msg),
        SESSION_KEY: key.session_id,
        "channel": "C0000001",
        "thread_ts": ts,
        "user": "UHUMAN001",
    }
    assert await events.claim_event(
        db,
        platform="slack",
        event_id=f"msg:T0000001:C0000001:{ts}",
        payload=payload,
        lease=timedelta(seconds=-1),
        attempts=attempts,
    )
    return ts


async def test_a_takeover_removes_what_the_dead_process_posted_but_never_recorded(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """The dead process posted its answer and died before recording it: the process that takes
    the question over removes that message, so the thread ends with one answer."""
    thread = await _abandoned(db, attempts=1)
    from slack_sdk.web.async_client import AsyncWebClient

    from tests.fakes.slack_harness import BOT_TOKEN

    dead = AsyncWebClient(token=BOT_TOKEN, base_url=api.base_url)
    await dead.chat_postMessage(channel="C0000001", thread_ts=thread, text="half an answer")
    h = await SlackHarness.start(api, slack_settings(any_db_url, kb_uri, api), db=db)
    try:
        await api.wait_for(
            lambda: (
                len(_answers(api)) == 1
                and not [m for m in api.posted() if m.text == "half an answer"]
            ),
            timeout=15,
        )
        await h.bot.wait_idle()
    finally:
        await h.close()
    [answer] = api.posted()
    assert answer.thread_ts == thread and answer.text != "half an answer"


async def test_a_stream_slack_fails_to_close_is_answered_again_not_apologised_for(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """chat.stopStream fails past the client's retries after the whole answer was streamed: it
    used to leave that stream open and post an apology under it. Now a second attempt removes
    the unfinished stream and answers once."""
    api.fail("chat.stopStream", status=500, times=3)
    async with _inbox(api, db, any_db_url, kb_uri, try_later_delays=RETRY_SOON) as h:
        [thread] = await _ask(h, QUESTIONS[:1])
        await api.wait_for(lambda: len(api.calls_to("chat.stopStream")) == 4, timeout=20)
        await api.wait_for(lambda: _answers(api), timeout=20)
        await h.bot.wait_idle(15)
    [answer] = api.posted()
    assert answer.thread_ts == thread and not answer.streaming
    assert "Reset password" in answer.text
    assert len([m for m in api.messages.values() if m.deleted]) == 1  # the unfinished stream
    [row] = (await ledger(db, "slack")).values()
    assert (row.status, row.attempts) == (events.ANSWERED, 2)


async def test_a_web_api_that_keeps_failing_is_tried_three_times_then_the_asker_told_once(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    # A DM answer is one chat.postMessage: three attempts of three calls each all fail.
    api.fail("chat.postMessage", status=500, times=9)
    async with _inbox(api, db, any_db_url, kb_uri, try_later_delays=RETRY_SOON) as h:
        await _dm(h, "D0000003", "when are invoices sent?")
        await api.wait_for(lambda: api.posted("D0000003"), timeout=20)
        await h.bot.wait_idle(15)
        await asyncio.sleep(1.5)  # past the lease and several recovery passes: nothing more
    [note] = api.posted("D0000003")
    assert note.text == texts.ERROR_GENERIC
    assert len(api.calls_to("chat.postMessage")) == 10
    [row] = (await ledger(db, "slack")).values()
    assert (row.status, row.attempts) == (events.FAILED, 3)


async def test_a_retried_answer_in_several_messages_removes_every_earlier_part(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """A DM answer too long for one message is posted in parts. When Slack kept failing the
    third part, the next attempt removed only the first part the earlier one posted: the asker
    saw the second twice."""
    answer = "\n".join(f"Step {i}: " + "do this carefully, then check it. " * 8 for i in range(25))
    async with FakeOpenAI() as model:
        for _attempt in range(2):
            model.queue(
                Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "steps"})]),
                Turn(content=answer, chunk_chars=2000),
            )
        # The third message of the answer fails past the client's own retries (3 calls).
        api.fail("chat.postMessage", status=500, times=3, after=2)
        inbox = _inbox(
            api, db, any_db_url, kb_uri, model, try_later_delays=RETRY_SOON,
            openai_model="fake-gpt", openai_max_retries=0,
        )  # fmt: skip
        async with inbox as h:
            await _dm(h, "D0000004", "list the steps")
            await api.wait_for(
                lambda: any(
                    b.get("block_id") == "sb_human"
                    for m in api.posted("D0000004")
                    for b in m.blocks
                ),
                timeout=20,
            )
            await h.bot.wait_idle(15)
    posted = api.posted("D0000004")
    joined = "\n".join(m.text for m in posted)
    assert len(posted) >= 3
    for i in range(25):
        assert joined.count(f"Step {i}:") == 1
    assert len([m for m in api.messages.values() if m.deleted]) == 2  # both earlier parts
    [row] = (await ledger(db, "slack")).values()
    assert (row.status, row.attempts) == (events.ANSWERED, 2)


async def test_a_give_up_removes_the_last_attempts_unfinished_answer(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    # Every attempt starts its stream and cannot stop it; each next attempt removed the
    # earlier one's, but the last one's half answer stayed above the note.
    api.fail("chat.stopStream", status=500, times=3 * events.MAX_ATTEMPTS)
    async with _inbox(api, db, any_db_url, kb_uri, try_later_delays=RETRY_SOON) as h:
        [thread] = await _ask(h, QUESTIONS[:1])
        await api.wait_for(
            lambda: [m for m in api.messages.values() if m.text == texts.ERROR_GENERIC],
            timeout=20,
        )
        await h.bot.wait_idle(15)
    left = [m for m in api.messages.values() if not m.deleted]
    assert [(m.text, m.thread_ts) for m in left] == [(texts.ERROR_GENERIC, thread)]
    assert len(api.calls_to("chat.startStream")) == events.MAX_ATTEMPTS
    [row] = (await ledger(db, "slack")).values()
    assert (row.status, row.attempts) == (events.FAILED, events.MAX_ATTEMPTS)


async def test_a_retried_answer_leaves_the_answer_to_a_later_question_in_its_thread(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """The first answer in a thread fails to close (Slack keeps answering 500), and before it
    is tried again the asker asks a second question there, which is answered. The retry used
    to delete every bot message after the first question: the second answer went too."""
    api.fail("chat.stopStream", status=500, times=3)
    async with _inbox(api, db, any_db_url, kb_uri, try_later_delays=(2.5, 2.5)) as h:
        [thread] = await _ask(h, QUESTIONS[:1])
        await api.wait_for(lambda: len(api.calls_to("chat.stopStream")) == 3, timeout=20)
        async with h.sender() as sender:
            later = app_mention(
                text=f"<@{BOT}> when are invoices sent?", ts=new_ts(), thread_ts=thread
            )
            assert (await sender.event(later)).status == 200
        await api.wait_for(
            lambda: any("invoice" in m.text.lower() for m in api.posted() if not m.streaming),
            timeout=20,
        )
        await api.wait_for(lambda: len(api.calls_to("chat.stopStream")) == 5, timeout=20)
        await h.bot.wait_idle(15)
    answers = [m.text for m in api.posted() if m.thread_ts == thread and not m.streaming]
    assert len(answers) == 2, answers
    assert sum("Reset password" in text for text in answers) == 1
    assert sum("invoice" in text.lower() for text in answers) == 1
    assert len([m for m in api.messages.values() if m.deleted]) == 1  # the unfinished stream
