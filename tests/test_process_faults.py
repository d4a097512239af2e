"""Faults against the real processes (`supportbot serve`, `run slack --socket-mode`, `run
discord`) through the loopback fakes, configured only by the outside contract's variables:
a process killed in the middle of an answer, platforms that stall or fail. Counted at the fake
platforms and in the database: every question answered once, nothing half-written left
visible, and the conversation's memory holds each question and its answer once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot import texts
from storage import events
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, Turn, default_policy
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention, event_callback, new_ts
from tests.fakes.slack_socket import FakeSocketMode
from tests.inbox_support import ledger, model_runs
from tests.process_support import (
    create_schema,
    discord_process,
    events_url,
    kill,
    serve,
    serving,
    slack_env,
    spawn,
    stored_turns,
)

__all__ = ["api", "kb_uri"]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def test_slack_serve_killed_after_storing_an_answer_it_never_finished_posting(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # The answer is streamed and stored, then Slack stops answering the call that finishes
    # the streamed message, and the process is SIGKILLed while it waits. The restarted
    # process takes the question over: the half-finished message goes, one answer stays, and
    # memory holds the question and its answer once (it used to hold the turn twice).
    env = slack_env(any_db_url, kb_uri, model, api)
    api.stall("chat.stopStream")
    proc = await serve(env, "--workers", "0")
    try:
        ts = new_ts()
        question = f"<@{DEFAULT_BOT_USER}> how do I reset my password?"
        url = events_url(env)
        async with SlackSender(url, SIGNING_SECRET) as sender:
            assert (await sender.event(app_mention(text=question, ts=ts))).status == 200
        await api.wait_for(lambda: api.calls_to("chat.stopStream"), timeout=30)
        await kill(proc)
        [half] = api.posted()
        assert half.streaming  # a half-finished answer is visible now
        api.unstall("chat.stopStream")
        proc = await serve(env, "--workers", "0")
        await _answered_once_after_restart(api, db, ts)
        assert api.messages[(half.channel, half.ts)].deleted
        assert "Reset password" in (await stored_turns(db))[1][2]
    finally:
        await kill(proc)


def _direct(text: str) -> dict[str, Any]:
    """A direct message to the bot, as Slack delivers it."""
    return app_mention(text=text, channel="D0000003", event_type="message", channel_type="im")


async def _answered_once_after_restart(api: FakeSlackAPI, db: Database, ts: str) -> None:
    """The question of thread ``ts``, which a killed process left half-answered, is answered
    once by the next one: one finished answer (a late duplicate would show within a lease),
    its work answered, and memory holding the question and its answer once."""
    await api.wait_for(
        lambda: api.posted() and not any(m.streaming for m in api.posted()), timeout=30
    )
    await asyncio.sleep(3.5)  # past a lease: a late duplicate would show now
    [answer] = api.posted()
    assert answer.thread_ts == ts and "Reset password" in answer.text
    [row] = (await ledger(db, "slack")).values()
    assert row.status == events.ANSWERED
    turns = await stored_turns(db)
    assert [role for _, role, _ in turns] == ["user", "assistant"], turns


def _stalling(seconds: float) -> Callable[[dict[str, Any]], Turn]:
    """The usual answers, streamed so slowly that one answer outlasts several leases."""

    def policy(request: dict[str, Any]) -> Turn:
        turn = default_policy(request)
        chunks = max(1, len(turn.content) // turn.chunk_chars)
        return replace(turn, chunk_delay=seconds / chunks)

    return policy


async def test_an_answer_streamed_for_longer_than_a_lease_is_kept_by_its_replica(
    api: FakeSlackAPI, pg_url: str, kb_uri: str
) -> None:
    # Two `serve` replicas on one PostgreSQL; the model streams one answer for about three
    # leases. The answering replica's heartbeat keeps the row: the other never takes it over,
    # so the question is answered once, by one model run.
    db = await create_schema(pg_url)
    async with FakeOpenAI(policy=_stalling(9.0)) as model:
        envs = [slack_env(pg_url, kb_uri, model, api) for _ in range(2)]
        procs = [await serve(env, "--workers", "0") for env in envs]
        try:
            ts = new_ts()
            url = events_url(envs[0])
            async with SlackSender(url, SIGNING_SECRET) as sender:
                body = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?", ts=ts)
                assert (await sender.event(body)).status == 200
            await api.wait_for(
                lambda: api.posted() and not any(m.streaming for m in api.posted()), timeout=40
            )
            await asyncio.sleep(3.5)
            [answer] = api.posted()
            assert "Reset password" in answer.text
            [row] = (await ledger(db, "slack")).values()
            assert (row.status, row.attempts) == (events.ANSWERED, 1)
            assert len(model_runs(model)) == 1
        finally:
            for proc in procs:
                await kill(proc)
            await db.dispose()


async def test_socket_mode_killed_mid_answer_is_answered_once_by_the_next_process(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # `run slack --socket-mode`, SIGKILLed while finishing a streamed answer it has acked and
    # stored; Slack sends nothing again (the envelope was acked). The next process answers.
    db = sqlite_db
    socket = FakeSocketMode()
    await socket.start()
    api.socket_url = socket.url
    env = slack_env(sqlite_url, kb_uri, model, api)
    env["SLACK_APP_TOKEN"] = "xapp-1-test"
    api.stall("chat.stopStream")
    proc = await spawn("run", "slack", "--socket-mode", env=env)
    try:
        await socket.wait_connected(timeout=30)
        ts = new_ts()
        body = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?", ts=ts)
        await socket.wait_ack(await socket.send("events_api", body), timeout=15)
        await api.wait_for(lambda: api.calls_to("chat.stopStream"), timeout=30)
        await kill(proc)
        [half] = api.posted()
        assert half.streaming
        api.unstall("chat.stopStream")
        proc = await spawn("run", "slack", "--socket-mode", env=env)
        await _answered_once_after_restart(api, db, ts)
    finally:
        await kill(proc)
        await socket.close()


async def test_discord_killed_while_posting_a_stored_answer_is_answered_once_after_restart(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, model: FakeOpenAI
) -> None:
    # `run discord`: the answer is stored, then Discord stops answering its post and the
    # process is SIGKILLed meanwhile. The next process answers it (the gateway replays
    # nothing) and memory holds the turn once.
    async with discord_process(sqlite_url, tmp_path, model) as running:
        world = running.world
        posts = r"/channels/\d+/messages"
        world.api.stall("POST", posts)
        channel = (await world.dm("how do I reset my password?"))["channel_id"]
        await world.api.wait_for(lambda: world.api.find("POST", posts), timeout=30, what="post")
        await running.kill()
        assert world.api.channel_messages(channel) == []
        world.api.unstall()
        await running.restart()
        [answer] = await world.bot_messages(channel, timeout=30)
        await asyncio.sleep(3.5)
        assert [m["id"] for m in world.api.channel_messages(channel)] == [answer["id"]]
        assert "Reset password" in answer["content"]
        [row] = (await ledger(sqlite_db, "discord")).values()
        assert row.status == events.ANSWERED
        assert [role for _, role, _ in await stored_turns(sqlite_db)] == ["user", "assistant"]


async def test_malformed_and_oversize_requests_to_serve_with_workers(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # `serve --workers 1`: signed events Slack would never send (a message without its
    # channel or timestamp: answerable nowhere, and all such events shared one ledger key),
    # bodies that are not JSON, over the size limit or badly signed, each get a clear 4xx;
    # nothing is stored for them, and a 40,000-character question and a normal one are still
    # answered once each.
    db = await create_schema(pg_url)
    env = slack_env(pg_url, kb_uri, model, api)
    async with serving(env, "--workers", "1"):
        url = events_url(env)
        mention = f"<@{DEFAULT_BOT_USER}> how do I reset my password?"
        no_channel = app_mention(text=mention)
        del no_channel["event"]["channel"]
        no_ts = app_mention(text=mention, channel="C0000002")
        del no_ts["event"]["ts"], no_ts["event"]["event_ts"]
        edit = event_callback(
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C0000002",
                "ts": new_ts(),
                "message": {"type": "message", "user": "UHUMAN001", "text": mention},
                "previous_message": {"type": "message", "user": "UHUMAN001", "text": "?"},
            }
        )
        huge, normal = new_ts(), new_ts()
        async with SlackSender(url, SIGNING_SECRET) as sender:
            for body in (no_channel, no_ts, edit):
                assert (await sender.event(body)).status == 400, body
            oversize = json.dumps({"type": "event_callback", "event": {"text": "x" * 3_000_000}})
            assert (await sender.post_raw(oversize, content_type="application/json")).status == 413
            assert (await sender.post_raw("{", content_type="application/json")).status == 400
            badly_signed = await sender.post_raw(
                json.dumps(app_mention(text=mention)), content_type="application/json", secret="x"
            )
            assert badly_signed.status == 401
            long_question = f"<@{DEFAULT_BOT_USER}> " + "why? " * 8_000
            for ts, text in ((huge, long_question), (normal, mention)):
                assert (await sender.event(app_mention(text=text, ts=ts))).status == 200
        await api.wait_for(
            lambda: len(api.posted()) == 2 and not any(m.streaming for m in api.posted()),
            timeout=30,
        )
        await asyncio.sleep(1)
        assert Counter(m.thread_ts for m in api.posted()) == {huge: 1, normal: 1}
        rows = await ledger(db, "slack")
        assert len(rows) == 2 and {r.status for r in rows.values()} == {events.ANSWERED}
        assert len(await stored_turns(db)) == 4
        await db.dispose()


async def test_a_model_that_stalls_mid_stream_past_its_timeout_leaves_only_an_apology(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # The model starts streaming, then goes silent for longer than SUPPORTBOT_OPENAI_TIMEOUT:
    # the streamed start is replaced by the short "took too long" reply, once, and the
    # question is finished (not tried again by another attempt).
    partial = "To reset your password, open Settings and then "
    async with FakeOpenAI() as model:
        # The timeout leaves a loaded machine room to start the response (a timeout before
        # it is a retry, not this test's stall); the stall outlasts it by far.
        model.queue(Turn(content=partial * 4, chunk_chars=8, stall_after=3, stall=6.0))
        env = slack_env(sqlite_url, kb_uri, model, api)
        env["SUPPORTBOT_OPENAI_TIMEOUT"] = "2.5"
        async with serving(env, "--workers", "0"):
            ts = new_ts()
            url = events_url(env)
            async with SlackSender(url, SIGNING_SECRET) as sender:
                body = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?", ts=ts)
                assert (await sender.event(body)).status == 200
            # Mid-stream: the start of the answer was shown before the model went silent.
            await api.wait_for(lambda: "To reset" in _streamed(api), timeout=30)
            # The work is finished (no later attempt can post anything), not a fixed pause
            # that a loaded machine could outlast before the apology replaced the start.
            [row] = (await _finished(sqlite_db, timeout=30)).values()
            assert (row.status, row.attempts) == (events.ANSWERED, 1)
            assert [(m.thread_ts, m.text) for m in api.posted()] == [
                (ts, texts.ERROR_MODEL_TIMEOUT)
            ]
            assert len(model.requests) == 1


def _streamed(api: FakeSlackAPI) -> str:
    """Every piece of text sent to begin or go on with a streamed message."""
    calls = api.calls_to("chat.startStream") + api.calls_to("chat.appendStream")
    return "".join(str(call.params.get("markdown_text") or "") for call in calls)


async def _finished(db: Database, *, timeout: float) -> dict[str, Any]:
    """The Slack ledger once every row of it is finished."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await ledger(db, "slack")
        if rows and all(r.status in (events.ANSWERED, events.FAILED) for r in rows.values()):
            return rows
        assert asyncio.get_running_loop().time() < deadline, "the work never finished"
        await asyncio.sleep(0.1)


