"""Gateway disconnects and RESUME, malformed payloads, REST 429s, sharding, and the process
(issue 7, list items 5 and 6), through the real discord.py client and the fake Discord."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bot import texts
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, message_to_record
from storage import events
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import (
    RunningBot,
    apology,
    finished,
    make_settings,
    running_bot,
    settle,
)
from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld, wait_until

pytestmark = pytest.mark.timeout(60)  # a hang fails fast instead of eating the CI budget

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
runtime = discord_fixtures.runtime
bot = discord_fixtures.bot
retrying = discord_fixtures.retrying

ROOT = Path(__file__).resolve().parent.parent


async def test_forced_disconnect_resumes_and_answers_exactly_once(
    world: DiscordWorld, bot: RunningBot
) -> None:
    before = await world.dm("Where can I download past invoices?")
    await world.bot_messages(before["channel_id"])
    await world.gateway.force_disconnect(4000)
    # While the client is away: a new question, and a replay of the one already answered.
    after = await world.dm("How do I reset my password?")
    await world.gateway.dispatch("MESSAGE_CREATE", before, guild_id=None)
    answer = (await world.bot_messages(after["channel_id"]))[0]
    assert "reset your password" in answer["content"].lower()
    await wait_until(lambda: len(world.gateway.resumes) == 1, what="RESUME")
    assert world.gateway.resumes[0]["session_id"] == next(iter(world.gateway.sessions))
    assert len(world.gateway.identifies) == 1  # resumed, not re-identified
    await asyncio.sleep(0.3)
    assert len(world.api.channel_messages(after["channel_id"])) == 1
    assert len(world.api.channel_messages(before["channel_id"])) == 1
    for message in (before, after):
        status = await events.event_status(
            bot.adapter.db, platform="discord", event_id=message["id"]
        )
        assert status == events.ANSWERED


async def test_malformed_payloads_do_not_stop_the_bot(
    world: DiscordWorld, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    guild = world.guild_id
    # Missing required fields, wrong types, a non-JSON frame: none may kill the connection.
    await world.gateway.dispatch("MESSAGE_CREATE", {"id": "1", "guild_id": guild}, guild_id=guild)
    await world.gateway.dispatch(
        "MESSAGE_CREATE",
        {
            **p.message(
                message_id=p.snowflake(),
                channel_id=world.channel_id,
                guild_id=guild,
                author=world.alice,
                content="x",
            ),
            "mentions": "not-a-list",
        },
        guild_id=guild,
    )
    await world.gateway.dispatch("INTERACTION_CREATE", {"id": "2", "type": 2}, guild_id=guild)
    dm = await world.dm("Where can I download past invoices?")
    answer = (await world.bot_messages(dm["channel_id"]))[0]
    assert "billing page" in answer["content"].lower()
    assert len(world.gateway.identifies) == 1
    assert bot.adapter.client.is_ready()


async def test_frames_that_are_not_json_or_not_an_object_do_not_stop_the_bot(
    world: DiscordWorld, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    # discord.py reads a frame's envelope outside the event parsers: such a frame ended the
    # client (and the process) instead of being dropped.
    caplog.set_level(logging.WARNING)
    for frame in ("not json at all", "[1, 2]", '"text"', '{"op": 0, "t": "READY", "s": 5}'):
        await world.gateway.send_raw(frame)
    dm = await world.dm("Where can I download past invoices?")
    answer = (await world.bot_messages(dm["channel_id"]))[0]
    assert "billing page" in answer["content"].lower()
    assert not bot.task.done()
    assert bot.adapter.client.is_ready()
    assert caplog.text.count("dropped a malformed gateway frame") == 4


async def test_rest_429_is_honoured_and_retried(
    world: DiscordWorld, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    world.api.fail_next("POST", r"/channels/\d+/messages", times=2, retry_after=0.2)
    started = time.monotonic()
    dm = await world.dm("Where can I download past invoices?")
    answer = (await world.bot_messages(dm["channel_id"]))[0]
    assert "billing page" in answer["content"].lower()
    posts = world.api.find("POST", rf"/channels/{dm['channel_id']}/messages")
    assert [r.status for r in posts] == [429, 429, 200]
    assert posts[-1].at - posts[0].at >= 0.35  # waited retry_after each time
    assert time.monotonic() - started < 10
    assert "rate limited" in caplog.text.lower()
    assert len(world.api.channel_messages(dm["channel_id"])) == 1


async def test_interaction_callback_429_is_retried(world: DiscordWorld, bot: RunningBot) -> None:
    world.api.fail_next("POST", r"/interactions/\d+/[^/]+/callback", times=1, retry_after=0.1)
    interaction = await world.slash("ask", {"question": "Where can I download past invoices?"})
    answer = await world.interaction_done(interaction["token"])
    assert "billing page" in answer[0]["content"].lower()
    statuses = [
        r.status for r in world.api.find("POST", rf"/interactions/{interaction['id']}/.+/callback")
    ]
    assert statuses == [429, 200]


async def test_configured_shards_each_identify_and_answer(
    sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    world = await DiscordWorld.start(extra_guilds=3)
    try:
        settings = make_settings(world, sqlite_url, kb_uri, discord_shard_count=2)
        async with running_bot(world, settings, sqlite_db, sessions=2):
            shards = sorted(tuple(i["shard"]) for i in world.gateway.identifies)
            assert shards == [(0, 2), (1, 2)]
            question = await world.say("How do I reset my password?", mention=True)
            await world.bot_messages(question["id"])
    finally:
        await world.stop()


async def test_automatic_shard_count_comes_from_gateway_bot(
    sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    world = await DiscordWorld.start()
    world.api.shards = 2
    try:
        settings = make_settings(world, sqlite_url, kb_uri)
        async with running_bot(world, settings, sqlite_db, sessions=2) as running:
            assert sorted(tuple(i["shard"]) for i in world.gateway.identifies) == [(0, 2), (1, 2)]
            assert running.adapter.client.shard_count == 2
    finally:
        await world.stop()


async def test_intents_are_minimal(world: DiscordWorld, bot: RunningBot) -> None:
    import discord

    intents = discord.Intents._from_value(world.gateway.identifies[0]["intents"])
    assert intents.guilds and intents.guild_messages and intents.dm_messages
    assert intents.message_content  # on in this world (SUPPORTBOT_DISCORD_MESSAGE_CONTENT)
    assert not intents.members and not intents.presences
    from adapters.discord.app import intents_for

    assert not intents_for(False).message_content


async def test_unanswered_claim_is_recovered_by_the_next_process(
    world: DiscordWorld, bot: RunningBot
) -> None:
    from datetime import timedelta

    channel_id = p.snowflake()
    claimed = await events.claim_event(
        bot.adapter.db,
        platform="discord",
        event_id="crashed-1",
        payload={
            "kind": "message",
            "msg": message_to_record(
                IncomingMessage(
                    id="crashed-1",
                    conversation=ConversationKey(Platform.DISCORD, "", channel_id),
                    author=Author(world.alice["id"], "alice"),
                    text="Where can I download past invoices?",
                    is_direct=True,
                )
            ),
            "message_id": "1",
            "question_channel": channel_id,
            "new_thread": False,
        },
        lease=timedelta(seconds=-1),  # the process that took it died: its lease is over
    )
    assert claimed
    assert await bot.adapter.recover_unanswered() == 1
    answer = (await world.bot_messages(channel_id))[0]
    assert "billing page" in answer["content"].lower()
    assert await bot.adapter.recover_unanswered() == 0


def _cli_env(world: DiscordWorld, sqlite_url: str, kb_uri: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISCORD", "SUPPORTBOT", "OPENAI"))
    }
    env.update(
        DATABASE_URL=sqlite_url,
        SUPPORTBOT_KB_URI=kb_uri,
        SUPPORTBOT_EMBEDDER="none",
        DISCORD_API_URL=world.api.base_url,
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


async def _run_cli(*args: str, env: dict[str, str], timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_refuses_to_start_without_token(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    code, _, err = await _run_cli("run", "discord", env=_cli_env(world, sqlite_url, kb_uri))
    assert code == 1
    assert "DISCORD_TOKEN" in err
    assert len(err.strip().splitlines()) == 1


async def test_cli_runs_answers_and_stops_on_sigterm(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    env = _cli_env(world, sqlite_url, kb_uri, DISCORD_TOKEN="secret-token-value")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "discord",
        "--sync-commands",
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await world.gateway.wait_ready(1, timeout=30)
        dm = await world.dm("Where can I download past invoices?")
        await world.bot_messages(dm["channel_id"], timeout=30)
        assert [c["name"] for c in world.api.commands["global"]] == [
            "ask",
            "forget",
            "help",
            "Ask supportbot",
        ]
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 15)
        assert time.monotonic() - stopped_at < 10
        assert process.returncode == 0, err.decode()
        assert "secret-token-value" not in err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_invite_url_and_sync_commands(
    world: DiscordWorld, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.discord import process

    settings = runtime.settings
    monkeypatch.delenv("DISCORD_APPLICATION_ID", raising=False)
    monkeypatch.delenv("SUPPORTBOT_DISCORD_APPLICATION_ID", raising=False)
    application_id = await process.application_id_of(settings)  # asks GET /oauth2/applications/@me
    assert str(application_id) == world.api.application_id
    url = process.invite_url(application_id)
    assert f"client_id={world.api.application_id}" in url
    assert "scope=bot+applications.commands" in url and "permissions=" in url
    monkeypatch.setenv("DISCORD_APPLICATION_ID", "1234")
    assert await process.application_id_of(settings) == 1234
    assert await process.sync_commands_once(settings, guild_id=int(world.guild_id)) == 4
    names = [c["name"] for c in world.api.commands[world.guild_id]]
    assert names == ["ask", "forget", "help", "Ask supportbot"]
    assert await process.sync_commands_once(settings) == 4
    assert "global" in world.api.commands


async def test_delivery_error_is_logged_apologised_and_not_retried_later(
    world: DiscordWorld, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    # Discord refuses the final edit for good (a 403: a permission taken away meanwhile).
    # A message deleted meanwhile (404) is posted anew instead: test_discord_deleted_answers.
    world.api.fail_with(403, "PATCH", r"/channels/\d+/messages/\d+", times=1)
    dm = await world.dm("Where can I download past invoices?")
    await world.api.wait_for(
        lambda: any(
            m["content"] == texts.ERROR_GENERIC
            for m in world.api.channel_messages(dm["channel_id"])
        ),
        what="the apology",
    )
    assert "discord message" in caplog.text and "failed" in caplog.text
    status = await events.event_status(bot.adapter.db, platform="discord", event_id=dm["id"])
    assert status == events.FAILED  # not picked up again by recovery: no late duplicate
    again = await world.dm("How do I reset my password?")  # and the bot carries on
    answer = (await world.bot_messages(again["channel_id"]))[0]
    assert "reset your password" in answer["content"].lower()


async def _answered(
    world: DiscordWorld, running: RunningBot, channel_id: str, *, linger: float = 0.5
) -> list[dict[str, Any]]:
    """The messages in ``channel_id`` once its answer is finished and the bot idle, and
    ``linger`` seconds more (a late apology or duplicate would show by then)."""
    messages = partial(world.api.channel_messages, channel_id)
    return await settle(world, running, messages, finished, what="the answer", linger=linger)


async def _told(world: DiscordWorld, running: RunningBot, channel_id: str) -> list[dict[str, Any]]:
    """The messages in ``channel_id`` once the asker is told the question failed."""
    messages = partial(world.api.channel_messages, channel_id)
    return await settle(world, running, messages, apology, what="the note", linger=0.5)


@pytest.mark.parametrize("handled", [False, True], ids=["before-handling", "after-handling"])
async def test_a_connection_reset_on_the_answer_post_is_retried_not_apologised(
    world: DiscordWorld,
    sqlite_db: Database,
    retrying: RunningBot,
    handled: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # discord.py retries a reset only for macOS/Windows errno values; on Linux the post raised,
    # and the asker got an apology instead of the answer (or, when Discord had already made
    # the message, the answer and an apology).
    caplog.set_level(logging.WARNING)
    world.api.reset_next("POST", r"/channels/\d+/messages", after=handled)
    dm = await world.dm("Where can I download past invoices?")
    [answer] = await _answered(world, retrying, dm["channel_id"])
    assert "billing page" in answer["content"].lower()
    assert [
        r.status for r in world.api.find("POST", rf"/channels/{dm['channel_id']}/messages")
    ] == [
        0,
        200,
    ]
    assert "the platform failed (ClientOSError" in caplog.text
    status = await events.event_status(sqlite_db, platform="discord", event_id=dm["id"])
    assert status == events.ANSWERED


async def test_a_connection_reset_on_an_edit_of_a_streamed_answer_is_retried(
    world: DiscordWorld, retrying: RunningBot
) -> None:
    world.api.reset_next("PATCH", r"/channels/\d+/messages/\d+")
    question = await world.say("How do I reset my password?", mention=True)
    [answer] = await _answered(world, retrying, question["id"])  # the half-edited one went
    assert "reset your password" in answer["content"].lower()
    assert answer["content"] != texts.ERROR_GENERIC


async def test_resets_on_every_attempt_end_in_one_short_note(
    world: DiscordWorld,
    sqlite_db: Database,
    retrying: RunningBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    world.api.reset_next("POST", r"/channels/\d+/messages", times=events.MAX_ATTEMPTS)
    dm = await world.dm("Where can I download past invoices?")
    [note] = await _told(world, retrying, dm["channel_id"])
    assert note["content"] == texts.ERROR_GENERIC
    assert caplog.text.count("trying again in") == events.MAX_ATTEMPTS - 1
    assert "giving up after 3 attempts" in caplog.text
    status = await events.event_status(sqlite_db, platform="discord", event_id=dm["id"])
    assert status == events.FAILED


async def test_giving_up_removes_the_last_attempts_half_answer_before_the_note(
    world: DiscordWorld,
    sqlite_db: Database,
    retrying: RunningBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every attempt posts its partial answer and then loses the edit that completes it. Each
    # next attempt removed the earlier one's partial, but the last one's stayed above the
    # apology: a half answer, then "something went wrong".
    caplog.set_level(logging.WARNING)
    world.api.reset_next("PATCH", r"/channels/\d+/messages/\d+", times=events.MAX_ATTEMPTS)
    dm = await world.dm("Where can I download past invoices?")
    [note] = await _told(world, retrying, dm["channel_id"])
    assert note["content"] == texts.ERROR_GENERIC
    partials = [
        r
        for r in world.api.find("POST", rf"/channels/{dm['channel_id']}/messages")
        if r.body.get("content") != texts.ERROR_GENERIC
    ]
    assert len(partials) == events.MAX_ATTEMPTS  # each attempt got as far as its partial post
    assert len(world.api.deleted) == events.MAX_ATTEMPTS  # and each partial is gone
    assert "giving up after 3 attempts" in caplog.text
    status = await events.event_status(sqlite_db, platform="discord", event_id=dm["id"])
    assert status == events.FAILED


@pytest.mark.parametrize("handled", [False, True], ids=["before-handling", "after-handling"])
async def test_a_connection_reset_on_the_defer_still_answers_the_command(
    world: DiscordWorld, bot: RunningBot, handled: bool
) -> None:
    # The defer raised a connection error (not an HTTPException): the command went to the
    # error handler, whose apology replaced the answer; had Discord taken the defer, the
    # apology's second acknowledgement was refused and the asker saw "thinking..." for ever.
    world.api.reset_next("POST", r"/interactions/\d+/[^/]+/callback", after=handled)
    interaction = await world.slash("ask", {"question": "Where can I download past invoices?"})
    answer = await world.interaction_done(interaction["token"])
    assert "billing page" in answer[0]["content"].lower()
    callbacks = world.api.find("POST", rf"/interactions/{interaction['id']}/.+/callback")
    assert [r.status for r in callbacks] == [0, 400 if handled else 200]
    await asyncio.sleep(0.3)
    assert len(world.api.interaction_messages(interaction["token"])) == 1


async def test_a_mention_whose_thread_never_opened_is_told_under_the_question(
    world: DiscordWorld, retrying: RunningBot
) -> None:
    # The note went to the thread the answer was to open, which did not exist: Discord said
    # 404 and the asker heard nothing.
    world.api.reset_next("POST", r"/channels/\d+/messages/\d+/threads", times=events.MAX_ATTEMPTS)
    question = await world.say("How do I reset my password?", mention=True)
    [note] = await world.bot_messages(world.channel_id)
    assert note["content"] == texts.ERROR_GENERIC
    assert str(note["message_reference"]["message_id"]) == question["id"]
    assert question["id"] not in world.api.threads


async def test_a_429_discord_py_does_not_wait_out_is_retried_not_apologised(
    world: DiscordWorld, retrying: RunningBot
) -> None:
    # Without a Via header discord.py raises a 429 at once (it takes it for a ban): the row
    # failed and the asker got an apology instead of the answer.
    world.api.fail_next("POST", r"/channels/\d+/messages", retry_after=0.1, via=False)
    dm = await world.dm("Where can I download past invoices?")
    [answer] = await _answered(world, retrying, dm["channel_id"], linger=0.0)
    assert "billing page" in answer["content"].lower()
    posts = world.api.find("POST", rf"/channels/{dm['channel_id']}/messages")
    assert [r.status for r in posts] == [429, 200]
