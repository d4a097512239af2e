"""Exactly-once across replicas and restarts: the processed_events ledger in the adapter."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy.engine import make_url

from adapters.slack.app import SlackBot
from bot.inbox import Work
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, message_to_record
from bot.runtime import build_runtime
from storage import events
from storage.db import Database
from storage.models import Base
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, ToolCall, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "fake_openai", "kb_uri"]
BOT = DEFAULT_BOT_USER
SLACK_DEADLINE = 3.0  # seconds Slack waits for the ack before it gives up and retries


async def test_two_replicas_sharing_a_database_answer_once(
    any_db_url: str, api: FakeSlackAPI, kb_uri: str
) -> None:
    url = any_db_url
    schema = Database(url)
    async with schema.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await schema.dispose()
    # Two processes' worth of everything: engines, runtimes, bolt apps, HTTP servers.
    replicas = [await SlackHarness.start(api, slack_settings(url, kb_uri, api)) for _ in range(2)]
    try:
        bodies = [
            app_mention(text=f"<@{BOT}> how do I reset my password?", ts=new_ts()) for _ in range(5)
        ]
        senders = [r.sender() for r in replicas]
        for sender in senders:
            await sender.__aenter__()
        # Slack delivers each event to both replicas (a retry landing on the other one) at once.
        results = await asyncio.gather(
            *(sender.event(body) for body in bodies for sender in senders)
        )
        for sender in senders:
            await sender.__aexit__(None, None, None)
        assert all(r.status == 200 for r in results)
        await api.wait_for(lambda: len([m for m in api.posted() if not m.streaming]) >= 5)
        for replica in replicas:
            await replica.bot.wait_idle()
        await asyncio.sleep(0.2)
    finally:
        for replica in replicas:
            await replica.close()
    posted = api.posted()
    assert sorted(m.thread_ts for m in posted) == sorted(b["event"]["ts"] for b in bodies)


async def test_the_ledger_row_is_written_before_the_ack(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "x"})], delay=0.5),
        Turn(content="Done."),
    )
    settings = slack_settings(
        sqlite_url, kb_uri, api, openai_api_key=FAKE_API_KEY, openai_base_url=fake_openai.base_url
    )
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        ts = new_ts()
        async with h.sender() as sender:
            acked = await sender.event(app_mention(text=f"<@{BOT}> slow one", ts=ts))
        assert acked.status == 200
        key = f"msg:T0000001:C0000001:{ts}"
        # acked, not answered yet, but already durable: a crash now would not lose it
        assert await events.event_status(sqlite_db, platform="slack", event_id=key) == "answering"
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
        assert await events.event_status(sqlite_db, platform="slack", event_id=key) == "answered"
    finally:
        await h.close()


async def test_a_restarted_process_answers_what_a_crashed_one_acked(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # What the ledger middleware of a process that then died had stored before its ack.
    key = ConversationKey(Platform.SLACK, "T0000001", "C0000001", "1700000000.000001")
    msg = IncomingMessage(
        id="1700000000.000001",
        conversation=key,
        author=Author("UHUMAN001"),
        text="how do I reset my password?",
        mentions_bot=True,
    )
    work = Work(
        "msg:T0000001:C0000001:1700000000.000001",
        {
            "team_id": "T0000001",
            "enterprise_id": None,
            "kind": "message",
            "msg": message_to_record(msg),
            "channel": "C0000001",
            "thread_ts": "1700000000.000001",
            "user": "UHUMAN001",
            "assistant": False,
            "first_turn": True,
        },
    )
    assert await events.claim_event(
        sqlite_db,
        platform="slack",
        event_id=work.key,
        payload=work.payload,
        lease=timedelta(seconds=-1),
    )
    h = await SlackHarness.start(api, slack_settings(sqlite_url, kb_uri, api), db=sqlite_db)
    try:
        await h.bot.start()  # (the web app's startup already did; starting twice is harmless)
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
        # a second sweep finds nothing more to do
        assert await h.bot.recover_expired() == 0
        # the "crashed" worker waking up late no longer owns the event: it cannot finish it
        assert not await events.finish_event(
            sqlite_db, platform="slack", event_id=work.key, attempts=work.attempts
        )
    finally:
        await h.close()
    [answer] = api.posted()
    assert answer.thread_ts == "1700000000.000001" and "Reset password" in answer.text
    status = await events.event_status(sqlite_db, platform="slack", event_id=work.key)
    assert status == "answered"


async def test_http_process_queues_and_workers_answer_exactly_once(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """`supportbot serve --workers N`: the HTTP process only acks and queues in the ledger."""
    settings = slack_settings(sqlite_url, kb_uri, api)
    front = await SlackHarness.start(api, settings, db=sqlite_db, answer_inline=False)
    workers = [SlackBot(await build_runtime(settings), max_concurrent_answers=4) for _ in range(2)]
    stop = asyncio.Event()
    loops = []
    for worker in workers:
        await worker.start(recover=False)
        loops.append(asyncio.create_task(worker.work_loop(stop, poll_interval=0.02)))
    try:
        bodies = [
            app_mention(text=f"<@{BOT}> how do I reset my password?", ts=new_ts()) for _ in range(6)
        ]
        async with front.sender() as sender:
            for body in bodies:
                assert (await sender.event(body)).status == 200
                assert (await sender.event(body, retry_num=1)).status == 200
        assert not front.bot.inbox.in_flight  # nothing answered in the HTTP process
        await api.wait_for(lambda: len([m for m in api.posted() if not m.streaming]) == 6)
        for worker in workers:
            await worker.wait_idle()
    finally:
        stop.set()
        await asyncio.gather(*loops)
        for worker in workers:
            await worker.aclose()
            await worker.runtime.aclose()
        await front.close()
    assert sorted(m.thread_ts for m in api.posted()) == sorted(b["event"]["ts"] for b in bodies)


async def test_a_claim_blocked_by_another_process_s_write_lock_gets_a_500_within_slack_s_deadline(
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process holding SQLite's write lock made the claim wait 30 s (the busy timeout)
    before its 500: Slack had given up after 3 s and retried into the same wait."""
    h = await SlackHarness.start(api, slack_settings(sqlite_url, kb_uri, api), db=sqlite_db)
    other = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    try:
        body = app_mention(text=f"<@{BOT}> how do I reset my password?")
        other.execute("BEGIN IMMEDIATE")  # the other process's write transaction
        async with h.sender(deadline=SLACK_DEADLINE) as sender:
            refused = await sender.event(body)
        assert refused.status == 500
        # The operator sees one line saying why, not a traceback.
        [reason] = [r.getMessage() for r in caplog.records if "not acked" in r.getMessage()]
        assert "database is locked" in reason and "Traceback" not in caplog.text
        other.execute("ROLLBACK")
        async with h.sender(deadline=SLACK_DEADLINE) as sender:
            assert (await sender.event(body, retry_num=1)).status == 200
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
    finally:
        other.close()
        await h.close()
    [answer] = api.posted()
    assert "Reset password" in answer.text
