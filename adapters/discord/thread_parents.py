"""What a guild channel discord.py has not cached is, asked of Discord once per channel.

A message in a channel discord.py has not cached (a thread started while the bot was offline,
or one it answered in before a restart, say) arrives on a ``PartialMessageable``: its gateway
payload names the channel but says neither whether it is a thread nor which channel a thread
belongs to, whose settings apply (bot/channels.py). Nothing we store says it for sure: memories
do not keep it, and the inbox's rows that do are deleted after the ledger's retention (7 days by
default) while a thread's memories stay until purged. So Discord is asked
(``GET /channels/{id}``) and the answer remembered, "not a thread" included, so a plain channel's
traffic costs one call, not one per message: a channel never changes kind, nor a thread its
channel. Most traffic never gets here: discord.py caches the channels and threads it was told of.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import discord

from adapters.discord.delivery import describe
from storage.lru import Lru

log = logging.getLogger(__name__)

REMEMBERED_CHANNELS = 4096  # ~100 bytes each; past this the least recently asked about go
# After a failed question, the channel's messages are routed without the answer for this long
# instead of each asking (and warning) again: a channel chatty during a Discord outage would
# otherwise cost a REST call per message.
RETRY_AFTER_FAILURE = 30.0  # seconds


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What Discord said about a channel: a thread (and of which channel), or not."""

    is_thread: bool
    parent_id: str | None = None


NOT_A_THREAD = ChannelFacts(is_thread=False)


class ThreadParents:
    """Channel id -> ``ChannelFacts``, fetched on the first question and then kept."""

    def __init__(
        self, size: int = REMEMBERED_CHANNELS, retry_after: float = RETRY_AFTER_FAILURE
    ) -> None:
        self._facts = Lru(size)
        self._failed = Lru(size)  # channel id -> when asking last failed (monotonic)
        self.retry_after = retry_after

    async def look_up(self, client: discord.Client, channel_id: int) -> ChannelFacts | None:
        """Whether the channel is a thread and its parent channel; None when Discord cannot tell
        (logged), so the caller routes the message as best it can rather than dropping it. A
        failure is remembered only ``retry_after`` seconds: a later message asks again."""
        known: ChannelFacts | None = self._facts.get(channel_id)
        if known is not None:
            return known
        failed_at: float | None = self._failed.get(channel_id)
        if failed_at is not None and time.monotonic() - failed_at < self.retry_after:
            return None
        try:
            channel = await client.fetch_channel(channel_id)
        except Exception as exc:  # a lookup must not cost the user the answer
            log.warning(
                "discord: could not learn whether channel %s is a thread, or which channel it "
                "belongs to (%s); answering there with the default channel settings",
                channel_id,
                describe(exc),
            )
            self._failed.put(channel_id, time.monotonic())
            return None
        facts = NOT_A_THREAD
        if isinstance(channel, discord.Thread):
            facts = ChannelFacts(True, str(channel.parent_id) if channel.parent_id else None)
        remembered: ChannelFacts = self._facts.put(channel_id, facts)
        return remembered
