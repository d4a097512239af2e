"""Hand-offs on Discord: the core's escalation policy in Discord's terms.

A target is channel ids (the first gets the notice). The support team is the members with the
configured support role (``SUPPORTBOT_DISCORD_SUPPORT_ROLE``), or, without one, the members who
may manage messages in the channel. Once resolved, the notice says who resolved it and when.

The notice is inbox work of its own (the core's, ``bot.escalation``: ``notice_work`` here builds
it, ``post_notice`` posts it), one ledger row per request for a human: the row carries it through
a passing fault of Discord (tried again, as an answer is). It is posted once per escalation: a
request finds it recorded and does nothing, and its nonce, fixed per escalation, makes Discord
return the message an earlier attempt or a concurrent request made (its response lost, or not
recorded yet) instead of posting a second one. A request whose notice never went out tells its
asker so; asking again tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import discord

from adapters.discord import convert, render
from adapters.discord.delivery import describe, send_kwargs
from bot import escalation, texts
from bot.channels import ChannelSettings
from bot.config import Settings
from bot.escalation import EscalationPolicy
from bot.inbox import SESSION_KEY
from bot.messages import ConversationKey, Platform
from storage.db import Database
from storage.models import Escalation

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NoticeRequest:
    """A request for a human whose team notice may be due: a click of "Talk to a human", or
    the agent handing off by itself."""

    conversation: ConversationKey
    requested_by: str
    escalation_id: int
    request_id: str  # the platform id of the request (one inbox row each)
    parent_channel_id: str | None  # in a thread: its channel, whose escalation target applies
    tell_via: dict[str, str] | None = None  # the asking interaction's webhook fields, if any


class DiscordEscalations:
    def __init__(
        self,
        db: Database,
        policy: EscalationPolicy,
        support_role: str | None,
        channels: ChannelSettings,
    ) -> None:
        self.db = db
        self.policy = policy
        self.support_role = support_role
        self.channels = channels  # the core's settings cache, shared with the Responder

    @classmethod
    def from_settings(
        cls, db: Database, settings: Settings, channels: ChannelSettings
    ) -> DiscordEscalations:
        policy = EscalationPolicy.from_settings(settings, Platform.DISCORD)
        return cls(db, policy, settings.discord_support_role, channels)

    async def notice_work(self, request: NoticeRequest) -> tuple[str, dict[str, Any]] | None:
        """The inbox key and payload of the team's notice of a hand-off, or None when nobody is
        to be told (no target channel) or it was posted already. ``request.tell_via`` lets the
        notice work tell the asker privately if it fails."""
        conversation = request.conversation
        target = await self.policy.target_for(
            self.channels, conversation, parent_channel_id=request.parent_channel_id
        )
        channels = [i for i in target if i.isdigit()]
        if not channels or not await escalation.notice_wanted(self.db, request.escalation_id):
            return None  # posted (or a live process of an older version is posting it)
        payload = escalation.notice_payload(
            request.escalation_id,
            channels[0],
            conversation,
            request.requested_by,
            guild_id=conversation.workspace_id,
            **(request.tell_via or {}),
        )
        return escalation.notice_key(request.escalation_id, request.request_id), payload

    async def post_notice(self, client: discord.Client, payload: dict[str, Any]) -> None:
        """Tell the support team in their channel, with a resolve button. Raises when Discord
        fails (the inbox tries again after a passing fault)."""
        escalation_id = int(payload["escalation_id"])
        row = await escalation.get(self.db, escalation_id)
        if row is None or escalation.notice_posted(row):
            return  # another request's notice went out meanwhile
        channel = client.get_partial_messageable(int(payload["notice_channel"]))
        text = notice_text(str(payload[SESSION_KEY]), str(payload["requested_by"]), row)
        notice = render.MessagePayload(text, buttons=(render.resolve_button(escalation_id),))
        # One nonce per escalation (discord.py sends it enforced): Discord answers a repeat
        # within minutes with the message already made, so neither another attempt (the
        # response was lost) nor a concurrent request posts a second notice.
        sent = await channel.send(**send_kwargs(notice), nonce=notice_nonce(escalation_id))
        await escalation.record_notice(self.db, escalation_id, str(channel.id), str(sent.id))

    async def in_team(self, interaction: discord.Interaction) -> bool:
        """Whether the clicker is in the support team (who may resolve, by the core's policy)."""
        if self.support_role:
            roles = getattr(interaction.user, "roles", None) or []
            return any(str(role.id) == self.support_role for role in roles)
        return bool(interaction.permissions.manage_messages)

    async def mark_notice_resolved(self, client: discord.Client, escalation_id: int) -> None:
        row = await escalation.get(self.db, escalation_id)
        where = escalation.notice_location(row) if row is not None else None
        if row is None or where is None or row.resolved_at is None:
            return
        channel = client.get_partial_messageable(int(where[0]))
        try:
            await channel.get_partial_message(int(where[1])).edit(
                content=resolved_notice(row),
                view=None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:  # cosmetic: the escalation is resolved anyway
            log.warning("discord: could not update the notice of %s (%s)", row.id, describe(exc))


def notice_nonce(escalation_id: int) -> str:
    """The notice's nonce (Discord allows 25 characters)."""
    return f"sb-notice-{escalation_id}"


def notice_text(session_id: str, requested_by: str, row: Escalation | None) -> str:
    """Who needs help where; for a DM with the bot, where the team cannot reply, what they
    asked and to message them directly."""
    conversation = ConversationKey.from_session_id(session_id)
    if conversation is not None and convert.is_private_conversation(conversation):
        return texts.escalation_notice_direct(f"<@{requested_by}>", row.reason if row else None)
    return texts.escalation_notice(session_id, f"<@{requested_by}>", None)


def resolved_notice(row: Escalation) -> str:
    asked = notice_text(row.session_id, row.requested_by, row)
    when = f"<t:{int(row.resolved_at.timestamp())}:f>" if row.resolved_at else ""
    return f"{asked}\n{texts.escalation_resolved_notice(f'<@{row.resolved_by}>', when)}"


def thread_link(guild_id: int | None, row: Escalation | None) -> str | None:
    """The hand-off conversation's link, for the learned draft (Discord jump links are built
    from ids alone; direct messages live under @me)."""
    if row is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{row.thread_id or row.channel_id}"
