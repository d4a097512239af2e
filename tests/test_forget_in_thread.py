"""Saying "forget" in a thread clears that thread's memory (its asker or a moderator may): Slack
slash commands carry no thread, so before this a Slack channel thread could not be cleared at all.
The core recognises the words once (bot.text_commands); Slack answers privately in the thread
(chat.postEphemeral), Discord with a reply there. Real slack_bolt / discord.py against the
fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot import texts
from bot.text_commands import is_forget_request
from storage import memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests import discord_fixtures
from tests.core_support import words_held
from tests.discord_fixtures import make_settings, running_bot
from tests.fakes.discord_world import DiscordWorld, write_docs
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import SlackSender, app_mention, new_ts, thread_reply

__all__ = ["api", "kb_uri", "world"]
pytestmark = pytest.mark.timeout(90)
world = discord_fixtures.world
BOT = DEFAULT_BOT_USER
ASKER, TEAMMATE, ADMIN = "UHUMAN001", "UTEAMMATE", "UADMIN001"


@pytest.mark.parametrize(
    "text",
    ["forget", "/forget", "Forget!", "forget this", "Forget this conversation.",
     "forget this thread", "please forget this thread", f"<@{BOT}> forget", "FORGET   THIS"],
)  # fmt: skip
def test_forget_commands_in_words(text: str) -> None:
    assert is_forget_request(text)


@pytest.mark.parametrize(
    "text",
    ["oublie", "Oublie ça !", "oubliez cette conversation", "oublie ce fil s'il te plaît",
     "svp oubliez tout", "Vergiss das!", "bitte vergiss diesen Thread", "vergiss das Gespräch",
     "Vergessen Sie das, bitte.", "olvídalo", "Olvida esta conversación, por favor",
     "por favor olvida este hilo", f"<@{BOT}> olvida todo"],
)  # fmt: skip
def test_forget_commands_in_french_german_and_spanish(text: str) -> None:
    assert is_forget_request(text)


@pytest.mark.parametrize(
    "text",
    ["comment oublier mon mot de passe ?", "j'ai oublié mon mot de passe", "oublie mon compte",
     "oublie ça et dis-moi comment exporter", "ich habe mein Passwort vergessen",
     "vergiss das nicht", "wie kann ich das vergessen?", "olvidé mi contraseña", "olvidé todo",
     "¿cómo olvido una red wifi?", "olvida esto y dime cómo exporto", "oublie vergiss olvida",
     "bitte olvida esto", "forget 2", "forget this, merci"],  # languages are not mixed
)  # fmt: skip
def test_questions_about_forgetting_in_other_languages_are_not_commands(text: str) -> None:
    assert not is_forget_request(text)


@pytest.mark.parametrize(
    "text",
    ["how do I forget my password?", "I forgot my password", "forget my password",
     "don't forget the invoices", "forget about it, how do I export?", "forgetting", "",
     "please", "forget this thread and tell me about SSO"],
)  # fmt: skip
def test_questions_mentioning_forget_are_not_commands(text: str) -> None:
    assert not is_forget_request(text)


def _in_thread(text: str, root: str, user: str, *, mention: bool) -> dict:
    if mention:
        return app_mention(text=f"<@{BOT}> {text}", thread_ts=root, user=user)
    return thread_reply(text=text, thread_ts=root, user=user)


async def _ask(sender: SlackSender, api: FakeSlackAPI, h: SlackHarness, question: str) -> str:
    """A question mentioning the bot at the top of the channel; returns the thread's ts."""
    root, answered = new_ts(), len(api.posted())
    await sender.event(app_mention(text=f"<@{BOT}> {question}", ts=root, user=ASKER))
    await api.wait_for(lambda: len([m for m in api.posted() if not m.streaming]) > answered)
    await h.bot.wait_idle()
    return root


