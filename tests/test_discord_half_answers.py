"""Answers that end differently from how they were streamed, through the real discord.py
client and the fake Discord: nothing of the streamed answer may stay beside what it ends as."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import texts
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import make_settings, model_overrides, running_bot
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai

QUESTION = "How do I reset my password?"
# Long enough to be streamed over two Discord messages before the model stalls.
LONG_START = "".join(f"Step {i}: open the settings page and choose item {i}.\n" for i in range(60))


async def _ask(world: DiscordWorld, where: str) -> Callable[[], list[dict[str, Any]]]:
    """Ask in a DM or with /ask; what the bot shows there now, in order."""
    if where == "dm":
        channel = (await world.dm(QUESTION))["channel_id"]
        return lambda: world.api.channel_messages(channel)
    token = (await world.slash("ask", {"question": QUESTION}))["token"]
    return lambda: world.api.interaction_messages(token)


@pytest.mark.parametrize("where", ["dm", "/ask"])
async def test_a_long_answer_stalling_past_the_timeout_leaves_only_the_apology(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    where: str,
) -> None:
    # The model streams more than one message's worth, then goes silent past the timeout. The
    # first streamed message became the apology, and the second piece of the half answer
    # (a message, or the command's follow-up) stayed under it for good.
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
        Turn(content=LONG_START * 2, chunk_chars=400, chunk_delay=0.15, stall_after=8, stall=5),
    )
    settings = make_settings(
        world, sqlite_url, kb_uri, **model_overrides(fake_openai), openai_timeout=1.5
    )
    async with running_bot(world, settings, sqlite_db) as running:
        shown = await _ask(world, where)
        await world.api.wait_for(lambda: len(shown()) >= 2, what="two streamed pieces")
        await world.api.wait_for(
            lambda: texts.ERROR_MODEL_TIMEOUT in [m["content"] for m in shown()],
            what="the apology",
        )
        await running.adapter.inbox.wait_idle(10)
    assert [m["content"] for m in shown()] == [texts.ERROR_MODEL_TIMEOUT]
