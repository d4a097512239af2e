"""Answers that end differently from how they were streamed, through the real discord.py
client and the fake Discord: nothing of the streamed answer may stay beside what it ends as,
and an answer whose message someone deleted meanwhile still arrives."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from bot import texts
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import (
    RunningBot,
    finished,
    make_settings,
    model_overrides,
    running_bot,
)
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai

QUESTION = "How do I reset my password?"
# Long enough to be streamed over two Discord messages before the model stalls.
STEPS = "".join(f"Step {i}: open the settings page and choose item {i}. " for i in range(30))
LONG_START = "".join(f"Step {i}: open the settings page and choose item {i}.\n" for i in range(60))


async def _ask(world: DiscordWorld, where: str) -> Callable[[], list[dict[str, Any]]]:
    """Ask in a DM, with a mention in the channel (answered in a new thread) or with /ask;
    what the bot shows there now, in order."""
    if where == "dm":
        channel = (await world.dm(QUESTION))["channel_id"]
        return lambda: world.api.channel_messages(channel)
    if where == "mention":
        question = await world.say(QUESTION, mention=True)
        return lambda: world.api.channel_messages(question["id"])  # the thread has its id
    token = (await world.slash("ask", {"question": QUESTION}))["token"]
    return lambda: world.api.interaction_messages(token)


AnsweringBot = Callable[..., AbstractAsyncContextManager[RunningBot]]


@pytest.fixture
def answering(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> AnsweringBot:
    """A bot (for an ``async with``) whose model searches, then streams ``answer``."""

    def start(answer: Turn, **overrides: Any) -> AbstractAsyncContextManager[RunningBot]:
        fake_openai.queue(
            Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
            answer,
        )
        model = model_overrides(fake_openai)
        settings = make_settings(world, sqlite_url, kb_uri, **model, **overrides)
        return running_bot(world, settings, sqlite_db)

    return start


@pytest.mark.parametrize("where", ["dm", "/ask"])
async def test_a_long_answer_stalling_past_the_timeout_leaves_only_the_apology(
    world: DiscordWorld, answering: AnsweringBot, where: str
) -> None:
    # The model streams more than one message's worth, then goes silent past the timeout. The
    # first streamed message became the apology, and the second piece of the half answer
    # (a message, or the command's follow-up) stayed under it for good.
    stalling = Turn(
        content=LONG_START * 2, chunk_chars=400, chunk_delay=0.15, stall_after=8, stall=5
    )
    async with answering(stalling, openai_timeout=1.5) as running:
        shown = await _ask(world, where)
        await world.api.wait_for(lambda: len(shown()) >= 2, what="two streamed pieces")
        await world.api.wait_for(
            lambda: texts.ERROR_MODEL_TIMEOUT in [m["content"] for m in shown()],
            what="the apology",
        )
        await running.adapter.inbox.wait_idle(10)
    assert [m["content"] for m in shown()] == [texts.ERROR_MODEL_TIMEOUT]


@pytest.mark.parametrize("where", ["mention", "/ask"])
async def test_an_answer_deleted_while_streamed_is_posted_anew_not_apologised_for(
    world: DiscordWorld, answering: AnsweringBot, where: str
) -> None:
    # Someone else (a moderator) deletes the answer's message while it is still streamed: the
    # next edit is refused (404, 10008 Unknown Message), and the asker got an apology instead
    # of the answer. It is posted anew, once (an interaction's response by a follow-up).
    async with answering(Turn(content=STEPS, chunk_chars=60, chunk_delay=0.1)) as running:
        shown = await _ask(world, where)
        [partial] = await world.api.wait_for(
            lambda: [m for m in shown() if m["content"].startswith("Step 0")],
            what="the answer's start",
        )
        await world.delete(partial)
        await world.api.wait_for(lambda: any(finished(m) for m in shown()), what="the answer")
        await running.adapter.inbox.wait_idle(10)
    [answer] = shown()
    assert answer["id"] != partial["id"]
    assert answer["content"].startswith("Step 0") and "Step 29" in answer["content"]
    assert texts.ERROR_GENERIC not in answer["content"]
