"""Multi-workspace OAuth: install via oauth.v2.access, then answer with that workspace's token."""

from __future__ import annotations

from sqlalchemy import select

from storage.db import Database
from storage.models import slack_bots, slack_installations
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import (
    OAUTH_CLIENT_ID,
    SlackHarness,
    install_via_oauth,
    oauth_settings,
)
from tests.fakes.slack_sender import app_mention

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
