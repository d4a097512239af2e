"""The database going away under a running bot: PostgreSQL reached through a TCP hop that goes
down like the server does (open connections reset, new ones refused), through the real
discord.py client and the fake Discord. The gateway never delivers a message twice, so one that
arrives during the outage is held and claimed once the database is back; an answer the outage
cut off is given again. Nothing is lost, nothing is apologised for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.config import Settings
from storage import events
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import RunningBot, make_settings, running_bot
from tests.fakes.discord_world import DiscordWorld, wait_until
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api
from tests.fakes.slack_harness import SlackHarness, build_kb, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts
from tests.inbox_support import ledger, tables_on

pytestmark = pytest.mark.timeout(90)
__all__ = ["api"]
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


@pytest.fixture
async def linked_db(link: PostgresLink, pg_url: str) -> AsyncIterator[Database]:
    """The tables on PostgreSQL, reached through the link (disposed of afterwards)."""
    async with tables_on(link.url(pg_url)) as db:
        yield db


def _settings(world: DiscordWorld, db: Database, kb_uri: str, **overrides: Any) -> Settings:
    return make_settings(world, db.url, kb_uri, **overrides)


@contextlib.asynccontextmanager
async def _running(
    world: DiscordWorld, db: Database, settings: Settings, **options: Any
) -> AsyncIterator[RunningBot]:
    """A bot on ``db`` (the adapter's ``options``), stopped at the end."""
    async with running_bot(world, settings, db, **options) as running:
        yield running


async def _until_answered(db: Database, key: str) -> None:
    await wait_until(lambda: _answered(db, key), timeout=20, what="answered")


async def test_a_message_arriving_while_the_database_is_down_is_answered_once_it_is_back(
    world: DiscordWorld,
    linked_db: Database,
    link: PostgresLink,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = linked_db
    async with _running(world, db, _settings(world, db, kb_uri)):
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
        await _until_answered(db, during["id"])
    assert "reset your password" in answer["content"].lower()


def _failed_or_handed_back(caplog: pytest.LogCaptureFixture) -> bool:
    """The answer hit the outage: apologised for, failed, or being retried."""
    signs = ("answer failed", "failed (attempt", "trying again", "recording the progress")
    return any(any(sign in r.getMessage() for sign in signs) for r in caplog.records)


async def test_an_answer_cut_off_by_a_database_outage_is_given_again_once_it_is_back(
    world: DiscordWorld,
    linked_db: Database,
    link: PostgresLink,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The question is claimed, then the database goes away while the model answers: storing
    the answer fails. The question is safe in the ledger, so it is answered again once the
    database is back, instead of the answer being replaced by an apology."""
    db = linked_db
    settings = _settings(world, db, kb_uri, lease_seconds=2.0, recover_every=0.3)
    # No partial post: the answer is posted once, after it is stored (where the outage hits).
    async with _running(world, db, settings, first_post_delay=30) as running:
        slow = asyncio.Event()
        original = running.adapter.runtime.agent.run

        async def slow_agent(request: Any) -> AsyncIterator[Any]:
            async for item in original(request):
                if not slow.is_set():
                    slow.set()
                    await asyncio.sleep(1.0)  # the database goes down meanwhile
                yield item

        running.adapter.runtime.agent.run = slow_agent  # type: ignore[method-assign]
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
        await _until_answered(db, dm["id"])
    shown = [m["content"] for m in world.api.channel_messages(dm["channel_id"])]
    assert len(shown) == 1 and "reset your password" in shown[0].lower(), shown


async def _answered(db: Database, key: str) -> bool:
    rows = await ledger(db, "discord")
    return key in rows and rows[key].status == events.ANSWERED


async def test_a_ready_during_an_outage_reads_back_what_was_missed_once_the_database_is_back(
    world: DiscordWorld,
    linked_db: Database,
    link: PostgresLink,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A question posted while no process was connected is read back on READY; when that
    READY comes while the database is down, the catch-up waits for it instead of giving up."""
    db = linked_db
    settings = _settings(world, db, kb_uri)
    async with _running(world, db, settings):
        pass  # a process was connected, then went away
    missed = await world.say("How do I reset my password?", mention=True)  # nobody connected
    with caplog.at_level(logging.WARNING):
        await link.down()  # the next process starts during the outage
        async with _running(world, db, settings):
            await wait_until(
                lambda: any("missed messages" in r.getMessage() for r in caplog.records),
                timeout=20,
                what="the catch-up to meet the outage",
            )
            await link.up()
            [answer] = await world.bot_messages(missed["id"], timeout=30)  # in a thread of its own
            await _until_answered(db, missed["id"])
    assert "reset your password" in answer["content"].lower()


async def test_slack_events_during_an_outage_get_a_500_one_log_line_and_are_answered_on_retry(
    api: FakeSlackAPI,
    linked_db: Database,
    link: PostgresLink,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = linked_db
    h = await SlackHarness.start(api, slack_settings(db.url, build_kb(tmp_path), api), db=db)
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
    assert (refused.status, retried.status) == (500, 200)
    [line] = [r for r in caplog.records if r.name == "adapters.slack.app"]
    assert "database is unreachable" in line.getMessage() and not line.exc_info
    assert [m.thread_ts for m in api.posted()] == [ts]


class WorkerLog:
    """What worker processes wrote to stderr (inherited from the test: captured by capfd)."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd
        self.lines: list[str] = []

    def has(self, text: str) -> bool:
        self.lines += self.capfd.readouterr().err.splitlines()
        return any(text in line for line in self.lines)

    def count(self, text: str) -> int:
        self.has(text)
        return sum(text in line for line in self.lines)


async def test_a_worker_waits_out_a_database_outage_instead_of_dying(
    api: FakeSlackAPI,
    pg_url: str,
    link: PostgresLink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A `serve --workers` worker whose database is unreachable (when it starts, or later)
    stays up and takes work again once it is back, instead of exiting and being restarted
    after a growing backoff; it says so in one line when the wait starts and one when it ends."""
    from adapters.slack.server import WORKER_COMMAND
    from bot.supervisor import WorkerPool
    from tests.fakes.slack_harness import BOT_TOKEN, SIGNING_SECRET

    slack_kb = build_kb(tmp_path)
    async with tables_on(pg_url) as db:
        for name in [n for n in os.environ if n.startswith(("SLACK_", "OPENAI_", "SUPPORTBOT_"))]:
            monkeypatch.delenv(name)
        worker_env = {  # the worker inherits the environment, as under `supportbot serve`
            "DATABASE_URL": link.url(pg_url),
            "SUPPORTBOT_KB_URI": slack_kb,
            "SUPPORTBOT_EMBEDDER": "none",
            "SLACK_API_URL": api.base_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SUPPORTBOT_LEASE_SECONDS": "3",
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        for name, value in worker_env.items():
            monkeypatch.setenv(name, value)
        # The front acks and queues straight into PostgreSQL; only the worker loses its database.
        front = await SlackHarness.start(
            api, slack_settings(pg_url, slack_kb, api), db=db, answer_inline=False
        )
        worker_log = WorkerLog(capfd)
        pool = WorkerPool(WORKER_COMMAND, 1)
        asked: list[str] = []

        async def ask(sender: Any) -> None:
            asked.append(new_ts())
            body = app_mention(
                text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?", ts=asked[-1]
            )
            assert (await sender.event(body)).status == 200  # queued for the worker

        try:
            async with front.sender() as sender:
                async with link.outage():  # the worker starts while its database is down
                    pool.start()
                    await ask(sender)
                    await wait_until(
                        lambda: worker_log.has("waiting for it to come back"),
                        timeout=60,
                        what="the worker to wait for its database",
                    )
                    [pid] = pool.pids()
                await api.wait_for(lambda: _finished(api) == asked, timeout=30)
                assert worker_log.count("the database is back") == 1
                await wait_until(lambda: _all_answered(db, 1), timeout=20, what="the first answer")
                async with link.outage():  # and again while it is taking work
                    await ask(sender)
                    await wait_until(
                        lambda: worker_log.has("taking work from the ledger failed"),
                        timeout=20,
                        what="the worker to meet the outage",
                    )
                await api.wait_for(lambda: _finished(api) == asked, timeout=30)
                await wait_until(lambda: _all_answered(db, 2), timeout=20, what="the second answer")
            assert pool.pids() == [pid] and pool.restarts == 0  # never exited, never restarted
            assert worker_log.count("waiting for it to come back") == 1
            assert worker_log.count("taking work from the ledger failed") == 1
            assert worker_log.count("the database is back; taking work") == 1
            assert worker_log.count("Traceback") == 0
        finally:
            await pool.aclose()
            await front.close()


def _finished(api: FakeSlackAPI) -> list[str | None]:
    return [m.thread_ts for m in api.posted() if not m.streaming]


async def _all_answered(db: Database, count: int) -> bool:
    rows = await ledger(db, "slack")
    return [row.status for row in rows.values()] == [events.ANSWERED] * count


async def test_channel_settings_during_an_outage_are_the_defaults_and_one_line_without_traceback(
    pg_url: str, link: PostgresLink, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.channels import DEFAULT_POLICY, ChannelSettings
    from bot.messages import ConversationKey, Platform

    db = Database(link.url(pg_url))  # no tables: a failure that is not an outage
    settings = ChannelSettings(db, ttl=0)
    where = ConversationKey(Platform.SLACK, "T1", "C1")
    try:
        with caplog.at_level(logging.WARNING, logger="bot.channels"):
            async with link.outage():
                assert await settings.policy(where) == DEFAULT_POLICY
            [outage] = caplog.records
            caplog.clear()
            assert await settings.policy(where) == DEFAULT_POLICY  # the table is missing
            [unexpected] = caplog.records
    finally:
        await db.dispose()
    assert "the database is unreachable" in outage.getMessage() and not outage.exc_info
    assert "using defaults" in outage.getMessage()
    assert unexpected.exc_info  # a bug or a missing migration keeps its traceback


async def test_a_question_that_cannot_be_stored_in_an_outage_is_one_line_without_traceback(
    pg_url: str, link: PostgresLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away while the answer is being made: storing the answer fails, and
    so does keeping the question alone; that is one warning with the reason."""
    from bot.agent import OfflineAgent
    from tests.core_support import build_kb as build_core_kb
    from tests.core_support import message, responder

    async with tables_on(link.url(pg_url)) as db:
        agent = OfflineAgent(build_core_kb(tmp_path))
        original = agent.run

        async def cut_off(request: Any) -> AsyncIterator[Any]:
            async for item in original(request):
                if link._server is not None and link._server.is_serving():
                    await link.down()  # after the conversation was read, before anything is stored
                yield item

        agent.run = cut_off  # type: ignore[method-assign]
        try:
            with caplog.at_level(logging.WARNING, logger="bot.responder"):
                await responder(db, agent).handle(message("How do I reset my password?"))
        finally:
            await link.up()
    [kept] = [r for r in caplog.records if "could not store the question" in r.getMessage()]
    assert "the database is unreachable" in kept.getMessage() and not kept.exc_info


async def test_renewing_leases_and_recording_progress_log_an_outage_once_and_its_end_once(
    pg_url: str, link: PostgresLink, caplog: pytest.LogCaptureFixture
) -> None:
    """Every heartbeat and every try of every answer's progress record used to log a warning
    while the database was down (dozens of lines for one outage); now each says so once, with
    the reason, and once that it is back, and the work is finished as before."""
    from bot.inbox import Inbox, Work

    async with tables_on(link.url(pg_url)) as db:
        down = asyncio.Event()

        async def deliver(work: Work) -> None:
            await down.wait()
            await inbox.record(work, {**work.payload, "posted": "part"})  # tried through the outage

        # Heartbeats every 2 s; the leases outlast the outage, so no work is given up as lost.
        inbox = Inbox(db, "test", deliver, lease=timedelta(seconds=8))
        try:
            for key in ("q1", "q2", "q3"):
                assert await inbox.submit(key, {"kind": "question"})
            with caplog.at_level(logging.INFO, logger="bot.inbox"):
                async with link.outage():
                    down.set()
                    await asyncio.sleep(5.0)  # two heartbeats and each record's first five tries
                await inbox.wait_idle(timeout=30)
            rows = await ledger(db, "test")
        finally:
            await inbox.aclose()
    assert [row.status for row in rows.values()] == [events.ANSWERED] * 3
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bot.inbox"]
    renewing = [line for line in lines if "renewing" in line[1]]
    recording = [line for line in lines if "recording" in line[1]]
    assert [level for level, _ in renewing] == [logging.WARNING, logging.INFO], lines
    assert [level for level, _ in recording] == [logging.WARNING, logging.INFO], lines
    for _, message in (renewing[0], recording[0]):
        assert "the database is unreachable" in message
    assert "recording the progress of q" in recording[0][1]
