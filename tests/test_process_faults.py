"""Faults against the real processes (`supportbot serve`, `run slack --socket-mode`, `run
discord`) through the loopback fakes, configured only by the outside contract's variables:
a process killed in the middle of an answer, platforms that stall or fail. Counted at the fake
platforms and in the database: every question answered once, nothing half-written left
visible, and the conversation's memory holds each question and its answer once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from storage import events
from storage.db import Database
from storage.models import Memory
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention, new_ts
from tests.inbox_support import ledger
from tests.test_inbox_processes import _kill, _serve, _slack_env

__all__ = ["api", "kb_uri"]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def _turns(db: Database) -> list[tuple[str, str, str]]:
    """Every stored question and answer: (session, role, content), in order."""
    async with db.sessions() as session:
        rows = await session.scalars(
            select(Memory).where(Memory.role.in_(("user", "assistant"))).order_by(Memory.id)
        )
        return [(r.session_id, r.role, r.content) for r in rows]


async def test_slack_serve_killed_after_storing_an_answer_it_never_finished_posting(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # The answer is streamed and stored, then Slack stops answering the call that finishes
    # the streamed message, and the process is SIGKILLed while it waits. The restarted
    # process takes the question over: the half-finished message goes, one answer stays, and
    # memory holds the question and its answer once (it used to hold the turn twice).
    env = _slack_env(any_db_url, kb_uri, model, api)
    api.stall("chat.stopStream")
    proc = await _serve(env, "--workers", "0")
    try:
        ts = new_ts()
        question = f"<@{DEFAULT_BOT_USER}> how do I reset my password?"
        url = f"http://127.0.0.1:{env['PORT']}/slack/events"
        async with SlackSender(url, SIGNING_SECRET) as sender:
            assert (await sender.event(app_mention(text=question, ts=ts))).status == 200
        await api.wait_for(lambda: api.calls_to("chat.stopStream"), timeout=30)
        await _kill(proc)
        [half] = api.posted()
        assert half.streaming  # a half-finished answer is visible now
        api.unstall("chat.stopStream")
        proc = await _serve(env, "--workers", "0")
        await api.wait_for(
            lambda: api.posted() and not any(m.streaming for m in api.posted()), timeout=30
        )
        await asyncio.sleep(3.5)  # past a lease: a late duplicate would show now
        [answer] = api.posted()
        assert answer.thread_ts == ts and "Reset password" in answer.text
        assert api.messages[(half.channel, half.ts)].deleted
        rows = await ledger(db, "slack")
        assert Counter(row.status for row in rows.values()) == {events.ANSWERED: 1}
        turns = await _turns(db)
        assert [role for _, role, _ in turns] == ["user", "assistant"], turns
        assert "Reset password" in turns[1][2]
    finally:
        await _kill(proc)
