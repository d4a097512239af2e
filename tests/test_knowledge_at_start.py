"""A process started on a knowledge base that cannot answer anything says so in one line at
start-up (and still starts: fixing the knowledge base needs no restart)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.runtime import build_runtime
from storage.db import Database
from tests.fakes.slack_harness import build_kb


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
