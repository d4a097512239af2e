"""Socket Mode: the same bolt app over a websocket obtained from apps.connections.open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from adapters.slack.app import SlackBot
from adapters.slack.socket_mode import make_socket_handler, run_socket_mode
from bot.config import Settings
from bot.errors import ConfigError
from bot.runtime import build_runtime
from storage.db import Database
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import slack_settings
from tests.fakes.slack_sender import app_mention, message_shortcut
from tests.fakes.slack_socket import FakeSocketMode

__all__ = ["api", "kb_uri"]
APP_TOKEN = "xapp-1-test"


def socket_settings(api: FakeSlackAPI, db_url: str, kb_uri: str) -> Settings:
    return slack_settings(db_url, kb_uri, api, slack_signing_secret=None, slack_app_token=APP_TOKEN)


@contextlib.asynccontextmanager
async def socket_bot(
    api: FakeSlackAPI, socket: FakeSocketMode, db: Database, db_url: str, kb_uri: str
) -> AsyncIterator[SlackBot]:
    """The bot connected over Socket Mode to ``socket``, closed afterwards."""
    api.socket_url = socket.url
    runtime = await build_runtime(socket_settings(api, db_url, kb_uri), db=db)
    bot = SlackBot(runtime, socket_mode=True)
    handler = make_socket_handler(bot)
    await bot.start()
    await handler.connect_async()
    try:
        yield bot
    finally:
        await handler.close_async()
        await bot.aclose()
        await runtime.aclose()


@pytest.fixture
async def socket() -> AsyncIterator[FakeSocketMode]:
    fake = FakeSocketMode()
    await fake.start()
    yield fake
    await fake.close()


async def test_events_and_commands_over_socket_mode(
    api: FakeSlackAPI, socket: FakeSocketMode, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    async with socket_bot(api, socket, sqlite_db, sqlite_url, kb_uri) as bot:
        await socket.wait_connected()
        [opened] = api.calls_to("apps.connections.open")
        assert opened.token == APP_TOKEN

        mention = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?")
        first = await socket.send("events_api", mention)
        again = await socket.send("events_api", mention)  # a redelivery: still one answer
        await socket.wait_ack(first)
        await socket.wait_ack(again)
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])

        command = {
            "command": "/ask",
            "text": "when are invoices sent?",
            "team_id": "T0000001",
            "channel_id": "C0000001",
            "user_id": "UHUMAN001",
            "trigger_id": "trig.socket.1",
            "response_url": api.response_url("sock"),
        }
        envelope = await socket.send("slash_commands", command)
        ack = await socket.wait_ack(envelope)
        assert socket.ack_times[envelope] - socket.sent_times[envelope] < 1.0
        assert "payload" not in ack or not ack["payload"]
        await api.wait_for(lambda: api.responses.get("sock"))
        await bot.wait_idle()
    [answer] = api.posted()
    assert "Reset password" in answer.text
    assert "first day of every month" in api.responses["sock"][0]["text"]


async def test_a_shortcut_click_delivered_again_is_not_told_it_was_taken(
    api: FakeSlackAPI, socket: FakeSocketMode, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # Socket Mode delivers a click again when its ack was lost. The "Ask supportbot" click
    # found the message taken (by itself) and told the clicker "already taken" for their own
    # click. The same click again is absorbed: one answer, no note.
    question = api.add_user_message("C0000001", "how do I reset my password?", user="UASKER001")
    click = message_shortcut(
        {"user": "UASKER001", "text": question.text, "ts": question.ts},
        response_url=api.response_url("click"),
    )
    async with socket_bot(api, socket, sqlite_db, sqlite_url, kb_uri) as bot:
        await socket.wait_connected()
        await socket.wait_ack(await socket.send("interactive", click))
        await api.wait_for(lambda: [m for m in api.posted() if m.user is None and m.text])
        await socket.wait_ack(await socket.send("interactive", click))  # the redelivery
        await asyncio.sleep(0.3)
        await bot.wait_idle()
    [answer] = [m for m in api.posted() if m.user is None]
    assert answer.thread_ts == question.ts and "Reset password" in answer.text
    assert not api.responses.get("click")
    assert not api.ephemerals


async def test_a_malformed_envelope_is_acked_and_the_next_one_answered(
    api: FakeSlackAPI, socket: FakeSocketMode, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """bolt failed on an event that is not an object without acking it: Slack would redeliver
    it again and again."""
    async with socket_bot(api, socket, sqlite_db, sqlite_url, kb_uri) as bot:
        mention = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?")
        bad = await socket.send("events_api", {**mention, "event": "app_mention"})
        await socket.wait_ack(bad, timeout=5)
        good = await socket.send("events_api", mention)
        await socket.wait_ack(good)
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
        await bot.wait_idle()
    [answer] = api.posted()
    assert "Reset password" in answer.text


@pytest.mark.parametrize("error", ["invalid_auth", "not_allowed_token_type"])
async def test_a_refused_app_token_stops_with_one_line_naming_it(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, error: str
) -> None:
    """slack_sdk retried apps.connections.open every few seconds for ever, a traceback each
    time: an operator with a wrong SLACK_APP_TOKEN saw a process that looked alive."""
    api.error("apps.connections.open", error)
    settings = socket_settings(api, sqlite_url, kb_uri)
    with pytest.raises(ConfigError, match=f"SLACK_APP_TOKEN \\({error}\\)") as refused:
        await asyncio.wait_for(run_socket_mode(settings), timeout=20)
    assert APP_TOKEN not in str(refused.value)


async def test_a_slack_outage_at_start_is_left_to_the_reconnects(
    api: FakeSlackAPI, socket: FakeSocketMode, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    api.socket_url = socket.url
    api.error("apps.connections.open", "internal_error")
    settings = socket_settings(api, sqlite_url, kb_uri)
    stop = asyncio.Event()
    running = asyncio.create_task(run_socket_mode(settings, stop=stop))
    try:
        await socket.wait_connected()
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=20)


async def test_a_disconnect_warning_alone_still_moves_to_a_new_connection(
    api: FakeSlackAPI, socket: FakeSocketMode, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # Guard for the one-reconnect rule (SteadySocketModeClient): Slack's `disconnect` with the
    # connection left open a while is still followed, once, and the new connection answers.
    async with socket_bot(api, socket, sqlite_db, sqlite_url, kb_uri):
        await socket.wait_connected()
        await socket.disconnect(close=False)
        await api.wait_for(lambda: len(api.calls_to("apps.connections.open")) == 2)
        await socket.wait_connected()
        await asyncio.sleep(0.5)  # a second reconnect would have begun by now
        assert len(api.calls_to("apps.connections.open")) == 2 and socket.connections == 1
        mention = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?")
        await socket.wait_ack(await socket.send("events_api", mention))
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming])
