"""A question its author deletes on Slack is forgotten, and the bot's answer deleted with it:
through the real bolt app, slack_sdk and the fake Slack Web API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from bot.report import build_report
from storage import events
from storage.db import Database
from storage.memories import MemoryOut, export_session
from storage.models import ProcessedEvent
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_ID, DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness
from tests.fakes.slack_sender import (
    SlackSender,
    app_mention,
    message_deleted,
    message_edited,
    new_ts,
    thread_parent_deleted,
)
from tests.model_support import start_slack_with_model

__all__ = ["api", "fake_openai", "kb_uri"]
pytestmark = pytest.mark.timeout(90)

BOT = DEFAULT_BOT_USER
DM = "D0000009"
SECRET = "hunter2-SECRET-TOKEN"
# Words in neither document: refused, so the report lists it among the coverage gaps.
SECRET_QUESTION = f"my api token is {SECRET}, why does the zeppelin quorum flicker?"


def _dm(text: str) -> dict:
    return app_mention(text=text, channel=DM, event_type="message", channel_type="im")


async def _ask(h: SlackHarness, sender, body: dict) -> list[str]:
    """Send a question and wait for its answer; returns the ts of what the bot posted."""
    before = {m.ts for m in h.api.posted()}
    assert (await sender.event(body)).status == 200
    await h.bot.wait_idle()
    return [m.ts for m in h.api.posted() if m.ts not in before and m.user is None]


def _sent_after(model: FakeOpenAI, start: int) -> str:
    return json.dumps(model.requests[start:])


async def test_a_deleted_dm_question_and_its_answer_are_forgotten(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    h = await start_slack_with_model(api, db, any_db_url, kb_uri, fake_openai)
    session = f"slack:T0000001:{DM}"
    try:
        async with h.sender() as sender:
            # Asked first: a later turn's metadata (the model's search query) may quote an
            # earlier question, and such derived text is not what a deletion forgets.
            kept = await _ask(h, sender, _dm("how do I reset my password?"))
            secret = _dm(SECRET_QUESTION)
            secret_answer = await _ask(h, sender, secret)
            assert secret_answer and kept
            assert SECRET in json.dumps([m.model_dump(mode="json") for m in await export_session(
                h.runtime.db, session_id=session)])  # fmt: skip
            gaps = (await build_report(h.runtime.db))["coverage_gaps"]
            assert SECRET in json.dumps(gaps)

            deleted = message_deleted(channel=DM, deleted=secret["event"], channel_type="im")
            assert (await sender.event(deleted)).status == 200
            await h.bot.wait_idle()
            # A duplicate delivery (Slack's retry) is absorbed: nothing more happens.
            deletes_before = len(api.calls_to("chat.delete"))
            assert (await sender.event(deleted, retry_num=1)).status == 200
            await h.bot.wait_idle()
            assert len(api.calls_to("chat.delete")) == deletes_before

            start = len(fake_openai.requests)
            await _ask(h, sender, _dm("and where are my invoices?"))
    finally:
        await h.close()
    # The answer is gone from Slack; the other exchange is still there.
    remaining = {m.ts for m in api.posted(DM)}
    assert not set(secret_answer) & remaining
    assert set(kept) <= remaining
    deleted_ts = {c.params["ts"] for c in api.calls_to("chat.delete")}
    assert set(secret_answer) <= deleted_ts
    # Forgotten: not in the next question's context, not in the export, not in the report.
    context = _sent_after(fake_openai, start)
    assert SECRET not in context and "zeppelin" not in context
    assert "reset my password" in context  # the conversation's other turn still is
    exported = json.dumps(
        [m.model_dump(mode="json") for m in await export_session(db, session_id=session)]
    )
    report = await build_report(db)
    ledger = await _ledger_text(db)
    assert SECRET not in exported and "zeppelin" not in exported
    assert "reset my password" in exported
    assert SECRET not in json.dumps(report["coverage_gaps"])
    assert SECRET not in ledger  # the inbox's copy of the question went too


async def _ledger_text(db: Database) -> str:
    async with db.sessions() as session:
        payloads = (await session.scalars(select(ProcessedEvent.payload))).all()
    return json.dumps(payloads)


async def test_a_deleted_thread_parent_takes_the_answer_in_its_thread(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """A channel mention is answered in a thread under it; deleting it leaves a tombstone
    (message_changed), then, once the bot's reply is gone, message_deleted: one forgetting."""
    h = await start_slack_with_model(api, db, any_db_url, kb_uri, fake_openai)
    try:
        async with h.sender() as sender:
            other = await _ask(h, sender, app_mention(text=f"<@{BOT}> where are my invoices?"))
            question = app_mention(text=f"<@{BOT}> {SECRET_QUESTION}")
            answer = await _ask(h, sender, question)
            root = question["event"]["ts"]
            session = f"slack:T0000001:C0000001:{root}"
            assert answer and all(api.messages[("C0000001", ts)].thread_ts == root for ts in answer)
            assert await export_session(h.runtime.db, session_id=session)

            tombstone = thread_parent_deleted(channel="C0000001", deleted=question["event"])
            assert (await sender.event(tombstone)).status == 200
            await h.bot.wait_idle()
            after_tombstone = len(api.calls_to("chat.delete"))
            # Slack then removes the emptied thread's parent: the same message, nothing more.
            gone = message_deleted(channel="C0000001", deleted=None, deleted_ts=root)
            assert (await sender.event(gone)).status == 200
            await h.bot.wait_idle()
            assert len(api.calls_to("chat.delete")) == after_tombstone
            remaining_rows = await export_session(h.runtime.db, session_id=session)
    finally:
        await h.close()
    assert remaining_rows == []
    assert not {m.ts for m in api.posted("C0000001")} & set(answer)
    assert set(other) <= {m.ts for m in api.posted("C0000001")}


