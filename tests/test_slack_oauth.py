"""Multi-workspace OAuth: install via oauth.v2.access, then answer with that workspace's token."""

from __future__ import annotations

import re

import aiohttp
from sqlalchemy import select

from storage.db import Database
from storage.models import slack_bots, slack_installations
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention

__all__ = ["api", "kb_uri"]

TEAM = "T0000NEW1"
TOKEN = "xoxb-new-workspace-token"
BOT_USER = "UBOTNEW01"


async def test_install_then_answer_in_that_workspace_with_its_token(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    api.grant_oauth("code-123", team_id=TEAM, token=TOKEN, bot_user_id=BOT_USER)
    settings = slack_settings(
        sqlite_url,
        kb_uri,
        api,
        slack_bot_token=None,
        slack_client_id="111.222",
        slack_client_secret="client-secret",
    )
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        async with aiohttp.ClientSession() as browser:
            async with browser.get(h.url + "/slack/install") as page:
                assert page.status == 200
                html = await page.text()
                cookie = page.headers["Set-Cookie"].split(";", 1)[0]
            state = re.search(r"state=([\w-]+)", html).group(1)  # type: ignore[union-attr]
            assert "client_id=111.222" in html and "chat:write" in html
            async with browser.get(
                h.url + "/slack/oauth_redirect",
                params={"code": "code-123", "state": state},
                headers={"Cookie": cookie},
            ) as done:
                assert done.status == 200, await done.text()
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
    settings = slack_settings(
        sqlite_url,
        kb_uri,
        api,
        slack_bot_token=None,
        slack_client_id="111.222",
        slack_client_secret="client-secret",
    )
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        async with h.sender() as sender:
            response = await sender.event(app_mention(text="<@UX> hi", team="TUNKNOWN"))
        assert response.status == 200
        await h.bot.wait_idle()
    finally:
        await h.close()
    assert not api.posted()
