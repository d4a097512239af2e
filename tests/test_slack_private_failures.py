"""A question in a Slack channel whose answers are private (`channels set C --ephemeral on`)
that fails is told privately too: the apology goes with chat.postEphemeral to the asker, as
the answer would have, never as a message the whole channel sees."""

from __future__ import annotations

from bot import texts
from storage import channel_settings
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness, model_settings, running_harness
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "fake_openai", "harness", "kb_uri"]
BOT = DEFAULT_BOT_USER
CHANNEL = "C0000001"
QUESTION = "Where can I download past invoices?"


async def _private_channel(db: Database) -> None:
    await channel_settings.upsert_setting(
        db, platform="slack", workspace_id="T0000001", channel_id=CHANNEL, ephemeral=True
    )


async def _told_privately(harness: SlackHarness, root: str) -> str:
    """Mention the bot in the private channel; the one private reply's text, once idle,
    after checking nothing was posted or streamed where others see it."""
    api = harness.api
    async with harness.sender() as sender:
        await sender.event(app_mention(text=f"<@{BOT}> {QUESTION}", ts=root))
    await api.wait_for(lambda: api.calls_to("chat.postEphemeral"))
    await harness.bot.wait_idle()
    assert api.posted() == []
    assert not api.calls_to("chat.startStream")
    [private] = api.ephemerals
    assert private.params["user"] == "UHUMAN001" and private.params["thread_ts"] == root
    return str(private.params["text"])


async def test_a_model_failure_on_a_private_question_is_told_to_the_asker_alone(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    # The model is down: the apology was posted in the thread for everyone, where the answer
    # would have been the asker's alone.
    await _private_channel(sqlite_db)
    fake_openai.fail_next(500)
    settings = model_settings(sqlite_url, kb_uri, api, fake_openai)
    async with running_harness(api, settings, db=sqlite_db) as harness:
        text = await _told_privately(harness, new_ts())
    assert text == texts.ERROR_MODEL_UNAVAILABLE


async def test_a_private_answer_slack_refuses_is_apologised_for_to_the_asker_alone(
    harness: SlackHarness, sqlite_db: Database
) -> None:
    # Slack refuses the private answer for good: the inbox's note (texts.ERROR_GENERIC) was
    # posted in the thread for everyone.
    await _private_channel(sqlite_db)
    harness.api.error("chat.postEphemeral", "restricted_action")
    text = await _told_privately(harness, new_ts())
    assert text == texts.ERROR_GENERIC
