"""The Discord forum workflow: tags through ``applied_tags`` and archiving, reactions.

Which tag means what is per-forum configuration (``supportbot channels set discord:G:FORUM
--tag-answered ... --tag-needs-human ... --tag-solved ... --archive-on-resolve on``): the tag
of the post's current state replaces the other workflow tags and keeps any others. All of it is
best effort: a missing tag or permission is logged and never costs the answer.

A post discord.py has not cached (started while the bot was offline: no gateway event named
its thread) is fetched over REST when its state is to change, once per change; its forum comes
from discord.py's cache, as for any post.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.delivery import describe, is_transient
from bot.channels import ChannelSettings
from bot.messages import ConversationKey, Platform, Reply, ReplyKind

log = logging.getLogger(__name__)

MAX_APPLIED_TAGS = 5  # Discord's limit per post
# Reactions are configured by name (as in Slack); Discord wants the character.
EMOJI = {
    "+1": "👍",
    "thumbsup": "👍",
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

    async def after_reply(
        self, message: discord.PartialMessage, reply: Reply, *, parent_id: str | None
    ) -> None:
        """React to a post the bot stayed silent on; tag a forum post by how it was answered.
        ``parent_id``: the channel of the thread the question was asked in (None elsewhere)."""
        try:
            if reply.silent:
                if reply.reaction:
                    await message.add_reaction(emoji_for(reply.reaction))
                return
            role = ROLE_OF_KIND.get(reply.kind)
            if role is not None and parent_id is not None:
                await self.mark(str(message.channel.id), role, parent_id=parent_id)
        except Exception as exc:  # tags and reactions are cosmetic: the answer stands
            if not isinstance(exc, discord.HTTPException) and not is_transient(exc):
                raise
            log.warning("discord: forum workflow on %s failed: %s", message.channel.id, exc)

    async def mark(
        self, thread_id: str, role: str, *, resolving: bool = False, parent_id: str | None = None
    ) -> bool:
        """Apply the tag configured for ``role`` to a forum post; with ``resolving``, archive it
        when the forum says so. False when it is not a forum post or nothing is configured.

        ``thread_id`` names a thread. ``parent_id``, when the caller knows the thread's channel,
        spares fetching a thread discord.py has not cached unless that channel is a forum with
        something to change; without it, such a thread is fetched to learn its channel."""
        thread = self.client.get_channel(int(thread_id))
        if thread is None and parent_id is None:
            thread = await self._fetch(thread_id)
        if isinstance(thread, discord.Thread):
            forum = thread.parent
            if forum is None:  # its channel is not cached either: its tags are unknown
                log.info(
                    "discord: thread %s is in channel %s, which discord.py has not cached; its "
                    "forum tags are left as they are",
                    thread_id,
                    thread.parent_id,
                )
        elif thread is None and parent_id is not None:
            forum = self.client.get_channel(int(parent_id))
        else:
            return False
        if not isinstance(forum, discord.ForumChannel):
            return False
        key = ConversationKey(Platform.DISCORD, str(forum.guild.id), thread_id, thread_id)
        policy = await self.channels.policy(key, parent_channel_id=str(forum.id))
        archive = resolving and policy.archive_on_resolve
        wanted = policy.forum_tags.get(role)
        if not wanted and not archive:
            return False
        if thread is None:
            thread = await self._fetch(thread_id)
            if not isinstance(thread, discord.Thread):
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

    async def _fetch(
        self, thread_id: str
    ) -> discord.abc.GuildChannel | discord.abc.PrivateChannel | discord.Thread | None:
        """A thread discord.py has not cached, as Discord describes it; None (logged) when
        Discord cannot say: the post keeps its tags, the answer is not affected."""
        try:
            return await self.client.fetch_channel(int(thread_id))
        except Exception as exc:  # network errors too: the workflow never costs the answer
            log.warning(
                "discord: could not fetch thread %s, which discord.py has not cached, to update "
                "its forum tags (%s); its tags are left as they are",
                thread_id,
                describe(exc),
            )
            return None
