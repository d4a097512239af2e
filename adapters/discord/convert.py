"""Discord payloads -> neutral ``IncomingMessage`` (pure: no discord.py, no I/O).

Input is the gateway's JSON shape (MESSAGE_CREATE ``d``, INTERACTION_CREATE ``d``), so the same
functions serve the live client, tests and replays. ``None`` means "the bot must ignore this".

Sessions: a thread is its own conversation (``discord:<guild>:<thread>:<thread>``), a DM channel
is one conversation, and a channel where the bot answers in place is one conversation. Slash
commands in a guild channel or thread are private to their user, as on Slack: each user's
``/ask`` exchanges there form one conversation (``discord:<guild>:<channel>:ask-<user>``), so
one user's question never reaches another user's model request and ``/forget`` forgets only
the caller's. The thread
key needs only the thread id, so "has the bot joined this thread?" can be answered from stored
memories even when discord.py has not cached the thread.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bot.messages import Attachment, Author, ConversationKey, IncomingMessage, Platform

ADMINISTRATOR = 1 << 3  # Discord permission bits
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
MANAGE_THREADS = 1 << 34

# Discord channel types that matter here.
_DM_TYPES = {1, 3}  # DM, group DM
_THREAD_TYPES = {10, 11, 12}  # announcement, public and private threads
# Message types a person writes: DEFAULT and REPLY (others are joins, pins, thread notices...).
_USER_MESSAGE_TYPES = {0, 19}

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")
_SLASH_MENTION = re.compile(r"</([\w -]+):\d+>")


class ChannelKind(enum.StrEnum):
    CHANNEL = "channel"  # a guild text channel: answer in place (or start a thread)
    THREAD = "thread"
    DM = "dm"


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What the adapter knows about the channel a payload came from."""

    kind: ChannelKind
    parent_id: str | None = None
    # Names of roles and channels by id, to turn <@&id> / <#id> into plain text.
    names: Mapping[str, str] = field(default_factory=dict)


def kind_from_channel_type(channel_type: int | None, *, guild_id: str | None) -> ChannelKind:
    if channel_type in _DM_TYPES or (channel_type is None and not guild_id):
        return ChannelKind.DM
    if channel_type in _THREAD_TYPES:
        return ChannelKind.THREAD
    return ChannelKind.CHANNEL


def conversation_for(
    *, guild_id: str | None, channel_id: str, kind: ChannelKind
) -> ConversationKey:
    """The conversation a message in this channel belongs to."""
    if kind is ChannelKind.THREAD:
        return thread_conversation(guild_id=guild_id or "", thread_id=channel_id)
    return ConversationKey(Platform.DISCORD, guild_id or "", channel_id, None)


def is_private_conversation(conversation: ConversationKey) -> bool:
    """Whether nobody but the asker and the bot can post in ``conversation``: a DM (the only
    conversations without a guild). A slash command's answer in a guild is a channel message."""
    return not conversation.workspace_id


def command_conversation(
    *, guild_id: str | None, channel_id: str, kind: ChannelKind, user_id: str
) -> ConversationKey:
    """A slash command's conversation: the DM itself, else the caller's own in that channel or
    thread (a thread is a channel on Discord, so per thread comes for free)."""
    if kind is ChannelKind.DM:
        return conversation_for(guild_id=guild_id, channel_id=channel_id, kind=kind)
    return ConversationKey(Platform.DISCORD, guild_id or "", channel_id, f"ask-{user_id}")


def thread_conversation(*, guild_id: str, thread_id: str) -> ConversationKey:
    """A thread's conversation; replies go to the thread (a thread is a channel on Discord)."""
    return ConversationKey(Platform.DISCORD, guild_id, thread_id, thread_id)


def conversations_of_message(
    *, guild_id: str | None, channel_id: str, message_id: str
) -> list[ConversationKey]:
    """Where a message's turn may be stored when only its ids are known (Discord says no more
    of a deleted message): a DM's conversation; else the channel's (answered in place), the
    thread's it was posted in, and the thread's started from it (a mention's answer)."""
    if not guild_id:
        return [conversation_for(guild_id=None, channel_id=channel_id, kind=ChannelKind.DM)]
    return [
        conversation_for(guild_id=guild_id, channel_id=channel_id, kind=ChannelKind.CHANNEL),
        thread_conversation(guild_id=guild_id, thread_id=channel_id),
        thread_conversation(guild_id=guild_id, thread_id=message_id),
    ]


def message_to_incoming(
    payload: Mapping[str, Any], *, bot_user_id: str, context: ChannelContext
) -> IncomingMessage | None:
    """A MESSAGE_CREATE payload as an IncomingMessage; None for bots, system and empty messages."""
    author_data = payload.get("author")
    if not isinstance(author_data, Mapping) or "id" not in author_data:
        return None
    author = _author(author_data)
    if author.is_bot or author.id == bot_user_id or payload.get("webhook_id"):
        return None
    if int(payload.get("type") or 0) not in _USER_MESSAGE_TYPES:
        return None
    message_id = str(payload.get("id") or "")
    channel_id = str(payload.get("channel_id") or "")
    if not message_id or not channel_id:
        return None
    content = payload.get("content") if isinstance(payload.get("content"), str) else ""
    attachments = tuple(_attachments(payload.get("attachments")))
    mentions = [m for m in payload.get("mentions") or [] if isinstance(m, Mapping)]
    mentions_bot = any(str(m.get("id")) == bot_user_id for m in mentions) or bool(
        re.search(rf"<@!?{re.escape(bot_user_id)}>", content)
    )
    text = plain_text(content, bot_user_id=bot_user_id, mentions=mentions, names=context.names)
    addressed = mentions_bot or context.kind is ChannelKind.DM
    if not text and not attachments and not addressed:
        # Nothing to read (no message-content intent, a sticker or an embed in passing). Said
        # to the bot, though (a bare mention, a sticker in a DM), it gets the core's hint.
        return None
    guild_id = str(payload["guild_id"]) if payload.get("guild_id") else None
    return IncomingMessage(
        id=message_id,
        conversation=conversation_for(guild_id=guild_id, channel_id=channel_id, kind=context.kind),
        author=author,
        text=text,
        sent_at=_parse_time(payload.get("timestamp")),
        is_direct=context.kind is ChannelKind.DM,
        mentions_bot=mentions_bot,
        attachments=attachments,
        raw=payload,
        parent_channel_id=context.parent_id if context.kind is ChannelKind.THREAD else None,
    )


