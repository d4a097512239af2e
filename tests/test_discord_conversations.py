"""End to end through the real discord.py client and the fake Discord: mentions start threads,
threads continue without mentions, DMs, forum posts, bots ignored (issue 7, list item 1)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import pytest

from bot import texts
from bot.config import Settings
from bot.inbox import SESSION_KEY
from storage import channel_settings, events, memories
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import (
    RunningBot,
    make_settings,
    running_bot,
    start_model_bot,
)
from tests.fakes import discord_payloads as p
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld, wait_until
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.inbox_support import ledger

# Fixtures shared by the Discord tests (pytest finds them as module attributes).
pytestmark = pytest.mark.timeout(60)  # a hang fails fast instead of eating the CI budget

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
runtime = discord_fixtures.runtime
bot = discord_fixtures.bot
fake_openai = openai_server.fake_openai


async def test_mention_starts_a_thread_and_is_answered_there(
    world: DiscordWorld, bot: RunningBot
) -> None:
    question = await world.say("How do I reset my password?", mention=True)
    thread_id = question["id"]  # a thread started from a message has the message's id
    answer = (await world.bot_messages(thread_id))[0]
    assert "reset your password" in answer["content"].lower()
    assert thread_id in world.api.threads
    thread_request = world.api.find("POST", rf"/channels/{world.channel_id}/messages/\d+/threads")
    assert thread_request[0].body["name"] == "How do I reset my password?"
    # Sources in an embed, buttons with stable ids, nobody pinged.
    assert answer["embeds"][0]["title"] == texts.SOURCES_HEADING
    ids = [c["custom_id"] for row in answer["components"] for c in row["components"]]
    assert ids[0].startswith("sb:fb:up:") and ids[2].startswith("sb:esc:")
    assert answer["allowed_mentions"]["parse"] == []
    # Typing indicator while retrieving; nothing posted in the channel itself.
    assert world.api.find("POST", rf"/channels/{thread_id}/typing")
    assert world.api.channel_messages(world.channel_id) == []


async def test_discord_refusal_shows_the_leads_embed(world: DiscordWorld, bot: RunningBot) -> None:
    question = await world.say("Can I pay my invoices with PayPal?", mention=True)
    (refusal,) = await world.bot_messages(question["id"])
    assert "couldn't find this" in refusal["content"]
    assert refusal["embeds"][0]["title"] == texts.RELATED_HEADING
    assert "billing.md" in refusal["embeds"][0]["fields"][0]["value"]


async def test_discord_thanks_in_a_bot_thread_is_a_reaction(
    world: DiscordWorld, bot: RunningBot
) -> None:
    question = await world.say("How do I reset my password?", mention=True)
    thread_id = question["id"]
    await world.bot_messages(thread_id, 1)
    thanks = await world.say("thanks!", channel_id=thread_id)
    await world.api.wait_for(lambda: world.api.reactions, what="a reaction")
    await asyncio.sleep(0.2)
    assert world.api.reactions == [(thread_id, thanks["id"], "👍")]
    assert len(world.api.channel_messages(thread_id)) == 1


async def test_follow_up_in_thread_is_answered_with_context(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    settings = make_settings(
        world,
        sqlite_url,
        kb_uri,
        openai_api_key=FAKE_API_KEY,
        openai_base_url=fake_openai.base_url,
        openai_max_retries=0,
    )
    async with running_bot(world, settings, sqlite_db):
        first = await world.say("How do I reset my password?", mention=True)
        thread_id = first["id"]
        await world.bot_messages(thread_id, 1)
        await world.say("And how long does the link take?", channel_id=thread_id)  # no mention
        answers = await world.bot_messages(thread_id, 2)
    assert "According to the docs" in answers[1]["content"]
    # The model saw the first question and answer of the thread when answering the second.
    last_request = fake_openai.messages_sent()[-1]
    contents = " ".join(str(m.get("content")) for m in last_request)
    assert "How do I reset my password?" in contents
    assert "And how long does the link take?" in contents
    session = f"discord:{world.guild_id}:{thread_id}:{thread_id}"
    stored = await memories.export_session(sqlite_db, session_id=session)
    assert [m.role for m in stored][:4] == ["user", "assistant", "user", "assistant"]


async def test_a_mention_is_answered_with_its_channels_settings(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """The answer to a mention goes in a new thread, but the channel's settings still apply:
    a knowledge filter of billing/ and German refusals (a password question is refused there,
    in German), as they do for the thread's later replies."""
    await channel_settings.upsert_setting(
        sqlite_db, platform="discord", workspace_id=world.guild_id, channel_id=world.channel_id,
        knowledge_filter="billing/", refusal_language="de",
    )  # fmt: skip
    settings = make_settings(world, sqlite_url, kb_uri)
    async with running_bot(world, settings, sqlite_db):
        first = await world.say("How do I reset my password?", mention=True)
        thread_id = first["id"]
        answer = (await world.bot_messages(thread_id, 1))[0]
        await world.say("How do I reset my password?", channel_id=thread_id)  # no mention
        again = (await world.bot_messages(thread_id, 2))[1]
    for reply in (answer, again):
        assert reply["content"].startswith(texts.not_in_docs("de").split(",")[0]), reply
        assert "reset your password" not in reply["content"].lower()


