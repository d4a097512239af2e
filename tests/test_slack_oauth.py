"""Multi-workspace OAuth: install via oauth.v2.access, then answer with that workspace's token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from sqlalchemy import select, text

from adapters.slack.app import SlackBot
from bot.runtime import build_runtime
from storage.db import Database
from storage.models import Base, slack_bots, slack_installations
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import (
    OAUTH_CLIENT_ID,
    SlackHarness,
    install_via_oauth,
    oauth_settings,
)
from tests.fakes.slack_sender import app_mention
from tests.inbox_support import INBOX_FAST

__all__ = ["api", "kb_uri"]

TEAM = "T0000NEW1"
TOKEN = "xoxb-new-workspace-token"
BOT_USER = "UBOTNEW01"


async def test_install_then_answer_in_that_workspace_with_its_token(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    api.grant_oauth("code-123", team_id=TEAM, token=TOKEN, bot_user_id=BOT_USER)
    settings = oauth_settings(sqlite_url, kb_uri, api)
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        html = await install_via_oauth(h.url, "code-123")
        assert f"client_id={OAUTH_CLIENT_ID}" in html and "chat:write" in html
        assert api.calls_to("oauth.v2.access")
        async with sqlite_db.sessions() as session:
            installed = (await session.execute(select(slack_installations))).mappings().one()
            bot = (await session.execute(select(slack_bots))).mappings().one()
        assert installed["team_id"] == TEAM and installed["bot_token"] == TOKEN
        assert bot["bot_user_id"] == BOT_USER

        async with h.sender() as sender:
            event = app_mention(text=f"<@{BOT_USER}> how do I reset my password?", team=TEAM)
            assert (await sender.event(event)).status == 200
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
    finally:
        await h.close()
    [answer] = api.posted()
    assert answer.token == TOKEN and "Reset password" in answer.text
    assert api.calls_to("chat.startStream")[0].token == TOKEN


async def test_unknown_workspace_is_not_answered(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = oauth_settings(sqlite_url, kb_uri, api)
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        async with h.sender() as sender:
            response = await sender.event(app_mention(text="<@UX> hi", team="TUNKNOWN"))
        assert response.status == 200
        await h.bot.wait_idle()
    finally:
        await h.close()
    assert not api.posted()


async def test_an_installed_workspace_is_answered_while_auth_test_fails(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """bolt called auth.test before acking every request of a multi-workspace install and, when
    Slack failed it, acked with a 200 "reinstall this app" text: the question was lost. The
    bot's ids stored at install time are enough."""
    api.grant_oauth("code-123", team_id=TEAM, token=TOKEN, bot_user_id=BOT_USER)
    settings = oauth_settings(sqlite_url, kb_uri, api)
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        await install_via_oauth(h.url, "code-123")
        api.fail("auth.test", status=500, times=100)
        before = len(api.calls_to("auth.test"))
        async with h.sender() as sender:
            event = app_mention(text=f"<@{BOT_USER}> how do I reset my password?", team=TEAM)
            acked = await sender.event(event)
        assert (acked.status, acked.text) == (200, "")
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
    finally:
        await h.close()
    [answer] = api.posted()
    assert answer.token == TOKEN and "Reset password" in answer.text
    assert len(api.calls_to("auth.test")) == before  # nothing asked of Slack before the ack


SLACK_DEADLINE = 3.0  # seconds Slack waits for the ack before it gives up and retries


