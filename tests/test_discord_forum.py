"""Discord forum workflow through the real adapter and the fake Discord.

A forum with auto-answer (from channel settings) answers grounded posts and tags them, reacts
to the others, tags hand-offs "needs human"; Mark resolved tags "solved", archives the post and
drafts the team's answer for review."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.discord import render
from bot import escalation, texts
from bot.runtime import Runtime, build_runtime
from storage import channel_settings, learned
from storage.db import Database
from tests.discord_fixtures import RunningBot, kb_uri, make_settings, start_bot, world
from tests.fakes.discord_world import DiscordWorld

__all__ = ["kb_uri", "world"]


async def start_forum_bot(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str, **overrides: Any
) -> RunningBot:
    """The bot, with the forum auto-answering, tagging by state and archiving on resolve."""
    settings = make_settings(
        world, sqlite_url, kb_uri, discord_forum_channels="",
        discord_support_role=world.support_role_id, **overrides,
    )  # fmt: skip
    await channel_settings.upsert_setting(
        sqlite_db, platform="discord", workspace_id=world.guild_id, channel_id=world.forum_id,
        auto_answer=True, unanswered_reaction="eyes", archive_on_resolve=True,
        forum_tags={"answered": "answered by bot", "needs_human": "needs human",
                    "solved": "solved"},
    )  # fmt: skip
    runtime: Runtime = await build_runtime(settings, db=sqlite_db)
    return await start_bot(world, runtime)


@pytest.fixture
async def forum_bot(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> AsyncIterator[RunningBot]:
    running = await start_forum_bot(world, sqlite_db, sqlite_url, kb_uri)
    yield running
    await running.stop()


def tag_ids(world: DiscordWorld) -> dict[str, str]:
    forum = next(
        c
        for c in world.gateway.guilds[0]["channels"]
        if c["id"] == world.forum_id  # the forum's available tags, by name
    )
    return {t["name"]: t["id"] for t in forum["available_tags"]}


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    for _ in range(int(timeout / 0.05)):
        if result := predicate():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def click_human(
    world: DiscordWorld, answer: dict[str, Any], author: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Click the answer's "talk to a human" button (as Alice unless ``author``)."""
    ids = [c["custom_id"] for row in answer["components"] for c in row["components"]]
    return await world.click(answer, ids[2], author=author)


