"""The parent channel of a thread discord.py has not cached, asked of Discord once per thread.

A message in a thread discord.py has not cached (one the bot answered in before a restart, say)
arrives on a ``PartialMessageable``: its gateway payload names the thread but not the channel it
belongs to, whose settings apply (bot/channels.py). Nothing we store says it for sure: memories
do not keep it, and the inbox's rows that do are deleted after the ledger's retention (7 days by
default) while a thread's memories stay until purged. So Discord is asked
(``GET /channels/{thread.id}``) and the answer remembered: a thread never moves to another
channel.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.delivery import describe
from storage.lru import Lru

log = logging.getLogger(__name__)

REMEMBERED_THREADS = 4096  # ~100 bytes each; past this the least recently asked about go


class ThreadParents:
    """Thread id -> parent channel id, fetched on the first question and then kept."""

    def __init__(self, size: int = REMEMBERED_THREADS) -> None:
        self._parents = Lru(size)

    async def parent_of(self, client: discord.Client, thread_id: int) -> str | None:
        """The thread's parent channel id; None when Discord cannot tell (logged), so the caller
        answers with the default settings rather than not at all. Failures are not remembered:
        the next message in the thread asks again."""
        known: str | None = self._parents.get(thread_id)
        if known is not None:
            return known
        try:
            channel = await client.fetch_channel(thread_id)
        except Exception as exc:  # a settings lookup must not cost the user the answer
            log.warning(
                "discord: could not learn the parent channel of thread %s (%s); answering with "
                "the default channel settings",
                thread_id,
                describe(exc),
            )
            return None
        if not isinstance(channel, discord.Thread) or not channel.parent_id:
            return None  # not a thread after all: it has no parent to follow
        parent: str = self._parents.put(thread_id, str(channel.parent_id))
        return parent
