"""Messages posted while the bot was not connected: read back from channel history and answered.

Discord does not replay gateway events to a new session: a question posted while the process was
down (a deploy, a crash, SIGKILL) or while a reconnect could not resume never arrives. On every
READY the adapter reads the recent history of the channels people talk to it in and hands each
message to the same path as a live one. The inbox's claim makes anything already taken (by this
process, a replica, or the process that died) a no-op, so nothing is answered twice.

Channels read, at most MAX_CHANNELS: the conversations of the last day (threads included), most
recent first, then forum posts created within the window (each a thread), then the other text
channels the bot can see. Older messages than the window (``SUPPORTBOT_DISCORD_CATCH_UP_MINUTES``)
are left alone: an answer an hour late is noise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import discord

from adapters.discord.delivery import describe
from bot.messages import ConversationKey
from storage import activity
from storage.db import Database

log = logging.getLogger(__name__)

MAX_CHANNELS = 50  # REST calls per READY; Discord allows ~50 requests/s per bot
PER_CHANNEL = 100  # one history page
RECENT_CONVERSATIONS = timedelta(days=1)

Handle = Callable[[discord.Message], Awaitable[None]]


class ToRead(NamedTuple):
    channel_id: int
    direct: bool = False  # a DM channel: read by its id alone, as discord.py caches none


async def channels_to_read(client: discord.Client, db: Database, since: datetime) -> list[ToRead]:
    """Recent conversations' channels and threads first, then forum posts created since
    ``since``, then every visible text channel."""
    sessions = await activity.recent_sessions(
        db, platform="discord", since=datetime.now(UTC) - RECENT_CONVERSATIONS, limit=MAX_CHANNELS
    )
    found: dict[int, ToRead] = {}
    for session_id in sessions:
        key = ConversationKey.from_session_id(session_id)
        for part in (key.thread_id, key.channel_id) if key is not None else ():
            if part and part.isdigit() and int(part) not in found:
                found[int(part)] = ToRead(int(part), direct=not key.workspace_id)
    for post in await new_forum_posts(client, since):
        found.setdefault(post, ToRead(post))
    for channel in client.get_all_channels():
        if isinstance(channel, discord.TextChannel):
            found.setdefault(channel.id, ToRead(channel.id))
    return list(found.values())[:MAX_CHANNELS]


async def new_forum_posts(client: discord.Client, since: datetime) -> list[int]:
    """Forum posts (threads in a forum channel) created since ``since``, newest first: a
    thread's id is its creation time, so no thread older than the window is read."""
    oldest = discord.utils.time_snowflake(since)
    posts: list[int] = []
    for guild in client.guilds:
        try:
            threads = await guild.active_threads()
        except discord.HTTPException as exc:
            log.info("discord: catch-up could not list threads of %s (%s)", guild.id, exc.status)
            continue
        posts += [
            t.id
            for t in threads
            if t.id > oldest and isinstance(client.get_channel(t.parent_id), discord.ForumChannel)
        ]
    return sorted(posts, reverse=True)


async def catch_up(
    client: discord.Client, channels: list[ToRead], since: datetime, handle: Handle
) -> int:
    """Hand every message after ``since`` in those channels to ``handle``; how many were read."""
    after = discord.Object(discord.utils.time_snowflake(since))
    read = 0
    for channel_id, direct in channels:
        try:
            channel = client.get_channel(channel_id)
            if channel is None and direct:
                # A DM's history needs only its id: no lookup of the channel first.
                channel = client.get_partial_messageable(
                    channel_id, type=discord.ChannelType.private
                )
            elif channel is None:
                channel = await client.fetch_channel(channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                continue
            async for message in channel.history(limit=PER_CHANNEL, after=after):
                read += 1
                try:
                    await handle(message)
                except Exception:  # one bad message must not stop the others
                    log.exception("discord: catch-up could not handle message %s", message.id)
        except discord.HTTPException as exc:  # gone, or no permission to read history
            log.info("discord: catch-up skipped channel %s (%s)", channel_id, exc.status)
        except Exception as exc:  # one channel must not cost the others their catch-up
            # e.g. a channel type discord.py does not know (InvalidData), a dropped connection
            log.warning("discord: catch-up skipped channel %s (%s)", channel_id, describe(exc))
    return read
