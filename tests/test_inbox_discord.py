"""The inbox under faults, through the real discord.py client and the fake Discord (issue 11,
items 1-4), on SQLite and PostgreSQL: a slow model, a failing finish, an undeliverable row
among good ones during recovery, give-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from adapters.discord.app import FIRST_POST_DELAY, PARTIAL_KEY
from bot import texts
from bot.inbox import SESSION_KEY
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, message_to_record
from bot.runtime import build_runtime
from storage import events
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import RunningBot, make_settings, start_bot
from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.inbox_support import INBOX_FAST, finish_fails_once, ledger, model_runs, slow_policy

pytestmark = pytest.mark.timeout(90)
world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
QUESTIONS = ["How do I reset my password?", "Where can I download past invoices?"]


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(policy=slow_policy(1.5)) as fake:
        yield fake


async def _bot(
    world: DiscordWorld, db: Database, url: str, kb_uri: str, **extra: Any
) -> RunningBot:
    settings = make_settings(world, url, kb_uri, **extra)
    return await start_bot(world, await build_runtime(settings, db=db))


def _answers(world: DiscordWorld, channel_id: str) -> list[dict[str, Any]]:
    return world.api.channel_messages(channel_id)


async def test_slow_model_is_answered_once_despite_a_short_lease(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    bot = await _bot(
        world,
        db,
        any_db_url,
        kb_uri,
        openai_api_key=FAKE_API_KEY,
        openai_base_url=model.base_url,
        **INBOX_FAST,
    )
    try:
        dms = [await world.dm(q) for q in QUESTIONS]
        mention = await world.say(QUESTIONS[0], mention=True)  # answered in a new thread
        for channel in [dm["channel_id"] for dm in dms] + [mention["id"]]:
            await world.bot_messages(channel, timeout=30)
        await bot.adapter.inbox.wait_idle(15)
        await asyncio.sleep(1.5)  # several leases and recovery passes later: nothing more
    finally:
        await bot.stop()
    for dm in dms:
        assert len(_answers(world, dm["channel_id"])) == 1
    assert len(_answers(world, mention["id"])) == 1
    assert _answers(world, world.channel_id) == []
    assert len(world.api.find("POST", r"/channels/\d+/messages/\d+/threads")) == 1
    assert sorted(model_runs(model)) == sorted(QUESTIONS + QUESTIONS[:1])
    rows = await ledger(db, "discord")
    assert {(row.status, row.attempts) for row in rows.values()} == {(events.ANSWERED, 1)}


async def test_a_failing_finish_after_the_post_neither_repeats_nor_apologises(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> None:
    bot = await _bot(world, db, any_db_url, kb_uri, **INBOX_FAST)
    try:
        async with finish_fails_once(db, lambda: bot.adapter.inbox.stats.finish_retries >= 1):
            dm = await world.dm(QUESTIONS[1])
            await world.bot_messages(dm["channel_id"])
        await bot.adapter.inbox.wait_idle(20)
        await asyncio.sleep(1.5)
    finally:
        await bot.stop()
    [answer] = _answers(world, dm["channel_id"])
    assert "billing page" in answer["content"].lower()
    assert bot.adapter.inbox.stats.finish_retries >= 1
    [row] = (await ledger(db, "discord")).values()
    assert (row.status, row.attempts) == (events.ANSWERED, 1)


async def _acked_by_a_dead_process(
    db: Database,
    world: DiscordWorld,
    text: str,
    *,
    attempts: int = 1,
    thread: bool = False,
    thread_in_claim: bool = False,
) -> tuple[str, str]:
    """A question a crashed process claimed (lease over): (message id, channel of the answer).
    ``thread``: a channel mention whose thread was never opened; ``thread_in_claim``: claimed
    with the thread's conversation, as the adapter does now (rows claimed before that have the
    channel's)."""
    message_id = p.snowflake()
    channel_id = world.channel_id if thread else p.snowflake()
    key = ConversationKey(Platform.DISCORD, world.guild_id if thread else "", channel_id)
    if thread and thread_in_claim:
        key = ConversationKey(Platform.DISCORD, world.guild_id, message_id, message_id)
    msg = IncomingMessage(
        id=message_id,
        conversation=key,
        author=Author(world.alice["id"], "alice"),
        text=text,
        is_direct=not thread,
        mentions_bot=True,
    )
    payload = {
        "kind": "message",
        "msg": message_to_record(msg),
        SESSION_KEY: key.session_id,
        "message_id": message_id,
        "question_channel": channel_id,
        "new_thread": thread,
    }
    assert await events.claim_event(
        db,
        platform="discord",
        event_id=message_id,
        payload=payload,
        lease=timedelta(seconds=-1),
        attempts=attempts,
    )
    return message_id, message_id if thread else channel_id


