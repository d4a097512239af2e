"""Pure translation of Slack payloads into neutral ``IncomingMessage`` objects.

No I/O here: everything the decision needs (who the bot is, whether it already takes part in a
thread) is passed in. ``None`` means "the bot must not answer this".
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.messages import (
    EDIT_MARK,
    Attachment,
    Author,
    ConversationKey,
    IncomingMessage,
    Platform,
    edited_id,
)

# Message subtypes that are still a person talking; every other subtype (joins, topic changes,
# bot messages, replies bookkeeping, deletes) is not a question.
ANSWERABLE_SUBTYPES = frozenset({None, "", "file_share", "thread_broadcast", "me_message"})
TOMBSTONE = "tombstone"  # what a deleted thread parent becomes while its replies remain

# A slash command in a channel is answered privately; each user's commands there are one
# conversation, keyed by this prefix and the user id where a thread's ts would be.
COMMAND_THREAD_PREFIX = "ask-"
_USER_REF = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_REF = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL_REF = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINK_REF = re.compile(r"<((?:https?|mailto|tel|ftp):[^|>]+)(?:\|([^>]*))?>")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in one workspace (from auth.test or the stored installation)."""

    user_id: str | None
    bot_id: str | None = None


def plain_text(text: str, *, bot_user_id: str | None = None) -> str:
    """Slack markup -> plain text: drop the bot's own mention, resolve references, unescape."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    text = _USER_REF.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _CHANNEL_REF.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL_REF.sub(lambda m: m.group(2) or "@" + m.group(1), text)
    text = _LINK_REF.sub(_link_text, text)
    text = html.unescape(text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _link_text(match: re.Match[str]) -> str:
    url, label = match.group(1), match.group(2)
    if url.startswith("mailto:") and (not label or label == url.removeprefix("mailto:")):
        return url.removeprefix("mailto:")
    if not label or label == url:
        return url
    return f"{label} ({url})"


def mentions(text: str, user_id: str | None) -> bool:
    return bool(user_id) and f"<@{user_id}" in (text or "")


def is_from_bot(event: dict[str, Any], bot: BotIdentity) -> bool:
    """Messages of any bot (including this one) are never questions."""
    if event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("bot_profile"):
        return True
    return bool(bot.user_id) and event.get("user") == bot.user_id


def is_direct(event: dict[str, Any]) -> bool:
    channel_type = event.get("channel_type")
    if channel_type:
        return channel_type == "im"
    return str(event.get("channel", "")).startswith("D")


def message_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """The human message an event is about: the event itself, or the new version of an edit."""
    subtype = event.get("subtype")
    if event.get("type") == "message" and subtype == "message_changed":
        inner = dict(event.get("message") or {})
        previous = event.get("previous_message") or {}
        if not inner or inner.get("text", "") == previous.get("text", ""):
            return None  # unfurls and other edits that did not change the question
        if inner.get("subtype") not in ANSWERABLE_SUBTYPES:
            return None  # a thread parent's tombstone ("This message was deleted."), ...
        inner.setdefault("channel", event.get("channel"))
        inner.setdefault("channel_type", event.get("channel_type"))
        return inner
    if subtype not in ANSWERABLE_SUBTYPES:
        return None
    return event


@dataclass(frozen=True, slots=True)
class Deletion:
    """A message someone deleted: its channel and ts, and the message as it was (``previous``,
    empty when Slack did not send it)."""

    channel: str
    ts: str
    previous: dict[str, Any]

    def conversation(self, *, team_id: str, channel_type: str | None) -> ConversationKey:
        """The conversation the message belonged to (its thread is known from ``previous``)."""
        message = {"channel_type": channel_type, **self.previous}
        return conversation_for(
            {**message, "channel": self.channel, "ts": self.ts}, team_id=team_id
        )


def deletion_of(event: dict[str, Any]) -> Deletion | None:
    """The message a ``message`` event says was deleted, or None. Slack says it two ways:
    ``message_deleted`` (``deleted_ts``), and for a thread parent that has replies, a
    ``message_changed`` whose new version is a ``tombstone`` (the thread stays, the parent
    reads "This message was deleted."; once the replies are gone too, ``message_deleted``)."""
    subtype = event.get("subtype")
    if subtype == "message_deleted":
        ts = event.get("deleted_ts")
    elif subtype == "message_changed" and (event.get("message") or {}).get("subtype") == TOMBSTONE:
        ts = event["message"].get("ts")
    else:
        return None
    previous = event.get("previous_message")
    if not ts or not event.get("channel"):
        return None
    return Deletion(str(event["channel"]), str(ts), previous if isinstance(previous, dict) else {})


def asked_at(message_id: str) -> str:
    """When a question was asked, as a Slack ts: its message's, or its latest edit's (an edited
    question's id is ``ts:edit:edit_ts``, see ``bot.messages.edited_id``)."""
    ts, _, edited = message_id.partition(EDIT_MARK)
    return edited or ts


def thread_root(event: dict[str, Any]) -> str | None:
    return event.get("thread_ts") or None


def is_threaded_channel_message(event: dict[str, Any]) -> bool:
    """A channel message in a thread: answered without a mention only if the bot joined it."""
    message = message_of(event)
    return bool(message and not is_direct(message) and thread_root(message))


def conversation_for(event: dict[str, Any], *, team_id: str) -> ConversationKey:
    """Memory is per thread root in channels (a mention starts a thread under itself) and per
    channel in DMs, except Assistant-panel DM threads, which are threads of their own."""
    channel = str(event.get("channel", ""))
    root = thread_root(event)
    if is_direct(event):
        return ConversationKey(Platform.SLACK, team_id, channel, root)
    return ConversationKey(Platform.SLACK, team_id, channel, root or str(event.get("ts", "")))


def event_to_incoming(
    event: dict[str, Any],
    *,
    team_id: str,
    bot: BotIdentity,
    thread_joined: bool = False,
    auto_answer: bool = False,
) -> IncomingMessage | None:
    """``app_mention`` / ``message`` (incl. edits) -> IncomingMessage, or None to ignore it.

    ``auto_answer``: the channel answers every new top-level post, addressed or not."""
    if event.get("type") not in ("app_mention", "message"):
        return None
    message = message_of(event) if event.get("type") == "message" else event
    if message is None or is_from_bot(message, bot):
        return None
    raw_text = str(message.get("text") or "")
    direct = is_direct(message)
    mentioned = event.get("type") == "app_mention" or mentions(raw_text, bot.user_id)
    root = thread_root(message)
    if not (direct or mentioned or (thread_joined and root) or (auto_answer and not root)):
        return None
    text = plain_text(raw_text, bot_user_id=bot.user_id)
    ts = str(message.get("ts", ""))
    edited = (message.get("edited") or {}).get("ts")
    return IncomingMessage(
        id=edited_id(ts, edited) if edited else ts,
        conversation=conversation_for(message, team_id=team_id),
        author=Author(id=str(message.get("user", "")), display_name="", is_bot=False),
        text=text,
        sent_at=_ts_to_datetime(ts),
        is_direct=direct,
        mentions_bot=mentioned,
        command=None,
        attachments=files_of(message),
        raw=event,
    )


def files_of(message: dict[str, Any]) -> tuple[Attachment, ...]:
    """The files shared with a message (``file_share``), as neutral attachments."""
    files = message.get("files")
    return tuple(
        Attachment(
            name=str(f.get("name") or f.get("title") or ""),
            url=str(f.get("url_private") or ""),
            content_type=str(f.get("mimetype") or ""),
            size=f["size"] if isinstance(f.get("size"), int) else 0,
        )
        for f in (files if isinstance(files, list) else [])
        if isinstance(f, dict)
    )


def dedupe_key(event: dict[str, Any], *, team_id: str, event_id: str) -> str:
    """The ledger key: channel + ts for messages, so the ``app_mention`` and ``message`` twins of
    one mention (different event ids) collide; an edit is keyed by its edit time."""
    message = message_of(event) if event.get("type") == "message" else event
    if event.get("type") in ("app_mention", "message") and message is not None:
        channel, ts = message.get("channel") or event.get("channel"), message.get("ts")
        edited = (message.get("edited") or {}).get("ts")
        key = message_key(team_id=team_id, channel=channel, ts=ts)
        return edited_id(key, edited) if edited else key
    return f"ev:{event_id}"


def message_key(*, team_id: str, channel: Any, ts: Any) -> str:
    """The ledger key of one message: whatever way it reaches the bot (a mention and its
    ``message`` twin, a follow-up, the "Ask supportbot" shortcut), it is answered once (its
    edits' keys extend it, see ``dedupe_key``; a deletion finds its work by it)."""
    return f"msg:{team_id}:{channel}:{ts}"


# Fields of a message event that Slack always sends as strings (when present).
_MESSAGE_STRINGS = (
    "type", "subtype", "text", "ts", "thread_ts", "channel", "channel_type", "user", "bot_id",
    "team", "event_ts", "deleted_ts",
)  # fmt: skip


def malformed(body: Any) -> str | None:
    """Why a verified request cannot be one Slack sends (a field we read has the wrong JSON
    type), or None. Such a request would fail the same way on every retry."""
    if not isinstance(body, dict):
        return "the body is not an object"
    if "event" in body:
        event = body["event"]
        if not isinstance(event, dict):
            return "event is not an object"
        if event.get("type") in ("app_mention", "message"):
            return _malformed_message(event, "event") or _unplaced(event)
        if "assistant_thread" in event and not isinstance(event["assistant_thread"], dict):
            return "event.assistant_thread is not an object"
    if body.get("type") == "block_actions":
        return _malformed_actions(body)
    if body.get("type") == "message_action":
        return _malformed_shortcut(body)
    return None


def _malformed_shortcut(body: dict[str, Any]) -> str | None:
    """A message shortcut: the objects we read, and the message's fields as in an event."""
    for key in ("user", "channel", "team", "message"):
        if not isinstance(body.get(key), dict):
            return f"{key} is not an object"
    for key in ("callback_id", "trigger_id", "response_url", "action_ts"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return f"{key} is not a string"
    if body["message"].get("files") is not None and not isinstance(body["message"]["files"], list):
        return "message.files is not a list"
    if not body["channel"].get("id") or not body["message"].get("ts"):
        return "channel.id or message.ts is missing"
    return _malformed_message(body["message"], "message")


def _malformed_message(message: dict[str, Any], where: str) -> str | None:
    for key in _MESSAGE_STRINGS:
        if message.get(key) is not None and not isinstance(message[key], str):
            return f"{where}.{key} is not a string"
    for key in ("edited", "message", "previous_message"):
        if message.get(key) is not None and not isinstance(message[key], dict):
            return f"{where}.{key} is not an object"
    inner = message.get("message")
    return _malformed_message(inner, f"{where}.message") if inner else None


def _unplaced(event: dict[str, Any]) -> str | None:
    """A message event without the channel or timestamp Slack always sends: it could only be
    answered nowhere (and every such event would share one ledger key)."""
    for key in ("channel", "ts"):
        if not event.get(key):
            return f"event.{key} is missing"
    inner = event.get("message")
    if inner and not inner.get("ts"):
        return "event.message.ts is missing"
    return None


def _malformed_actions(body: dict[str, Any]) -> str | None:
    for key in ("user", "channel", "container", "message", "team"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    actions = body.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        return "actions is not a list of objects"
    for action in actions:
        for key in ("action_id", "value"):
            if action.get(key) is not None and not isinstance(action[key], str):
                return f"actions[].{key} is not a string"
    return None


def command_conversation(body: dict[str, Any]) -> ConversationKey:
    """Slash commands have no thread: a DM is its own conversation; in a channel each user's
    /ask exchanges form one conversation, so /forget there forgets only that user's."""
    team_id, channel = str(body.get("team_id", "")), str(body.get("channel_id", ""))
    if channel.startswith("D"):
        return ConversationKey(Platform.SLACK, team_id, channel, None)
    return ConversationKey(
        Platform.SLACK, team_id, channel, f"{COMMAND_THREAD_PREFIX}{body.get('user_id', '')}"
    )


def is_private_conversation(conversation: ConversationKey) -> bool:
    """Whether nobody but the asker and the bot can read or reply in ``conversation``: a
    slash command's (:func:`command_conversation`, answered privately) or a DM with the bot."""
    thread = conversation.thread_id or ""
    return thread.startswith(COMMAND_THREAD_PREFIX) or conversation.channel_id.startswith("D")


def command_to_incoming(body: dict[str, Any]) -> IncomingMessage:
    """A slash command (``/ask``, ``/forget``, ``/help``) -> IncomingMessage with ``command``."""
    name = str(body.get("command", "")).lstrip("/").lower()
    channel = str(body.get("channel_id", ""))
    return IncomingMessage(
        id=str(body.get("trigger_id", "")),
        conversation=command_conversation(body),
        author=Author(id=str(body.get("user_id", "")), display_name=str(body.get("user_name", ""))),
        text=plain_text(str(body.get("text") or "")),
        is_direct=channel.startswith("D"),
        mentions_bot=True,
        command=name,
        raw=body,
    )


def conversation_from_session_id(session_id: str) -> ConversationKey | None:
    """Inverse of ``ConversationKey.session_id`` for Slack keys (button values carry it)."""
    key = ConversationKey.from_session_id(session_id)
    return key if key is not None and key.platform is Platform.SLACK else None


def _ts_to_datetime(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)
