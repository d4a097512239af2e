"""`/ask settings ...`: admins change the channel's settings from chat (Slack and Discord);
everyone else is told it is for admins, and nothing changes."""

from __future__ import annotations

import pytest

from bot import texts
from bot.channel_admin import parse_changes
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, ReplyKind
from storage import channel_settings
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import kb_fixture, responder  # noqa: F401
from tests.discord_fixtures import RunningBot, bot, kb_uri, runtime, world  # noqa: F401
from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness  # noqa: F401
from tests.fakes.slack_harness import SlackHarness


def command(text: str, *, admin: bool, thread: str | None = None) -> IncomingMessage:
    return IncomingMessage(
        id="c1",
        conversation=ConversationKey(Platform.SLACK, "T1", "C7", thread),
        author=Author("U1", is_admin=admin),
        text=text,
        mentions_bot=True,
        command="ask",
    )


async def test_admins_show_and_change_settings(db: Database, kb: KnowledgeBase) -> None:
    resp = responder(db, kb=kb)
    shown = await resp.handle(command("settings", admin=True))
    assert shown.kind is ReplyKind.INFO and shown.ephemeral
    assert "auto answer: off" in shown.text

    saved = await resp.handle(
        command(
            'settings auto-answer on knowledge-filter billing/ tag-solved "Solved ✅"', admin=True
        )
    )
    assert "Saved" in saved.text and "auto answer: on" in saved.text
    row = await channel_settings.get_setting(
        db, platform="slack", workspace_id="T1", channel_id="C7"
    )
    assert row.auto_answer and row.knowledge_filter == "billing/"
    assert row.forum_tags == {"solved": "Solved ✅"}

    refused = await resp.handle(command("settings auto-answer off", admin=False))
    assert refused.text == texts.SETTINGS_ADMIN_ONLY and refused.ephemeral
    bad = await resp.handle(command("settings auto-answer maybe", admin=True))
    assert bad.text.startswith("Those settings were not saved: auto_answer must be on or off")
    row = await channel_settings.get_setting(
        db, platform="slack", workspace_id="T1", channel_id="C7"
    )
    assert row.auto_answer  # neither the refusal nor the bad input changed anything

    # Clearing the filter ('""'); a question is still a question, answered from every source.
    await resp.handle(command('settings knowledge-filter ""', admin=True))
    answer = await resp.handle(command("how do I reset my password?", admin=False))
    assert answer.kind is ReplyKind.ANSWER


@pytest.mark.parametrize(
    "words,reason",
    [
        ("auto-answer", "needs a value"),
        ("colour blue", "unknown setting"),
        ('tag-solved "x', "quotes"),
    ],
)
def test_parse_errors(words: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_changes(words)


async def test_slack_admin_check_uses_users_info(
    harness: SlackHarness,  # noqa: F811
    api: FakeSlackAPI,  # noqa: F811
    sqlite_db: Database,
) -> None:
    api.admins.add("UADMIN001")
    async with harness.sender() as sender:
        await sender.command("/ask", "settings auto-answer on reaction eyes",
                             response_url=api.response_url("a"), user="UADMIN001")  # fmt: skip
        await sender.command("/ask", "settings auto-answer off",
                             response_url=api.response_url("n"), user="UHUMAN001")  # fmt: skip
        await api.wait_for(lambda: api.responses.get("a") and api.responses.get("n"))
        await harness.bot.wait_idle()
    assert "Saved" in api.responses["a"][0]["text"]
    assert "admins" in api.responses["n"][0]["text"]
    row = await channel_settings.get_setting(
        sqlite_db, platform="slack", workspace_id="T0000001", channel_id="C0000001"
    )
    assert row.auto_answer and row.unanswered_reaction == "eyes"


async def test_discord_admin_from_member_permissions(
    world: DiscordWorld,  # noqa: F811
    bot: RunningBot,  # noqa: F811
) -> None:
    async def ask(text: str, permissions: str) -> str:
        payload = p.interaction(
            kind=p.APPLICATION_COMMAND,
            application_id=world.api.application_id,
            data={"id": p.snowflake(), "name": "ask", "type": 1,
                  "options": [{"name": "question", "type": 3, "value": text}]},
            author=world.alice,
            channel=p.text_channel(world.channel_id, world.guild_id, "help"),
            guild_id=world.guild_id,
        )  # fmt: skip
        payload["member"]["permissions"] = permissions
        world.api.interaction_channels[payload["token"]] = payload["channel_id"]
        await world.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=world.guild_id)
        return (await world.interaction_done(payload["token"]))[0]["content"]

    assert "admins" in await ask("settings auto-answer on", "2248473465835073")
    assert "Saved" in await ask("settings auto-answer on", str(1 << 5))  # Manage Server
    row = await channel_settings.get_setting(
        bot.adapter.db, platform="discord", workspace_id=world.guild_id, channel_id=world.channel_id
    )
    assert row is not None and row.auto_answer