async def test_recovery_answers_twenty_good_rows_despite_one_forbidden_channel(
    world: DiscordWorld,
    db: Database,
    any_db_url: str,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bad_id, bad_channel = await _acked_by_a_dead_process(db, world, QUESTIONS[0])
    world.api.fail_with(403, "POST", rf"/channels/{bad_channel}/.*", times=1000)
    good = [await _acked_by_a_dead_process(db, world, QUESTIONS[i % 2]) for i in range(19)]
    good.append(await _acked_by_a_dead_process(db, world, QUESTIONS[0], thread=True))
    bot = await _bot(world, db, any_db_url, kb_uri, **INBOX_FAST)
    try:
        for _id, channel in good:
            await world.bot_messages(channel, timeout=30)
        await bot.adapter.inbox.wait_idle(15)
        await asyncio.sleep(1.0)
    finally:
        await bot.stop()
    for _id, channel in good:
        assert len(_answers(world, channel)) == 1, channel
    assert _answers(world, bad_channel) == []
    rows = await ledger(db, "discord")
    assert rows[bad_id].status == events.FAILED
    assert {rows[i].status for i, _ in good} == {events.ANSWERED}
    assert f"discord message {bad_id} failed" in caplog.text and "403" in caplog.text
    # The recovered channel mention was answered in its thread, under the thread's session.
    thread_row = rows[good[-1][0]]
    assert (
        thread_row.payload[SESSION_KEY] == f"discord:{world.guild_id}:{good[-1][0]}:{good[-1][0]}"
    )


async def test_one_slot_and_a_burst_every_question_answered_or_told(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> None:
    dead = [
        await _acked_by_a_dead_process(db, world, QUESTIONS[0], attempts=events.MAX_ATTEMPTS)
        for _ in range(2)
    ]
    async with FakeOpenAI(policy=slow_policy(0.2)) as model:
        bot = await _bot(
            world,
            db,
            any_db_url,
            kb_uri,
            openai_api_key=FAKE_API_KEY,
            openai_base_url=model.base_url,
            answer_slots=1,
            lease_seconds=0.5,
            recover_every=0.2,
        )
        try:
            dms = [await world.dm(f"{QUESTIONS[i % 2]} ({i})") for i in range(6)]
            for channel in [dm["channel_id"] for dm in dms] + [c for _i, c in dead]:
                await world.bot_messages(channel, timeout=40)
            await bot.adapter.inbox.wait_idle(15)
            await asyncio.sleep(1.0)
            assert await bot.adapter.recover_unanswered() == 0
        finally:
            await bot.stop()
        assert len(model_runs(model)) == 6
    for dm in dms:
        [answer] = _answers(world, dm["channel_id"])
        assert answer["content"] != texts.INBOX_GAVE_UP
    for _id, channel in dead:
        assert [m["content"] for m in _answers(world, channel)] == [texts.INBOX_GAVE_UP]
    rows = await ledger(db, "discord")
    assert (
        sorted(row.status for row in rows.values()) == [events.ANSWERED] * 6 + [events.FAILED] * 2
    )


async def test_a_takeover_removes_what_the_dead_process_posted_but_never_recorded(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> None:
    question, channel = await _acked_by_a_dead_process(db, world, QUESTIONS[1])
    # What the dead process posted before it could record it: a reply to the question.
    world.api._store_message(
        channel,
        {
            "content": "half an answer",
            "message_reference": {"message_id": question, "channel_id": channel},
        },
    )
    bot = await _bot(world, db, any_db_url, kb_uri, **INBOX_FAST)
    try:
        await world.api.wait_for(
            lambda: (
                [m["content"] for m in _answers(world, channel)] not in ([], ["half an answer"])
            ),
            what="the new answer",
        )
        await bot.adapter.inbox.wait_idle(10)
    finally:
        await bot.stop()
    [answer] = _answers(world, channel)
    assert "billing page" in answer["content"].lower()
    assert [m["content"] for m in world.api.deleted] == ["half an answer"]


def _ledger_writes(db: Database) -> tuple[list[str], Any]:
    """Every claim, payload rewrite and outcome written to the ledger from now on (lease
    renewals aside), and the function that stops recording."""
    writes: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sql = " ".join(statement.split()).lower()
        if sql.startswith("insert into processed_events"):
            writes.append("claim")
        elif sql.startswith("update processed_events set payload"):
            writes.append("payload")
        elif sql.startswith("update processed_events set status"):
            writes.append("outcome")

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    return writes, lambda: event.remove(db.engine.sync_engine, "before_cursor_execute", seen)


async def test_an_answer_posted_whole_writes_the_ledger_twice_even_in_a_new_thread(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """A DM and a channel mention: the claim already names the thread (its id is the
    question's), so nothing is rewritten before answering, and a reply posted in one piece
    is followed by its outcome only."""
    settings = make_settings(world, any_db_url, kb_uri)
    runtime = await build_runtime(settings, db=db)
    bot = await start_bot(world, runtime, first_post_delay=FIRST_POST_DELAY)
    if bot.adapter._catch_up is not None:  # reading back history would claim a second time
        await bot.adapter._catch_up
    writes, stop_recording = _ledger_writes(db)
    try:
        dm = await world.dm(QUESTIONS[1])
        mention = await world.say(QUESTIONS[0], mention=True)
        await world.bot_messages(dm["channel_id"])
        await world.bot_messages(mention["id"])
        await bot.adapter.inbox.wait_idle(10)
    finally:
        stop_recording()
        await bot.stop()
    assert sorted(writes) == ["claim", "claim", "outcome", "outcome"]
    assert len(_answers(world, mention["id"])) == 1
    rows = await ledger(db, "discord")
    thread_row = rows[mention["id"]]
    assert thread_row.status == events.ANSWERED
    assert thread_row.payload[SESSION_KEY] == (
        f"discord:{world.guild_id}:{mention['id']}:{mention['id']}"
    )
    assert thread_row.payload["msg"]["channel_id"] == mention["id"]


async def test_a_streamed_answer_records_its_first_post(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """Text shown before the answer is complete is recorded at once: a process taking over
    after a crash removes it before answering again."""
    bot = await _bot(world, db, any_db_url, kb_uri)  # the tests' bot posts the first text at once
    try:
        dm = await world.dm(QUESTIONS[1])
        [answer] = await world.bot_messages(dm["channel_id"])
        await bot.adapter.inbox.wait_idle(10)
    finally:
        await bot.stop()
    assert world.api.find("PATCH", rf"/channels/{dm['channel_id']}/messages/\d+")  # streamed
    row = (await ledger(db, "discord"))[dm["id"]]
    assert row.payload[PARTIAL_KEY] == answer["id"]


async def test_a_recovered_mention_whose_thread_was_opened_is_answered_in_it(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> None:
    question, thread = await _acked_by_a_dead_process(
        db, world, QUESTIONS[0], thread=True, thread_in_claim=True
    )
    # The dead process had opened the thread: Discord refuses a second one (code 160004).
    world.api.threads[thread] = p.thread_channel(
        thread, world.guild_id, world.channel_id, "opened", world.api.bot_id
    )
    world.api.channel_guild[thread] = world.guild_id
    bot = await _bot(world, db, any_db_url, kb_uri, **INBOX_FAST)
    try:
        await world.bot_messages(thread, timeout=30)
        await bot.adapter.inbox.wait_idle(10)
    finally:
        await bot.stop()
    [answer] = _answers(world, thread)
    assert "reset your password" in answer["content"].lower()
    assert _answers(world, world.channel_id) == []
    [attempt] = world.api.find("POST", rf"/channels/{world.channel_id}/messages/{question}/threads")
    assert attempt.status == 400
    row = (await ledger(db, "discord"))[question]
    assert row.status == events.ANSWERED
    assert row.payload[SESSION_KEY] == f"discord:{world.guild_id}:{thread}:{thread}"
