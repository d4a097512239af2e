"""The discord.py side of the adapter: the client class that hands every event to
:class:`~adapters.discord.app.DiscordAdapter`, the REST base URL, the guard that keeps a
malformed gateway event from ending a connection, and syncing the slash commands."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Protocol

import discord
import discord.gateway
import discord.http

from adapters.discord import render
from adapters.discord.ask_message import application_command as ask_message_command
from adapters.discord.delivery import describe
from bot import slash

log = logging.getLogger(__name__)


class EventHandler(Protocol):
    """What the client hands events to (the adapter)."""

    async def setup(self, client: SupportClient) -> None: ...
    def start_recovery(self) -> None: ...
    async def on_message(self, message: discord.Message) -> None: ...
    async def on_message_edited(self, message: discord.Message) -> None: ...
    async def on_interaction(self, interaction: discord.Interaction) -> None: ...
    async def on_messages_deleted(
        self, message_ids: Iterable[int], channel_id: int, guild_id: int | None
    ) -> None: ...
    async def on_error(self, where: str, *args: Any, exc: BaseException | None = None) -> None: ...


def use_api_url(api_url: str | None) -> None:
    """Point every REST call (client and webhooks) at ``api_url`` (``DISCORD_API_URL``)."""
    if api_url:
        discord.http.Route.BASE = api_url.rstrip("/")


class SupportClient(discord.AutoShardedClient):
    """The discord.py client; every event is handed to the adapter."""

    def __init__(
        self, adapter: EventHandler, *, identify_spacing: float = 5.0, **options: Any
    ) -> None:
        super().__init__(**options)
        self.adapter = adapter
        throttle_bucket_sweeps(self.http)
        # Discord allows one IDENTIFY per 5 s per bucket (max_concurrency 1); loopback fakes don't.
        self.identify_spacing = identify_spacing

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(self.identify_spacing)

    async def setup_hook(self) -> None:
        await self.adapter.setup(self)

    async def on_ready(self) -> None:
        log.info("discord: ready as %s in %d guild(s)", self.user, len(self.guilds))
        self.adapter.start_recovery()

    async def on_resumed(self) -> None:
        log.info("discord: gateway session resumed")

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self.adapter.on_interaction(interaction)

    # The raw events: they come whether or not the message is cached (this bot caches none).
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_message_edited(payload.message)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.adapter.on_messages_deleted(
            [payload.message_id], payload.channel_id, payload.guild_id
        )

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.adapter.on_messages_deleted(
            sorted(payload.message_ids), payload.channel_id, payload.guild_id
        )

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        await self.adapter.on_error(event_method, *args)


# discord.py drops a rate-limit bucket only after 300 s without requests; sweeping for such
# buckets once a minute keeps their number as bounded as sweeping on every new one does.
BUCKET_SWEEP_SECONDS = 60.0


def throttle_bucket_sweeps(
    http: discord.http.HTTPClient, every: float = BUCKET_SWEEP_SECONDS
) -> None:
    """Sweep discord.py's rate-limit buckets at most once per ``every`` seconds.

    discord.py keeps one bucket per route and channel, and once it holds 256 it scans all of
    them for inactive ones every time a new one is made. A support bot makes a new bucket for
    every thread it opens and every DM it answers, so during a burst each message paid a scan
    of thousands of buckets (3% of the bot's CPU at 40 msg/s, growing with the burst). A
    discord.py without the sweep is left alone.
    """
    sweep = getattr(http, "_try_clear_expired_ratelimits", None)
    if sweep is None:
        return
    last = -math.inf

    def sweep_now_and_then() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every:
            last = now
            sweep()

    http._try_clear_expired_ratelimits = sweep_now_and_then  # type: ignore[method-assign]


def guard_parsers(client: discord.Client) -> None:
    """Drop (and log) a gateway event discord.py cannot parse instead of losing the connection.

    discord.py parses events inside its websocket read loop; a malformed payload raising there
    would end the shard's connection. The websocket reads this same dict, so wrapping in place
    is enough.
    """
    parsers = client._connection.parsers

    def guarded(name: str, parse: Any) -> Any:
        @functools.wraps(parse)
        def run(data: Any) -> None:
            try:
                parse(data)
            except Exception as exc:
                log.warning("discord: dropped a malformed %s event (%s)", name, describe(exc))

        return run

    for name, parse in list(parsers.items()):
        parsers[name] = guarded(name, parse)


# What a frame that is not JSON, or JSON of an unexpected shape, raises while discord.py reads it.
MALFORMED_FRAME_ERRORS = (ValueError, TypeError, KeyError, AttributeError)


def guard_frames() -> None:
    """Drop (and log) a gateway frame discord.py cannot read instead of ending the process.

    discord.py decodes each frame and reads its envelope (op, sequence, READY's session) in its
    websocket loop, outside the event parsers guard_parsers wraps; anything raised there, such
    as a frame that is not JSON, terminates the client, and with it `supportbot run discord`.
    Reconnect requests are exceptions of their own kind and pass through untouched.
    """
    socket_class = discord.gateway.DiscordWebSocket
    read = socket_class.received_message
    if getattr(read, "guarded", False):
        return

    @functools.wraps(read)
    async def received_message(self: discord.gateway.DiscordWebSocket, msg: Any, /) -> None:
        try:
            await read(self, msg)
        except MALFORMED_FRAME_ERRORS as exc:
            log.warning(
                "discord: dropped a malformed gateway frame on shard %s (%s)",
                self.shard_id,
                describe(exc),
            )

    received_message.guarded = True  # type: ignore[attr-defined]
    socket_class.received_message = received_message  # type: ignore[method-assign]


async def sync_application_commands(
    client: discord.Client, *, guild_id: int | None = None
) -> list[dict[str, Any]]:
    """Overwrite the application's commands, the message command "Ask supportbot" included
    (globally, or in one guild: instant, for testing)."""
    application_id = client.application_id
    if application_id is None:
        application_id = (await client.application_info()).id
    payload = [*render.application_commands(slash.COMMANDS), ask_message_command()]
    if guild_id is not None:
        result = await client.http.bulk_upsert_guild_commands(application_id, guild_id, payload)
    else:
        result = await client.http.bulk_upsert_global_commands(application_id, payload)
    log.info(
        "discord: synced %d application command(s) %s",
        len(result),
        f"to guild {guild_id}" if guild_id else "globally",
    )
    return list(result)
