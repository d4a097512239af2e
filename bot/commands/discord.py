"""`supportbot run discord`, `supportbot discord invite-url`, `supportbot discord sync-commands`.

discord.py is imported inside the commands, so other commands never load it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.commands import load_settings

discord_app = typer.Typer(help="Discord bot helpers.", no_args_is_help=True)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    run_app.command("discord")(run_discord)
    app.add_typer(discord_app, name="discord")


def run_discord(
    sync_commands: Annotated[
        bool,
        typer.Option("--sync-commands", help="Overwrite the slash commands at start-up."),
    ] = False,
    guild: Annotated[
        int | None,
        typer.Option("--guild", help="With --sync-commands: sync to this guild only (instant)."),
    ] = None,
) -> None:
    """Run the Discord bot (gateway): mentions, DMs, threads, forum posts, slash commands."""
    from bot import malloc
    from bot.cli import configure_logging

    malloc.tune_for_long_run()  # before any thread or pyarrow exists

    settings = load_settings()
    configure_logging(settings.log_level)
    settings.require("discord_token")
    from adapters.discord.process import run_bot

    asyncio.run(run_bot(settings, sync_commands=sync_commands, guild_id=guild))


@discord_app.command("invite-url")
def invite_url() -> None:
    """Print the URL that adds the bot to a server (with only the permissions it needs)."""
    from adapters.discord import process as discord_adapter

    settings = load_settings()
    if not settings.discord_token:
        import os

        if not (
            os.environ.get("DISCORD_APPLICATION_ID")
            or os.environ.get("SUPPORTBOT_DISCORD_APPLICATION_ID")
        ):
            settings.require("discord_token")  # names DISCORD_TOKEN
    application_id = asyncio.run(discord_adapter.application_id_of(settings))
    typer.echo(discord_adapter.invite_url(application_id))


@discord_app.command("sync-commands")
def sync_commands(
    guild: Annotated[
        int | None,
        typer.Option("--guild", help="Sync to this guild only (instant; good for testing)."),
    ] = None,
) -> None:
    """Register /ask, /forget and /help with Discord (globally, or in one guild)."""
    from bot.cli import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    settings.require("discord_token")
    from adapters.discord.process import sync_commands_once

    count = asyncio.run(sync_commands_once(settings, guild_id=guild))
    where = f"guild {guild}" if guild else "globally"
    typer.echo(f"synced {count} command(s) {where}")
