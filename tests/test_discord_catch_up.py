"""Messages posted while no bot process was connected (Discord does not replay them to a new
session) are read back from channel history on READY and answered, each exactly once."""

from __future__ import annotations

import asyncio

import pytest

from bot.runtime import Runtime, build_runtime
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import make_settings, running_bot, start_bot
from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld, wait_until

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
runtime = discord_fixtures.runtime


def answers_about(world: DiscordWorld, words: str) -> int:
    """The bot's finished messages (any channel or thread) that contain ``words``."""
    return sum(
        words in m["content"].lower() and not m["content"].endswith("▌")
        for m in world.api.messages.values()
    )


async def test_a_question_posted_while_the_bot_was_down_is_answered_once(
    world: DiscordWorld, runtime: Runtime, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    first = await start_bot(world, runtime)
    await world.say("How do I reset my password?", mention=True)
    await wait_until(lambda: answers_about(world, "reset your password"), what="first answer")
    await first.stop()

    # Nobody is connected: the gateway keeps these for the old session, never for a new one.
    await world.say("Where can I download past invoices?", mention=True)
    await world.say("lunch anyone?")

    settings = make_settings(world, sqlite_url, kb_uri)
    async with running_bot(world, settings, sqlite_db) as second:
        await wait_until(lambda: answers_about(world, "billing page"), what="the missed question")
        # Another READY (a reconnect that could not resume) reads the same window again.
        assert await second.adapter.read_missed() >= 3
        await asyncio.sleep(0.5)
        assert answers_about(world, "billing page") == 1
        assert answers_about(world, "reset your password") == 1
        assert not any("lunch" in m["content"] for m in world.api.messages.values())


async def test_catch_up_can_be_switched_off(
    world: DiscordWorld, runtime: Runtime, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    await (await start_bot(world, runtime)).stop()
    await world.say("Where can I download past invoices?", mention=True)
    settings = make_settings(world, sqlite_url, kb_uri, discord_catch_up_minutes=0)
    async with running_bot(world, settings, sqlite_db):
        await asyncio.sleep(0.5)
        assert answers_about(world, "billing page") == 0


async def test_a_forum_post_created_while_the_bot_was_down_is_answered(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = make_settings(world, sqlite_url, kb_uri, discord_forum_channels=world.forum_id)
    await (await start_bot(world, await build_runtime(settings, db=sqlite_db))).stop()
    thread_id, _ = await world.forum_post("How do I reset my password?")

    async with running_bot(world, settings, sqlite_db):
        [answer] = await world.bot_messages(thread_id)
        assert "reset your password" in answer["content"].lower()


async def test_one_unreadable_channel_does_not_stop_the_catch_up_of_the_others(
    world: DiscordWorld, runtime: Runtime, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # The thread of a recent conversation is read first. Fetching it raised something other
    # than an HTTP error (discord.py's InvalidData: a channel type it does not know), and that
    # ended the whole catch-up: the channels after it were never read and their missed
    # questions never answered.
    first = await start_bot(world, runtime)
    thread = await world.say("How do I reset my password?", mention=True)
    await wait_until(lambda: answers_about(world, "reset your password"), what="first answer")
    await first.stop()
    world.api.threads[thread["id"]]["type"] = 99
    await world.say("Where can I download past invoices?", mention=True)  # while nobody listens

    settings = make_settings(world, sqlite_url, kb_uri)
    async with running_bot(world, settings, sqlite_db):
        await wait_until(lambda: answers_about(world, "billing page"), what="the missed question")
    assert world.api.find("GET", rf"/channels/{thread['id']}")  # the bad channel was tried


async def test_a_dm_posted_while_the_bot_was_down_is_answered(
    world: DiscordWorld, runtime: Runtime, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # A DM channel is read by its id: catch-up looked the channel up first (GET /channels/{id})
    # and, when that lookup failed (as it does in this fake), skipped the DM's missed question.
    first = await start_bot(world, runtime)
    dm = await world.dm("How do I reset my password?")
    world.api.user_messages.append(dm)
    await world.bot_messages(dm["channel_id"])
    await first.stop()
    missed = p.message(
        message_id=p.snowflake(),
        channel_id=dm["channel_id"],
        author=world.alice,
        content="Where can I download past invoices?",
    )
    world.api.user_messages.append(missed)  # only in the DM's history: nobody was connected

    settings = make_settings(world, sqlite_url, kb_uri)
    async with running_bot(world, settings, sqlite_db):
        await world.bot_messages(dm["channel_id"], 2)
        await asyncio.sleep(0.3)
    assert answers_about(world, "billing page") == 1
    assert answers_about(world, "reset your password") == 1
    assert not world.api.find("GET", rf"/channels/{dm['channel_id']}")
