"""Discord API v10 JSON shapes shared by the fake REST API and the fake gateway.

Only the fields discord.py 2.7 reads are filled in; values look like Discord's (string snowflakes,
ISO timestamps) so the real client parses them exactly as it parses Discord's.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

# Channel types (Discord API): the subset the bot meets.
GUILD_TEXT = 0
DM = 1
GUILD_PUBLIC_THREAD = 11
GUILD_FORUM = 15

# Interaction types.
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
# Application command types (``data.type`` of an APPLICATION_COMMAND interaction).
CHAT_INPUT = 1
MESSAGE_COMMAND = 3

# The bot's permission bits in a channel, as Discord sends them (``app_permissions``).
BOT_PERMISSIONS = 2248473465835073
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38

_EPOCH_MS = 1420070400000
_lock = threading.Lock()
_counter = itertools.count(1)


def snowflake() -> str:
    """A fresh, increasing snowflake (timestamp bits = now, so created_at is sensible)."""
    with _lock:
        increment = next(_counter) & 0x3FFFFF
    now_ms = int(datetime.now(UTC).timestamp() * 1000) - _EPOCH_MS
    return str((now_ms << 22) | increment)


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member(user_payload: dict[str, Any], roles: list[str] | None = None) -> dict[str, Any]:
    return {
        "user": user_payload,
        "roles": list(roles or []),
        "joined_at": timestamp(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": "2248473465835073",  # typical member permissions, as a string
    }


def text_channel(
    channel_id: str, guild_id: str, name: str, kind: int = GUILD_TEXT
) -> dict[str, Any]:
    return {
        "id": channel_id,
        "guild_id": guild_id,
        "type": kind,
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
        "available_tags": [],
    }


def forum_tag(name: str) -> dict[str, Any]:
    return {
        "id": snowflake(),
        "name": name,
        "moderated": False,
        "emoji_id": None,
        "emoji_name": None,
    }


def thread_channel(
    thread_id: str, guild_id: str, parent_id: str, name: str, owner_id: str
) -> dict[str, Any]:
    return {
        "id": thread_id,
        "guild_id": guild_id,
        "parent_id": parent_id,
        "owner_id": owner_id,
        "type": GUILD_PUBLIC_THREAD,
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "flags": 0,
        "applied_tags": [],
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": timestamp(),
            "locked": False,
        },
    }


def role(role_id: str, name: str) -> dict[str, Any]:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "hoist": False,
        "position": 0,
        "permissions": "0",
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }


def guild(
    guild_id: str,
    *,
    channels: list[dict[str, Any]],
    roles: list[dict[str, Any]] | None = None,
    threads: list[dict[str, Any]] | None = None,
    owner_id: str = "1",
) -> dict[str, Any]:
    return {
        "id": guild_id,
        "name": f"guild {guild_id}",
        "icon": None,
        "owner_id": owner_id,
        "unavailable": False,
        "member_count": 2,
        "large": False,
        "features": [],
        "roles": [role(guild_id, "@everyone"), *(roles or [])],
        "emojis": [],
        "stickers": [],
        "channels": channels,
        "threads": threads or [],
        "members": [],
        "voice_states": [],
        "presences": [],
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "system_channel_flags": 0,
        "joined_at": timestamp(),
    }


def message(
    *,
    message_id: str,
    channel_id: str,
    author: dict[str, Any],
    content: str,
    guild_id: str | None = None,
    mentions: list[dict[str, Any]] | None = None,
    mention_roles: list[str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    embeds: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    flags: int = 0,
    message_reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": timestamp(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": mention_roles or [],
        "attachments": attachments or [],
        "embeds": embeds or [],
        "components": components or [],
        "pinned": False,
        "type": 0,
        "flags": flags,
    }
    if guild_id is not None:
        payload["guild_id"] = guild_id
        payload["member"] = {k: v for k, v in member(author).items() if k != "user"}
    if message_reference is not None:
        payload["message_reference"] = message_reference
        payload["type"] = 19
    return payload


def attachment(name: str = "screenshot.png", size: int = 1234) -> dict[str, Any]:
    return {
        "id": snowflake(),
        "filename": name,
        "size": size,
        "url": f"https://cdn.example.invalid/{name}",
        "proxy_url": f"https://media.example.invalid/{name}",
        "content_type": "image/png",
    }


def interaction_token() -> str:
    """A token shaped like Discord's: base64url of ``interaction:<id>:<random>``."""
    raw = f"interaction:{snowflake()}:{secrets.token_urlsafe(48)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def interaction(
    *,
    kind: int,
    application_id: str,
    data: dict[str, Any],
    author: dict[str, Any],
    channel: dict[str, Any],
    guild_id: str | None = None,
    message_payload: dict[str, Any] | None = None,
    roles: list[str] | None = None,
    permissions: int | None = None,
    app_permissions: int | None = None,
) -> dict[str, Any]:
    """``permissions``: the member's permission bits in the channel, instead of a typical
    member's; ``app_permissions``: the bot's there, instead of what an invite grants."""
    payload: dict[str, Any] = {
        "id": snowflake(),
        "application_id": application_id,
        "type": kind,
        "data": data,
        "channel_id": channel["id"],
        "channel": channel,
        "token": interaction_token(),
        "version": 1,
        "locale": "en-US",
        "app_permissions": str(BOT_PERMISSIONS if app_permissions is None else app_permissions),
        "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id or "0"},
        "context": 0 if guild_id else 1,
        "attachment_size_limit": 8388608,
    }
    if guild_id is not None:
        payload["guild_id"] = guild_id
        payload["guild_locale"] = "en-US"
        payload["member"] = member(author, roles)
        if permissions is not None:
            payload["member"]["permissions"] = str(permissions)
    else:
        payload["user"] = author
    if message_payload is not None:
        payload["message"] = message_payload
    return payload
