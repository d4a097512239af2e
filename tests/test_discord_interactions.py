"""Slash commands, long and dangerous answers, and persistent buttons across a restart
(issue 7, list items 2, 3 and 4), through the real discord.py client and the fake Discord."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from adapters.discord import render
from adapters.discord.delivery import TOKEN_KEY
from bot import texts
from bot.runtime import build_runtime
from storage import escalations, events, feedback, memories
from storage.db import Database
from storage.models import ProcessedEvent
from tests import discord_fixtures
from tests.core_support import words_held
from tests.discord_fixtures import (
    RunningBot,
    apology,
    make_settings,
    model_overrides,
    retrying_bot,
    running_bot,
    settle,
    start_bot,
    team_settings,
)
from tests.fakes import discord_payloads as p
from tests.fakes import openai_server
from tests.fakes.discord_api import FakeDiscordAPI
from tests.fakes.discord_world import DiscordWorld, wait_until
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn
from tests.inbox_support import ledger

MANAGE_THREADS = 1 << 34  # Discord's permission bit
pytestmark = pytest.mark.timeout(60)  # a hang fails fast instead of eating the CI budget

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
runtime = discord_fixtures.runtime
bot = discord_fixtures.bot
fake_openai = openai_server.fake_openai


def _openai_settings(world, sqlite_url, kb_uri, fake: FakeOpenAI):
    return make_settings(world, sqlite_url, kb_uri, **model_overrides(fake))


def _search_then(content: str, **turn_options) -> tuple[Turn, Turn]:
    return (
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
        Turn(content=content, **turn_options),
    )


async def test_ask_is_deferred_within_3s_then_answered(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # The model takes 3.2 s: longer than Discord's window, so only a defer can keep it alive.
    fake_openai.queue(
        Turn(
            tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})],
            delay=3.2,
        )
    )
    settings = _openai_settings(world, sqlite_url, kb_uri, fake_openai)
    async with running_bot(world, settings, sqlite_db):
        sent_at = time.monotonic()
        interaction = await world.slash("ask", {"question": "How do I reset my password?"})
        done = await world.interaction_done(interaction["token"])
    callback = world.api.find("POST", rf"/interactions/{interaction['id']}/.+/callback")[0]
    assert callback.body["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert callback.query.get("with_response") in ("1", "true")
    assert callback.at - sent_at < 3.0
    assert not int(callback.body.get("data", {}).get("flags") or 0) & 64  # public by default
    edits = world.api.find("PATCH", rf"/webhooks/{world.api.application_id}/.+/messages/@original")
    assert edits[-1].at - sent_at > 3.0  # the answer came after the window, as a follow-up
    assert "According to the docs" in done[0]["content"]


async def test_an_ask_refusal_carries_the_button_it_mentions(
    world: DiscordWorld, bot: RunningBot
) -> None:
    # Unlike Slack's, Discord's `/ask` answer has the "Talk to a human" button: its refusal
    # keeps saying so (the button is there, and opens the hand-off).
    asked = await world.slash("ask", {"question": "How do I configure the quantum flux capacitor?"})
    [refusal] = await world.interaction_done(asked["token"])
    assert refusal["content"].startswith(texts.NOT_IN_DOCS)
    [human] = refusal["components"][0]["components"]
    assert human["label"] == texts.DISCORD_BUTTON_HUMAN
    [opened] = await world.interaction_done(
        (await world.click(refusal, human["custom_id"]))["token"]
    )
    assert opened["content"] == texts.ESCALATION_OPENED


async def test_ask_ephemeral_and_help(world: DiscordWorld, bot: RunningBot) -> None:
    private = await world.slash(
        "ask", {"question": "Where can I download past invoices?", "ephemeral": True}
    )
    answer = await world.interaction_done(private["token"])
    assert "billing page" in answer[0]["content"].lower()
    callback = world.api.find("POST", rf"/interactions/{private['id']}/.+/callback")[0]
    assert int(callback.body["data"]["flags"]) & 64  # ephemeral
    helped = await world.slash("help")
    help_answer = await world.interaction_done(helped["token"])
    assert "/ask" in help_answer[0]["content"]
    assert "/forget" in help_answer[0]["content"]


async def test_forget_clears_the_conversation(world: DiscordWorld, bot: RunningBot) -> None:
    dm = await world.dm("Where can I download past invoices?")
    await world.bot_messages(dm["channel_id"])
    session = f"discord:-:{dm['channel_id']}"
    assert await memories.count_memories(bot.adapter.db, session_id=session) == 2
    forget = await world.slash("forget", channel={"id": dm["channel_id"], "type": p.DM})
    answer = await world.interaction_done(forget["token"])
    assert answer[0]["content"] == texts.forgotten(2)
    assert await words_held(bot.adapter.db, session) == []


async def test_long_answer_is_split_with_balanced_fences(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    blocks = []
    for n in range(13):
        code = "\n".join(f"    value_{n}_{i} = compute({i})  # step {i}" for i in range(14))
        blocks.append(
            f"Part {n}: this explains the reset flow in detail. [1]\n\n```python\n{code}\n```"
        )
    long_answer = "\n\n".join(blocks)
    assert len(long_answer) > 7000
    fake_openai.queue(*_search_then(long_answer, chunk_chars=400))
    settings = _openai_settings(world, sqlite_url, kb_uri, fake_openai)
    async with running_bot(world, settings, sqlite_db):
        question = await world.say("How do I reset my password?", mention=True)
        thread_id = question["id"]
        await world.api.wait_for(
            lambda: (
                len(world.api.channel_messages(thread_id)) >= 4
                and any(m["components"] for m in world.api.channel_messages(thread_id))
            ),
            what="the whole long answer",
        )
    messages = world.api.channel_messages(thread_id)
    assert len(messages) >= 4
    for message in messages:
        assert len(message["content"]) <= 2000
        assert render.fences_balanced(message["content"])
    joined = "\n".join(m["content"] for m in messages)
    assert "value_12_13 = compute(13)" in joined
    # Every request that carried text (posts and streaming edits) stayed within the limit.
    for request in world.api.find("POST", r"/channels/\d+/messages") + world.api.find(
        "PATCH", r"/channels/\d+/messages/\d+"
    ):
        assert len(request.body.get("content") or "") <= 2000
    # Sources and buttons only on the last message.
    assert messages[-1]["components"] and not any(m["components"] for m in messages[:-1])


async def test_answer_quoting_everyone_pings_nobody(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(*_search_then("Post this: @everyone @here <@&123> please reset now [1]"))
    settings = _openai_settings(world, sqlite_url, kb_uri, fake_openai)
    async with running_bot(world, settings, sqlite_db):
        question = await world.say("How do I reset my password?", mention=True)
        answer = (await world.bot_messages(question["id"]))[0]
    assert "@everyone" in answer["content"]
    sent = world.api.find("POST", r"/channels/\d+/messages") + world.api.find(
        "PATCH", r"/channels/\d+/messages/\d+"
    )
    assert sent
    for request in sent:
        assert request.body["allowed_mentions"]["parse"] == []


async def test_buttons_work_after_restart(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = team_settings(world, sqlite_url, kb_uri)
    first = await start_bot(world, await build_runtime(settings, db=sqlite_db))
    question = await world.say("How do I reset my password?", mention=True)
    thread_id = question["id"]
    answer = (await world.bot_messages(thread_id))[0]
    await first.stop()

    # A new process: new client, new runtime, new database engine on the same file.
    second_db = Database(sqlite_url)
    second = await start_bot(world, await build_runtime(settings, db=second_db))
    try:
        ids = [c["custom_id"] for row in answer["components"] for c in row["components"]]
        memory_id = int(ids[0].rsplit(":", 1)[1])
        helpful = await world.click(answer, ids[0])
        thanks = await world.interaction_done(helpful["token"])
        assert thanks[0]["content"] == texts.FEEDBACK_THANKS_HELPFUL
        votes = await feedback.list_feedback(second_db)
        assert [(v.memory_id, v.value, v.user_id) for v in votes] == [
            (memory_id, 1, world.alice["id"])
        ]
        assert votes[0].session_id == f"discord:{world.guild_id}:{thread_id}:{thread_id}"

        human = await world.click(answer, ids[2])
        opened = await world.interaction_done(human["token"])
        assert opened[0]["content"] == texts.ESCALATION_OPENED
        resolve_id = opened[0]["components"][0]["components"][0]["custom_id"]
        escalation_id = int(resolve_id.rsplit(":", 1)[1])
        row = await escalations.get_escalation(second_db, escalation_id=escalation_id)
        assert row is not None and row.status == "open" and row.channel_id == thread_id
        # The support team hears about it in their channel, with the same resolve button.
        notice = world.api.channel_messages(world.no_threads_channel_id)[0]
        assert thread_id in notice["content"]
        assert notice["components"][0]["components"][0]["custom_id"] == resolve_id
        assert row.notice_ref == f"{world.no_threads_channel_id}:{notice['id']}"

        resolve = await world.click(
            opened[0], resolve_id, author=world.bob, roles=[world.support_role_id]
        )
        resolved = await world.interaction_done(resolve["token"])
        assert resolved[0]["content"] == texts.ESCALATION_RESOLVED
        row = await escalations.get_escalation(second_db, escalation_id=escalation_id)
        assert row is not None and row.status == "resolved" and row.resolved_by == world.bob["id"]
    finally:
        await second.stop()
        await second_db.dispose()


async def test_unknown_button_and_command_get_a_polite_answer(
    world: DiscordWorld, bot: RunningBot
) -> None:
    fake_message = p.message(
        message_id=p.snowflake(),
        channel_id=world.channel_id,
        guild_id=world.guild_id,
        author=world.api.bot_user,
        content="old",
        components=[
            {"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "zz:1"}]}
        ],
    )
    click = await world.click(fake_message, "zz:1")
    unknown = await world.slash("frobnicate")
    expected = {
        click["id"]: texts.DISCORD_INVALID_BUTTON,
        unknown["id"]: texts.DISCORD_UNKNOWN_COMMAND,
    }
    for interaction in (click, unknown):
        await world.api.wait_for(
            lambda i=interaction: world.api.find("POST", rf"/interactions/{i['id']}/.+/callback"),
            what="a reply to the unknown interaction",
        )
        callback = world.api.find("POST", rf"/interactions/{interaction['id']}/.+/callback")[0]
        assert callback.body["type"] == 4
        assert callback.body["data"]["content"] == expected[interaction["id"]]
        assert int(callback.body["data"]["flags"]) & 64
    # And the bot still answers afterwards.
    dm = await world.dm("Where can I download past invoices?")
    await world.bot_messages(dm["channel_id"])
    await wait_until(lambda: bot.adapter.client.is_ready(), what="still ready")


async def test_a_slash_command_cut_short_by_a_stop_is_answered_by_the_next_process(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # The token lived only in the process's memory: the next process found the claim, could
    # not answer it, and the asker's "thinking..." never turned into an answer.
    fake_openai.queue(Turn(content="slow", delay=5.0))  # the first process never gets there
    settings = _openai_settings(world, sqlite_url, kb_uri, fake_openai)
    async with running_bot(world, settings, sqlite_db) as first:
        interaction = await world.slash("ask", {"question": "How do I reset my password?"})
        await wait_until(lambda: fake_openai.requests, what="the model call")
        await first.adapter.close(grace=0.0)  # stops mid-answer: the claim is handed back
    assert not world.api.interaction_messages(interaction["token"])[0].get("edits")
    async with running_bot(world, settings, sqlite_db):
        done = await world.interaction_done(interaction["token"])
    assert "According to the docs" in done[0]["content"]
    assert done[0]["components"]  # the answer's buttons, as live
    assert len(world.api.interaction_messages(interaction["token"])) == 1


async def test_a_button_click_cut_short_by_a_stop_is_told_to_try_again(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    first = await start_bot(world, await build_runtime(make_settings(world, sqlite_url, kb_uri)))
    try:
        dm = await world.dm("How do I reset my password?")
        [answer] = await world.bot_messages(dm["channel_id"])
    finally:
        await first.stop()
    # A click whose process died after deferring: what it did may be half done, so it is not
    # repeated, but the asker hears about it instead of "thinking..." for ever.
    click = p.interaction(
        kind=p.MESSAGE_COMPONENT,
        application_id=world.api.application_id,
        data={"custom_id": "sb:fb:up:1", "component_type": 2},
        author=world.alice,
        channel=p.text_channel(world.channel_id, world.guild_id, "help"),
        guild_id=world.guild_id,
        message_payload=answer,
    )
    world.api.interaction_channels[click["token"]] = world.channel_id
    thinking = p.message(
        message_id=p.snowflake(), channel_id=world.channel_id, author=world.api.bot_user, content=""
    )
    world.api.messages[f"original:{click['token']}"] = {
        **thinking,
        "interaction_token": click["token"],
    }

    assert await events.claim_event(
        sqlite_db,
        platform="discord",
        event_id=click["id"],
        payload={
            "kind": "interaction",
            "application_id": world.api.application_id,
            "token": click["token"],
        },
        lease=timedelta(seconds=-1),
    )
    second = await start_bot(world, await build_runtime(make_settings(world, sqlite_url, kb_uri)))
    try:
        await world.api.wait_for(
            lambda: world.api.interaction_messages(click["token"])[0].get("edits"),
            what="the note",
        )
    finally:
        await second.stop()
    note = world.api.interaction_messages(click["token"])[0]
    assert note["content"] == texts.ERROR_GENERIC
    assert await events.event_status(sqlite_db, platform="discord", event_id=click["id"]) == (
        events.FAILED
    )


async def test_an_answered_command_keeps_no_webhook_token_in_the_ledger(
    world: DiscordWorld, bot: RunningBot
) -> None:
    # The token lets anyone holding it post as the bot for 15 minutes: it stayed in the
    # ledger row until the row was pruned, days later.
    interaction = await world.slash("ask", {"question": "Where can I download past invoices?"})
    await world.interaction_done(interaction["token"])
    await bot.adapter.inbox.wait_idle(10)
    async with bot.adapter.db.sessions() as session:
        stored = await session.scalar(
            select(ProcessedEvent.payload).where(ProcessedEvent.event_id == interaction["id"])
        )
    assert stored is not None and stored["kind"] == "interaction"
    assert TOKEN_KEY not in stored
    assert interaction["token"] not in json.dumps(stored)


async def _asked_until_answered(world: DiscordWorld, running: RunningBot) -> dict[str, Any]:
    """`/ask` about resetting a password, once its whole answer (with the buttons) is shown
    and the bot is idle; returns the interaction."""
    interaction = await world.slash("ask", {"question": "How do I reset my password?"})
    await world.api.wait_for(
        lambda: any(m["components"] for m in world.api.interaction_messages(interaction["token"])),
        what="the whole answer",
    )
    await running.adapter.inbox.wait_idle(10)
    return interaction


async def _long_answer_asked(
    world: DiscordWorld,
    db: Database,
    url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    fault: Callable[[FakeDiscordAPI], None],
) -> dict[str, Any]:
    """`/ask` answered by :func:`_long_answer` (twice, for a second attempt) on a bot that
    retries soon, with ``fault`` set on the fake Discord first; returns the interaction."""
    fake_openai.queue(*_search_then(_long_answer()), *_search_then(_long_answer()))
    async with retrying_bot(world, db, url, kb_uri, **model_overrides(fake_openai)) as running:
        fault(world.api)
        return await _asked_until_answered(world, running)


def _lines_not_shown_once(messages: list[dict[str, Any]]) -> list[str]:
    """The lines of :func:`_long_answer` that ``messages`` do not show exactly once."""
    joined = "\n".join(m["content"] for m in messages)
    lines = (f"Step {n}.{i}:" for n in range(10) for i in range(10))
    return [line for line in lines if joined.count(line) != 1]


def _long_answer() -> str:
    blocks = []
    for n in range(10):
        lines = "\n".join(
            f"Step {n}.{i}: open the settings page and choose item {i}." for i in range(10)
        )
        blocks.append(f"Part {n}: how the reset works. [1]\n\n{lines}")
    return "\n\n".join(blocks)


async def test_a_retried_long_command_answer_leaves_no_duplicate_follow_ups(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # The first attempt posted a follow-up, then lost its connection; the next attempt posted
    # the whole answer again through the stored token, under the first one's follow-up.
    answer_text = _long_answer()
    assert len(answer_text) > 4000
    fake_openai.queue(*_search_then(answer_text), *_search_then(answer_text))
    model = model_overrides(fake_openai)
    async with retrying_bot(world, sqlite_db, sqlite_url, kb_uri, **model) as running:
        world.api.reset_next("POST", r"/webhooks/\d+/[^/]+", skip=1)  # the second follow-up
        interaction = await _asked_until_answered(world, running)
    messages = world.api.interaction_messages(interaction["token"])
    assert _lines_not_shown_once(messages) == []
    assert messages[-1]["components"] and not any(m["components"] for m in messages[:-1])
    assert [m.get("followup") for m in world.api.deleted] == [True]  # the first attempt's
    status = await events.event_status(sqlite_db, platform="discord", event_id=interaction["id"])
    assert status == events.ANSWERED


@pytest.mark.parametrize("lost", [0, 1], ids=["first-follow-up", "second-follow-up"])
async def test_a_follow_up_discord_made_before_the_connection_dropped_is_not_left_twice(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    lost: int,
) -> None:
    # Discord made a follow-up of a long `/ask` answer, then the connection dropped before
    # its response came: its id was never recorded, and a follow-up has no nonce. The next
    # attempt deleted only the recorded follow-ups and posted the answer again: that piece
    # showed twice. It is now found in the channel (its interaction metadata) and deleted.
    fake_openai.queue(*_search_then(_long_answer()), *_search_then(_long_answer()))
    model = model_overrides(fake_openai)
    async with retrying_bot(world, sqlite_db, sqlite_url, kb_uri, **model) as running:
        world.api.reset_next("POST", r"/webhooks/\d+/[^/]+", skip=lost, after=True)
        interaction = await world.slash("ask", {"question": "How do I reset my password?"})

        async def answered() -> bool:
            status = await events.event_status(
                sqlite_db, platform="discord", event_id=interaction["id"]
            )
            return status == events.ANSWERED

        await wait_until(answered, what="the answer")
        await running.adapter.inbox.wait_idle(10)
    messages = world.api.interaction_messages(interaction["token"])
    assert _lines_not_shown_once(messages) == []
    assert len(world.api.deleted) == lost + 1  # every follow-up of the first attempt
    row = (await ledger(sqlite_db, "discord"))[interaction["id"]]
    assert (row.status, row.attempts) == (events.ANSWERED, 2)


async def test_rate_limited_follow_ups_and_response_edit_are_waited_out_not_retried(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # Guard: Discord answers 429 (with Retry-After) to the first follow-ups of a long `/ask`
    # answer and to an edit of its deferred response. discord.py's webhook client waits them
    # out: every line shows once, in one attempt, with nothing deleted and no apology.
    def rate_limited(api: FakeDiscordAPI) -> None:
        api.fail_next("POST", r"/webhooks/\d+/[^/]+", times=2, retry_after=0.5)
        api.fail_next("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", retry_after=0.5)

    interaction = await _long_answer_asked(
        world, sqlite_db, sqlite_url, kb_uri, fake_openai, rate_limited
    )
    limited = [r for r in world.api.requests if "/webhooks/" in r.path and r.status == 429]
    assert len(limited) == 3
    assert _lines_not_shown_once(world.api.interaction_messages(interaction["token"])) == []
    assert world.api.deleted == []
    row = (await ledger(sqlite_db, "discord"))[interaction["id"]]
    assert (row.status, row.attempts) == (events.ANSWERED, 1)


async def test_a_long_command_answer_given_up_leaves_only_the_note(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # Every attempt posts its first follow-up and loses the second: the last attempt's first
    # follow-up stayed under the note that replaced the answer.
    answer_text = _long_answer()
    fake_openai.queue(*(_search_then(answer_text) * events.MAX_ATTEMPTS))
    model = model_overrides(fake_openai)
    async with retrying_bot(world, sqlite_db, sqlite_url, kb_uri, **model) as running:
        for attempt in range(1, events.MAX_ATTEMPTS + 1):  # the second follow-up of each
            world.api.reset_next("POST", r"/webhooks/\d+/[^/]+", skip=attempt)
        interaction = await world.slash("ask", {"question": "How do I reset my password?"})
        messages = partial(world.api.interaction_messages, interaction["token"])
        told = await settle(world, running, messages, apology, what="the note")
    assert [m["content"] for m in told] == [texts.ERROR_GENERIC]
    assert len(world.api.deleted) == events.MAX_ATTEMPTS  # each attempt's follow-up
    status = await events.event_status(sqlite_db, platform="discord", event_id=interaction["id"])
    assert status == events.FAILED


async def test_a_retried_long_answer_in_a_dm_leaves_no_piece_of_the_first_attempt(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # Only an answer's first message was recorded; in a DM (as in any channel answered in
    # place) its later pieces do not reply to the question, so the next attempt's look through
    # the history did not find them either: the second piece stayed above the new answer.
    answer_text = _long_answer()
    fake_openai.queue(*_search_then(answer_text), *_search_then(answer_text))
    model = model_overrides(fake_openai)
    async with retrying_bot(world, sqlite_db, sqlite_url, kb_uri, **model) as running:
        world.api.reset_next("POST", r"/channels/\d+/messages", skip=2)  # the third piece
        dm = await world.dm("How do I reset my password?")
        await world.api.wait_for(
            lambda: any(m["components"] for m in world.api.channel_messages(dm["channel_id"])),
            what="the whole answer",
        )
        await running.adapter.inbox.wait_idle(10)
    messages = world.api.channel_messages(dm["channel_id"])
    assert _lines_not_shown_once(messages) == []
    assert len(world.api.deleted) == 2  # both pieces of the first attempt


@pytest.mark.parametrize("who", ["asker", "moderator", "someone else"])
async def test_forget_in_a_bot_thread_clears_it_for_its_asker_or_a_moderator_only(
    world: DiscordWorld, bot: RunningBot, who: str
) -> None:
    """/forget in the thread the bot started for a question used to forget only the caller's
    own /ask exchanges and say "nothing to forget" while the thread's memory stayed. Now the
    asker or a member who may manage threads or messages clears the thread; anyone else is
    told privately who may, and forgets only their own exchanges there."""
    question = await world.say("How do I reset my password?", mention=True)
    thread_id = question["id"]  # a thread started from a message has the message's id
    await world.bot_messages(thread_id)
    thread = world.api.threads[thread_id]
    db = bot.adapter.db
    session = f"discord:{world.guild_id}:{thread_id}:{thread_id}"
    bobs_own = f"discord:{world.guild_id}:{thread_id}:ask-{world.bob['id']}"
    asked = await world.slash(
        "ask", {"question": "Where can I download past invoices?"}, channel=thread, author=world.bob
    )
    await world.interaction_done(asked["token"])
    assert await memories.count_memories(db, session_id=session) == 2
    assert await memories.count_memories(db, session_id=bobs_own) == 2
    if who == "asker":
        forget = await world.slash("forget", channel=thread)  # alice asked the question
    elif who == "moderator":
        forget = await world.slash(
            "forget", channel=thread, author=world.bob, permissions=MANAGE_THREADS
        )
    else:
        forget = await world.slash("forget", channel=thread, author=world.bob)
    answer = await world.interaction_done(forget["token"])
    callback = world.api.find("POST", rf"/interactions/{forget['id']}/.+/callback")[0]
    assert int(callback.body["data"]["flags"]) & 64  # private to the caller
    left = len(await words_held(db, session))
    assert left == (2 if who == "someone else" else 0)  # the thread's memory stays, or goes
    bobs_left = len(await words_held(db, bobs_own))
    assert bobs_left == (2 if who == "asker" else 0)  # alice's /forget is not bob's
    said = answer[0]["content"]
    if who == "someone else":
        assert said == texts.thread_not_yours_to_forget(2)
        assert texts.FORGET_THREAD_NOT_ALLOWED in said
    else:  # the thread's turns (and the moderator's own /ask exchanges)
        assert said == texts.thread_forgotten(2 if who == "asker" else 4)


async def test_a_follow_up_discord_made_before_a_server_error_is_not_posted_twice(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # Discord made the follow-up of a long `/ask` answer, then answered 500 (a gateway failing
    # late). discord.py's webhook client sends a follow-up again after a 5xx, and a follow-up
    # has no nonce: the piece showed twice, in one attempt that nothing cleaned up after.
    interaction = await _long_answer_asked(
        world,
        sqlite_db,
        sqlite_url,
        kb_uri,
        fake_openai,
        lambda api: api.fail_with(500, "POST", r"/webhooks/\d+/[^/]+", handled=True),
    )
    messages = world.api.interaction_messages(interaction["token"])
    assert _lines_not_shown_once(messages) == []
    assert messages[-1]["components"] and not any(m["components"] for m in messages[:-1])


@pytest.mark.parametrize(
    ("options", "note"),
    [
        ({"question": ""}, texts.ASK_USAGE),
        ({"question": "\u200b\u200b"}, texts.UNREADABLE_INPUT),
        (None, texts.ASK_USAGE),
    ],
    ids=["empty", "unreadable", "no-option"],
)
async def test_an_ask_without_a_question_is_told_privately_not_to_the_channel(
    world: DiscordWorld, bot: RunningBot, options: dict[str, Any] | None, note: str
) -> None:
    # `/ask` was deferred in public before the core looked at the question, so its usage line
    # ("Usage: /ask <your question>") showed to the whole channel.
    asked = await world.slash("ask", options)
    [told] = await world.interaction_done(asked["token"])
    assert told["content"] == note
    callback = world.api.find("POST", rf"/interactions/{asked['id']}/.+/callback")[0]
    assert int(callback.body["data"]["flags"]) & 64  # only the asker sees it
