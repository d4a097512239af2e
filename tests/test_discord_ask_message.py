""" "Ask supportbot" on a message (the Discord message command), through the real discord.py
client against the fake Discord: deferred privately, answered in a thread on the message (or in
the thread it is in), once, for its author."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.discord.client import sync_application_commands
from bot import texts
from bot.runtime import build_runtime
from storage import events, memories
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import RunningBot, make_settings, running_bot, start_bot
from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld
from tests.inbox_support import ledger

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
runtime = discord_fixtures.runtime
bot = discord_fixtures.bot


@pytest.fixture
async def any_bot(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str
) -> AsyncIterator[RunningBot]:
    """The bot on SQLite and on PostgreSQL."""
    running = await start_bot(
        world, await build_runtime(make_settings(world, any_db_url, kb_uri), db=db)
    )
    yield running
    await running.stop()


async def _invoker_note(world: DiscordWorld, interaction: dict[str, Any]) -> str:
    [response] = await world.interaction_done(interaction["token"])
    return str(response["content"])


def _deferred_privately(world: DiscordWorld, interaction: dict[str, Any]) -> Any:
    [callback] = world.api.find("POST", rf"/interactions/{interaction['id']}/.+/callback")
    assert callback.body["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert int(callback.body["data"]["flags"]) & 64  # only the invoker sees it
    return callback


async def test_a_question_nobody_addressed_is_answered_in_a_thread_for_its_author(
    world: DiscordWorld, any_bot: RunningBot, db: Database
) -> None:
    question = await world.say("How do I reset my password?")  # alice, no mention
    await asyncio.sleep(0.3)
    assert not world.api.channel_messages(world.channel_id)  # not for the bot on its own

    sent_at = time.monotonic()
    asked = await world.message_command(question)  # bob points the bot at it
    note = await _invoker_note(world, asked)
    assert _deferred_privately(world, asked).at - sent_at < 3.0
    assert note == texts.ASK_MESSAGE_ANSWERING_IN_THREAD
    thread_id = question["id"]  # the thread started on the message
    [answer] = await world.bot_messages(thread_id)
    assert world.api.threads[thread_id]["parent_id"] == world.channel_id
    assert "reset your password" in answer["content"].lower()

    # The author (not the invoker) asked: alice's follow-up in the thread is answered without
    # a mention; bob's chatter there is not a question for the bot.
    await world.say("Where can I download past invoices?", channel_id=thread_id)
    await world.bot_messages(thread_id, 2)
    await world.say("I had that too last week", channel_id=thread_id, author=world.bob)
    await asyncio.sleep(0.5)
    await any_bot.adapter.inbox.wait_idle()
    messages = world.api.channel_messages(thread_id)
    assert len(messages) == 2
    assert "billing page" in messages[1]["content"].lower()
    session = f"discord:{world.guild_id}:{thread_id}:{thread_id}"
    assert (
        await memories.question_author(
            db, session_id=session, message_id=thread_id, roles=("user",)
        )
        == world.alice["id"]
    )
    rows = await ledger(db, "discord")
    assert rows[question["id"]].status == events.ANSWERED  # claimed under the message's id


async def test_a_double_invoke_answers_once_and_tells_the_second_invoker(
    world: DiscordWorld, any_bot: RunningBot
) -> None:
    question = await world.say("Where can I download past invoices?")
    first, second = await asyncio.gather(
        world.message_command(question), world.message_command(question, author=world.alice)
    )
    notes = sorted([await _invoker_note(world, first), await _invoker_note(world, second)])
    assert notes == sorted([texts.ASK_MESSAGE_ANSWERING_IN_THREAD, texts.ASK_MESSAGE_ALREADY])
    await world.bot_messages(question["id"])
    await asyncio.sleep(0.5)
    await any_bot.adapter.inbox.wait_idle()
    assert len(world.api.channel_messages(question["id"])) == 1
    assert len(world.api.find("POST", r"/channels/\d+/messages/\d+/threads")) == 1


async def test_a_message_already_answered_as_a_mention_is_not_answered_again(
    world: DiscordWorld, bot: RunningBot
) -> None:
    question = await world.say("How do I reset my password?", mention=True)
    await world.bot_messages(question["id"])
    asked = await world.message_command(question)
    assert await _invoker_note(world, asked) == texts.ASK_MESSAGE_ALREADY
    await asyncio.sleep(0.3)
    assert len(world.api.channel_messages(question["id"])) == 1


async def test_a_message_in_a_thread_is_answered_in_that_thread(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    thread_id = world.thread_made_offline(world.channel_id, "release day")
    question = await world.say("Where can I download past invoices?", channel_id=thread_id)
    await asyncio.sleep(0.3)
    assert not world.api.channel_messages(thread_id)
    asked = await world.message_command(question)
    assert await _invoker_note(world, asked) == texts.ASK_MESSAGE_ANSWERING_IN_THREAD
    [answer] = await world.bot_messages(thread_id)
    assert str(answer["message_reference"]["message_id"]) == question["id"]  # a reply to it
    assert not world.api.find("POST", r"/channels/\d+/messages/\d+/threads")
    session = f"discord:{world.guild_id}:{thread_id}:{thread_id}"
    assert await memories.count_memories(sqlite_db, session_id=session) == 2


@pytest.mark.parametrize(
    ("content", "attachments", "from_bot", "note"),
    [
        ("Deploy finished", None, True, texts.ASK_MESSAGE_FROM_BOT),
        ("", None, False, texts.ASK_MESSAGE_EMPTY),
        ("", [p.attachment()], False, texts.ASK_MESSAGE_ONLY_ATTACHMENTS),
    ],
    ids=["bot", "empty", "only-attachments"],
)
async def test_what_cannot_be_asked_is_told_to_the_invoker_alone(
    world: DiscordWorld,
    bot: RunningBot,
    content: str,
    attachments: list | None,
    from_bot: bool,
    note: str,
) -> None:
    author = p.user(p.snowflake(), "ci", bot=True) if from_bot else world.alice
    message = p.message(
        message_id=p.snowflake(),
        channel_id=world.channel_id,
        guild_id=world.guild_id,
        author=author,
        content=content,
        attachments=attachments,
    )
    asked = await world.message_command(message)
    assert await _invoker_note(world, asked) == note
    _deferred_privately(world, asked)
    await asyncio.sleep(0.2)
    assert not world.api.channel_messages(world.channel_id)
    assert not world.api.threads


async def test_without_permission_to_start_threads_the_invoker_is_told(
    world: DiscordWorld, bot: RunningBot
) -> None:
    question = await world.say("How do I reset my password?")
    asked = await world.message_command(
        question, app_permissions=p.BOT_PERMISSIONS & ~p.CREATE_PUBLIC_THREADS
    )
    assert await _invoker_note(world, asked) == texts.DISCORD_ASK_MESSAGE_NO_THREADS
    await asyncio.sleep(0.2)
    assert not world.api.threads
    assert not world.api.channel_messages(world.channel_id)


async def test_sync_registers_the_message_command(world: DiscordWorld, bot: RunningBot) -> None:
    await sync_application_commands(bot.adapter.client, guild_id=int(world.guild_id))
    commands = {c["name"]: c for c in world.api.commands[world.guild_id]}
    assert commands["Ask supportbot"]["type"] == 3  # MESSAGE: in every message's Apps menu
    assert "description" not in commands["Ask supportbot"]
    assert {"ask", "forget", "help"} <= set(commands)


async def test_a_stop_before_the_invoker_was_told_is_finished_by_the_next_process(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # The process stops after claiming the message but before the invoker's deferred private
    # response is filled in (Discord stops answering that call). It used to stay
    # "thinking..." for good: only the live handler ever filled it in. The claimed work now
    # does, on every attempt, so the next process tells the invoker and answers, once.
    settings = make_settings(world, sqlite_url, kb_uri)
    first = await start_bot(world, await build_runtime(settings, db=sqlite_db))
    question = await world.say("How do I reset my password?")
    original = r"/webhooks/\d+/[^/]+/messages/@original"
    world.api.stall("PATCH", original)
    asked = await world.message_command(question)
    await world.api.wait_for(lambda: world.api.find("PATCH", original))
    await first.stop()
    world.api.unstall()
    async with running_bot(world, settings, sqlite_db) as second:
        assert await _invoker_note(world, asked) == texts.ASK_MESSAGE_ANSWERING_IN_THREAD
        [answer] = await world.bot_messages(question["id"])
        assert "reset your password" in answer["content"].lower()
        await asyncio.sleep(0.5)
        await second.adapter.inbox.wait_idle()
    assert len(world.api.channel_messages(question["id"])) == 1
    [row] = (await ledger(sqlite_db, "discord")).values()
    assert row.status == events.ANSWERED
