"""A channel set to ephemeral answers (`supportbot channels set C --ephemeral on`): on Slack
the answer goes to the asker alone with chat.postEphemeral, and its buttons answer through
the click's response_url (an ephemeral message cannot be edited with chat.update)."""

from __future__ import annotations

import json
from typing import Any

from bot import texts
from storage import channel_settings, feedback
from storage.db import Database
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness
from tests.fakes.slack_sender import (
    SlackSender,
    app_mention,
    block_action,
    message_shortcut,
    new_ts,
)

__all__ = ["api", "harness", "kb_uri"]
BOT = DEFAULT_BOT_USER
CHANNEL = "C0000001"
UNCOVERED = "Can I pay my invoices with PayPal?"  # the docs do not say: a refusal


def _button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button")


def _blocks(value: Any) -> list[dict[str, Any]]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _ephemeral_click(
    api: FakeSlackAPI, button: dict[str, Any], message: dict[str, Any] | None, key: str
) -> dict[str, Any]:
    """Slack's click on an ephemeral message: container.is_ephemeral, a response_url (``key``
    in the fake), and ``message`` when given."""
    return block_action(
        action_id=button["action_id"],
        value=button["value"],
        message=message,
        ephemeral=True,
        response_url=api.response_url(key),
    )


async def _private_channel(db: Database) -> None:
    await channel_settings.upsert_setting(
        db, platform="slack", workspace_id="T0000001", channel_id=CHANNEL, ephemeral=True
    )


async def _answered_privately(
    harness: SlackHarness, sender: SlackSender, question: str, root: str
) -> Any:
    """Mention the bot with ``question`` (a thread root at ``root``); its one private reply,
    once nothing else is under way (nothing public: not streamed, not posted)."""
    api = harness.api
    await sender.event(app_mention(text=f"<@{BOT}> {question}", ts=root))
    await api.wait_for(lambda: api.calls_to("chat.postEphemeral"))
    await harness.bot.wait_idle()
    assert api.posted() == []
    assert not api.calls_to("chat.startStream") and not api.calls_to("chat.update")
    [private] = api.calls_to("chat.postEphemeral")
    assert private.params["channel"] == CHANNEL and private.params["user"] == "UHUMAN001"
    assert private.params["thread_ts"] == root
    return private


async def _click_ephemeral(
    harness: SlackHarness,
    sender: SlackSender,
    button: dict[str, Any],
    message: dict[str, Any] | None,
    key: str,
) -> list[dict[str, Any]]:
    """Click ``button`` of an ephemeral message; what the bot sent to its response_url."""
    assert (
        await sender.interaction(_ephemeral_click(harness.api, button, message, key))
    ).status == 200
    await harness.api.wait_for(lambda: harness.api.responses.get(key))
    await harness.bot.wait_idle()
    return harness.api.responses[key]


async def test_an_answer_in_an_ephemeral_channel_goes_to_the_asker_alone_with_buttons(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    await _private_channel(sqlite_db)
    async with harness.sender() as sender:
        private = await _answered_privately(harness, sender, "when are invoices sent?", new_ts())
        assert "invoice" in private.params["text"].lower()
        blocks = _blocks(private.params["blocks"])
        helpful = _button(blocks, "sb_helpful")
        shown = {"type": "message", "ts": "0", "text": private.params["text"], "blocks": blocks}
        [replaced] = await _click_ephemeral(harness, sender, helpful, shown, "e1")
    assert not api.calls_to("chat.update") and api.posted() == []
    [vote] = await feedback.list_feedback(sqlite_db)
    assert vote.value == 1 and vote.user_id == "UHUMAN001"
    assert replaced["replace_original"] is True and replaced["response_type"] == "ephemeral"
    assert texts.FEEDBACK_THANKS_HELPFUL in json.dumps(replaced["blocks"])
    ids = [b.get("block_id") for b in replaced["blocks"]]
    assert "sb_feedback" not in ids and "sb_human" in ids


async def test_a_click_on_an_ephemeral_answer_without_its_message_is_answered_privately(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    await _private_channel(sqlite_db)
    async with harness.sender() as sender:
        private = await _answered_privately(harness, sender, "when are invoices sent?", new_ts())
        unhelpful = _button(_blocks(private.params["blocks"]), "sb_not_helpful")
        [note] = await _click_ephemeral(harness, sender, unhelpful, None, "e2")
    assert not api.calls_to("chat.update") and api.posted() == []
    [vote] = await feedback.list_feedback(sqlite_db)
    assert vote.value == -1
    assert note["response_type"] == "ephemeral" and not note.get("replace_original")


async def test_a_refusal_in_an_ephemeral_channel_goes_to_the_asker_alone_and_hands_off(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    await _private_channel(sqlite_db)
    root = new_ts()
    async with harness.sender() as sender:
        private = await _answered_privately(harness, sender, UNCOVERED, root)  # not public
        assert "couldn't find this" in private.params["text"]
        blocks = _blocks(private.params["blocks"])
        human = _button(blocks, "sb_human")
        shown = {"type": "message", "ts": "0", "text": private.params["text"], "blocks": blocks}
        click = _ephemeral_click(api, human, shown, "h1")
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.posted())
        await harness.bot.wait_idle()
    # The hand-off stays public on purpose (the team must see it), in the question's thread.
    [handoff] = api.posted()
    assert handoff.thread_ts == root and texts.ESCALATION_OPENED in handoff.text


async def test_ask_supportbot_there_answers_the_messages_author_alone(
    harness: SlackHarness, api: FakeSlackAPI, sqlite_db: Database
) -> None:
    await _private_channel(sqlite_db)
    question = api.add_user_message(CHANNEL, UNCOVERED, user="UASKER001")
    async with harness.sender() as sender:
        click = message_shortcut(
            {"user": "UASKER001", "text": question.text, "ts": question.ts},
            user="UHELPER01",
            response_url=api.response_url("click"),
        )
        assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.calls_to("chat.postEphemeral"))
        await harness.bot.wait_idle()
    assert [m.text for m in api.posted()] == [UNCOVERED]  # only the question itself
    [private] = api.calls_to("chat.postEphemeral")  # the author asked, as designed
    assert private.params["user"] == "UASKER001" and private.params["thread_ts"] == question.ts
    assert "couldn't find this" in private.params["text"]
    _button(_blocks(private.params["blocks"]), "sb_human")
    # The clicker sees no answer appear: told privately why.
    assert [r["text"] for r in api.responses["click"]] == [texts.ASK_MESSAGE_ANSWERING_PRIVATELY]
