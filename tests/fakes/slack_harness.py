"""Starts the real Slack bot (real Responder, SQLite/PostgreSQL, LanceDB) against the fakes.

``SlackHarness`` serves the bolt app over loopback HTTP exactly as ``supportbot serve`` does
(``adapters.slack.server.build_web_app``), with its Web API client pointed at ``FakeSlackAPI``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.slack.app import SlackBot
from adapters.slack.server import build_web_app
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.fakes.loopback import serve_on_loopback
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_sender import SlackSender

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token"
OAUTH_CLIENT_ID = "111.222"
# Seconds before work handed back after a passing fault is tried again (2 s, 8 s in production).
RETRY_SOON = (0.2, 0.2)

DOCS = {
    "passwords.md": (
        "# Passwords\n\n## Resetting your password\n\n"
        "To reset your password, open Settings, choose Security and click Reset password. "
        "A reset link is emailed to you and expires after 30 minutes.\n"
    ),
    "billing.md": (
        "# Billing\n\n## Invoices\n\n"
        "Invoices are sent on the first day of every month. You can download past invoices "
        "from the Billing page as PDF files.\n"
    ),
}


def build_kb(folder: Path) -> str:
    """A tiny real LanceDB knowledge base (BM25 only) from two Markdown files."""
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    uri = str(folder / "kb")
    KnowledgeBase.open(uri, None).ingest(sorted(docs.iterdir()))
    return uri


def slack_settings(db_url: str, kb_uri: str, api: FakeSlackAPI, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "kb_uri": kb_uri,
        "embedder": "none",
        "openai_api_key": None,
        "slack_api_url": api.base_url,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_bot_token": BOT_TOKEN,
        "slack_client_id": None,
        "slack_client_secret": None,
    }
    values.update(extra)
    return load_settings(**values)


def model_settings(
    db_url: str, kb_uri: str, api: FakeSlackAPI, model: FakeOpenAI, **extra: Any
) -> Settings:
    """Settings that answer with the OpenAI agent against ``model``, without retries."""
    values: dict[str, Any] = {
        "openai_api_key": FAKE_API_KEY,
        "openai_base_url": model.base_url,
        "openai_max_retries": 0,
    }
    return slack_settings(db_url, kb_uri, api, **{**values, **extra})


def oauth_settings(db_url: str, kb_uri: str, api: FakeSlackAPI, **extra: Any) -> Settings:
    """Settings of a multi-workspace install: OAuth client, no single bot token."""
    values: dict[str, Any] = {
        "slack_bot_token": None,
        "slack_client_id": OAUTH_CLIENT_ID,
        "slack_client_secret": "client-secret",
    }
    return slack_settings(db_url, kb_uri, api, **{**values, **extra})


async def install_via_oauth(base_url: str, code: str) -> str:
    """Walk the install flow as a browser does (install page, then Slack's redirect back with
    ``code``); returns the install page's HTML."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(base_url + "/slack/install") as page:
            assert page.status == 200, await page.text()
            html = await page.text()
            cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        state = re.search(r"state=([\w-]+)", html).group(1)  # type: ignore[union-attr]
        async with browser.get(
            base_url + "/slack/oauth_redirect",
            params={"code": code, "state": state},
            headers={"Cookie": cookie},
        ) as done:
            assert done.status == 200, await done.text()
    return html


@dataclass
class SlackHarness:
    api: FakeSlackAPI
    runtime: Runtime
    bot: SlackBot
    runner: web.AppRunner
    url: str

    @classmethod
    async def start(
        cls,
        api: FakeSlackAPI,
        settings: Settings,
        *,
        db: Database | None = None,
        **bot_options: Any,
    ) -> SlackHarness:
        runtime = await build_runtime(settings, db=db)
        bot_options.setdefault("update_interval", 0.05)
        bot = SlackBot(runtime, **bot_options)
        runner, port = await serve_on_loopback(build_web_app(bot))
        return cls(api, runtime, bot, runner, f"http://127.0.0.1:{port}")

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    def sender(self, *, deadline: float = 30.0) -> SlackSender:
        return SlackSender(self.events_url, SIGNING_SECRET, deadline=deadline)

    async def close(self) -> None:
        await self.runner.cleanup()  # stops the bot (on_shutdown) too
        await self.runtime.aclose()


@asynccontextmanager
async def running_harness(
    api: FakeSlackAPI,
    settings: Settings,
    *,
    db: Database | None = None,
    try_later_delays: tuple[float, ...] | None = None,
) -> AsyncIterator[SlackHarness]:
    """A started harness for the ``async with`` block, closed afterwards (``try_later_delays``:
    how soon the inbox tries again work a passing fault handed back)."""
    h = await SlackHarness.start(api, settings, db=db)
    if try_later_delays is not None:
        h.bot.inbox.try_later_delays = try_later_delays
    try:
        yield h
    finally:
        await h.close()
