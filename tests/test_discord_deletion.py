"""A question its author deletes on Discord is forgotten, and the bot's reply deleted with it:
through the real discord.py client against the fake REST API and gateway (MESSAGE_DELETE and
MESSAGE_DELETE_BULK carry ids only), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.report import build_report
from storage.db import Database
from storage.memories import export_session
from tests import discord_fixtures
from tests.discord_fixtures import RunningBot, start_model_bot
from tests.fakes import discord_payloads as p
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld, wait_until
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.timeout(90)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri
fake_openai = openai_server.fake_openai

SECRET = "hunter2-SECRET-TOKEN"
# Words in neither document: refused, so the report lists it among the coverage gaps.
SECRET_QUESTION = f"my api token is {SECRET}, why does the zeppelin quorum flicker?"
PASSWORD_QUESTION = "how do I reset my password?"


def _thread_session(world: DiscordWorld, thread_id: str) -> str:
    return f"discord:{world.guild_id}:{thread_id}:{thread_id}"


async def _exported(db: Database, session_id: str) -> str:
    rows = await export_session(db, session_id=session_id)
    return json.dumps([m.model_dump(mode="json") for m in rows])


async def _idle(running: RunningBot) -> None:
    await asyncio.sleep(0.1)  # the gateway event reaches the client
    await running.adapter.inbox.wait_idle()


async def _answered_mention(
    world: DiscordWorld, running: RunningBot, question: str
) -> tuple[dict, str, dict]:
    """A mention answered in the thread started from it: (question, thread id, reply)."""
    message = await world.say(question, mention=True)
    (reply,) = await world.bot_messages(message["id"])
    await _idle(running)
    return message, message["id"], reply


async def test_a_deleted_mention_is_forgotten_and_its_reply_deleted(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """A mention is answered in a thread started from it (the thread keeps the question's id);
    deleting the question deletes the reply there and forgets the turn, and the thread goes
    on without it."""
    running = await start_model_bot(world, db, any_db_url, kb_uri, fake_openai)
    try:
        question, thread, answer = await _answered_mention(world, running, SECRET_QUESTION)
        session = _thread_session(world, thread)
        assert SECRET in await _exported(db, session)
        assert SECRET in json.dumps((await build_report(db))["coverage_gaps"])

        await world.delete(question)
        await wait_until(lambda: not world.api.channel_messages(thread), what="reply deleted")
        await _idle(running)
        deletes = len(world.api.find("DELETE", r".*/messages/\d+"))
        # The same event again (a replayed gateway event): nothing more happens.
        await world.gateway.dispatch(
            "MESSAGE_DELETE",
            {"id": question["id"], "channel_id": world.channel_id, "guild_id": world.guild_id},
            guild_id=world.guild_id,
        )
        await _idle(running)
        assert len(world.api.find("DELETE", r".*/messages/\d+")) == deletes

        start = len(fake_openai.requests)
        await world.say("where can I download past invoices?", channel_id=thread, mention=True)
        await world.bot_messages(thread)
        await _idle(running)
        exported = await _exported(db, session)
        report = await build_report(db)
    finally:
        await running.stop()
    assert answer["id"] in {m["id"] for m in world.api.deleted}
    context = json.dumps(fake_openai.requests[start:])
    assert SECRET not in context and "zeppelin" not in context
    assert SECRET not in exported and "invoices" in exported
    assert SECRET not in json.dumps(report["coverage_gaps"])


async def test_a_bulk_delete_forgets_the_questions_it_holds(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """A moderator's bulk delete in a thread: the question among the messages is forgotten and
    its reply deleted; the thread's other turn stays."""
    running = await start_model_bot(world, db, any_db_url, kb_uri, fake_openai)
    try:
        _first, thread, _reply = await _answered_mention(world, running, PASSWORD_QUESTION)
        secret = await world.say(SECRET_QUESTION, channel_id=thread, mention=True)
        replies = await world.bot_messages(thread, 2)
        await _idle(running)
        chatter = await world.say("thanks all", channel_id=thread)
        await world.bulk_delete([secret, chatter])
        await wait_until(
            lambda: len(world.api.channel_messages(thread)) == 1, what="the reply deleted"
        )
        await _idle(running)
        exported = await _exported(db, _thread_session(world, thread))
    finally:
        await running.stop()
    assert [m["id"] for m in world.api.channel_messages(thread)] == [replies[0]["id"]]
    assert SECRET not in exported and "reset my password" in exported


async def test_deleting_other_messages_changes_nothing(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """A message the bot never answered, and the bot's own reply deleted by a moderator: no
    memory is forgotten and the bot deletes nothing (then the question itself is deleted: its
    turn goes, so the deletions before were told apart, not ignored)."""
    running = await start_model_bot(world, db, any_db_url, kb_uri, fake_openai)
    try:
        question, thread, answer = await _answered_mention(world, running, PASSWORD_QUESTION)
        session = _thread_session(world, thread)
        before = await _exported(db, session)
        chatter = await world.say("lunch?", channel_id=thread, author=world.bob)
        await world.delete(chatter)
        await world.delete(answer)
        dm = p.message(
            message_id=p.snowflake(), channel_id=p.snowflake(), author=world.alice, content="x"
        )
        await world.delete(dm)
        await _idle(running)
        after = await _exported(db, session)
        deletes = world.api.find("DELETE", r".*/messages/\d+")
        await world.delete(question)
        await _idle(running)
        at_last = await _exported(db, session)
    finally:
        await running.stop()
    assert after == before and "reset my password" in after
    assert deletes == []
    assert at_last == "[]"


async def test_a_question_deleted_at_once_leaves_nothing(
    world: DiscordWorld, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """Deleted right after it was sent: the delete may be handled before the question is
    claimed, or while it is answered. Either way no reply stays and nothing is stored."""
    running = await start_model_bot(world, db, any_db_url, kb_uri, fake_openai)
    try:
        _first, thread, answer = await _answered_mention(world, running, PASSWORD_QUESTION)
        follow_up = await world.say(f"my password is {SECRET}, is that safe?", channel_id=thread)
        await world.delete(follow_up)
        await _idle(running)
        await asyncio.sleep(0.3)
        await _idle(running)
        exported = await _exported(db, _thread_session(world, thread))
    finally:
        await running.stop()
    assert SECRET not in exported and "reset my password" in exported
    assert [m["id"] for m in world.api.channel_messages(thread)] == [answer["id"]]
