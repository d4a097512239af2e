"""A question in a channel whose answers are private (`channels set C --ephemeral on`) that
fails is told privately too, through the real discord.py client and the fake Discord: the
apology goes where the answer would have gone (the asker's DM), never into the channel."""

from __future__ import annotations

import pytest

from bot import texts
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import make_settings, model_overrides, private_channel, running_bot
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai
QUESTION = "Where can I download past invoices?"


async def test_a_model_failure_on_a_private_question_is_told_in_the_dm_not_the_channel(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
) -> None:
    # The model is down: the apology was posted under the question for the whole channel,
    # where the answer itself would have gone to the asker's DM.
    await private_channel(world, sqlite_db)
    fake_openai.fail_next(500)
    settings = make_settings(world, sqlite_url, kb_uri, **model_overrides(fake_openai))
    alice = world.alice["id"]
    async with running_bot(world, settings, sqlite_db) as running:
        await world.say(QUESTION, mention=True)
        await world.api.wait_for(lambda: world.api.dm_messages(alice), what="the DM")
        await running.adapter.inbox.wait_idle(10)
    [dm] = world.api.dm_messages(alice)
    assert dm["content"] == texts.ERROR_MODEL_UNAVAILABLE
    public = [m["content"] for m in world.api.channel_messages(world.channel_id)]
    assert texts.ERROR_MODEL_UNAVAILABLE not in public
    assert public == [texts.DISCORD_ANSWER_SENT_PRIVATELY]
    assert not world.api.threads


async def test_a_private_question_given_up_on_is_told_in_the_dm_not_the_channel(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # Discord keeps refusing the DM for a passing reason (a proxy's 429): after the last try
    # the inbox's note (texts.ERROR_GENERIC) went to the channel, in public.
    await private_channel(world, sqlite_db)
    world.api.fail_next("POST", r"/users/@me/channels", times=3, via=False)
    alice = world.alice["id"]
    async with discord_fixtures.retrying_bot(world, sqlite_db, sqlite_url, kb_uri) as running:
        await world.say(QUESTION, mention=True)
        await world.api.wait_for(lambda: world.api.dm_messages(alice), what="the DM")
        await running.adapter.inbox.wait_idle(10)
    [dm] = world.api.dm_messages(alice)
    assert dm["content"] == texts.ERROR_GENERIC
    assert world.api.channel_messages(world.channel_id) == []
    assert not world.api.threads