async def billing_only_german_channel(world: DiscordWorld, db: Database) -> None:
    """The help channel answers from billing/ only and refuses in German."""
    await channel_settings.upsert_setting(
        db, platform="discord", workspace_id=world.guild_id, channel_id=world.channel_id,
        knowledge_filter="billing/", refusal_language="de",
    )  # fmt: skip


async def a_thread_the_bot_answered_in(
    world: DiscordWorld, db: Database, settings: Settings
) -> str:
    """A mention answered in a new thread by a process that then stops; the thread's id."""
    async with running_bot(world, settings, db):
        question = await world.say("Where can I download past invoices?", mention=True)
        await world.bot_messages(question["id"], 1)
    return str(question["id"])


def refused_in_german(reply: dict[str, Any]) -> bool:
    content = reply["content"]
    return content.startswith(texts.not_in_docs("de").split(",")[0]) and (
        "reset your password" not in content.lower()
    )


async def test_a_thread_unknown_since_restart_keeps_its_channels_settings(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """A follow-up in a thread the bot answered in before a restart: discord.py has not seen the
    thread since (the gateway message names only the thread), so the bot knows it by its
    memories, and the thread's channel's settings still apply (billing/ only, German refusals):
    the parent is asked of Discord once, then remembered."""
    await billing_only_german_channel(world, sqlite_db)
    # No catch-up: it fetches the thread itself, and the live path is what is tested here.
    settings = make_settings(world, sqlite_url, kb_uri, discord_catch_up_minutes=0)
    thread_id = await a_thread_the_bot_answered_in(world, sqlite_db, settings)

    async with running_bot(world, settings, sqlite_db) as second:
        assert second.adapter.client.get_channel(int(thread_id)) is None  # not cached
        await world.say("How do I reset my password?", channel_id=thread_id)  # no mention
        follow_up = (await world.bot_messages(thread_id, 2))[1]
        await world.say("And how do I change my password?", channel_id=thread_id)
        again = (await world.bot_messages(thread_id, 3))[2]
    assert refused_in_german(follow_up), follow_up
    assert refused_in_german(again), again
    assert len(world.api.find("GET", rf"/channels/{thread_id}")) == 1  # then remembered


async def test_a_thread_whose_parent_cannot_be_learned_is_still_answered(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Discord refuses to say which channel the thread belongs to: the follow-up is answered
    with the default settings (English, every doc) rather than lost, and a warning says why."""
    await billing_only_german_channel(world, sqlite_db)
    settings = make_settings(world, sqlite_url, kb_uri, discord_catch_up_minutes=0)
    thread_id = await a_thread_the_bot_answered_in(world, sqlite_db, settings)
    world.api.fail_with(403, "GET", rf"/channels/{thread_id}")

    caplog.set_level(logging.WARNING, logger="adapters.discord.thread_parents")
    async with running_bot(world, settings, sqlite_db):
        await world.say("How do I reset my password?", channel_id=thread_id)
        follow_up = (await world.bot_messages(thread_id, 2))[1]
    assert "reset your password" in follow_up["content"].lower()
    warned = [r for r in caplog.records if r.name == "adapters.discord.thread_parents"]
    assert warned and thread_id in warned[0].getMessage() and "Forbidden" in warned[0].getMessage()


async def test_a_mention_in_a_thread_made_while_offline_is_answered_in_that_thread(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """A thread started while the bot was offline: discord.py has not cached it and the bot has
    no memories of it. A mention there is answered in the thread itself (Discord cannot start a
    thread from a message in a thread), under the thread's conversation and with its channel's
    settings (billing/ only, German refusals), and the thread's later messages follow; Discord
    is asked about the thread once."""
    await billing_only_german_channel(world, sqlite_db)
    thread_id = world.thread_made_offline()
    settings = make_settings(world, sqlite_url, kb_uri, discord_catch_up_minutes=0)
    async with running_bot(world, settings, sqlite_db) as running:
        assert running.adapter.client.get_channel(int(thread_id)) is None  # not cached
        await world.say("How do I reset my password?", channel_id=thread_id, mention=True)
        answer = (await world.bot_messages(thread_id, 1))[0]
        await world.say("And how do I change my password?", channel_id=thread_id)  # no mention
        again = (await world.bot_messages(thread_id, 2))[1]
        await running.adapter.inbox.wait_idle(10)
    assert refused_in_german(answer), answer
    assert refused_in_german(again), again
    assert not world.api.find("POST", r"/channels/\d+/messages/\d+/threads")
    session = f"discord:{world.guild_id}:{thread_id}:{thread_id}"
    stored = await memories.export_session(sqlite_db, session_id=session)
    assert [m.role for m in stored] == ["user", "assistant"] * 2
    assert len(world.api.find("GET", rf"/channels/{thread_id}")) == 1


async def test_a_post_in_a_forum_thread_discord_py_has_not_cached_is_answered(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """A forum post the bot has not seen (no gateway event named its thread) is still a forum
    post: answered without a mention, in the post."""
    thread_id = world.thread_made_offline(world.forum_id, "reset")
    settings = make_settings(world, sqlite_url, kb_uri, discord_catch_up_minutes=0)
    async with running_bot(world, settings, sqlite_db):
        await world.say("How do I reset my password?", channel_id=thread_id)
        answer = (await world.bot_messages(thread_id))[0]
    assert "reset your password" in answer["content"].lower()


async def test_a_mention_in_an_uncached_thread_discord_will_not_describe_is_answered(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Discord refuses to say what the uncached channel is: the mention is still answered (where
    it was asked, with the default settings) and a warning says why; the next mention soon after
    is answered without asking (and warning) again."""
    await billing_only_german_channel(world, sqlite_db)
    thread_id = world.thread_made_offline()
    world.api.fail_with(403, "GET", rf"/channels/{thread_id}", times=2)
    caplog.set_level(logging.WARNING, logger="adapters.discord.thread_parents")
    settings = make_settings(world, sqlite_url, kb_uri, discord_catch_up_minutes=0)
    async with running_bot(world, settings, sqlite_db):
        await world.say("How do I reset my password?", channel_id=thread_id, mention=True)
        answer = (await world.bot_messages(thread_id))[0]
        await world.say("Where can I download past invoices?", channel_id=thread_id, mention=True)
        await world.bot_messages(thread_id, 2)
    assert "reset your password" in answer["content"].lower()
    warned = [r for r in caplog.records if r.name == "adapters.discord.thread_parents"]
    assert len(warned) == 1
    assert thread_id in warned[0].getMessage() and "Forbidden" in warned[0].getMessage()
    assert len(world.api.find("GET", rf"/channels/{thread_id}")) == 1


async def test_an_uncached_text_channel_is_asked_about_once(
    world: DiscordWorld, bot: RunningBot
) -> None:
    """A text channel discord.py has not cached costs one question to Discord, not one per
    message: that it is not a thread is remembered too. Mentions there start threads."""
    channel_id = world.channel_made_offline()
    for text in ("How do I reset my password?", "Where can I download past invoices?"):
        question = await world.say(text, channel_id=channel_id, mention=True)
        await world.bot_messages(question["id"])
    assert len(world.api.find("GET", rf"/channels/{channel_id}")) == 1
    assert world.api.channel_messages(channel_id) == []


async def test_thread_chatter_without_the_bot_is_ignored(
    world: DiscordWorld, bot: RunningBot
) -> None:
    await world.say("anyone around?")  # a plain channel message, no mention
    thread_id = p.snowflake()  # a thread the bot never joined
    world.api.channel_guild[thread_id] = world.guild_id
    await world.say("just chatting", channel_id=thread_id)
    await world.say("How do I reset my password?", mention=True)
    await world.api.wait_for(lambda: world.api.threads, what="the mention's thread")
    await asyncio.sleep(0.2)
    assert world.api.channel_messages(world.channel_id) == []
    assert world.api.channel_messages(thread_id) == []


async def test_dm_is_answered_in_the_dm(world: DiscordWorld, bot: RunningBot) -> None:
    dm = await world.dm("Where can I download past invoices?")
    answer = (await world.bot_messages(dm["channel_id"]))[0]
    assert "billing page" in answer["content"].lower()
    assert not world.api.find("POST", r"/channels/\d+/messages/\d+/threads")


async def test_bots_and_itself_are_ignored(world: DiscordWorld, bot: RunningBot) -> None:
    other_bot = p.user(p.snowflake(), "otherbot", bot=True)
    await world.say("How do I reset my password?", mention=True, author=other_bot)
    await world.say("How do I reset my password?", mention=True, author=world.api.bot_user)
    # A marker message proves the two above were processed (and ignored) before it.
    dm = await world.dm("Where can I download past invoices?")
    await world.bot_messages(dm["channel_id"])
    assert not world.api.threads
    assert world.api.channel_messages(world.channel_id) == []


async def test_channel_without_threads_is_answered_in_place(
    world: DiscordWorld, bot: RunningBot
) -> None:
    question = await world.say(
        "How do I reset my password?", mention=True, channel_id=world.no_threads_channel_id
    )
    answer = (await world.bot_messages(world.no_threads_channel_id))[0]
    assert str(answer["message_reference"]["message_id"]) == question["id"]
    assert "reset your password" in answer["content"].lower()
    posted = world.api.find("POST", rf"/channels/{world.no_threads_channel_id}/messages")
    assert posted[0].body["allowed_mentions"] == {"parse": [], "replied_user": False}
    # Claimed for the thread it would have opened; recorded again with the channel's
    # conversation, which the answer is remembered under.
    await bot.adapter.inbox.wait_idle(10)
    session = f"discord:{world.guild_id}:{world.no_threads_channel_id}"
    row = (await ledger(bot.adapter.db, "discord"))[question["id"]]
    assert (row.status, row.payload[SESSION_KEY]) == (events.ANSWERED, session)
    assert row.payload["msg"]["channel_id"] == world.no_threads_channel_id
    stored = await memories.export_session(bot.adapter.db, session_id=session)
    assert [m.role for m in stored] == ["user", "assistant"]


async def test_forum_post_is_answered_without_mention(world: DiscordWorld, bot: RunningBot) -> None:
    thread_id, _ = await world.forum_post("How do I reset my password?")
    answer = (await world.bot_messages(thread_id))[0]
    assert "reset your password" in answer["content"].lower()


async def test_same_message_twice_is_answered_once(world: DiscordWorld, bot: RunningBot) -> None:
    dm = await world.dm("Where can I download past invoices?")
    await world.gateway.dispatch("MESSAGE_CREATE", dm, guild_id=None)  # a duplicate delivery
    await world.bot_messages(dm["channel_id"])
    await asyncio.sleep(0.3)
    assert len(world.api.channel_messages(dm["channel_id"])) == 1
    status = await events.event_status(bot.adapter.db, platform="discord", event_id=dm["id"])
    assert status == events.ANSWERED


async def test_attachment_only_message_gets_a_hint(world: DiscordWorld, bot: RunningBot) -> None:
    # Told that files cannot be read (a greeting answered it as if nothing had been sent).
    question = await world.say("", mention=True, attachments=[p.attachment("error.png")])
    answer = (await world.bot_messages(question["id"]))[0]
    assert answer["content"] == texts.ATTACHMENT_ONLY


async def test_a_bare_mention_or_a_sticker_sent_to_the_bot_gets_a_hint(
    world: DiscordWorld, bot: RunningBot
) -> None:
    # Nothing to read but said to the bot: it stayed silent, as if the bot were down.
    bare = await world.say("", mention=True)
    embed_only = p.message(
        message_id=p.snowflake(),
        channel_id=world.channel_id,
        guild_id=world.guild_id,
        author=world.alice,
        content=world.mention(),
        mentions=[world.api.bot_user],
        embeds=[{"type": "rich", "title": "a link preview"}],
    )
    await world.gateway.dispatch("MESSAGE_CREATE", embed_only, guild_id=world.guild_id)
    sticker = p.message(
        message_id=p.snowflake(), channel_id=p.snowflake(), author=world.alice, content=""
    )
    sticker["sticker_items"] = [{"id": p.snowflake(), "name": "wave", "format_type": 1}]
    await world.gateway.dispatch("MESSAGE_CREATE", sticker, guild_id=None)
    passing = await world.say("")  # a sticker in the channel, not for the bot
    for channel in (bare["id"], embed_only["id"], sticker["channel_id"]):
        [hint] = await world.bot_messages(channel)
        assert hint["content"] == texts.EMPTY_QUESTION
    await asyncio.sleep(0.3)
    assert world.api.channel_messages(world.channel_id) == []
    assert world.api.channel_messages(passing["id"]) == []


async def test_everyone_in_question_text_pings_nobody(world: DiscordWorld, bot: RunningBot) -> None:
    await wait_until(lambda: bot.adapter.client.is_ready(), what="ready")
    dm = await world.dm("@everyone how do I reset my password?")
    answer = (await world.bot_messages(dm["channel_id"]))[0]
    for request in world.api.find("POST", r"/channels/\d+/messages"):
        assert request.body["allowed_mentions"]["parse"] == []
    assert answer["allowed_mentions"]["parse"] == []


def slow_answer() -> openai_server.Turn:
    """A slow model's answer: 12 chunks 150 ms apart, so it takes ~1.8 s to stream."""
    words = " ".join(f"word{i}" for i in range(40))
    return openai_server.Turn(content=f"Slow answer: {words} [1]", chunk_chars=40, chunk_delay=0.15)


async def test_fast_answer_is_posted_once_and_slow_one_streams(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    from tests.fakes.openai_server import ToolCall, Turn

    fake_openai.queue(
        Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "reset password"})]),
        slow_answer(),
    )
    running = await start_model_bot(
        world, sqlite_db, sqlite_url, kb_uri, fake_openai, first_post_delay=0.3, stream_interval=0.5
    )
    try:
        slow = await world.dm("How do I reset my password?")
        answer = (await world.bot_messages(slow["channel_id"]))[0]
        fast = await world.dm("Where can I download past invoices?")  # default policy: instant
        await world.bot_messages(fast["channel_id"])
    finally:
        await running.stop()
    assert answer["content"].startswith("Slow answer:")
    slow_edits = world.api.find("PATCH", rf"/channels/{slow['channel_id']}/messages/\d+")
    assert 2 <= len(slow_edits) <= 5  # streamed: grew in a few edits, ~2 per second at most
    gaps = [b.at - a.at for a, b in itertools.pairwise(slow_edits)]
    assert all(gap >= 0.45 for gap in gaps[:-1])  # throttled (the final edit may come sooner)
    # Its first words came before the progress delay: they are the progress (no typing call;
    # typing is for an answer that shows nothing for that long, bot/progress.py).
    # The fast answer: one post, no partial text, no edit, no typing call.
    assert len(world.api.find("POST", rf"/channels/{fast['channel_id']}/messages")) == 1
    assert not world.api.find("PATCH", rf"/channels/{fast['channel_id']}/messages/\d+")
    assert not world.api.find("POST", rf"/channels/{fast['channel_id']}/typing")


