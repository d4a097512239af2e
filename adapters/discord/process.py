"""Processes and one-off commands: `supportbot run discord` (clean stop on SIGTERM),
`supportbot discord invite-url` and `supportbot discord sync-commands`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import discord

from adapters.discord.app import DiscordAdapter
from adapters.discord.client import sync_application_commands, use_api_url
from adapters.discord.delivery import is_transient
from bot.errors import ConfigError, PlatformUnreachableError

log = logging.getLogger(__name__)


SHUTDOWN_GRACE = 8.0  # seconds in-flight answers get after SIGTERM (the contract allows 10)
# Discord answered the login with 401: no retry fixes that (discord.LoginFailure).
TOKEN_REFUSED = "DISCORD_TOKEN was refused by Discord (401 Unauthorized); check the bot token"


def raise_if_token_refused(exc: BaseException) -> None:
    """A refused token is one line naming its variable (the CLI prints it and exits 1), not
    a traceback."""
    if isinstance(exc, discord.LoginFailure):
        raise ConfigError(TOKEN_REFUSED) from None


def raise_if_unreachable(exc: BaseException) -> None:
    """Discord's API unreachable at login (refused, reset, timed out, its servers failing after
    discord.py's own retries): the reason is logged and the CLI prints one line naming the API
    base URL, then exits 1. No retry here: discord.py retries the gateway after login, never
    the login itself, and a process manager (the Procfile's platform, systemd) restarts a
    process that exits, with its own backoff."""
    if not is_transient(exc):
        return
    base = discord.http.Route.BASE  # DISCORD_API_URL, or discord.py's default; never the token
    log.error("discord: could not reach the Discord API at %s: %s", base, _reason(exc))
    raise PlatformUnreachableError(
        f"could not reach the Discord API at {base}; check the network and DISCORD_API_URL"
    ) from None


def _reason(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {exc}"


async def run_bot(
    settings: Any, *, sync_commands: bool = False, guild_id: int | None = None
) -> None:
    """`supportbot run discord`: serve until SIGTERM/SIGINT, then stop cleanly within 10 s."""
    from bot.runtime import build_runtime, ensure_schema

    token = settings.secret("discord_token")
    runtime = await build_runtime(settings)
    try:
        await ensure_schema(runtime.db)
        adapter = DiscordAdapter(runtime, sync_commands=sync_commands, sync_guild_id=guild_id)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runner = asyncio.create_task(adapter.start(token))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("discord: stopping (signal received)")
        stopper.cancel()
        # Unanswered messages keep their ledger lease; the next process answers them.
        try:
            await asyncio.wait_for(adapter.close(), SHUTDOWN_GRACE)
        except TimeoutError:
            log.warning("discord: close timed out; exiting anyway")
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            failure = runner.exception()
            raise_if_token_refused(failure)  # type: ignore[arg-type]
            raise_if_unreachable(failure)  # type: ignore[arg-type]
            raise failure  # type: ignore[misc]
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    finally:
        await runtime.aclose()


async def logged_in_client(settings: Any) -> discord.Client:
    """A REST-only client (no gateway) for one-off commands; the caller closes it."""
    use_api_url(settings.discord_api_url)
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(settings.secret("discord_token"))
    except BaseException as exc:
        await client.close()
        raise_if_token_refused(exc)
        raise_if_unreachable(exc)
        raise
    return client


async def application_id_of(settings: Any) -> int:
    """The application id: DISCORD_APPLICATION_ID if set, else asked of the API."""
    for name in ("DISCORD_APPLICATION_ID", "SUPPORTBOT_DISCORD_APPLICATION_ID"):
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise ConfigError(f"{name} must be a number (the application id)")
            return int(value)
    client = await logged_in_client(settings)
    try:
        return int(client.application_id or (await client.application_info()).id)
    finally:
        await client.close()


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot with just the permissions it uses."""
    permissions = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        create_public_threads=True,
        embed_links=True,
        read_message_history=True,
    )
    return discord.utils.oauth_url(
        application_id, permissions=permissions, scopes=("bot", "applications.commands")
    )


async def sync_commands_once(settings: Any, *, guild_id: int | None = None) -> int:
    """`supportbot discord sync-commands`: overwrite the commands, return how many."""
    client = await logged_in_client(settings)
    try:
        return len(await sync_application_commands(client, guild_id=guild_id))
    finally:
        await client.close()
