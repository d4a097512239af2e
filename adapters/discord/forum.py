"""The Discord forum workflow: tags through ``applied_tags`` and archiving, reactions.

Which tag means what is per-forum configuration (``supportbot channels set discord:G:FORUM
--tag-answered ... --tag-needs-human ... --tag-solved ... --archive-on-resolve on``): the tag
of the post's current state replaces the other workflow tags and keeps any others. All of it is
best effort: a missing tag or permission is logged and never costs the answer.
"""

from __future__ import annotations

import logging

import discord

from bot.channels import ChannelSettings
from bot.messages import ConversationKey, Platform, Reply, ReplyKind

log = logging.getLogger(__name__)

MAX_APPLIED_TAGS = 5  # Discord's limit per post
# Reactions are configured by name (as in Slack); Discord wants the character.
EMOJI = {
    "eyes": "👀",
    "question": "❓",
    "grey_question": "❔",
    "thinking": "🤔",
    "thinking_face": "🤔",
    "hourglass": "⌛",
    "raised_hand": "✋",
    "mag": "🔍",
}
ROLE_OF_KIND = {ReplyKind.ANSWER: "answered", ReplyKind.ESCALATED: "needs_human"}


def emoji_for(name: str) -> str:
    return EMOJI.get(name.strip(":").lower(), name)


class ForumWorkflow:
    def __init__(self, client: discord.Client, channels: ChannelSettings) -> None:
        self.client = client
        self.channels = channels

    async def after_reply(self, message: discord.PartialMessage, reply: Reply) -> None:
        """React to a post the bot stayed silent on; tag a forum post by how it was answered."""
        try:
            if reply.silent:
                if reply.reaction:
                    await message.add_reaction(emoji_for(reply.reaction))
                return
            role = ROLE_OF_KIND.get(reply.kind)
            if role is not None:
                await self.mark(str(message.channel.id), role)
        except discord.HTTPException as exc:
            log.warning("discord: forum workflow on %s failed: %s", message.channel.id, exc)

    async def mark(self, thread_id: str, role: str, *, resolving: bool = False) -> bool:
        """Apply the tag configured for ``role`` to a forum post; with ``resolving``, archive it
        when the forum says so. False when it is not a forum post or nothing is configured."""
        thread = self.client.get_channel(int(thread_id))
        if not isinstance(thread, discord.Thread) or not isinstance(
            thread.parent, discord.ForumChannel
        ):
            return False
        forum = thread.parent
        key = ConversationKey(Platform.DISCORD, str(thread.guild.id), thread_id, thread_id)
        policy = await self.channels.policy(key, parent_channel_id=str(forum.id))
        archive = resolving and policy.archive_on_resolve
        wanted = policy.forum_tags.get(role)
        if not wanted and not archive:
            return False
        workflow = {name.lower() for name in policy.forum_tags.values()}
        applied = [t for t in thread.applied_tags if t.name.lower() not in workflow]
        tag = next(
            (t for t in forum.available_tags if t.name.lower() == (wanted or "").lower()), None
        )
        if wanted and tag is None:
            log.warning("discord: forum %s has no tag named %r", forum.id, wanted)
        if tag is not None:
            applied = [*applied[: MAX_APPLIED_TAGS - 1], tag]
        try:
            if archive:
                await thread.edit(applied_tags=applied, archived=True)
            else:
                await thread.edit(applied_tags=applied)
        except discord.HTTPException as exc:
            log.warning("discord: tagging forum post %s failed: %s", thread_id, exc)
            return False
        return True
