"""A black-box fault round against the real processes, as an acceptance harness drives them:
calls Slack carried out before answering with an error, a process stopped mid-answer, double
clicks, a slow model and odd input. Counted at the fake platforms and in the database."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest

from storage import events
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, Turn
from tests.fakes.slack_api import RESPONSE_URL, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, new_ts
from tests.inbox_support import ledger
from tests.process_support import (
    events_url,
    free_port,
    kill,
    mention,
    serve,
    slack_env,
    stored_turns,
)

__all__ = ["api", "kb_uri"]
pytestmark = pytest.mark.timeout(90)
STEPS = "".join(f"Step {i}: open Settings and check item {i}.\n" for i in range(12))


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def _buttons(blocks: list[dict]) -> list[str]:
    return [e.get("action_id", "") for b in blocks for e in b.get("elements") or []]


async def test_a_stream_slack_stopped_before_answering_500_keeps_its_answer(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # Slack stops the streamed answer, then its answer is lost (a 500). slack_sdk sent the
    # stop again, Slack refused it (message_not_in_streaming_state), and the bot took the
    # finished answer back and apologised instead. A stop that finds the stream stopped is done.
    env = slack_env(sqlite_url, kb_uri, model, api)
    api.fail("chat.stopStream", status=500, handled=True)
    proc = await serve(env, "--workers", "0")
    try:
        ts = new_ts()
        await mention(env, ts)
        await api.wait_for(lambda: len(api.calls_to("chat.stopStream")) >= 2, timeout=30)
        await asyncio.sleep(2)
        [answer] = api.posted()
        assert answer.thread_ts == ts and not answer.streaming
        assert "Reset password" in answer.text and "sb_helpful" in _buttons(answer.blocks)
        assert not [m for m in api.messages.values() if m.deleted]
        [row] = (await ledger(sqlite_db, "slack")).values()
        assert (row.status, row.attempts) == (events.ANSWERED, 1)
    finally:
        await kill(proc)


async def test_a_response_url_that_fails_after_delivering_is_not_answered_twice(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # `/ask`'s answer goes to its response_url, which delivers and then answers 500 (a
    # gateway failing late). slack_sdk posted it again on each 5xx, and then the bot posted it
    # a fourth time with chat.postEphemeral. A response_url nobody listens at (nothing was
    # delivered) still falls back to chat.postEphemeral.
    env = slack_env(sqlite_url, kb_uri, model, api)
    api.fail(RESPONSE_URL, status=500, times=3, handled=True)
    refused = f"http://127.0.0.1:{free_port()}/response/closed"
    proc = await serve(env, "--workers", "0")
    try:
        async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
            for url in (api.response_url("late"), refused):
                sent = await sender.command("/ask", "how do I reset my password?", response_url=url)
                assert sent.status == 200
        await api.wait_for(lambda: api.ephemerals, timeout=30)
        await asyncio.sleep(2)
        [delivered] = api.responses["late"]
        assert "Reset password" in delivered["text"]
        [fallback] = api.ephemerals
        assert "Reset password" in fallback.params["text"]
        rows = await ledger(sqlite_db, "slack")
        assert {r.status for r in rows.values()} == {events.ANSWERED}
    finally:
        await kill(proc)


async def test_sigterm_mid_stream_takes_the_half_answer_down_and_the_restart_answers_once(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # SIGTERM while the model is half-way through a slow answer (it would need 20 s more):
    # the process stops within 10 s, and the asker is not left with a half answer that looks
    # as if it were still being written until some process takes the work over. The next
    # process answers once; memory holds the question and its answer once.
    model.queue(Turn(content=STEPS, chunk_chars=20, stall_after=2, stall=20.0))
    env = slack_env(sqlite_url, kb_uri, model, api)
    proc = await serve(env, "--workers", "0")
    try:
        ts = new_ts()
        await mention(env, ts)
        await api.wait_for(lambda: api.posted(), timeout=30)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert time.monotonic() - started < 10
        assert api.posted() == []  # the half answer was taken down
        proc = await serve(env, "--workers", "0")
        await api.wait_for(
            lambda: api.posted() and not any(m.streaming for m in api.posted()), timeout=30
        )
        await asyncio.sleep(2)
        [answer] = api.posted()
        assert answer.thread_ts == ts and "Reset password" in answer.text
        [row] = (await ledger(sqlite_db, "slack")).values()
        assert row.status == events.ANSWERED
        assert [role for _, role, _ in await stored_turns(sqlite_db)] == ["user", "assistant"]
    finally:
        await kill(proc)
