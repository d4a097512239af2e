"""Pytest fixtures shared by the Slack tests (import them into a test module to use them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage.db import Database
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_harness import SlackHarness, build_kb, slack_settings


@pytest.fixture(scope="module")
def kb_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_kb(tmp_path_factory.mktemp("slack_kb"))


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackAPI]:
    fake = FakeSlackAPI()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def harness(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> AsyncIterator[SlackHarness]:
    h = await SlackHarness.start(api, slack_settings(sqlite_url, kb_uri, api), db=sqlite_db)
    yield h
    await h.close()