async def test_a_post_slack_made_before_failing_is_not_left_beside_the_answer(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # Slack creates the message, then answers 500 (a gateway failing late). slack_sdk used
    # to post again blindly: a half-streamed copy in the thread, or a second message in the
    # DM, stayed beside the answer. Now each retry first deletes the copy.
    env = slack_env(sqlite_url, kb_uri, model, api)
    api.fail("chat.startStream", status=500, handled=True)
    api.fail("chat.postMessage", status=500, handled=True, channel="D0000003")
    async with serving(env, "--workers", "0"):
        ts = new_ts()
        url = events_url(env)
        async with SlackSender(url, SIGNING_SECRET) as sender:
            question = f"<@{DEFAULT_BOT_USER}> how do I reset my password?"
            assert (await sender.event(app_mention(text=question, ts=ts))).status == 200
            dm = _direct("how do I reset my password?")
            assert (await sender.event(dm)).status == 200
        await api.wait_for(
            lambda: len([m for m in api.posted() if not m.streaming]) >= 2, timeout=30
        )
        await asyncio.sleep(2)
        [answer] = api.posted("C0000001")
        assert answer.thread_ts == ts and "Reset password" in answer.text
        [direct] = api.posted("D0000003")
        assert "Reset password" in direct.text
        assert len(api.calls_to("chat.startStream")) == 2
        rows = await ledger(sqlite_db, "slack")
        assert {(r.status, r.attempts) for r in rows.values()} == {(events.ANSWERED, 1)}


async def test_an_append_slack_made_before_failing_is_not_shown_twice(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # A piece appended to the streamed answer, then a 500: slack_sdk used to send the piece
    # again, and the answer showed it twice. Now the attempt is handed back: its streamed
    # message is removed and the answer streamed again, whole, once.
    steps = "".join(f"Step {i}: do thing number {i}.\n" for i in range(30))

    def policy(_request: dict[str, Any]) -> Turn:
        return Turn(content=steps, chunk_chars=40, chunk_delay=0.1)

    async with FakeOpenAI(policy=policy) as model:
        env = slack_env(sqlite_url, kb_uri, model, api)
        api.fail("chat.appendStream", status=500, handled=True)
        async with serving(env, "--workers", "0"):
            ts = new_ts()
            url = events_url(env)
            async with SlackSender(url, SIGNING_SECRET) as sender:
                body = app_mention(text=f"<@{DEFAULT_BOT_USER}> what are the steps?", ts=ts)
                assert (await sender.event(body)).status == 200
            await api.wait_for(lambda: [m for m in api.posted() if not m.streaming], timeout=40)
            await asyncio.sleep(2)
            [answer] = api.posted()
            assert not answer.streaming and answer.thread_ts == ts
            assert [answer.text.count(f"Step {i}:") for i in range(30)] == [1] * 30


async def test_discord_post_made_before_a_server_error_is_not_posted_twice(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, model: FakeOpenAI
) -> None:
    # Discord makes the answer's message, then answers 500; discord.py tries again with the
    # same (enforced) nonce, and Discord hands back the message it made: posted once.
    async with discord_process(sqlite_url, tmp_path, model) as running:
        world = running.world
        world.api.fail_with(500, "POST", r"/channels/\d+/messages", handled=True)
        channel = (await world.dm("how do I reset my password?"))["channel_id"]
        await world.bot_messages(channel, timeout=30)
        await asyncio.sleep(2.5)
        [answer] = world.api.channel_messages(channel)
        assert "Reset password" in answer["content"]
        assert len(world.api.find("POST", rf"/channels/{channel}/messages")) == 2


async def test_socket_mode_reconnecting_mid_answer_answers_once_and_takes_new_questions(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # Guard: Slack ends the websocket (`disconnect`, then the close) while an answer is being
    # streamed, and after the client reconnects delivers the same event again (its ack may
    # not have arrived). The answer goes on over the Web API, the redelivery is acked and
    # does nothing, and a question sent on the new connection is answered.
    socket = FakeSocketMode()
    await socket.start()
    api.socket_url = socket.url
    async with FakeOpenAI(policy=_stalling(6.0)) as model:
        env = slack_env(sqlite_url, kb_uri, model, api)
        env["SLACK_APP_TOKEN"] = "xapp-1-test"
        proc = await spawn("run", "slack", "--socket-mode", env=env)
        try:
            await socket.wait_connected(timeout=30)
            first = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?")
            await socket.wait_ack(await socket.send("events_api", first), timeout=15)
            await api.wait_for(lambda: api.calls_to("chat.appendStream"), timeout=30)
            opened = len(api.calls_to("apps.connections.open"))
            await socket.disconnect()
            await api.wait_for(
                lambda: len(api.calls_to("apps.connections.open")) > opened, timeout=20
            )
            await socket.wait_connected(timeout=20)
            again = await socket.send("events_api", first, retry_attempt=1)
            await socket.wait_ack(again, timeout=15)
            second = app_mention(text=f"<@{DEFAULT_BOT_USER}> when are invoices sent?")
            await socket.wait_ack(await socket.send("events_api", second), timeout=15)
            await api.wait_for(
                lambda: len([m for m in api.posted() if not m.streaming]) >= 2, timeout=40
            )
            await asyncio.sleep(3.5)  # past a lease: a late duplicate would show now
            # One reconnect: slack_sdk used to reconnect on the close and then again on the
            # `disconnect` read before it, abandoning the new connection, and an event pushed
            # on that one meanwhile was never acked (the second question went unanswered).
            assert len(api.calls_to("apps.connections.open")) == opened + 1
            assert socket.connections == 1
        finally:
            await kill(proc)
            await socket.close()
    answers = api.posted()
    assert sorted(m.thread_ts or "" for m in answers) == sorted(
        [first["event"]["ts"], second["event"]["ts"]]
    )
    assert "Reset password" in answers[0].text and "invoices" in answers[1].text.lower()
    rows = await ledger(sqlite_db, "slack")
    assert {(r.status, r.attempts) for r in rows.values()} == {(events.ANSWERED, 1)}


async def test_a_dm_answer_slack_posted_as_the_process_died_is_not_left_beside_the_answer(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # A DM is answered at its top level. Slack made the answer's first message, and `serve`
    # was SIGKILLed before learning so (nothing recorded it). The next process answered again
    # and the stray start of the first answer stayed above the answer for good; only a thread
    # was searched for such a message. The answer to an earlier question in the DM stays.
    env = slack_env(sqlite_url, kb_uri, model, api)
    proc = await serve(env, "--workers", "0")
    try:
        async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
            earlier = _direct("when are invoices sent?")
            assert (await sender.event(earlier)).status == 200
            [invoices] = await api.wait_for(lambda: api.posted("D0000003"), timeout=30)
            api.stall("chat.postMessage", handled=True, channel="D0000003")
            question = _direct("how do I reset my password?")
            assert (await sender.event(question)).status == 200
        await api.wait_for(lambda: len(api.posted("D0000003")) == 2, timeout=30)
        await kill(proc)
        api.unstall("chat.postMessage")
        proc = await serve(env, "--workers", "0")
        await api.wait_for(
            lambda: any("Reset password" in m.text for m in api.posted("D0000003")), timeout=30
        )
        await asyncio.sleep(3.5)  # past a lease: a late duplicate would show now
    finally:
        await kill(proc)
    earlier_answer, answer = api.posted("D0000003")
    assert earlier_answer.ts == invoices.ts and "invoices" in earlier_answer.text.lower()
    assert "Reset password" in answer.text and "sb_helpful" in json.dumps(answer.blocks)
    assert len([m for m in api.messages.values() if m.deleted]) == 1  # the stray start
    rows = await ledger(sqlite_db, "slack")
    assert sorted((r.status, r.attempts) for r in rows.values()) == [
        (events.ANSWERED, 1),
        (events.ANSWERED, 2),
    ]
    turns = await stored_turns(sqlite_db)
    assert [role for _, role, _ in turns] == ["user", "assistant"] * 2