def interaction_to_incoming(payload: Mapping[str, Any]) -> IncomingMessage | None:
    """An application-command INTERACTION_CREATE payload as a command message (None if unusable)."""
    data = payload.get("data")
    if int(payload.get("type") or 0) != 2 or not isinstance(data, Mapping):
        return None
    name = data.get("name")
    interaction_id = payload.get("id")
    channel_id = payload.get("channel_id") or (payload.get("channel") or {}).get("id")
    user_data = (payload.get("member") or {}).get("user") or payload.get("user")
    if not isinstance(name, str) or not interaction_id or not channel_id or not user_data:
        return None
    guild_id = str(payload["guild_id"]) if payload.get("guild_id") else None
    channel = payload.get("channel") if isinstance(payload.get("channel"), Mapping) else {}
    kind = kind_from_channel_type(channel.get("type"), guild_id=guild_id)
    options = command_options(data)
    question = options.get("question")
    author = replace(
        _author(user_data),
        is_admin=is_guild_admin(payload),
        moderates=_has_permission(payload, ADMINISTRATOR | MANAGE_THREADS | MANAGE_MESSAGES),
    )
    parent = channel.get("parent_id") if kind is ChannelKind.THREAD else None
    return IncomingMessage(
        id=str(interaction_id),
        conversation=command_conversation(
            guild_id=guild_id, channel_id=str(channel_id), kind=kind, user_id=author.id
        ),
        author=author,
        text=question.strip() if isinstance(question, str) else "",
        is_direct=kind is ChannelKind.DM,
        mentions_bot=True,
        command=name.lower(),
        raw=payload,
        parent_channel_id=str(parent) if parent else None,
        shared_thread=(
            thread_conversation(guild_id=guild_id, thread_id=str(channel_id))
            if kind is ChannelKind.THREAD and guild_id
            else None
        ),
    )


def is_guild_admin(payload: Mapping[str, Any]) -> bool:
    """Administrator or Manage Server in this guild (the member's computed permissions)."""
    return _has_permission(payload, ADMINISTRATOR | MANAGE_GUILD)


def _has_permission(payload: Mapping[str, Any], bits: int) -> bool:
    """Whether the interaction's member has any of ``bits`` (their permissions computed for
    the channel it came from, as Discord sends them)."""
    member = payload.get("member")
    if not isinstance(member, Mapping) or not payload.get("guild_id"):
        return False
    try:
        permissions = int(member.get("permissions") or 0)
    except (TypeError, ValueError):
        return False
    return bool(permissions & bits)


def command_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level option values of a slash command by name."""
    found: dict[str, Any] = {}
    for option in data.get("options") or []:
        if isinstance(option, Mapping) and isinstance(option.get("name"), str):
            found[option["name"]] = option.get("value")
    return found


def plain_text(
    content: str,
    *,
    bot_user_id: str,
    mentions: list[Mapping[str, Any]] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """Strip the bot's mention and turn other Discord markup into readable plain text."""
    names = {} if names is None else names  # not `or`: a lazy mapping must not count itself
    users = {str(m.get("id")): _display_name(m) for m in mentions or []}

    def user(match: re.Match[str]) -> str:
        if match[1] == bot_user_id:
            return ""
        return "@" + users.get(match[1], "user")

    text = _USER_MENTION.sub(user, content)
    text = _ROLE_MENTION.sub(lambda m: "@" + names.get(m[1], "role"), text)
    text = _CHANNEL_MENTION.sub(lambda m: "#" + names.get(m[1], "channel"), text)
    text = _CUSTOM_EMOJI.sub(lambda m: f":{m[1]}:", text)
    text = _SLASH_MENTION.sub(lambda m: f"/{m[1]}", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip()


def _author(data: Mapping[str, Any]) -> Author:
    return Author(
        id=str(data.get("id")), display_name=_display_name(data), is_bot=bool(data.get("bot"))
    )


def _display_name(data: Mapping[str, Any]) -> str:
    member = data.get("member") if isinstance(data.get("member"), Mapping) else {}
    return str(member.get("nick") or data.get("global_name") or data.get("username") or "")


def _attachments(items: Any) -> list[Attachment]:
    found = []
    for item in items or []:
        if isinstance(item, Mapping):
            found.append(
                Attachment(
                    name=str(item.get("filename") or ""),
                    url=str(item.get("url") or ""),
                    content_type=str(item.get("content_type") or ""),
                    size=int(item.get("size") or 0),
                )
            )
    return found


def _parse_time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)
