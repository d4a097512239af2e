"""Pure conversion of Slack payloads into IncomingMessage (adapters/slack/convert.py)."""

from __future__ import annotations

from adapters.slack import convert
from adapters.slack.convert import (
    BotIdentity,
    Deletion,
    command_to_incoming,
    conversation_from_session_id,
    dedupe_key,
    deletion_of,
    event_to_incoming,
    plain_text,
)
from bot.messages import ConversationKey, Platform

BOT = BotIdentity(user_id="UBOT", bot_id="BBOT")


def _event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "message",
        "user": "UHUMAN",
        "text": "hello",
        "ts": "1700000000.000100",
        "channel": "C1",
        "channel_type": "channel",
    }
    base.update(fields)
    return base


def test_plain_text_strips_bot_mention_and_resolves_markup() -> None:
    raw = (
        "<@UBOT> ask <@U2|alice> in <#C9|general> about <https://x.io/a?b=1&amp;c=2|the docs> "
        "and <https://y.io> &amp; &lt;tags&gt; <!here> <!subteam^S1|@support> "
        "<mailto:a@b.io|a@b.io>"
    )
    assert plain_text(raw, bot_user_id="UBOT") == (
        "ask @alice in #general about the docs (https://x.io/a?b=1&c=2) and https://y.io "
        "& <tags> @here @support a@b.io"
    )


def test_app_mention_in_channel_threads_under_itself() -> None:
    msg = event_to_incoming(_event(type="app_mention", text="<@UBOT> how?"), team_id="T1", bot=BOT)
    assert msg is not None
    assert msg.text == "how?"
    assert msg.mentions_bot and not msg.is_direct
    assert msg.conversation == ConversationKey(Platform.SLACK, "T1", "C1", "1700000000.000100")


def test_channel_message_needs_mention_or_joined_thread() -> None:
    assert event_to_incoming(_event(), team_id="T1", bot=BOT) is None
    in_thread = _event(thread_ts="1699999999.000001")
    assert event_to_incoming(in_thread, team_id="T1", bot=BOT) is None
    joined = event_to_incoming(in_thread, team_id="T1", bot=BOT, thread_joined=True)
    assert joined is not None
    assert joined.conversation.thread_id == "1699999999.000001"
    # the message twin of a mention is answerable (and dedupes with the app_mention on the key)
    twin = event_to_incoming(_event(text="<@UBOT> hi"), team_id="T1", bot=BOT)
    assert twin is not None and twin.mentions_bot


def test_dm_is_per_channel_and_assistant_threads_per_thread() -> None:
    dm = event_to_incoming(_event(channel="D1", channel_type="im"), team_id="T1", bot=BOT)
    assert dm is not None and dm.is_direct
    assert dm.conversation.session_id == "slack:T1:D1"
    panel = event_to_incoming(
        _event(channel="D1", channel_type="im", thread_ts="1.2"), team_id="T1", bot=BOT
    )
    assert panel is not None and panel.conversation.session_id == "slack:T1:D1:1.2"


def test_bot_messages_and_other_subtypes_are_ignored() -> None:
    assert event_to_incoming(_event(channel_type="im", bot_id="B2"), team_id="T", bot=BOT) is None
    own = _event(channel_type="im", user="UBOT")
    assert event_to_incoming(own, team_id="T", bot=BOT) is None
    for subtype in ("bot_message", "channel_join", "message_deleted", "message_replied"):
        event = _event(channel_type="im", subtype=subtype)
        assert event_to_incoming(event, team_id="T", bot=BOT) is None
    assert event_to_incoming({"type": "reaction_added"}, team_id="T", bot=BOT) is None


def test_edits_are_new_questions_keyed_by_edit_time_unless_unchanged() -> None:
    edit = {
        "type": "message",
        "subtype": "message_changed",
        "channel": "D1",
        "channel_type": "im",
        "ts": "1700000001.000000",
        "message": {"user": "UHUMAN", "text": "new?", "ts": "1.1", "edited": {"ts": "1.5"}},
        "previous_message": {"user": "UHUMAN", "text": "old?", "ts": "1.1"},
    }
    msg = event_to_incoming(edit, team_id="T1", bot=BOT)
    assert msg is not None and msg.text == "new?" and msg.id == "1.1:edit:1.5"
    assert dedupe_key(edit, team_id="T1", event_id="Ev1") == "msg:T1:D1:1.1:edit:1.5"
    unfurl = {**edit, "previous_message": {"text": "new?", "ts": "1.1"}}
    assert event_to_incoming(unfurl, team_id="T1", bot=BOT) is None
    own_edit = {**edit, "message": {**edit["message"], "bot_id": "BBOT"}}  # type: ignore[dict-item]
    assert event_to_incoming(own_edit, team_id="T1", bot=BOT) is None


def test_mention_twins_share_a_dedupe_key() -> None:
    mention = _event(type="app_mention", text="<@UBOT> hi")
    twin = _event(text="<@UBOT> hi")
    assert dedupe_key(mention, team_id="T1", event_id="Ev1") == dedupe_key(
        twin, team_id="T1", event_id="Ev2"
    )
    assert dedupe_key({"type": "assistant_thread_started"}, team_id="T1", event_id="Ev3") == (
        "ev:Ev3"
    )


def test_commands_and_session_ids_round_trip() -> None:
    body = {
        "command": "/ask",
        "text": "why &amp; how",
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "trigger_id": "tr1",
    }
    msg = command_to_incoming(body)
    assert msg.command == "ask" and msg.text == "why & how"
    assert msg.conversation.session_id == "slack:T1:C1:ask-U1"
    dm = command_to_incoming({**body, "channel_id": "D5", "command": "/forget"})
    assert dm.command == "forget" and dm.conversation.session_id == "slack:T1:D5"
    for key in (msg.conversation, dm.conversation):
        assert conversation_from_session_id(key.session_id) == key
    assert conversation_from_session_id("discord:1:2") is None


def test_a_deleted_thread_parent_is_a_deletion_not_a_question() -> None:
    """Slack turns a deleted thread parent that has replies into a tombstone (message_changed):
    that is the question's deletion, never a new question "This message was deleted."."""
    question = _event(text="<@UBOT> my token is abc", thread_ts="1700000000.000100")
    tombstone = _event(
        subtype="message_changed",
        hidden=True,
        ts="1700000099.000001",
        message={
            "type": "message",
            "subtype": "tombstone",
            "text": "This message was deleted.",
            "user": "USLACKBOT",
            "ts": "1700000000.000100",
            "thread_ts": "1700000000.000100",
        },
        previous_message=question,
    )
    assert event_to_incoming(tombstone, team_id="T1", bot=BOT, thread_joined=True) is None
    assert deletion_of(tombstone) == Deletion("C1", "1700000000.000100", question)
    deleted = _event(subtype="message_deleted", deleted_ts="1700000000.000100", hidden=True)
    del deleted["user"], deleted["text"]
    found = deletion_of(deleted)
    assert found == Deletion("C1", "1700000000.000100", {})
    key = found.conversation(team_id="T1", channel_type="channel")
    assert key.session_id == "slack:T1:C1:1700000000.000100"
    assert deletion_of(_event()) is None


def test_an_edited_question_was_asked_when_it_was_last_edited() -> None:
    """A retry scans the thread for its earlier answer after the question; an edited
    question's id carries its edit ("ts:edit:edit_ts"), which is no number: the scan failed
    and the earlier answer stayed."""
    assert convert.asked_at("1700000000.000100") == "1700000000.000100"
    assert convert.asked_at("1700000000.000100:edit:1700000050.000200") == "1700000050.000200"
