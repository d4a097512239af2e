"""Who may press "Mark resolved" on Discord, and the notice that says who did (issue 12, point 4),
through the real discord.py client and the fake Discord."""

from __future__ import annotations

import asyncio

import pytest

from bot import texts
from storage import channel_settings, escalations, events
from storage.db import Database
from tests import discord_fixtures
from tests.discord_fixtures import (
    make_settings,
    running_bot,
    start_retrying_bot,
    team_settings,
)
from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld
from tests.inbox_support import ledger

pytestmark = pytest.mark.timeout(60)

world = discord_fixtures.world
kb_uri = discord_fixtures.kb_uri


def _human_button(answer: dict) -> str:
    """The custom id of an answer's "Talk to a human" button."""
    custom_id: str = answer["components"][0]["components"][2]["custom_id"]
    return custom_id


async def _escalated(world: DiscordWorld) -> tuple[dict, str, int]:
    question = await world.say("How do I reset my password?", mention=True)
    answer = (await world.bot_messages(question["id"]))[0]
    human = await world.click(answer, _human_button(answer))
    opened = (await world.interaction_done(human["token"]))[0]
    resolve_id = opened["components"][0]["components"][0]["custom_id"]
    return opened, resolve_id, int(resolve_id.rsplit(":", 1)[1])


