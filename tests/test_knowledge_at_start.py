"""A knowledge base that cannot answer anything (missing, empty, unreadable, removed while the
bot runs) is one clear line for the operator, a short apology or refusal for the asker, and
fixing it needs no restart."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from bot import texts
from bot.config import load_settings
from bot.runtime import build_runtime
from storage.db import Database
from storage.knowledge import TABLE_REFRESH_SECONDS
from tests import discord_fixtures
from tests.discord_fixtures import make_settings, running_bot
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.slack_harness import build_kb

world = discord_fixtures.world


async def _start(uri: str, sqlite_url: str, db: Database) -> None:
    settings = load_settings(database_url=sqlite_url, kb_uri=uri, embedder="none")
    runtime = await build_runtime(settings, db=db)
    await runtime.aclose()


def _kb_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bot.runtime" and "knowledge base" in r.msg]


async def test_a_missing_knowledge_base_is_one_warning_naming_it(
    tmp_path: Path, sqlite_url: str, sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "never-ingested")
    with caplog.at_level(logging.INFO, logger="bot.runtime"):
        await _start(missing, sqlite_url, sqlite_db)
    [line] = _kb_lines(caplog)
    assert line.levelno == logging.WARNING and not line.exc_info
    assert missing in line.getMessage() and "supportbot ingest" in line.getMessage()


async def test_an_unreadable_knowledge_base_is_one_error_line(
    tmp_path: Path, sqlite_url: str, sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    uri = build_kb(tmp_path / "built")
    broken = tmp_path / "broken"
    shutil.copytree(uri, broken)
    for path in broken.rglob("*"):
        if path.is_file() and path.suffix in (".lance", ".manifest"):
            path.write_bytes(b"not lance")  # a disk that lost the files' contents
    with caplog.at_level(logging.INFO, logger="bot.runtime"):
        await _start(str(broken), sqlite_url, sqlite_db)
    [line] = _kb_lines(caplog)
    assert line.levelno == logging.ERROR and not line.exc_info
    assert str(broken) in line.getMessage() and "supportbot ingest" in line.getMessage()


async def test_a_built_knowledge_base_says_nothing(
    tmp_path: Path, sqlite_url: str, sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    uri = build_kb(tmp_path / "built")
    with caplog.at_level(logging.INFO, logger="bot.runtime"):
        await _start(uri, sqlite_url, sqlite_db)
    assert _kb_lines(caplog) == []


async def test_a_knowledge_base_removed_under_a_running_bot_is_one_line_and_an_apology(
    world: DiscordWorld,
    tmp_path: Path,
    sqlite_url: str,
    sqlite_db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The knowledge-base folder deleted while the bot runs (a botched deploy, a volume gone):
    each asker gets the short apology, the operator one line naming the folder and the fix,
    and once the knowledge base is rebuilt the same process answers again."""
    uri = build_kb(tmp_path / "kb")
    async with running_bot(world, make_settings(world, sqlite_url, uri), sqlite_db):
        shutil.rmtree(uri)
        with caplog.at_level(logging.WARNING):
            gone = await world.dm("How do I reset my password?")
            [apology] = await world.bot_messages(gone["channel_id"])
        build_kb(tmp_path / "kb")  # rebuilt at the same place
        await asyncio.sleep(TABLE_REFRESH_SECONDS)  # how long a replica may read the old one
        back = await world.dm("How do I reset my password?")
        [answer] = await world.bot_messages(back["channel_id"])
    assert apology["content"] == texts.ERROR_GENERIC
    [line] = [r for r in caplog.records if r.name == "bot.responder"]
    assert not line.exc_info and uri in line.getMessage()
    assert "supportbot ingest" in line.getMessage()
    assert "reset your password" in answer["content"].lower()
