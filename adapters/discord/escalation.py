"""Hand-offs on Discord: the core's escalation policy in Discord's terms.

A target is channel ids (the first gets the notice). The support team is the members with the
configured support role (``SUPPORTBOT_DISCORD_SUPPORT_ROLE``), or, without one, the members who
may manage messages in the channel. Once resolved, the notice says who resolved it and when.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord import render
from adapters.discord.delivery import ChannelSink, describe, is_transient
from bot import escalation, texts
from bot.channels import ChannelSettings
from bot.config import Settings
from bot.escalation import EscalationPolicy
from bot.messages import ConversationKey, Platform
from storage.db import Database
from storage.models import Escalation

log = logging.getLogger(__name__)


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

    async def announce(
        self,
        client: discord.Client,
        conversation: ConversationKey,
        requested_by: str,
        escalation_id: int,
        *,
        parent_channel_id: str | None,
    ) -> None:
        """Tell the support team in their channel (once per escalation), with a resolve button.
        In a thread, ``parent_channel_id`` is its channel, whose escalation target applies."""
        target = await self.policy.target_for(
            self.channels, conversation, parent_channel_id=parent_channel_id
        )
        channels = [i for i in target if i.isdigit()]
        if not channels or not await escalation.claim_notice(self.db, escalation_id):
            return
        channel = client.get_partial_messageable(int(channels[0]))
        text = texts.escalation_notice(conversation.session_id, f"<@{requested_by}>", None)
        payload = render.MessagePayload(text, buttons=(render.resolve_button(escalation_id),))
        try:
            sent = await ChannelSink(channel).show([payload])
        except Exception as exc:
            if not isinstance(exc, discord.HTTPException) and not is_transient(exc):
                raise
            log.error("discord: escalation notice to %s failed (%s)", channel.id, describe(exc))
            return
        if sent:
            await escalation.record_notice(self.db, escalation_id, str(channel.id), str(sent[0].id))

    async def may_resolve(self, interaction: discord.Interaction, escalation_id: int) -> bool:
        row = await escalation.get(self.db, escalation_id)
        if row is None or row.status != "open":
            return True  # nothing to protect: the core answers "already resolved"
        allowed = await self.policy.may_resolve(
            row, str(interaction.user.id), lambda: self._in_team(interaction)
        )
        if not allowed:
            log.info("discord: %s may not resolve escalation %s", interaction.user.id, row.id)
        return allowed

    async def _in_team(self, interaction: discord.Interaction) -> bool:
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


def resolved_notice(row: Escalation) -> str:
    asked = texts.escalation_notice(row.session_id, f"<@{row.requested_by}>", None)
    when = f"<t:{int(row.resolved_at.timestamp())}:f>" if row.resolved_at else ""
    return f"{asked}\n{texts.escalation_resolved_notice(f'<@{row.resolved_by}>', when)}"


def thread_link(guild_id: int | None, row: Escalation | None) -> str | None:
    """The hand-off conversation's link, for the learned draft (Discord jump links are built
    from ids alone; direct messages live under @me)."""
    if row is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{row.thread_id or row.channel_id}"
