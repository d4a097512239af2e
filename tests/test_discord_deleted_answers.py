"""A message of an answer deleted by someone else (a moderator) while the answer is still
being written, through the real discord.py client and the fake Discord: the next edit is
refused (404, 10008 Unknown Message), and the asker gets the answer in a new message, once,
instead of an apology."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot import texts
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import finished, make_settings, model_overrides, running_bot
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai

QUESTION = "How do I reset my password?"
ANSWER = "".join(f"Step {i}: open the settings page and choose item {i}. " for i in range(30))


async def _ask(world: DiscordWorld, where: str) -> Callable[[], list[dict[str, Any]]]:
    """Ask with a mention in the channel (answered in a new thread) or with /ask; what the
    bot shows there now, in order."""
    if where == "mention":
        question = await world.say(QUESTION, mention=True)
        return lambda: world.api.channel_messages(question["id"])  # the thread has its id
    token = (await world.slash("ask", {"question": QUESTION}))["token"]
    return lambda: world.api.interaction_messages(token)


@pytest.mark.parametrize("where", ["mention", "/ask"])
async def test_an_answer_deleted_while_streamed_is_posted_anew_not_apologised_for(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    where: str,
) -> None:
    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
        Turn(content=ANSWER, chunk_chars=60, chunk_delay=0.1),
    )
    settings = make_settings(world, sqlite_url, kb_uri, **model_overrides(fake_openai))
    async with running_bot(world, settings, sqlite_db) as running:
        shown = await _ask(world, where)
        [partial] = await world.api.wait_for(
            lambda: [m for m in shown() if m["content"].startswith("Step 0")],
            what="the answer's start",
        )
        await world.delete(partial)  # a moderator, while the answer is still streaming
        await world.api.wait_for(lambda: any(finished(m) for m in shown()), what="the answer")
        await running.adapter.inbox.wait_idle(10)
    [answer] = shown()
    assert answer["id"] != partial["id"]
    assert answer["content"].startswith("Step 0") and "Step 29" in answer["content"]
    assert texts.ERROR_GENERIC not in answer["content"]
