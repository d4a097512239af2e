"""Slack: auto-answer channels through the real bolt app (answer grounded posts in a thread,
react to the others, ignore unaddressed posts elsewhere), and "Mark resolved" capturing the
team's answer from the thread as a learned draft."""

from __future__ import annotations

import asyncio

from bot import texts
from storage import channel_settings, learned
from storage.activity import open_escalations
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness
from tests.fakes.slack_sender import app_mention, block_action, new_ts
from tests.model_support import start_slack_with_model

__all__ = ["api", "harness", "kb_uri"]
HELP, OTHER = "C0000001", "C0000002"


def post(text: str, channel: str, ts: str) -> dict:
    return app_mention(
        text=text, channel=channel, ts=ts, event_type="message", channel_type="channel"
    )


async def test_auto_answer_channel(harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database):
    await channel_settings.upsert_setting(
        sqlite_db, platform="slack", workspace_id="T0000001", channel_id=HELP,
        auto_answer=True, unanswered_reaction="eyes",
    )  # fmt: skip
    grounded, unsure, elsewhere = new_ts(), new_ts(), new_ts()
    async with harness.sender() as sender:
        await sender.event(post("how do I reset my password?", HELP, grounded))
        await sender.event(post("can I pay with PayPal?", HELP, unsure))
        await sender.event(post("how do I reset my password?", OTHER, elsewhere))
        await api.wait_for(lambda: api.reactions and [m for m in api.posted(HELP)])
        await harness.bot.wait_idle()
    [answer] = api.posted(HELP)
    assert answer.thread_ts == grounded and "Reset password" in answer.text
    assert api.reactions == [(HELP, unsure, "eyes")]
    assert api.posted(OTHER) == []  # no setting there: unaddressed posts are not for the bot


async def test_mark_resolved_captures_the_team_answer(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    # The support team: members of the channel's escalation target may resolve (issue 12).
    await channel_settings.upsert_setting(
        sqlite_db, platform="slack", workspace_id="T0000001", channel_id=HELP,
        escalation_target="CSUPPORT",
    )  # fmt: skip
    api.channel_members["CSUPPORT"] = ["USUPPORT"]
    root = new_ts()
    async with harness.sender() as sender:
        await sender.event(app_mention(text=f"<@{DEFAULT_BOT_USER}> talk to a human", ts=root))
        await api.wait_for(lambda: api.posted(HELP))
        await harness.bot.wait_idle()
        [handoff] = await escalations_open(sqlite_db)
        api.add_user_message(HELP, "Refunds go through billing@example.com.", user="USUPPORT",
                             thread_ts=root)  # fmt: skip
        click = block_action(
            action_id="sb_resolve",
            value=f'{{"e":{handoff.id}}}',
            message={"ts": api.posted(HELP)[-1].ts, "blocks": []},
            user="USUPPORT",
        )
        await sender.interaction(click)
        await sender.interaction(click)  # a double click adds nothing
        for _ in range(50):
            if await learned.list_answers(sqlite_db):
                break
            await asyncio.sleep(0.1)
        await harness.bot.wait_idle()
    [draft] = await learned.list_answers(sqlite_db)
    assert draft.answer == "Refunds go through billing@example.com."
    assert draft.escalation_id == handoff.id and draft.answered_by == "USUPPORT"
    # The reviewer can open the thread the answer came from (chat.getPermalink).
    assert draft.thread_link == f"https://test.slack.com/archives/{HELP}/p{root.replace('.', '')}"


async def escalations_open(db: Database) -> list:
    for _ in range(50):
        rows = await open_escalations(db)
        if rows:
            return rows
        await asyncio.sleep(0.1)
    return []


async def test_events_and_duplicates_are_counted(harness: SlackHarness, api: FakeSlackAPI) -> None:
    from bot import metrics

    def value(counter: object) -> float:
        return counter.labels(platform="slack")._value.get()  # type: ignore[attr-defined]

    received, duplicates = value(metrics.EVENTS_RECEIVED), value(metrics.EVENTS_DEDUPLICATED)
    mention = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?")
    async with harness.sender() as sender:
        await sender.event(mention)
        await sender.event(mention, retry_num=1)
        await api.wait_for(lambda: api.posted(HELP))
        await harness.bot.wait_idle()
    assert value(metrics.EVENTS_RECEIVED) == received + 2
    assert value(metrics.EVENTS_DEDUPLICATED) == duplicates + 1
    exposition, _ = await metrics.render()
    assert b'supportbot_events_deduplicated_total{platform="slack"}' in exposition


async def test_a_model_outage_is_not_apologised_for_under_posts_nobody_addressed(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    # The model fails past its retries. An unaddressed post in an auto-answer channel used to
    # get "the language model is not available" in its thread: the bot spoke unasked under
    # every new post, though there it speaks only with a grounded answer. It reacts as for a
    # post the gate held back; a mention in the same channel is still told.
    await channel_settings.upsert_setting(
        sqlite_db, platform="slack", workspace_id="T0000001", channel_id=HELP,
        auto_answer=True, unanswered_reaction="eyes",
    )  # fmt: skip
    unaddressed, mentioned = new_ts(), new_ts()
    async with FakeOpenAI() as model:
        model.fail_next(500, times=20)
        h = await start_slack_with_model(
            api, sqlite_db, sqlite_url, kb_uri, model, openai_max_retries=0
        )
        try:
            async with h.sender() as sender:
                await sender.event(post("how do I reset my password?", HELP, unaddressed))
                await api.wait_for(lambda: api.reactions, timeout=20)
                question = f"<@{DEFAULT_BOT_USER}> how do I reset my password?"
                await sender.event(app_mention(text=question, channel=HELP, ts=mentioned))
                await api.wait_for(lambda: api.posted(HELP), timeout=20)
            await h.bot.wait_idle()
        finally:
            await h.close()
    assert api.reactions == [(HELP, unaddressed, "eyes")]
    [apology] = api.posted(HELP)
    assert apology.thread_ts == mentioned and apology.text == texts.ERROR_MODEL_UNAVAILABLE
