"""A model so slow that the `/ask` interaction's token expires (Discord accepts a deferred
response for 15 minutes, then answers 401, code 50027 "Invalid Webhook Token"), through the
real discord.py client and the fake Discord: the answer is not lost with the token, it is
posted where the asker sees it (the command's channel; their DM for a private `/ask`)."""

from __future__ import annotations

import pytest

from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import finished, make_settings, model_overrides, running_bot
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, Turn

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai
ANSWER = "Open the settings page and choose Reset password."


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
async def test_an_answer_that_outlives_its_interaction_token_is_still_delivered(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    private: bool,
) -> None:
    fake_openai.queue(Turn(content=ANSWER, delay=1.0))
    settings = make_settings(world, sqlite_url, kb_uri, **model_overrides(fake_openai))
    alice = world.alice["id"]

    def delivered() -> list[dict]:
        if private:
            return world.api.dm_messages(alice)
        return world.api.channel_messages(world.channel_id)

    async with running_bot(world, settings, sqlite_db) as running:
        options = {"question": "How do I reset my password?", "ephemeral": private}
        asked = await world.slash("ask", options)
        await world.api.wait_for(lambda: world.api.acknowledged, what="the defer")
        world.api.expire_token(asked["token"])  # the model outlives the 15 minutes
        await world.api.wait_for(lambda: any(finished(m) for m in delivered()), what="answer")
        await running.adapter.inbox.wait_idle(10)
    [answer] = delivered()
    assert ANSWER in answer["content"]
    if private:
        assert world.api.channel_messages(world.channel_id) == []


async def test_pieces_posted_before_the_token_expired_are_replaced_by_the_answer(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
) -> None:
    # A long public `/ask` answer was streamed into the response and a follow-up (2000
    # characters each), then the token expired and the whole answer was posted in the channel
    # again: the half-written response and follow-up stayed above it. Now they are deleted
    # (through the channel, as the bot's own messages: the token cannot any more), and the
    # channel reads as one answer.
    long_answer = " ".join(f"Step {i}: open Settings and check item {i}." for i in range(150))
    fake_openai.queue(Turn(content=long_answer, chunk_chars=1500, stall_after=2, stall=3.0))
    settings = make_settings(world, sqlite_url, kb_uri, **model_overrides(fake_openai))
    async with running_bot(world, settings, sqlite_db) as running:
        asked = await world.slash("ask", {"question": "How do I reset my password?"})
        token = asked["token"]
        await world.api.wait_for(
            lambda: len(world.api.interaction_messages(token)) >= 2, what="a follow-up"
        )
        shown = [m["id"] for m in world.api.interaction_messages(token)]
        world.api.expire_token(token)  # the model outlives the 15 minutes
        await world.api.wait_for(
            lambda: (
                any(finished(m) for m in world.api.channel_messages(world.channel_id))
                and len(world.api.deleted) >= len(shown)
            ),
            what="the answer, and the pieces removed",
        )
        await running.adapter.inbox.wait_idle(10)
    answer = world.api.channel_messages(world.channel_id)
    assert " ".join(m["content"] for m in answer).split() == long_answer.split()
    assert {m["id"] for m in world.api.deleted} == set(shown)
    assert world.api.interaction_messages(token) == []
