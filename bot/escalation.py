"""The escalation policy, once for every platform.

- Where a hand-off is announced: the channel's own setting (``channel_settings``, read through
  the channel settings cache, so a Discord thread gets its parent channel's target like its
  other settings), else the workspace's entry in a per-workspace mapping, else the default
  target. A target is a few platform ids (a channel to post the notice in, people or groups to
  mention); the adapter knows which id is which on its platform.
- One notice per escalation: the database allows one open escalation per conversation and hands
  the notice to exactly one caller (``claim_notice``; on Discord the notice is inbox work,
  carried through passing faults, and Discord's enforced nonce keeps it single).
- Who may mark it resolved: by default the support team (the adapter says who is in it: members
  of the escalation channel on Slack, a support role on Discord) and the person who asked.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bot.channels import ChannelSettings
from bot.config import Settings, parse_workspace_targets
from bot.messages import ConversationKey, Platform
from storage import escalations
from storage.db import Database
from storage.models import Escalation

_SEPARATORS = re.compile(r"[\s+]+")


class Resolvers(enum.StrEnum):
    """Who may press "Mark resolved" (``SUPPORTBOT_ESCALATION_RESOLVERS``)."""

    TEAM_OR_ASKER = "team_or_asker"  # the support team, and the asker for their own question
    TEAM = "team"
    ANYONE = "anyone"


def split_target(spec: str | None) -> tuple[str, ...]:
    """``"C123 + S456"`` -> ``("C123", "S456")``; empty or None -> ``()``."""
    return tuple(token for token in _SEPARATORS.split(spec or "") if token)


@dataclass(frozen=True)
class EscalationPolicy:
    default_target: str | None = None
    workspace_targets: Mapping[str, str] = field(default_factory=dict)
    resolvers: Resolvers = Resolvers.TEAM_OR_ASKER

    @classmethod
    def from_settings(cls, settings: Settings, platform: Platform) -> EscalationPolicy:
        if platform is Platform.DISCORD:
            default, mapping = (
                settings.discord_escalation_channel,
                settings.discord_escalation_targets,
            )
        else:
            default, mapping = settings.slack_escalation_target, settings.slack_escalation_targets
        return cls(
            default_target=default,
            workspace_targets=parse_workspace_targets(mapping),
            resolvers=Resolvers(settings.escalation_resolvers),
        )

    async def target_for(
        self,
        channels: ChannelSettings,
        conversation: ConversationKey,
        *,
        parent_channel_id: str | None = None,
    ) -> tuple[str, ...]:
        """The ids to notify about a hand-off in ``conversation`` (may be empty: nobody). In a
        Discord thread, ``parent_channel_id`` names the channel whose settings apply."""
        policy = await channels.policy(conversation, parent_channel_id=parent_channel_id)
        spec = (
            policy.escalation_target
            or self.workspace_targets.get(conversation.workspace_id)
            or self.default_target
        )
        return split_target(spec)

    async def may_resolve(
        self,
        escalation: Escalation,
        user_id: str,
        is_team_member: Callable[[], Awaitable[bool]],
    ) -> bool:
        """Whether ``user_id`` may resolve ``escalation``; asks the platform only when needed."""
        if self.resolvers is Resolvers.ANYONE:
            return True
        if self.resolvers is Resolvers.TEAM_OR_ASKER and user_id == escalation.requested_by:
            return True
        return await is_team_member()


async def claim_notice(db: Database, escalation_id: int) -> bool:
    """True once per escalation: the caller that gets it posts the team's notice."""
    if not escalation_id:
        return False
    return await escalations.claim_notice(db, escalation_id=escalation_id)


async def get(db: Database, escalation_id: int) -> Escalation | None:
    return await escalations.get_escalation(db, escalation_id=escalation_id)


async def record_notice(db: Database, escalation_id: int, channel_id: str, message_id: str) -> None:
    await escalations.set_notice_ref(
        db, escalation_id=escalation_id, notice_ref=f"{channel_id}:{message_id}"
    )


def notice_location(escalation: Escalation) -> tuple[str, str] | None:
    """(channel, message) of the team's notice, if one was posted."""
    ref = escalation.notice_ref or ""
    channel, sep, message = ref.partition(":")
    return (channel, message) if sep and channel and message else None
