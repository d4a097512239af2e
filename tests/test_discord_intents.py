"""The message-content intent (issue 12, point 8): asked for by default so thread follow-ups
work; when Discord refuses it (close 4014) the bot reconnects without it and says, once, how to
enable it; SUPPORTBOT_DISCORD_MESSAGE_CONTENT=false never asks. Real discord.py, fake gateway."""

from __future__ import annotations

import logging

import discord
import pytest

from bot.config import load_settings
from bot.runtime import build_runtime
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import make_settings, running_bot, start_bot
from tests.fakes.discord_world import DiscordWorld

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri


def _asked_for_content(identify: dict) -> bool:
    return discord.Intents._from_value(int(identify["intents"])).message_content


def test_message_content_is_asked_for_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPPORTBOT_DISCORD_MESSAGE_CONTENT", raising=False)
    assert load_settings().discord_message_content is True
    monkeypatch.setenv("SUPPORTBOT_DISCORD_MESSAGE_CONTENT", "false")
    assert load_settings().discord_message_content is False


async def test_refused_intent_reconnects_without_it_and_logs_one_line(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    world.gateway.refuse_privileged = True
    settings = make_settings(world, sqlite_url, kb_uri, discord_message_content=True)
    async with running_bot(world, settings, sqlite_db):
        # Still useful without the intent: a mention is answered.
        question = await world.say("How do I reset my password?", mention=True)
        answers = await world.bot_messages(question["id"])
    assert "Reset password" in answers[0]["content"]
    assert world.gateway.refused == 1
    first, second = world.gateway.identifies
    assert _asked_for_content(first) and not _asked_for_content(second)
    about_intent = [r for r in caplog.records if "intent" in r.getMessage().lower()]
    assert len(about_intent) == 1, [r.getMessage() for r in about_intent]
    line = about_intent[0].getMessage()
    assert about_intent[0].levelno == logging.WARNING
    assert "4014" in line and "Developer Portal" in line and "MESSAGE CONTENT INTENT" in line


async def test_setting_false_never_asks(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    world.gateway.refuse_privileged = True
    settings = make_settings(world, sqlite_url, kb_uri, discord_message_content=False)
    running = await start_bot(world, await build_runtime(settings, db=sqlite_db))
    await running.stop()
    assert world.gateway.refused == 0
    assert [_asked_for_content(i) for i in world.gateway.identifies] == [False]