async def test_deleting_other_messages_changes_nothing(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """A deleted message the bot never answered, and the bot's own answer deleted by someone:
    no memory is forgotten and nothing is deleted (then the question itself is deleted: only
    its turn goes, so the two deletions before were told apart, not ignored)."""
    h = await start_slack_with_model(api, db, any_db_url, kb_uri, fake_openai)
    try:
        async with h.sender() as sender:
            question = _dm("how do I reset my password?")
            answer = await _ask(h, sender, question)
            session = f"slack:T0000001:{DM}"
            before = await export_session(h.runtime.db, session_id=session)
            chatter = {"user": "UHUMAN001", "text": "lunch?", "ts": new_ts()}
            own = {"user": BOT, "bot_id": DEFAULT_BOT_ID, "text": "x", "ts": answer[0]}
            for deleted in (chatter, own):
                body = message_deleted(channel=DM, deleted=deleted, channel_type="im")
                assert (await sender.event(body)).status == 200
            await h.bot.wait_idle()
            await asyncio.sleep(0.1)
            after = await export_session(h.runtime.db, session_id=session)
            deletes_after = list(api.calls_to("chat.delete"))
            body = message_deleted(channel=DM, deleted=question["event"], channel_type="im")
            assert (await sender.event(body)).status == 200
            await h.bot.wait_idle()
            at_last = await export_session(h.runtime.db, session_id=session)
    finally:
        await h.close()
    assert [m.id for m in after] == [m.id for m in before] and len(before) == 2
    assert deletes_after == []
    assert at_last == []


async def _deleted_in_flight(
    h: SlackHarness, sender: SlackSender, question: dict, key: str
) -> tuple[str | None, list[MemoryOut], str]:
    """Delete the DM ``question`` while the work of ``key`` is still answering; once the bot
    is idle, that work's status, what the conversation holds, and the ledger's text."""
    db = h.runtime.db
    assert await events.event_status(db, platform="slack", event_id=key) == "answering"
    deleted = message_deleted(channel=DM, deleted=question["event"], channel_type="im")
    assert (await sender.event(deleted)).status == 200
    await h.bot.wait_idle(timeout=20)
    rows = await export_session(db, session_id=f"slack:T0000001:{DM}")
    status = await events.event_status(db, platform="slack", event_id=key)
    return status, rows, await _ledger_text(db)


async def test_a_question_deleted_while_it_is_answered_leaves_no_answer(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """Deleted while the model is still working on it: the answer posted after that is taken
    back, and nothing of the turn is stored."""
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "password"})], delay=0.8),
        Turn(content="Open Settings, choose Security and click Reset password [1]."),
    )
    h = await start_slack_with_model(api, db, any_db_url, kb_uri, fake_openai, lease_seconds=2.0)
    try:
        async with h.sender() as sender:
            question = _dm(f"my password is {SECRET}; how do I reset it?")
            assert (await sender.event(question)).status == 200
            key = f"msg:T0000001:{DM}:{question['event']['ts']}"
            status, rows, _ledger = await _deleted_in_flight(h, sender, question, key)
    finally:
        await h.close()
    assert status == "withdrawn"
    assert rows == []
    assert [m for m in api.posted(DM) if m.user is None] == []


async def test_a_question_deleted_while_its_edit_is_answered_leaves_no_answer(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """An edit is answered as a question of its own (under a key that extends the question's).
    Deleted while the model still works on the edit: that work is withdrawn too (it used to go
    on, post its answer and store the edited words), and the first answer is deleted."""
    fake_openai.queue(
        Turn(content="Invoices are sent on the first day of each month [1]."),
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "password"})], delay=0.8),
        Turn(content="Open Settings, choose Security and click Reset password [1]."),
    )
    h = await start_slack_with_model(api, db, any_db_url, kb_uri, fake_openai, lease_seconds=2.0)
    try:
        async with h.sender() as sender:
            question = _dm("when are invoices sent?")
            first = await _ask(h, sender, question)
            assert first
            edit_ts = new_ts()
            edit = message_edited(
                channel=DM,
                original=question["event"],
                text=f"my password is {SECRET}; how do I reset it?",
                channel_type="im",
                edited_ts=edit_ts,
            )
            assert (await sender.event(edit)).status == 200
            key = f"msg:T0000001:{DM}:{question['event']['ts']}:edit:{edit_ts}"
            status, rows, ledger = await _deleted_in_flight(h, sender, question, key)
    finally:
        await h.close()
    assert status == "withdrawn"
    assert rows == []
    assert [m for m in api.posted(DM) if m.user is None] == []
    assert set(first) <= {c.params["ts"] for c in api.calls_to("chat.delete")}
    assert SECRET not in ledger