async def _rename(db: Database, old: str, new: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def _not_acked(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not acked" in r.getMessage()]


async def test_an_event_arriving_while_the_installation_store_fails_is_retried_not_lost(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading the installed bot fails (the database answers with an error): the event gets a
    500, so Slack sends it again, and the operator one line (it used to be a traceback)."""
    api.grant_oauth("code-123", team_id=TEAM, token=TOKEN, bot_user_id=BOT_USER)
    h = await SlackHarness.start(api, oauth_settings(any_db_url, kb_uri, api), db=db)
    try:
        await install_via_oauth(h.url, "code-123")
        body = app_mention(text=f"<@{BOT_USER}> how do I reset my password?", team=TEAM)
        await _rename(db, "slack_bots", "slack_bots_away")  # the fault
        async with h.sender(deadline=SLACK_DEADLINE) as sender:
            assert (await sender.event(body)).status == 500
        [reason] = _not_acked(caplog)
        assert "installation store failed" in reason and "Traceback" not in caplog.text
        await _rename(db, "slack_bots_away", "slack_bots")
        async with h.sender(deadline=SLACK_DEADLINE) as sender:
            assert (await sender.event(body, retry_num=1)).status == 200
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
    finally:
        await h.close()
    [answer] = api.posted()
    assert answer.token == TOKEN and "Reset password" in answer.text


async def test_an_installation_store_held_by_a_lock_gets_a_500_within_slack_s_deadline(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A migration holding a lock on the installations made authorizing wait for it, past
    Slack's 3 s: Slack gave up and retried into the same wait."""
    db = Database(pg_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    api.grant_oauth("code-123", team_id=TEAM, token=TOKEN, bot_user_id=BOT_USER)
    h = await SlackHarness.start(api, oauth_settings(pg_url, kb_uri, api), db=db)
    locker = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await install_via_oauth(h.url, "code-123")
        body = app_mention(text=f"<@{BOT_USER}> how do I reset my password?", team=TEAM)
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE slack_bots IN ACCESS EXCLUSIVE MODE")
        async with h.sender(deadline=SLACK_DEADLINE) as sender:
            assert (await sender.event(body)).status == 500
        [reason] = _not_acked(caplog)
        assert "did not answer" in reason and "Traceback" not in caplog.text
        await lock.rollback()
        async with h.sender(deadline=SLACK_DEADLINE) as sender:
            assert (await sender.event(body, retry_num=1)).status == 200
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await h.bot.wait_idle()
    finally:
        await locker.close()
        await h.close()
        await db.dispose()
    [answer] = api.posted()
    assert answer.token == TOKEN and "Reset password" in answer.text


async def test_recovered_work_whose_workspace_token_cannot_be_read_is_tried_again(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Work taken from the ledger (a worker, or recovery after a crash) reads the workspace's
    token first. A database fault there failed the work for good: the question was never
    answered, and telling the asker failed too. Now it is tried again a little later."""
    api.grant_oauth("code-123", team_id=TEAM, token=TOKEN, bot_user_id=BOT_USER)
    settings = oauth_settings(any_db_url, kb_uri, api, **INBOX_FAST)
    front = await SlackHarness.start(api, settings, db=db, answer_inline=False)
    worker = SlackBot(await build_runtime(settings), max_concurrent_answers=4)
    worker.inbox.try_later_delays = (1.0, 1.0)
    stop = asyncio.Event()
    loop: asyncio.Task[None] | None = None
    try:
        await install_via_oauth(front.url, "code-123")
        async with front.sender() as sender:
            event = app_mention(text=f"<@{BOT_USER}> how do I reset my password?", team=TEAM)
            assert (await sender.event(event)).status == 200  # queued for the worker
        await _rename(db, "slack_bots", "slack_bots_away")  # the fault
        await worker.start(recover=False)
        loop = asyncio.create_task(worker.work_loop(stop, poll_interval=0.05))
        await _until(lambda: worker.inbox.stats.retried + worker.inbox.stats.failed > 0)
        await _rename(db, "slack_bots_away", "slack_bots")
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming], timeout=15)
        await worker.wait_idle()
    finally:
        stop.set()
        if loop is not None:
            await loop
        await worker.aclose()
        await worker.runtime.aclose()
        await front.close()
    [answer] = api.posted()
    assert answer.token == TOKEN and "Reset password" in answer.text
    assert worker.inbox.stats.retried == 1 and "installation store failed" in caplog.text
