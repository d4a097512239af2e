"""discord.py objects -> the gateway JSON shapes ``convert`` reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import discord

from adapters.discord import convert
from adapters.discord.convert import ChannelContext, ChannelKind
from bot.messages import ConversationKey


class RoleNames(Mapping[str, str]):
    """A guild's role names by id, looked up only for the roles a message mentions: building
    the whole map (``guild.roles`` sorts every role) cost 0.2 ms per message in a guild of
    250 roles, on every message the bot reads there, mostly ones not meant for it."""

    __slots__ = ("_guild",)

    def __init__(self, guild: discord.Guild) -> None:
        self._guild = guild

    def __getitem__(self, role_id: str) -> str:
        role = self._guild.get_role(int(role_id)) if role_id.isdigit() else None
        if role is None:
            raise KeyError(role_id)
        return role.name

    def __iter__(self) -> Iterator[str]:
        return (str(role.id) for role in self._guild.roles)

    def __len__(self) -> int:
        return len(self._guild.roles)


def channel_context(channel: Any, guild: discord.Guild | None) -> ChannelContext:
    names: Mapping[str, str] = {}
    if guild is not None:
        names = RoleNames(guild)
    if isinstance(channel, discord.DMChannel | discord.GroupChannel):
        return ChannelContext(ChannelKind.DM, names=names)
    if guild is None and getattr(channel, "guild_id", None) is None:
        # Neither a cached guild nor a guild id: a DM. A guild discord.py has not cached (not
        # yet available, say) still names itself on the channel: that is no DM.
        return ChannelContext(ChannelKind.DM, names=names)
    if isinstance(channel, discord.Thread):
        parent = str(channel.parent_id) if channel.parent_id else None
        return ChannelContext(ChannelKind.THREAD, parent_id=parent, names=names)
    return ChannelContext(ChannelKind.CHANNEL, names=names)


def message_payload(message: discord.Message) -> dict[str, Any]:
    """The MESSAGE_CREATE-shaped view of a message that ``convert`` reads."""
    author = message.author
    payload: dict[str, Any] = {
        "id": str(message.id),
        "channel_id": str(message.channel.id),
        "author": {
            "id": str(author.id),
            "username": author.name,
            "global_name": author.global_name,
            "bot": author.bot,
            "member": {"nick": getattr(author, "nick", None)},
        },
        "content": message.content,
        "type": message.type.value,
        "webhook_id": str(message.webhook_id) if message.webhook_id else None,
        "mentions": [
            {"id": str(u.id), "username": u.name, "global_name": u.global_name}
            for u in message.mentions
        ],
        "attachments": [
            {
                "filename": a.filename,
                "url": a.url,
                "content_type": a.content_type or "",
                "size": a.size,
            }
            for a in message.attachments
        ],
        "timestamp": message.created_at.isoformat(),
    }
    guild_id = guild_id_of(message)
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    return payload


def guild_id_of(message: discord.Message) -> int | None:
    """The message's guild, also when discord.py has not cached it (then ``message.guild`` is
    None, as for a DM, but its channel still carries the id); None for a DM."""
    if message.guild is not None:
        return message.guild.id
    guild_id = getattr(message.channel, "guild_id", None)
    return int(guild_id) if guild_id else None


def interaction_payload(interaction: discord.Interaction) -> dict[str, Any]:
    """The INTERACTION_CREATE-shaped view of an interaction that ``convert`` reads."""
    channel = interaction.channel
    channel_type = getattr(getattr(channel, "type", None), "value", None)
    user = interaction.user
    author = {
        "id": str(user.id),
        "username": user.name,
        "global_name": user.global_name,
        "bot": user.bot,
    }
    payload: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type.value,
        "data": dict(interaction.data or {}),
        "channel_id": str(interaction.channel_id) if interaction.channel_id else None,
        "channel": {
            "id": str(interaction.channel_id),
            "type": channel_type,
            "parent_id": _str_or_none(getattr(channel, "parent_id", None)),
        },
    }
    if interaction.guild_id:
        payload["guild_id"] = str(interaction.guild_id)
        # The member's permissions in this channel (who may use `/ask settings`).
        payload["member"] = {"user": author, "permissions": str(interaction.permissions.value)}
    else:
        payload["user"] = author
    return payload


def interaction_conversation(interaction: discord.Interaction) -> ConversationKey:
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    channel_type = getattr(getattr(interaction.channel, "type", None), "value", None)
    kind = convert.kind_from_channel_type(channel_type, guild_id=guild_id)
    return convert.conversation_for(
        guild_id=guild_id, channel_id=str(interaction.channel_id), kind=kind
    )


def interaction_parent_id(interaction: discord.Interaction) -> str | None:
    """For an interaction in a thread, the channel the thread belongs to, whose settings apply
    (discord.py builds the thread from the interaction's own channel payload when uncached)."""
    channel = interaction.channel
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return str(channel.parent_id)
    return None


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None