async def test_slack_forget_in_a_thread_clears_it_for_its_asker_or_an_admin_privately(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    api.admins.add(ADMIN)
    h = await SlackHarness.start(api, slack_settings(any_db_url, kb_uri, api), db=db)
    said: list[dict] = []

    async def say(sender: SlackSender, event: dict) -> dict:
        await sender.event(event)
        await api.wait_for(lambda: len(api.ephemerals) > len(said))
        await h.bot.wait_idle()
        said.append(api.ephemerals[-1].params)
        return said[-1]

    try:
        async with h.sender() as sender:
            root = await _ask(sender, api, h, "how do I reset my password?")
            session = f"slack:T0000001:C0000001:{root}"
            # A question that mentions forgetting is answered, not taken for the command.
            await sender.event(
                _in_thread("how do I forget my password?", root, ASKER, mention=False)
            )
            await api.wait_for(lambda: len([m for m in api.posted() if not m.streaming]) == 2)
            await h.bot.wait_idle()
            assert await memories.count_memories(db, session_id=session) == 4
            public = len(api.posted())

            refused = await say(sender, _in_thread("forget", root, TEAMMATE, mention=True))
            assert refused["text"] == texts.FORGET_THREAD_NOT_ALLOWED
            assert (refused["user"], refused["thread_ts"]) == (TEAMMATE, root)
            assert await memories.count_memories(db, session_id=session) == 4

            done = await say(sender, _in_thread("Forget this thread!", root, ASKER, mention=False))
            assert done["text"] == texts.thread_forgotten(4)
            assert (done["user"], done["thread_ts"]) == (ASKER, root)
            assert await words_held(db, session) == []

            # Forgotten is not abandoned: the asker who goes on unmentioned is still answered
            # (the bot used to wait for a mention), and may clear the thread again.
            await sender.event(_in_thread("when are invoices sent?", root, ASKER, mention=False))
            await api.wait_for(lambda: len(api.posted()) == public + 1)
            await h.bot.wait_idle()
            assert await words_held(db, session) != []
            again = await say(sender, _in_thread("forget", root, ASKER, mention=False))
            assert again["text"] == texts.thread_forgotten(2)
            assert await words_held(db, session) == []

            other = await _ask(sender, api, h, "when are invoices sent?")
            cleared = await say(sender, _in_thread("forget this", other, ADMIN, mention=True))
            assert cleared["text"] == texts.thread_forgotten(2)  # an admin stands for a moderator
            assert await words_held(db, f"{session[: -len(root)]}{other}") == []
    finally:
        await h.close()
    # The follow-up's answer and the second question's; nothing else said in public.
    assert len(api.posted()) == public + 2


async def test_discord_forget_in_a_thread_clears_it_for_its_asker_only(
    world: DiscordWorld, db: Database, any_db_url: str, tmp_path
) -> None:
    kb = str(tmp_path / "kb")
    KnowledgeBase.open(kb, None).ingest(write_docs(tmp_path / "docs"))
    async with running_bot(world, make_settings(world, any_db_url, kb), db) as running:
        question = await world.say("How do I reset my password?", mention=True)
        thread_id = question["id"]  # a thread started from a message has the message's id
        await world.bot_messages(thread_id, 1)
        session = f"discord:{world.guild_id}:{thread_id}:{thread_id}"
        assert await memories.count_memories(db, session_id=session) == 2

        await world.say("forget", channel_id=thread_id, author=world.bob, mention=True)
        refused = (await world.bot_messages(thread_id, 2))[-1]
        assert refused["content"] == texts.FORGET_THREAD_NOT_ALLOWED
        assert await memories.count_memories(db, session_id=session) == 2

        await world.say("Forget this conversation.", channel_id=thread_id)  # alice, unmentioned
        done = (await world.bot_messages(thread_id, 3))[-1]
        assert done["content"] == texts.thread_forgotten(2)
        assert await words_held(db, session) == []

        # Still followed for alice: her next message there, unmentioned, is answered.
        await world.say("When are invoices sent?", channel_id=thread_id)
        await world.bot_messages(thread_id, 4)
        await running.adapter.inbox.wait_idle()
        assert await memories.count_memories(db, session_id=session) == 3  # her record + a turn

        # Said in the channel, it opens no thread named "forget": answered in place.
        threads = len(world.api.threads)
        await world.say("forget", mention=True)
        [in_place] = await world.bot_messages(world.channel_id, 1)
        await asyncio.sleep(0.2)
        assert in_place["content"] == texts.FORGOTTEN_NONE
        assert len(world.api.threads) == threads
