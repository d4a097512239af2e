"""``GET /slack/install`` cannot fill the database (issue 12, point 6): OAuth states expire and
expired ones are pruned, and the install page is rate-limited per client address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import func, select, update

from bot import texts
from bot.ratelimit import RateLimiter
from storage.db import Database
from storage.models import slack_oauth_states
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import (
    SlackHarness,
    oauth_settings,
)

__all__ = ["api", "kb_uri"]


async def _states(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(slack_oauth_states)))


async def test_install_page_is_rate_limited_and_expired_states_are_pruned(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = oauth_settings(sqlite_url, kb_uri, api)
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    store = h.bot.app.oauth_flow.settings.state_store
    try:
        async with aiohttp.ClientSession() as browser:
            statuses = []
            for _ in range(40):
                async with browser.get(h.url + "/slack/install") as page:
                    statuses.append(page.status)
                    if page.status == 429:
                        refused = await page.text()
            assert statuses.count(200) == 10 and statuses[10:] == [429] * 30
            assert refused == texts.SLACK_INSTALL_RATE_LIMITED
            assert await _states(sqlite_db) == 10  # refused visits stored nothing
            # Every state expires; once expired, the next issue deletes them.
            async with sqlite_db.session() as session:
                rows = await session.execute(select(slack_oauth_states.c.expire_at))
                for (expire_at,) in rows:
                    at = expire_at.replace(tzinfo=UTC)
                    assert timedelta(0) < at - datetime.now(UTC) <= timedelta(minutes=10)
                past = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
                await session.execute(update(slack_oauth_states).values(expire_at=past))
            store.prune_interval = 0
            await store.async_issue()
    finally:
        await h.close()
    assert await _states(sqlite_db) == 1


def test_rate_limiter_refills_per_key() -> None:
    now = [0.0]
    limiter = RateLimiter(burst=2, per_seconds=60, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")  # another address has its own bucket
    now[0] = 30.0  # half a minute: one token back
    assert limiter.allow("a") and not limiter.allow("a")
