"""A channel set to ephemeral answers (`supportbot channels set C --ephemeral on`) on Discord:
`/ask` there answers privately without its own option, and a mention is answered in the
asker's DM (Discord has no private reply to a message), with one line in the channel."""

from __future__ import annotations

from typing import Any

import pytest

from bot import texts
from storage import feedback
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import RunningBot, private_channel
from tests.fakes.discord_world import DiscordWorld

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
runtime = discord_fixtures.runtime
bot = discord_fixtures.bot
retrying = discord_fixtures.retrying
UNCOVERED = "Can I pay my invoices with PayPal?"  # the docs do not say: a refusal


async def _sent_by_dm(
    world: DiscordWorld, bot: RunningBot, question: dict[str, Any]
) -> dict[str, Any]:
    """The private reply to alice's ``question`` in her DM, once idle, after checking the
    channel shows only the one line under the question and no thread was started."""
    alice = world.alice["id"]
    await world.api.wait_for(
        lambda: world.api.dm_messages(alice) and world.api.channel_messages(world.channel_id),
        what="the DM reply and the note",
    )
    await bot.adapter.inbox.wait_idle(10)
    [note] = world.api.channel_messages(world.channel_id)
    assert note["content"] == texts.DISCORD_ANSWER_SENT_PRIVATELY
    assert str(note["message_reference"]["message_id"]) == question["id"]
    assert not world.api.threads  # no public thread for a private reply
    [dm] = world.api.dm_messages(alice)
    return dm


async def test_ask_in_an_ephemeral_channel_answers_privately(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    await private_channel(world, sqlite_db)
    asked = await world.slash("ask", {"question": "Where can I download past invoices?"})
    answer = await world.interaction_done(asked["token"])
    assert "billing page" in answer[0]["content"].lower()
    callback = world.api.find("POST", rf"/interactions/{asked['id']}/.+/callback")[0]
    assert int(callback.body["data"]["flags"]) & 64  # the deferred response is ephemeral


async def test_a_mention_in_an_ephemeral_channel_is_answered_by_dm(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    await private_channel(world, sqlite_db)
    question = await world.say("Where can I download past invoices?", mention=True)
    alice = world.alice["id"]
    dm = await _sent_by_dm(world, bot, question)
    assert "billing page" in dm["content"].lower()
    assert dm["components"]  # its buttons

    ids = [c["custom_id"] for row in dm["components"] for c in row["components"]]
    helpful = await world.click(dm, ids[0])
    thanks = await world.interaction_done(helpful["token"])
    assert thanks[0]["content"] == texts.FEEDBACK_THANKS_HELPFUL
    [vote] = await feedback.list_feedback(sqlite_db)
    assert vote.value == 1 and vote.user_id == alice


async def test_an_asker_who_takes_no_dms_is_pointed_to_ask_not_answered_publicly(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    await private_channel(world, sqlite_db)
    world.api.closed_dms.add(world.alice["id"])
    await world.say("Where can I download past invoices?", mention=True)
    [note] = await world.bot_messages(world.channel_id)
    await bot.adapter.inbox.wait_idle(10)
    assert note["content"] == texts.DISCORD_PRIVATE_ANSWER_NEEDS_ASK
    assert [m["content"] for m in world.api.channel_messages(world.channel_id)] == [
        texts.DISCORD_PRIVATE_ANSWER_NEEDS_ASK
    ]
    assert world.api.dm_messages(world.alice["id"]) == [] and not world.api.threads


async def test_a_refusal_in_an_ephemeral_channel_is_sent_by_dm_and_hands_off(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    await private_channel(world, sqlite_db)
    question = await world.say(UNCOVERED, mention=True)
    dm = await _sent_by_dm(world, bot, question)  # the refusal is private too
    assert "couldn't find this" in dm["content"]
    ids = [c["custom_id"] for row in dm["components"] for c in row["components"]]
    [human] = [i for i in ids if i.startswith("sb:esc:")]  # "Talk to a human" works
    clicked = await world.click(dm, human)
    [handoff] = await world.interaction_done(clicked["token"])
    await bot.adapter.inbox.wait_idle(10)
    assert handoff["content"] == texts.ESCALATION_OPENED
    assert [m["content"] for m in world.api.channel_messages(world.channel_id)] == [
        texts.DISCORD_ANSWER_SENT_PRIVATELY
    ]  # the refusal never shows in the channel


async def test_ask_supportbot_on_anothers_message_there_answers_its_author_by_dm(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    await private_channel(world, sqlite_db)
    question = await world.say("Where can I download past invoices?")  # alice, no mention
    asked = await world.message_command(question)  # bob points the bot at it
    dm = await _sent_by_dm(world, bot, question)  # the mention rule, for its author
    [told] = await world.interaction_done(asked["token"])
    assert told["content"] == texts.ASK_MESSAGE_ANSWERING_PRIVATELY  # bob, privately
    assert "billing page" in dm["content"].lower() and dm["components"]
    assert world.api.dm_messages(world.bob["id"]) == []


async def test_ask_supportbot_on_ones_own_message_there_answers_in_the_private_response(
    world: DiscordWorld, bot: RunningBot, sqlite_db: Database
) -> None:
    await private_channel(world, sqlite_db)
    question = await world.say(UNCOVERED)  # alice, no mention
    asked = await world.message_command(question, author=world.alice)  # alice herself
    [refusal] = await world.interaction_done(asked["token"])
    await bot.adapter.inbox.wait_idle(10)
    assert "couldn't find this" in refusal["content"]
    callback = world.api.find("POST", rf"/interactions/{asked['id']}/.+/callback")[0]
    assert int(callback.body["data"]["flags"]) & 64  # only she sees it
    assert world.api.channel_messages(world.channel_id) == []  # nothing public
    assert world.api.dm_messages(world.alice["id"]) == [] and not world.api.threads
    ids = [c["custom_id"] for row in refusal["components"] for c in row["components"]]
    [human] = [i for i in ids if i.startswith("sb:esc:")]  # "Talk to a human" works
    clicked = await world.click(refusal, human, author=world.alice)
    [handoff] = await world.interaction_done(clicked["token"])
    assert handoff["content"] == texts.ESCALATION_OPENED


async def test_a_note_lost_after_the_dm_answer_does_not_send_the_answer_twice(
    world: DiscordWorld, retrying: RunningBot, sqlite_db: Database
) -> None:
    # The answer reached the DM, then the connection dropped on the line for the channel: the
    # next attempt sent the whole answer to the DM again (the DM copy was not recorded, and
    # only the channel was searched for what the first attempt posted).
    await private_channel(world, sqlite_db)
    world.api.reset_next("POST", rf"/channels/{world.channel_id}/messages")
    question = await world.say("Where can I download past invoices?", mention=True)
    dm = await _sent_by_dm(world, retrying, question)
    assert "billing page" in dm["content"].lower()
