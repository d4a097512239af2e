"""Discord ``/ask`` and ``/forget`` are private to their user in guild channels and threads
(issue 12, point 1), through the real discord.py client, the fake Discord and the OpenAI fake."""

from __future__ import annotations

import json

import pytest

from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import start_model_bot
from tests.fakes import discord_payloads as p
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai

ALICE_SECRET = "customer CUST-4242-ALICE"


async def _ask(world: DiscordWorld, question: str, author: dict, **options) -> str:
    interaction = await world.slash(
        "ask", {"question": question, "ephemeral": True}, author=author, **options
    )
    done = await world.interaction_done(interaction["token"])
    return done[0]["content"]


async def test_ask_and_forget_are_per_user_in_channels_and_threads(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    running = await start_model_bot(world, sqlite_db, sqlite_url, kb_uri, fake_openai)
    thread = p.thread_channel(p.snowflake(), world.guild_id, world.channel_id, "t", "1")
    world.api.channel_guild[thread["id"]] = world.guild_id
    try:
        await _ask(world, f"How do I reset my password? I am {ALICE_SECRET}", world.alice)
        before_bob = len(fake_openai.requests)
        await _ask(world, "Where can I download past invoices?", world.bob)
        bob_requests = fake_openai.requests[before_bob:]
        # Bob's /forget in the same channel must leave Alice's memory alone.
        forget = await world.slash("forget", author=world.bob)
        forgot = (await world.interaction_done(forget["token"]))[0]["content"]
        before_alice = len(fake_openai.requests)
        await _ask(world, "And how long does the link take?", world.alice)
        alice_requests = fake_openai.requests[before_alice:]
        # In a thread, Alice's /ask is a conversation of its own (per user per thread).
        before_thread = len(fake_openai.requests)
        await _ask(world, "Where can I download past invoices?", world.alice, channel=thread)
        thread_requests = fake_openai.requests[before_thread:]
    finally:
        await running.stop()
    assert bob_requests, "Bob's question never reached the model"
    assert "CUST-4242" not in json.dumps(bob_requests)
    assert "reset my password" not in json.dumps(bob_requests)
    assert "2 messages" in forgot  # only Bob's own question and answer
    # Alice's follow-up still carries her earlier turn: her memory survived Bob's /forget.
    assert "CUST-4242" in json.dumps(alice_requests)
    assert "CUST-4242" not in json.dumps(thread_requests)