async def test_a_burst_that_makes_the_bot_cpu_bound_gets_answers_without_progress_calls(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """Several slow answers in flight while the process is CPU-bound (the loop busy beside
    them): each is posted once when done, with no typing call, no partial post and no edit;
    those would only take more of the CPU every answer is waiting for."""
    from tests.test_looplag import burn

    fake_openai.queue(*(slow_answer() for _ in range(3)))
    running = await start_model_bot(
        world, sqlite_db, sqlite_url, kb_uri, fake_openai, first_post_delay=0.3, stream_interval=0.5
    )
    burner = asyncio.create_task(burn(8.0))
    try:
        await asyncio.sleep(1.2)  # the monitor sees a CPU-bound process
        dms = [await world.dm(f"How do I reset my password? ({n})") for n in range(3)]
        answers = [(await world.bot_messages(dm["channel_id"]))[0] for dm in dms]
        await running.adapter.inbox.wait_idle()
    finally:
        burner.cancel()
        await running.stop()
    for dm, answer in zip(dms, answers, strict=True):
        assert answer["content"].startswith("Slow answer:")
        channel = dm["channel_id"]
        assert len(world.api.find("POST", rf"/channels/{channel}/messages")) == 1
        assert not world.api.find("PATCH", rf"/channels/{channel}/messages/\d+")
        assert not world.api.find("POST", rf"/channels/{channel}/typing")


async def test_role_and_channel_mentions_read_as_names(
    world: DiscordWorld, bot: RunningBot
) -> None:
    """Through discord.py's guild cache: a role mention becomes its name, an unknown role and
    a channel mention a placeholder (role names are looked up per mention, not per message)."""
    question = await world.say(
        f"<@&{world.support_role_id}> <@&{p.snowflake()}> in <#{world.channel_id}>: "
        "How do I reset my password?",
        mention=True,
    )
    await world.bot_messages(question["id"])
    await bot.adapter.inbox.wait_idle(10)
    session = f"discord:{world.guild_id}:{question['id']}:{question['id']}"
    stored = await memories.export_session(bot.adapter.db, session_id=session)
    assert stored[0].content == "@support @role in #channel: How do I reset my password?"


async def test_a_failure_routing_chatter_not_for_the_bot_is_logged_not_apologised_for(
    world: DiscordWorld, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    # Whether the bot follows a thread is read from the database. When that read failed, the
    # error handler apologised in the thread for a message nobody had sent to the bot: during
    # a database outage, every thread message got a "Sorry, something went wrong".
    from sqlalchemy import text

    async with bot.adapter.db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE memories RENAME TO memories_away"))
    try:
        thread_id = world.thread_made_offline()
        await world.say("just chatting", channel_id=thread_id)
        await wait_until(lambda: "error in on_message" in caplog.text, what="the logged error")
        mention = await world.say("still there?", channel_id=thread_id, mention=True)
        await bot.adapter.inbox.wait_idle()  # said to the bot: answered (with an apology)
        await asyncio.sleep(0.2)
    finally:
        async with bot.adapter.db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE memories_away RENAME TO memories"))
    [reply] = world.api.channel_messages(thread_id)
    assert str(reply["message_reference"]["message_id"]) == mention["id"]
    assert reply["content"] == texts.ERROR_GENERIC


async def test_a_guild_discord_py_has_not_cached_is_not_taken_for_a_dm(
    world: DiscordWorld, bot: RunningBot
) -> None:
    # A message from a guild discord.py has no GUILD_CREATE for (not yet available, say) has no
    # ``message.guild``, as a DM has none: it was answered as a DM, chatter included.
    guild_id, channel_id = p.snowflake(), p.snowflake()
    world.api.channels[channel_id] = p.text_channel(channel_id, guild_id, "elsewhere")
    world.api.channel_guild[channel_id] = guild_id

    async def say(content: str, *, mention: bool = False) -> dict[str, Any]:
        payload = p.message(
            message_id=p.snowflake(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=world.alice,
            content=f"{world.mention()} {content}" if mention else content,
            mentions=[world.api.bot_user] if mention else [],
        )
        world.api.user_messages.append(payload)
        await world.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=world.guild_id)
        return payload

    await say("How do I reset my password?")  # chatter, not for the bot
    question = await say("How do I reset my password?", mention=True)
    [answer] = await world.bot_messages(question["id"])  # in the thread it started
    assert "reset your password" in answer["content"].lower()
    await asyncio.sleep(0.2)
    assert world.api.channel_messages(channel_id) == []


async def test_a_question_deleted_while_it_is_answered_still_gets_the_answer(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """The answer replies to the question; Discord refuses a reply to a deleted message unless
    it asks not to fail. The asker got an apology instead of the answer."""
    fake_openai.queue(slow_answer())
    running = await start_model_bot(
        world, sqlite_db, sqlite_url, kb_uri, fake_openai, first_post_delay=30.0
    )
    try:
        dm = await world.dm("How do I reset my password?")
        await asyncio.sleep(0.5)  # the model is answering
        world.api.delete_user_message(dm["id"])
        [answer] = await world.bot_messages(dm["channel_id"])
        await running.adapter.inbox.wait_idle()
    finally:
        await running.stop()
    assert answer["content"].startswith("Slow answer:")
    assert not answer.get("message_reference")


async def test_a_dropped_connection_on_the_typing_call_costs_only_the_indicator(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reset on the typing call ended the indicator's task with an exception nobody
    retrieved: asyncio logged "Task exception was never retrieved" with a traceback."""
    import gc

    caplog.set_level(logging.DEBUG)
    fake_openai.queue(slow_answer())
    running = await start_model_bot(
        world, sqlite_db, sqlite_url, kb_uri, fake_openai, first_post_delay=0.1
    )
    try:
        world.api.reset_next("POST", r"/channels/\d+/typing")
        dm = await world.dm("How do I reset my password?")
        await running.adapter.inbox.wait_idle()
        answers = await world.bot_messages(dm["channel_id"])
    finally:
        await running.stop()
    gc.collect()
    await asyncio.sleep(0)
    assert answers[-1]["content"].startswith("Slow answer:")
    assert world.api.find("POST", rf"/channels/{dm['channel_id']}/typing")
    assert "never retrieved" not in caplog.text
    assert "typing indicator failed" in caplog.text
