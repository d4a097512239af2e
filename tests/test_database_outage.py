"""The database going away under a running bot: a real outage of a PostgreSQL database (new
connections refused, open ones terminated), through the real discord.py client and the fake
Discord. The gateway never delivers a message twice, so one that arrives during the outage is
held and answered once the database is back: not lost, not apologised for."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from bot.runtime import build_runtime
from storage import events
from storage.db import Database
from storage.models import Base
from tests import discord_fixtures
from tests.conftest import _pg_admin
from tests.discord_fixtures import make_settings, start_bot
from tests.fakes.discord_world import DiscordWorld, wait_until
from tests.inbox_support import ledger

pytestmark = pytest.mark.timeout(90)
world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri


@contextlib.asynccontextmanager
async def outage(db_url: str) -> AsyncIterator[None]:
    """The database refuses new connections and its open ones are cut, until the block ends."""
    name = db_url.rsplit("/", 1)[1]
    await _pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    await _pg_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )
    try:
        yield
    finally:
        await _pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


async def test_a_message_arriving_while_the_database_is_down_is_answered_once_it_is_back(
    world: DiscordWorld, pg_url: str, kb_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(pg_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    running = await start_bot(
        world, await build_runtime(make_settings(world, pg_url, kb_uri), db=db)
    )
    try:
        before = await world.dm("How do I reset my password?")
        await world.bot_messages(before["channel_id"])
        with caplog.at_level(logging.WARNING, logger="bot.inbox"):
            async with outage(pg_url):
                during = await world.dm("How do I reset my password?")
                await wait_until(
                    lambda: any(
                        "database is unreachable" in r.getMessage() for r in caplog.records
                    ),
                    timeout=20,
                    what="the claim to fail",
                )
                assert world.api.channel_messages(during["channel_id"]) == []  # no apology
        [answer] = await world.bot_messages(during["channel_id"], timeout=30)
        rows = await ledger(db, "discord")
    finally:
        await running.stop()
        await db.dispose()
    assert "reset your password" in answer["content"].lower()
    assert rows[during["id"]].status == events.ANSWERED
