"""A question edited while its answer is still being written, through the real clients
(slack_sdk and bolt; discord.py) against the fake platforms and a slow OpenAI fake: the answer
to the old text is stopped and taken down, and the edited question is answered once, so the
conversation ends with one answer, to the edited text, and the memory with that one turn."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from storage import events, memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.discord_fixtures import finished, make_settings, model_overrides, running_bot, world
from tests.fakes.discord_world import DiscordWorld, write_docs
from tests.fakes.openai_server import FakeOpenAI, Turn, fake_openai
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_sender import app_mention, message_edited, new_ts
from tests.inbox_support import ledger
from tests.model_support import start_slack_with_model
from tests.process_support import stored_turns

__all__ = ["api", "fake_openai", "kb_uri", "world"]
pytestmark = pytest.mark.timeout(60)

OLD = "when are invoices sent?"
NEW = "how do I reset my password?"
OLD_ANSWER = "Invoices are sent on the first day of every month, by email, to the owner [1]."
NEW_ANSWER = "Open Settings, choose Security and click Reset password [1]."
DM = "D0000042"


@pytest.fixture
def discord_kb(tmp_path: Path) -> str:
    uri = str(tmp_path / "kb")
    KnowledgeBase.open(uri, None).ingest(write_docs(tmp_path / "docs"))
    return uri


def _policy(request: dict[str, Any]) -> Turn:
    """The old text's answer streams slowly (several seconds); the edited one's comes at once."""
    [*_, last] = [m for m in request["messages"] if m.get("role") == "user"]
    if OLD in str(last.get("content")):
        return Turn(content=OLD_ANSWER, chunk_chars=6, chunk_delay=0.3)
    return Turn(content=NEW_ANSWER)


def _assert_one_turn(turns: list[Any]) -> None:
    said = [(t.role, t.content) for t in turns if t.role in ("user", "assistant")]
    assert [role for role, _ in said] == ["user", "assistant"], said
    assert NEW in said[0][1] and NEW_ANSWER.split(" [")[0] in said[1][1]


@pytest.mark.parametrize("replicas", [1, 2])
async def test_slack_a_question_edited_while_answered_gets_one_answer_to_the_edit(
    api: FakeSlackAPI,
    db: Database,
    any_db_url: str,
    kb_uri: str,
    fake_openai: FakeOpenAI,
    replicas: int,
) -> None:
    """``replicas`` 2: the edit reaches another replica than the one answering the old text,
    which learns of it at its next heartbeat."""
    fake_openai.policy = _policy
    h = await start_slack_with_model(api, db, any_db_url, kb_uri, fake_openai, lease_seconds=2.0)
    other = h
    if replicas == 2:
        other = await start_slack_with_model(
            api, db, any_db_url, kb_uri, fake_openai, lease_seconds=2.0
        )

    def bot_messages() -> list[Any]:
        return [m for m in api.posted(DM) if m.user is None]

    try:
        async with h.sender() as sender, other.sender() as to_other:
            question = app_mention(
                text=OLD, ts=new_ts(), channel=DM, event_type="message", channel_type="im"
            )
            assert (await sender.event(question)).status == 200
            await api.wait_for(lambda: any("Invoices" in m.text for m in bot_messages()))
            edit = message_edited(
                channel=DM, original=question["event"], text=NEW, channel_type="im"
            )
            assert (await to_other.event(edit)).status == 200
            await api.wait_for(
                lambda: any(NEW_ANSWER[:20] in m.text and not m.streaming for m in bot_messages())
            )
            await h.bot.wait_idle()
            await other.bot.wait_idle()
    finally:
        await h.close()
        if other is not h:
            await other.close()
    assert [m.text for m in bot_messages()] == [NEW_ANSWER]  # the old text's answer is gone
    session = f"slack:T0000001:{DM}"
    _assert_one_turn(await memories.load_recent(db, session_id=session, limit=10))
    rows = await ledger(db, "slack")
    old_key = f"msg:T0000001:{DM}:{question['event']['ts']}"
    assert rows[old_key].status == events.SUPERSEDED and rows[old_key].lease_until is None


@pytest.mark.parametrize("where", ["dm", "mention"])
async def test_discord_a_question_edited_while_answered_gets_one_answer_to_the_edit(
    world: DiscordWorld,
    db: Database,
    any_db_url: str,
    discord_kb: str,
    fake_openai: FakeOpenAI,
    where: str,
) -> None:
    """Discord says MESSAGE_UPDATE: the edit is answered where the question was (its DM, or
    the thread started from the mention), in place of the answer to the old text."""
    fake_openai.policy = _policy
    settings = make_settings(
        world, any_db_url, discord_kb, lease_seconds=2.0, **model_overrides(fake_openai)
    )
    async with running_bot(world, settings, db) as running:
        if where == "dm":
            question = await world.dm(OLD)
            answers_in = question["channel_id"]
        else:
            question = await world.say(OLD, mention=True)
            answers_in = question["id"]  # the thread started from the question

        def shown() -> list[dict[str, Any]]:
            return world.api.channel_messages(answers_in)

        await world.api.wait_for(
            lambda: any("Invoices" in m["content"] for m in shown()), what="the old answer"
        )
        mention = f"{world.mention()} " if where == "mention" else ""
        await world.edit(question, mention + NEW)
        await world.api.wait_for(
            lambda: any(NEW_ANSWER[:20] in m["content"] and finished(m) for m in shown()),
            what="the edit's answer",
        )
        await running.adapter.inbox.wait_idle(10)
    assert [m["content"].split(" [")[0] for m in shown()] == [NEW_ANSWER.split(" [")[0]]
    turns = await stored_turns(db)
    _assert_one_turn([SimpleNamespace(role=role, content=text) for _s, role, text in turns])
