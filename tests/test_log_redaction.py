"""No log level prints a token (issue 12, point 7): an OAuth install at DEBUG, where slack_sdk
logs the whole ``oauth.v2.access`` answer, leaves no token in any record or formatted line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot import logredact
from bot.cli import configure_logging
from storage.db import Database
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import (
    SlackHarness,
    install_via_oauth,
    oauth_settings,
)

__all__ = ["api", "kb_uri"]

TOKEN = "xoxb-20241204-7777-AbCdEfGhIjKlMnOpQrStUvWx"
DISCORD_TOKEN = "MTEyMzQ1Njc4OTAxMjM0NTY3OA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456"
OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
APP_TOKEN = "xapp-1-A0123456789-1234567890-abcdef0123456789"


@pytest.fixture
def debug_logging() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    output = io.StringIO()
    configure_logging("DEBUG")
    # A handler added after start-up (as a library or a test harness would) is covered too.
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield output
    root.removeHandler(handler)
    root.setLevel(level)
    logredact.uninstall()


async def test_oauth_install_at_debug_logs_no_token(
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    debug_logging: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api.grant_oauth("code-9", team_id="T0000NEW9", token=TOKEN, bot_user_id="UBOTNEW09")
    settings = oauth_settings(sqlite_url, kb_uri, api)
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        await install_via_oauth(h.url, "code-9")
        # Our own code paths and exceptions with tokens in them are redacted as well.
        log = logging.getLogger("tests.redaction")
        log.debug("tokens %s %s %s", DISCORD_TOKEN, OPENAI_KEY, APP_TOKEN)
        try:
            raise RuntimeError(f"bad auth with {TOKEN}")
        except RuntimeError:
            log.exception("failed")
    finally:
        await h.close()
    assert api.calls_to("oauth.v2.access")
    records = caplog.records
    # slack_sdk did log the oauth.v2.access answer: the scan below is not vacuous.
    assert any("oauth.v2.access" in r.getMessage() for r in records)
    assert any("[redacted]" in r.getMessage() for r in records if r.name.startswith("slack_sdk"))
    formatted = debug_logging.getvalue() + caplog.text
    for secret in (TOKEN, DISCORD_TOKEN, OPENAI_KEY, APP_TOKEN):
        assert secret not in formatted
        for record in records:
            assert secret not in record.getMessage()
            assert secret not in (record.exc_text or "")
    assert "RuntimeError: bad auth with [redacted]" in formatted


async def test_discord_interactions_at_debug_log_no_interaction_token(
    sqlite_db: Database, sqlite_url: str, tmp_path, debug_logging: io.StringIO
) -> None:
    # discord.py logs every gateway event (INTERACTION_CREATE carries the token) and every
    # webhook URL (the token is in its path) at DEBUG: the token, a credential that posts as
    # the bot for 15 minutes, was in the log.
    from storage.knowledge import KnowledgeBase
    from tests.discord_fixtures import make_settings, running_bot
    from tests.fakes.discord_world import DiscordWorld, write_docs

    kb = str(tmp_path / "kb")
    KnowledgeBase.open(kb, None).ingest(write_docs(tmp_path / "docs"))
    world = await DiscordWorld.start()
    try:
        settings = make_settings(world, sqlite_url, kb)
        async with running_bot(world, settings, sqlite_db):
            interaction = await world.slash("ask", {"question": "How do I reset my password?"})
            await world.interaction_done(interaction["token"])
    finally:
        await world.stop()
    formatted = debug_logging.getvalue()
    assert "INTERACTION_CREATE" in formatted and "/messages/@original" in formatted
    assert interaction["token"] not in formatted
