"""A thread's messages for the core's learning step (bot.learning), via the channel history."""

from __future__ import annotations

import discord

from bot.learning import ThreadMessage, ThreadReader
from storage.models import Escalation

HISTORY_LIMIT = 500  # far more than any support thread; older messages are not the answer


def thread_reader(client: discord.Client) -> ThreadReader:
    async def read(escalation: Escalation) -> list[ThreadMessage]:
        channel_id = int(escalation.thread_id or escalation.channel_id)
        channel = client.get_channel(channel_id) or client.get_partial_messageable(channel_id)
        messages = [
            ThreadMessage(
                author_id=str(m.author.id),
                text=m.content,
                sent_at=m.created_at,
                is_bot=m.author.bot,
            )
            async for m in channel.history(limit=HISTORY_LIMIT)  # type: ignore[union-attr]
        ]
        return list(reversed(messages))  # oldest first

    return read
