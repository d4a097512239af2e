"""Shared fixtures: real SQLite files and real PostgreSQL databases, one fresh database per test;
the CLI on a fresh knowledge base."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from storage.db import Database
from storage.models import Base

PG_ADMIN_URL = os.environ.get("SUPPORTBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_dsn(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A brand-new, empty PostgreSQL database (async driver URL); dropped after the test."""
    name = f"sb_test_{uuid.uuid4().hex[:12]}"
    try:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    yield _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> Iterator[str]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'supportbot.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
async def db(any_db_url: str) -> AsyncIterator[Database]:
    """A Database with the current models' tables, on both backends."""
    database = Database(any_db_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A Database with the current models' tables on SQLite only (fast; for non-storage tests)."""
    database = Database(sqlite_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI on a fresh knowledge base in ``tmp_path/cli-kb``: BM25 only, offline answerer."""
    monkeypatch.setenv("SUPPORTBOT_KB_URI", str(tmp_path / "cli-kb"))
    monkeypatch.setenv("SUPPORTBOT_EMBEDDER", "none")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