async def test_bystander_is_refused_support_role_resolves_and_notice_says_who(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = team_settings(world, sqlite_url, kb_uri)
    async with running_bot(world, settings, sqlite_db):
        opened, resolve_id, escalation_id = await _escalated(world)
        refused = await world.click(opened, resolve_id, author=world.bob)
        answer = (await world.interaction_done(refused["token"]))[0]
        assert answer["content"] == texts.ESCALATION_RESOLVE_NOT_ALLOWED
        row = await escalations.get_escalation(sqlite_db, escalation_id=escalation_id)
        assert row is not None and row.status == "open"

        notice = world.api.channel_messages(world.no_threads_channel_id)[0]
        done = await world.click(
            notice, resolve_id, author=world.bob, roles=[world.support_role_id]
        )
        answer = (await world.interaction_done(done["token"]))[0]
        assert answer["content"] == texts.ESCALATION_RESOLVED
        notice = world.api.channel_messages(world.no_threads_channel_id)[0]
    row = await escalations.get_escalation(sqlite_db, escalation_id=escalation_id)
    assert row is not None and row.status == "resolved" and row.resolved_by == world.bob["id"]
    assert f"Resolved by <@{world.bob['id']}> at <t:" in notice["content"]
    assert not notice.get("components")


async def test_the_asker_may_resolve_their_own_hand_off(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    settings = make_settings(
        world, sqlite_url, kb_uri, discord_escalation_channel=world.no_threads_channel_id
    )
    async with running_bot(world, settings, sqlite_db):
        opened, resolve_id, escalation_id = await _escalated(world)
        done = await world.click(opened, resolve_id, author=world.alice)
        answer = (await world.interaction_done(done["token"]))[0]
    assert answer["content"] == texts.ESCALATION_RESOLVED
    row = await escalations.get_escalation(sqlite_db, escalation_id=escalation_id)
    assert row is not None and row.resolved_by == world.alice["id"]


async def test_a_click_on_an_open_hand_off_is_answered_to_the_clicker_alone(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # Alice's click opens the hand-off and says so under the answer, for all to see, once.
    # Bob's click, and Alice's second one, find it open: each clicker alone is told "already
    # open" (an ephemeral follow-up; the public "thinking" response is gone), the thread
    # shows nothing new and the team gets one notice.
    team = world.no_threads_channel_id
    settings = make_settings(world, sqlite_url, kb_uri, discord_escalation_channel=team)
    async with running_bot(world, settings, sqlite_db):
        question = await world.say("How do I reset my password?", mention=True)
        answer = (await world.bot_messages(question["id"]))[0]
        first = await world.click(answer, _human_button(answer))
        [opened] = await world.interaction_done(first["token"])
        seen = world.api.visible_messages(answer["channel_id"])
        told = []
        for author in (world.bob, world.alice):
            again = await world.click(answer, _human_button(answer), author=author)
            told.append(await world.private_answer(again["token"]))
        await world.bot_messages(team, 1)
        after = world.api.visible_messages(answer["channel_id"])
    assert opened["content"].startswith(texts.ESCALATION_OPENED)
    assert not opened["flags"] & 64 and opened["components"]  # "Mark resolved", for all
    assert [m for m in seen if texts.ESCALATION_OPENED in m["content"]] == [opened]
    assert [m["content"] for m in told] == [texts.ESCALATION_ALREADY_OPEN] * 2
    assert after == seen
    assert len(world.api.channel_messages(team)) == 1


async def test_a_hand_off_in_a_thread_goes_to_its_channels_team(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """The help channel's hand-offs go to its own team's channel (its channel settings), not to
    the server's default, when asked for in one of its threads: with the button under an answer
    in the thread a mention started, by asking the bot in such a thread, and by `/ask` there."""
    default_team, help_team = p.snowflake(), world.no_threads_channel_id
    await channel_settings.upsert_setting(
        sqlite_db, platform="discord", workspace_id=world.guild_id, channel_id=world.channel_id,
        escalation_target=help_team,
    )  # fmt: skip
    settings = make_settings(world, sqlite_url, kb_uri, discord_escalation_channel=default_team)
    async with running_bot(world, settings, sqlite_db):
        by_button, _, _ = await _escalated(world)
        question = await world.say("Where can I download past invoices?", mention=True)
        thread_id = question["id"]
        await world.bot_messages(thread_id, 1)
        await world.say("talk to a human", channel_id=thread_id)  # a follow-up, no mention
        asked = (await world.bot_messages(thread_id, 2))[1]
        command = await world.slash(
            "ask", {"question": "talk to a human"}, channel=world.api.threads[thread_id]
        )
        by_command = (await world.interaction_done(command["token"]))[0]
        notices = await world.bot_messages(help_team, 3)
    for reply in (by_button, asked, by_command):
        assert reply["content"].startswith(texts.ESCALATION_OPENED), reply
    sessions = {
        f"discord:{world.guild_id}:{by_button['channel_id']}:{by_button['channel_id']}",
        f"discord:{world.guild_id}:{thread_id}:{thread_id}",
        f"discord:{world.guild_id}:{thread_id}:ask-{world.alice['id']}",
    }
    assert {n["content"].split("`")[1] for n in notices} == sessions
    assert world.api.channel_messages(default_team) == []


@pytest.mark.parametrize("handled", [False, True], ids=["before-handling", "after-handling"])
async def test_a_notice_cut_off_by_a_passing_fault_is_posted_once_later(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, handled: bool
) -> None:
    # The notice was posted once: a dropped connection lost it (logged, nobody told), or, when
    # Discord had made it before the connection dropped, left it unrecorded (no "Resolved by").
    team = world.no_threads_channel_id
    running = await start_retrying_bot(
        world, sqlite_db, sqlite_url, kb_uri, discord_escalation_channel=team
    )
    try:
        world.api.reset_next("POST", rf"/channels/{team}/messages", after=handled)
        opened, resolve_id, escalation_id = await _escalated(world)
        await world.api.wait_for(
            lambda: len(world.api.find("POST", rf"/channels/{team}/messages")) == 2,
            what="the notice tried again",
        )
        [notice] = await world.bot_messages(team, 1)
        await running.adapter.inbox.wait_idle(10)
    finally:
        await running.stop()
    assert opened["content"].startswith(texts.ESCALATION_OPENED)
    assert world.api.channel_messages(team) == [notice]  # one notice, never two
    assert notice["components"][0]["components"][0]["custom_id"] == resolve_id
    posts = world.api.find("POST", rf"/channels/{team}/messages")
    assert [r.status for r in posts] == [0, 200]
    assert posts[0].body["nonce"] == posts[1].body["nonce"]  # Discord returns the first one
    row = await escalations.get_escalation(sqlite_db, escalation_id=escalation_id)
    assert row is not None and row.notice_ref == f"{team}:{notice['id']}"
    rows = await ledger(sqlite_db, "discord")
    [notice_row] = [
        r for k, r in rows.items() if k.startswith(f"escalation-notice:{escalation_id}:")
    ]
    assert (notice_row.status, notice_row.attempts) == (events.ANSWERED, 2)


async def test_a_notice_discord_keeps_refusing_is_told_and_asking_again_tries_again(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    team = world.no_threads_channel_id
    running = await start_retrying_bot(
        world, sqlite_db, sqlite_url, kb_uri, discord_escalation_channel=team
    )
    try:
        world.api.reset_next("POST", rf"/channels/{team}/messages", times=events.MAX_ATTEMPTS)
        question = await world.say("How do I reset my password?", mention=True)
        answer = (await world.bot_messages(question["id"]))[0]
        human_id = _human_button(answer)
        human = await world.click(answer, human_id)
        note = await world.api.wait_for(
            lambda: [
                m
                for m in world.api.interaction_messages(human["token"])[1:]
                if m["content"] == texts.ESCALATION_NOTICE_FAILED
            ],
            what="the note to the asker",
        )
        await running.adapter.inbox.wait_idle(10)
        assert world.api.channel_messages(team) == []
        again = await world.click(answer, human_id)  # Discord works again
        reply = await world.private_answer(again["token"])  # "already open": the asker's alone
        [notice] = await world.bot_messages(team, 1)
        await running.adapter.inbox.wait_idle(10)
    finally:
        await running.stop()
    assert note[0]["flags"] & 64  # privately, to the one who asked
    assert len(world.api.interaction_messages(human["token"])) == 2  # the reply and the note
    assert reply["content"].startswith(texts.ESCALATION_ALREADY_OPEN)
    assert world.api.channel_messages(team) == [notice]


async def test_two_people_asking_for_a_human_at_once_give_one_notice(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    team = world.no_threads_channel_id
    running = await start_retrying_bot(
        world, sqlite_db, sqlite_url, kb_uri, discord_escalation_channel=team
    )
    try:
        question = await world.say("How do I reset my password?", mention=True)
        answer = (await world.bot_messages(question["id"]))[0]
        human_id = _human_button(answer)
        clicks = await asyncio.gather(
            world.click(answer, human_id), world.click(answer, human_id, author=world.bob)
        )
        shown = [await world.answer_to(c["token"]) for c in clicks]
        await running.adapter.inbox.wait_idle(10)
    finally:
        await running.stop()
    # One click opened the hand-off and says so for all; the other's "already open" is private.
    shown.sort(key=lambda m: m["flags"])
    assert [(m["content"][:20], m["flags"] & 64) for m in shown] == [
        (texts.ESCALATION_OPENED[:20], 0),
        (texts.ESCALATION_ALREADY_OPEN[:20], 64),
    ]
    [notice] = world.api.channel_messages(team)
    assert f"<@{world.alice['id']}>" in notice["content"] or world.bob["id"] in notice["content"]


async def test_the_bot_steps_back_in_a_thread_while_a_human_has_it(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """After a hand-off, the team's replies and the asker's un-mentioned follow-ups in the
    thread are for the humans; a mention still reaches the bot, and once the hand-off is
    resolved it follows the thread again."""
    settings = make_settings(
        world, sqlite_url, kb_uri, discord_escalation_channel=world.no_threads_channel_id
    )
    async with running_bot(world, settings, sqlite_db):
        opened, _resolve_id, escalation_id = await _escalated(world)
        thread_id = opened["channel_id"]
        assert len(world.api.channel_messages(thread_id)) == 1  # the answer
        await world.say("Hi, I'm on it: which plan are you on?", channel_id=thread_id,
                        author=world.bob)  # fmt: skip
        await world.say("The team plan. How do I reset my password?", channel_id=thread_id)
        await world.say("How do I reset my password?", channel_id=thread_id, mention=True)
        await world.bot_messages(thread_id, 2)
        await asyncio.sleep(0.5)  # the un-mentioned two stay unanswered
        assert len(world.api.channel_messages(thread_id)) == 2
        await escalations.resolve_escalation(
            sqlite_db, escalation_id=escalation_id, resolved_by=world.bob["id"]
        )
        await world.say("And how long does the reset link last?", channel_id=thread_id)
        await world.bot_messages(thread_id, 3)


async def test_a_dm_hand_off_promises_a_direct_message_and_the_notice_says_so(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """Nobody but the asker and the bot can post in a DM with the bot: the asker is told
    someone will message them, and the team's notice says what was asked and to message them."""
    question = "How do I configure the quantum flux capacitor?"
    async with running_bot(world, team_settings(world, sqlite_url, kb_uri), sqlite_db):
        dm = await world.dm(question)
        [refusal] = await world.bot_messages(dm["channel_id"])
        [human_id] = [
            c["custom_id"]
            for row in refusal["components"]
            for c in row["components"]
            if c.get("label") == "Talk to a human"
        ]
        clicked = await world.click(refusal, human_id, dm=True)
        [told] = await world.interaction_done(clicked["token"])
        [notice] = await world.bot_messages(world.no_threads_channel_id)
    assert texts.ESCALATION_OPENED_DIRECT in told["content"]
    assert f"<@{world.alice['id']}>" in notice["content"]
    assert "message them directly" in notice["content"] and question in notice["content"]