async def hand_off(world: DiscordWorld, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Click the answer's "talk to a human" button; returns the hand-off's messages."""
    human = await click_human(world, answer)
    opened: list[dict[str, Any]] = await world.interaction_done(human["token"])
    return opened


async def test_a_click_on_an_open_hand_off_leaves_the_post_and_its_tags_alone(
    world: DiscordWorld, forum_bot: RunningBot
) -> None:
    # Bob's click finds the hand-off Alice's opened: he alone is told, the post shows nothing
    # new and its tags are not applied again (a moderator may have changed them since).
    tags = tag_ids(world)
    thread_id, _ = await world.forum_post("How do I reset my password?")
    answer = (await world.bot_messages(thread_id))[0]
    [opened] = await hand_off(world, answer)
    await until(lambda: world.api.threads[thread_id]["applied_tags"] == [tags["needs human"]])
    tagged = len(world.api.find("PATCH", rf"/channels/{thread_id}"))
    seen = world.api.visible_messages(thread_id)
    again = await click_human(world, answer, author=world.bob)
    told = await world.private_answer(again["token"])
    assert told["content"] == texts.ESCALATION_ALREADY_OPEN
    assert world.api.visible_messages(thread_id) == seen
    assert [m for m in seen if texts.ESCALATION_OPENED in m["content"]] == [opened]
    assert len(world.api.find("PATCH", rf"/channels/{thread_id}")) == tagged


async def mark_resolved(
    world: DiscordWorld, opened: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """A support member clicks the hand-off's "Mark resolved"; returns the button's custom id
    and the messages answering the click."""
    resolve_id: str = opened[0]["components"][0]["components"][0]["custom_id"]
    resolve = await world.click(
        opened[0], resolve_id, author=world.bob, roles=[world.support_role_id]
    )
    done: list[dict[str, Any]] = await world.interaction_done(resolve["token"])
    return resolve_id, done


async def test_forum_workflow(
    world: DiscordWorld, forum_bot: RunningBot, sqlite_db: Database
) -> None:
    tags = tag_ids(world)
    thread_id, _ = await world.forum_post("How do I reset my password?")
    answer = (await world.bot_messages(thread_id))[0]
    assert "reset your password" in answer["content"].lower()
    await until(lambda: world.api.threads[thread_id]["applied_tags"])
    assert world.api.threads[thread_id]["applied_tags"] == [tags["answered by bot"]]

    unsure, _ = await world.forum_post("Can I pay with PayPal?")
    await until(lambda: world.api.reactions)
    assert world.api.reactions == [(unsure, unsure, "👀")]
    assert world.api.channel_messages(unsure) == []  # silent, no thread noise

    opened = await hand_off(world, answer)
    await until(lambda: world.api.threads[thread_id]["applied_tags"] == [tags["needs human"]])

    await world.say("Use the reset link in Settings; it expires after 30 minutes.",
                    channel_id=thread_id, author=world.bob)  # fmt: skip
    await mark_resolved(world, opened)
    await until(lambda: world.api.threads[thread_id]["thread_metadata"]["archived"])
    assert world.api.threads[thread_id]["applied_tags"] == [tags["solved"]]
    [draft] = await learned.list_answers(sqlite_db)
    assert draft.answer == "Use the reset link in Settings; it expires after 30 minutes."
    assert draft.answered_by == world.bob["id"] and draft.platform == "discord"
    assert draft.thread_link == f"https://discord.com/channels/{world.guild_id}/{thread_id}"


async def test_mark_resolved_on_a_closed_hand_off_only_tells_the_clicker(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """A second "Mark resolved" (the hand-off's button in the post, after the hand-off was
    closed) edited the team's notice again and re-applied the forum tags. Now, as on Slack, it
    changes nothing and only its clicker is told, privately, that the hand-off is closed."""
    team = world.no_threads_channel_id
    running = await start_forum_bot(
        world, sqlite_db, sqlite_url, kb_uri, discord_escalation_channel=team
    )
    try:
        thread_id, _ = await world.forum_post("How do I reset my password?")
        opened = await hand_off(world, (await world.bot_messages(thread_id))[0])
        await world.bot_messages(team)
        resolve_id, _ = await mark_resolved(world, opened)
        await until(lambda: world.api.threads[thread_id]["thread_metadata"]["archived"])
        changes = [rf"/channels/{thread_id}", rf"/channels/{team}/messages/\d+"]
        before = [len(world.api.find("PATCH", path)) for path in changes]
        again = await world.click(opened[0], resolve_id, author=world.bob)
        [told] = await world.interaction_done(again["token"])
        await asyncio.sleep(0.5)  # an edit after the answer would show now
    finally:
        await running.stop()
    assert told["content"] == texts.ESCALATION_NOT_OPEN and told["flags"] & 64
    assert [len(world.api.find("PATCH", path)) for path in changes] == before


async def test_forum_workflow_on_a_post_discord_py_has_not_cached(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """A post started while the bot was offline (no gateway event named its thread) is tagged
    and archived as any post: Discord is asked for its thread once per change."""
    tags = tag_ids(world)
    thread_id = world.thread_made_offline(world.forum_id, "reset")
    running = await start_forum_bot(
        world, sqlite_db, sqlite_url, kb_uri, discord_catch_up_minutes=0
    )
    try:
        await world.say("How do I reset my password?", channel_id=thread_id, message_id=thread_id)
        answer = (await world.bot_messages(thread_id))[0]
        await until(lambda: world.api.threads[thread_id]["applied_tags"])
        assert world.api.threads[thread_id]["applied_tags"] == [tags["answered by bot"]]

        opened = await hand_off(world, answer)
        await until(lambda: world.api.threads[thread_id]["applied_tags"] == [tags["needs human"]])

        await mark_resolved(world, opened)
        await until(lambda: world.api.threads[thread_id]["thread_metadata"]["archived"])
        assert world.api.threads[thread_id]["applied_tags"] == [tags["solved"]]
        assert running.adapter.client.get_channel(int(thread_id)) is None  # still not cached
    finally:
        await running.stop()
    # One question to route the post, then one per change: answered, needs human, solved.
    assert len(world.api.find("GET", rf"/channels/{thread_id}")) == 4


async def test_a_post_discord_will_not_describe_keeps_its_tags_and_is_answered(
    world: DiscordWorld,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Discord refuses the uncached post's thread when it is to be marked solved: the hand-off
    is still resolved (and the resolver told), the post keeps its tags and a warning names it."""
    tags = tag_ids(world)
    thread_id = world.thread_made_offline(world.forum_id, "reset")
    caplog.set_level(logging.WARNING, logger="adapters.discord.forum")
    running = await start_forum_bot(
        world, sqlite_db, sqlite_url, kb_uri, discord_catch_up_minutes=0
    )
    try:
        await world.say("How do I reset my password?", channel_id=thread_id, message_id=thread_id)
        answer = (await world.bot_messages(thread_id))[0]
        opened = await hand_off(world, answer)
        await until(lambda: world.api.threads[thread_id]["applied_tags"] == [tags["needs human"]])

        world.api.fail_with(403, "GET", rf"/channels/{thread_id}")
        resolve_id, done = await mark_resolved(world, opened)
    finally:
        await running.stop()
    assert done[0]["content"] == texts.ESCALATION_RESOLVED  # the resolver was answered
    parsed = render.parse_custom_id(resolve_id)
    row = await escalation.get(sqlite_db, parsed.target_id) if parsed else None
    assert row is not None and row.status == "resolved"
    assert world.api.threads[thread_id]["applied_tags"] == [tags["needs human"]]
    assert not world.api.threads[thread_id]["thread_metadata"]["archived"]
    warned = [r.getMessage() for r in caplog.records if r.name == "adapters.discord.forum"]
    assert len(warned) == 1 and thread_id in warned[0]


async def test_a_forum_post_is_answered_for_its_askers_not_everyone_replying(
    world: DiscordWorld, forum_bot: RunningBot
) -> None:
    thread_id, _ = await world.forum_post("How do I reset my password?")
    await world.bot_messages(thread_id, 1)
    # Bob asks in Alice's post without addressing the bot: a question the docs answer, so only
    # the rule (not the confidence gate) keeps the bot out of it.
    await world.say("How long does the reset link last?", channel_id=thread_id, author=world.bob)
    await world.say("And when are invoices sent?", channel_id=thread_id)  # the poster
    await world.bot_messages(thread_id, 2)
    await asyncio.sleep(0.5)
    assert len(world.api.channel_messages(thread_id)) == 2  # Bob was not answered
    assert world.api.reactions == []
