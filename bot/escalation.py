"""The escalation policy, once for every platform.

- Where a hand-off is announced: the channel's own setting (``channel_settings``, read through
  the channel settings cache, so a Discord thread gets its parent channel's target like its
  other settings), else the workspace's entry in a per-workspace mapping, else the default
  target. A target is a few platform ids (a channel to post the notice in, people or groups to
  mention); the adapter knows which id is which on its platform.
- One notice per escalation, carried through passing faults: the database allows one open
  escalation per conversation, and the team's notice is inbox work of its own, one ledger row per
  request for a human (``notice_key``, ``notice_payload``, ``submit_notice``), tried again after a
  passing fault as an answer is. A request finds a posted notice and does nothing
  (``notice_wanted``). The adapter keeps the post single: Discord's enforced nonce, fixed per
  escalation; on Slack, which has none, the work's claim on the escalation row
  (``claim_notice_for``) and, on a later attempt, a look for the notice it may have posted. When
  the work gives up, ``notice_given_up`` releases its claim (asking again tries again) and says
  whether to tell the asker ``texts.ESCALATION_NOTICE_FAILED``.
- Who may mark it resolved: by default the support team (the adapter says who is in it: members
  of the escalation channel on Slack, a support role on Discord) and the person who asked.
- A click of "Talk to a human" or "Mark resolved" cut short by a crash is finished by a later
  attempt of its work: ``bot.escalation_recovery``.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot import texts
from bot.channels import ChannelSettings
from bot.config import Settings, parse_workspace_targets
from bot.inbox import SESSION_KEY, Deliver, Inbox, Work
from bot.messages import ConversationKey, Platform
from storage import escalations
from storage.db import Database
from storage.models import Escalation

_SEPARATORS = re.compile(r"[\s+]+")
# The kind of the inbox work that posts a team's notice.
NOTICE_KIND = "escalation_notice"
# How long a request for a human waits for the first try of the team's notice before replying to
# the asker (the notice goes out first); later tries run on their own. Bounded: the try needs a
# free slot.
NOTICE_FIRST_TRY_WAIT = 5.0


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
    if ref.startswith(escalations.NOTICE_PENDING):
        return None
    channel, sep, message = ref.partition(":")
    return (channel, message) if sep and channel and message else None


# ---- the team's notice as inbox work ----------------------------------------------------------


def notice_key(escalation_id: int, request_id: str) -> str:
    """The ledger key of one request's notice work (``request_id``: the platform's id of the
    request for a human, or of the message the agent handed off in)."""
    return f"escalation-notice:{escalation_id}:{request_id}"


def notice_payload(
    escalation_id: int,
    notice_channel: str,
    conversation: ConversationKey,
    requested_by: str,
    **platform_fields: Any,
) -> dict[str, Any]:
    """What the notice work needs, in any process: where it goes, who asked and where (to tell
    them if it never goes out), plus the adapter's own fields (workspace, interaction)."""
    return {
        "kind": NOTICE_KIND,
        "escalation_id": escalation_id,
        "notice_channel": notice_channel,
        SESSION_KEY: conversation.session_id,
        "requested_by": requested_by,
        "asked_in": conversation.channel_id,
        **platform_fields,
    }


def notice_posted(escalation: Escalation) -> bool:
    """The notice is out (or the team was mentioned, or a live process of an older version is
    posting it). A claim held by notice work is not: that work may still give up; nor is an
    older version's claim whose lease ran out: its process died before recording the notice."""
    ref = escalation.notice_ref
    if ref is None or ref.startswith(escalations.NOTICE_HELD_BY):
        return False
    return not escalations.stale_pending(escalation)


def stale_claim(escalation: Escalation) -> bool:
    """Whether the notice was claimed by a process of an older version that died: it may have
    posted the notice before dying, so a platform without an idempotent post looks first."""
    return escalations.stale_pending(escalation)


async def notice_wanted(db: Database, escalation_id: int) -> bool:
    """Whether the escalation still needs its team's notice."""
    row = await get(db, escalation_id) if escalation_id else None
    return row is not None and not notice_posted(row)


async def claim_notice_for(db: Database, escalation_id: int, work: Work) -> bool:
    """For a platform without an idempotent post: True when ``work`` may post the notice (no
    other request is posting it, and it is not out yet). Every attempt of the same work holds
    the same claim."""
    return await escalations.claim_notice_for(db, escalation_id=escalation_id, owner=work.key)


async def submit_notice(
    inbox: Inbox,
    key: str,
    payload: dict[str, Any],
    deliver: Deliver,
    *,
    first_try_wait: float = NOTICE_FIRST_TRY_WAIT,
) -> None:
    """Hand the notice to the inbox and wait (bounded) for its first try, so the notice goes out
    before the reply in the conversation. ``deliver`` posts it (the adapter's work callable)."""
    first_try: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(work: Work) -> None:
        try:
            await deliver(work)
        finally:
            if not first_try.done():
                first_try.set_result(None)

    if await inbox.submit(key, payload, run=run) and inbox.answer_inline:
        await asyncio.wait({first_try}, timeout=first_try_wait)


async def notice_given_up(db: Database, work: Work) -> str | None:
    """Notice work failed for good: its claim is released (asking again tries again), and the
    text to tell its asker privately is returned; None when nobody needs telling (the notice
    went out after all through another request, or the hand-off is over)."""
    escalation_id = int(work.payload.get("escalation_id") or 0)
    if not escalation_id:
        return None
    await escalations.release_notice(db, escalation_id=escalation_id, owner=work.key)
    row = await get(db, escalation_id)
    if row is None or row.status != escalations.OPEN or notice_posted(row):
        return None
    return texts.ESCALATION_NOTICE_FAILED
