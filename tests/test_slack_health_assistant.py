"""/healthz (200 when the database and knowledge base answer, 503 otherwise) and the Assistant
side panel (suggested prompts, "thinking…" status, thread title)."""

from __future__ import annotations

import aiohttp
import asyncpg

from bot import texts
from storage.db import Database
from storage.models import Base
from tests.conftest import PG_ADMIN_URL
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, event_callback, new_ts

__all__ = ["api", "harness", "kb_uri"]


async def _health(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as response:
        body = await response.json()
        body.pop("loop_lag", None)  # figures that vary (tests/test_looplag.py checks them)
        return response.status, body


async def test_healthz_and_acks_follow_the_database(
    pg_url: str, api: FakeSlackAPI, kb_uri: str
) -> None:
    schema = Database(pg_url)
    async with schema.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await schema.dispose()
    h = await SlackHarness.start(api, slack_settings(pg_url, kb_uri, api))
    try:
        assert await _health(h.url) == (
            200,
            {"status": "ok", "database": True, "knowledge_base": True},
        )
        name = pg_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        status, body = await _health(h.url)
        assert status == 503 and body["database"] is False and body["knowledge_base"] is True
        # no ledger, no ack: a 5xx makes Slack retry later instead of the question being lost
        async with h.sender() as sender:
            refused = await sender.event(app_mention(text="<@UBOT00001> anyone there?"))
        assert refused.status >= 500
        assert not api.posted()
    finally:
        await h.close()


async def test_assistant_thread_prompts_status_and_title(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    thread = new_ts()
    started = event_callback(
        {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": "UHUMAN001",
                "channel_id": "D0000007",
                "thread_ts": thread,
                "context": {},
            },
            "event_ts": new_ts(),
        }
    )
    question = app_mention(
        text="how do I reset my password?",
        channel="D0000007",
        thread_ts=thread,
        event_type="message",
        channel_type="im",
    )
    async with harness.sender() as sender:
        assert (await sender.event(started)).status == 200
        await api.wait_for(lambda: api.calls_to("assistant.threads.setSuggestedPrompts"))
        assert (await sender.event(question)).status == 200
        await api.wait_for(lambda: [m for m in api.posted("D0000007") if not m.streaming])
        await harness.bot.wait_idle()
    [prompts] = api.calls_to("assistant.threads.setSuggestedPrompts")
    assert prompts.params["thread_ts"] == thread
    assert [p["message"] for p in prompts.params["prompts"]] == list(texts.SLACK_ASSISTANT_PROMPTS)
    [status] = api.calls_to("assistant.threads.setStatus")
    assert status.params["status"] == texts.SLACK_STATUS_THINKING
    [title] = api.calls_to("assistant.threads.setTitle")
    assert title.params["title"] == "how do I reset my password?"
    [answer] = api.posted("D0000007")
    assert answer.thread_ts == thread and answer.streamed  # assistant threads stream
    order = [c.method for c in api.calls]
    assert order.index("assistant.threads.setStatus") < order.index("chat.startStream")
