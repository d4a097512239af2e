"""The database going away under a running bot: PostgreSQL reached through a TCP hop that goes
down like the server does (open connections reset, new ones refused), through the real
discord.py client and the fake Discord. The gateway never delivers a message twice, so one that
arrives during the outage is held and claimed once the database is back; an answer the outage
cut off is given again. Nothing is lost, nothing is apologised for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.runtime import build_runtime
from storage import events
from storage.db import Database
from storage.models import Base
from tests import discord_fixtures
from tests.discord_fixtures import make_settings, start_bot
from tests.fakes.discord_world import DiscordWorld, wait_until
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_harness import SlackHarness, build_kb, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts
from tests.inbox_support import ledger

pytestmark = pytest.mark.timeout(90)
world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri


class PostgresLink:
    """A TCP hop between the bot and PostgreSQL that can go down like a database server does:
    open connections reset, new ones refused, until it is back on the same port."""

    def __init__(self, db_url: str) -> None:
        self.target = urlsplit(db_url.replace("+asyncpg", ""))
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, db_url: str) -> str:
        return db_url.replace(self.target.netloc.split("@")[-1], f"127.0.0.1:{self.port}")

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await self._server.wait_closed()

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        await self.down()
        try:
            yield
        finally:
            await self.up()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.target.hostname, self.target.port
            )
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()
            self._open.discard(dst)

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


@pytest.fixture
async def link(pg_url: str) -> AsyncIterator[PostgresLink]:
    hop = PostgresLink(pg_url)
    await hop.up()
    yield hop
    await hop.down()


async def test_a_message_arriving_while_the_database_is_down_is_answered_once_it_is_back(
    world: DiscordWorld,
    pg_url: str,
    link: PostgresLink,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Database(link.url(pg_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    running = await start_bot(
        world, await build_runtime(make_settings(world, pg_url, kb_uri), db=db)
    )
    try:
        before = await world.dm("How do I reset my password?")
        await world.bot_messages(before["channel_id"])
        with caplog.at_level(logging.WARNING, logger="bot.inbox"):
            async with link.outage():
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
        await wait_until(lambda: _answered(db, during["id"]), timeout=20, what="answered")
    finally:
        await running.stop()
        await db.dispose()
    assert "reset your password" in answer["content"].lower()


def _failed_or_handed_back(caplog: pytest.LogCaptureFixture) -> bool:
    """The answer hit the outage: apologised for, failed, or being retried."""
    signs = ("answer failed", "failed (attempt", "trying again", "recording the progress")
    return any(any(sign in r.getMessage() for sign in signs) for r in caplog.records)


async def test_an_answer_cut_off_by_a_database_outage_is_given_again_once_it_is_back(
    world: DiscordWorld,
    pg_url: str,
    link: PostgresLink,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The question is claimed, then the database goes away while the model answers: storing
    the answer fails. The question is safe in the ledger, so it is answered again once the
    database is back, instead of the answer being replaced by an apology."""
    db = Database(link.url(pg_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    settings = make_settings(world, link.url(pg_url), kb_uri, lease_seconds=2.0, recover_every=0.3)
    # No partial post: the answer is posted once, after it is stored (where the outage hits).
    running = await start_bot(world, await build_runtime(settings, db=db), first_post_delay=30)
    slow = asyncio.Event()
    original = running.adapter.runtime.agent.run

    async def slow_agent(request: Any) -> AsyncIterator[Any]:
        async for item in original(request):
            if not slow.is_set():
                slow.set()
                await asyncio.sleep(1.0)  # the database goes down meanwhile
            yield item

    running.adapter.runtime.agent.run = slow_agent  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING):
            dm = await world.dm("How do I reset my password?")
            await asyncio.wait_for(slow.wait(), 20)
            async with link.outage():
                await wait_until(lambda: _failed_or_handed_back(caplog), timeout=20, what="fault")
        await wait_until(
            lambda: any(
                "reset your password" in m["content"].lower()
                for m in world.api.channel_messages(dm["channel_id"])
            ),
            timeout=30,
            what="the answer",
        )
        await wait_until(lambda: _answered(db, dm["id"]), timeout=20, what="answered")
    finally:
        await running.stop()
        await db.dispose()
    shown = [m["content"] for m in world.api.channel_messages(dm["channel_id"])]
    assert len(shown) == 1 and "reset your password" in shown[0].lower(), shown


async def _answered(db: Database, key: str) -> bool:
    rows = await ledger(db, "discord")
    return key in rows and rows[key].status == events.ANSWERED


async def test_a_ready_during_an_outage_reads_back_what_was_missed_once_the_database_is_back(
    world: DiscordWorld,
    pg_url: str,
    link: PostgresLink,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A question posted while no process was connected is read back on READY; when that
    READY comes while the database is down, the catch-up waits for it instead of giving up."""
    db = Database(link.url(pg_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    settings = make_settings(world, link.url(pg_url), kb_uri)
    first = await start_bot(world, await build_runtime(settings, db=db))
    await first.stop()
    missed = await world.say("How do I reset my password?", mention=True)  # nobody connected
    with caplog.at_level(logging.WARNING):
        async with link.outage():
            second = await start_bot(world, await build_runtime(settings, db=db))
            await wait_until(
                lambda: any("missed messages" in r.getMessage() for r in caplog.records),
                timeout=20,
                what="the catch-up to meet the outage",
            )
    try:
        [answer] = await world.bot_messages(missed["id"], timeout=30)  # in a thread of its own
        await wait_until(lambda: _answered(db, missed["id"]), timeout=20, what="answered")
    finally:
        await second.stop()
        await db.dispose()
    assert "reset your password" in answer["content"].lower()


async def test_slack_events_during_an_outage_get_a_500_one_log_line_and_are_answered_on_retry(
    pg_url: str, link: PostgresLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack_kb = build_kb(tmp_path)
    api = FakeSlackAPI()
    await api.start()
    db = Database(link.url(pg_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    h = await SlackHarness.start(api, slack_settings(link.url(pg_url), slack_kb, api), db=db)
    ts = new_ts()
    body = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?", ts=ts)
    try:
        async with h.sender() as sender:
            with caplog.at_level(logging.WARNING, logger="adapters.slack"):
                async with link.outage():
                    refused = await sender.event(body)
            retried = await sender.event(body, retry_num=1)  # Slack's retry, database back
        await h.bot.wait_idle()
    finally:
        await h.close()
        await api.close()
        await db.dispose()
    assert (refused.status, retried.status) == (500, 200)
    [line] = [r for r in caplog.records if r.name == "adapters.slack.app"]
    assert "database is unreachable" in line.getMessage() and not line.exc_info
    assert [m.thread_ts for m in api.posted()] == [ts]
