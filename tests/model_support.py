"""Shared set-ups of the tests that answer with the OpenAI agent against the fake OpenAI: a
Slack harness (real bolt) or a Discord bot (real discord.py) on the test's SQLite database,
started, asked, and stopped. Import the fixtures into a test module to use them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from storage.db import Database
from tests.discord_fixtures import RunningBot, start_model_bot
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts

StartSlack = Callable[..., Awaitable[SlackHarness]]
RunDiscord = Callable[..., AbstractAsyncContextManager[RunningBot]]


async def start_slack_with_model(
    api: FakeSlackAPI, db: Database, url: str, kb: str, model: FakeOpenAI, **settings: Any
) -> SlackHarness:
    """A Slack harness whose answers come from ``model`` (``settings``: more of them)."""
    values = slack_settings(
        url, kb, api, openai_api_key=FAKE_API_KEY, openai_base_url=model.base_url, **settings
    )
    return await SlackHarness.start(api, values, db=db)


@pytest.fixture
def slack_with_model(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> StartSlack:
    """``await slack_with_model(**settings)``: a started harness on the test's database."""

    async def start(**settings: Any) -> SlackHarness:
        return await start_slack_with_model(
            api, sqlite_db, sqlite_url, kb_uri, fake_openai, **settings
        )

    return start


async def ask_slack(h: SlackHarness, api: FakeSlackAPI, question: str) -> list[str]:
    """Mention the bot in a new thread; the texts of the bot's messages in it, once done."""
    ts = new_ts()
    async with h.sender() as sender:
        response = await sender.event(app_mention(text=f"<@{DEFAULT_BOT_USER}> {question}", ts=ts))
    assert response.status == 200
    await h.bot.wait_idle()
    return [m.text for m in api.posted() if m.thread_ts == ts and not m.deleted]


@asynccontextmanager
async def model_bot(
    world: DiscordWorld, db: Database, url: str, kb: str, model: FakeOpenAI, **options: Any
) -> AsyncIterator[RunningBot]:
    """A Discord bot answering with ``model`` for the ``async with`` block, then stopped."""
    running = await start_model_bot(world, db, url, kb, model, **options)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def discord_with_model(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> RunDiscord:
    """``async with discord_with_model(**adapter_options) as running:`` on the test's database."""

    def run(**options: Any) -> AbstractAsyncContextManager[RunningBot]:
        return model_bot(world, sqlite_db, sqlite_url, kb_uri, fake_openai, **options)

    return run


async def ask_in_dm(world: DiscordWorld, question: str) -> tuple[dict[str, Any], list[dict]]:
    """A direct message to the bot, and the bot's messages in that DM once its answer is done."""
    dm = await world.dm(question)
    return dm, await world.bot_messages(dm["channel_id"])


def responder_error(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    """The one line the Responder logged for a failed answer."""
    [record] = [r for r in caplog.records if r.name == "bot.responder"]
    return record
