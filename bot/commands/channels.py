"""`supportbot channels set|show|list|clear`: per-channel behaviour (channel_settings).

A channel is ``PLATFORM:WORKSPACE:CHANNEL`` (``slack:T0123:C0456``, ``discord:GUILD:CHANNEL``);
running processes pick a change up within a few seconds (bot.channels' cache), no restart.
The database and policy modules are imported inside the commands: registering this group must
not load SQLAlchemy for `supportbot --help`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bot import texts
from bot.commands import load_settings
from bot.errors import ConfigError, DatabaseError
from bot.messages import Platform

if TYPE_CHECKING:
    from storage.db import Database

T = TypeVar("T")

channels_app = typer.Typer(
    help="Per-channel settings (auto-answer, filters, ...).", no_args_is_help=True
)
ON_OFF = "on|off"


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.add_typer(channels_app, name="channels")


def parse_channel(text: str) -> tuple[str, str, str]:
    """``slack:T1:C2`` -> ("slack", "T1", "C2"); the workspace may be empty (``console::C``)."""
    parts = text.split(":")
    platforms = {p.value for p in Platform}
    if len(parts) != 3 or parts[0] not in platforms or not parts[2]:
        raise ConfigError(
            f"channel must look like PLATFORM:WORKSPACE:CHANNEL with PLATFORM one of "
            f"{', '.join(sorted(platforms))} (got {text!r})"
        )
    return parts[0], parts[1], parts[2]


def with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    from storage.db import Database

    async def run() -> T:
        db = Database(load_settings().database_url)
        try:
            return await work(db)
        except Exception as exc:
            if isinstance(exc, ConfigError | ValueError):
                raise
            raise DatabaseError(
                f"the channel settings could not be read or written ({type(exc).__name__}); "
                "has `supportbot db upgrade` run?"
            ) from None
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def row_json(row: Any) -> dict[str, Any]:
    from bot.channels import ChannelPolicy

    return {
        "channel": f"{row.platform}:{row.workspace_id}:{row.channel_id}",
        **ChannelPolicy.from_row(row).as_dict(),
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def echo_policy(channel: str, policy: dict[str, Any]) -> None:
    typer.echo(channel)
    for name, value in policy.items():
        if name != "channel":
            typer.echo(f"  {name}: {json.dumps(value) if isinstance(value, dict) else value}")


@channels_app.command("set")
def set_channel(
    channel: Annotated[str, typer.Argument(help="PLATFORM:WORKSPACE:CHANNEL", metavar="CHANNEL")],
    auto_answer: Annotated[
        str | None, typer.Option(help=f"Answer every new post ({ON_OFF}).")
    ] = None,
    ephemeral: Annotated[
        str | None, typer.Option(help=f"Answers visible only to the asker ({ON_OFF}).")
    ] = None,
    escalation_target: Annotated[
        str | None, typer.Option(help="Where hand-offs are announced ('' clears).")
    ] = None,
    knowledge_filter: Annotated[
        str | None,
        typer.Option(help="Answer only from sources under this prefix, e.g. billing/ ('' clears)."),
    ] = None,
    refusal_language: Annotated[
        str | None, typer.Option(help="Language of 'not in the docs' (en, fr, de, es; '' clears).")
    ] = None,
    unanswered_reaction: Annotated[
        str | None,
        typer.Option(help="Emoji when an auto-answer post stays unanswered ('' = silent)."),
    ] = None,
    tag_answered: Annotated[
        str | None, typer.Option(help="Discord forum tag for posts the bot answered.")
    ] = None,
    tag_needs_human: Annotated[
        str | None, typer.Option(help="Discord forum tag for posts handed to a human.")
    ] = None,
    tag_solved: Annotated[
        str | None, typer.Option(help="Discord forum tag applied by Mark resolved.")
    ] = None,
    archive_on_resolve: Annotated[
        str | None, typer.Option(help=f"Archive a forum post when resolved ({ON_OFF}).")
    ] = None,
) -> None:
    """Change some settings of one channel; the others keep their value."""
    platform, workspace, channel_id = parse_channel(channel)
    given = {
        "auto_answer": auto_answer,
        "ephemeral": ephemeral,
        "escalation_target": escalation_target,
        "knowledge_filter": knowledge_filter,
        "refusal_language": refusal_language,
        "unanswered_reaction": unanswered_reaction,
        "archive_on_resolve": archive_on_resolve,
    }
    values = {name: value for name, value in given.items() if value is not None}
    tags = {"answered": tag_answered, "needs_human": tag_needs_human, "solved": tag_solved}
    if any(v is not None for v in tags.values()):
        values["forum_tags"] = tags
    if not values:
        raise ConfigError("nothing to set: give at least one option (see --help)")
    from bot.channels import validate
    from storage import channel_settings

    try:
        checked = validate(values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def work(db: Database) -> dict[str, Any]:
        if "forum_tags" in checked:  # merge with the tags already set
            row = await channel_settings.get_setting(
                db, platform=platform, workspace_id=workspace, channel_id=channel_id
            )
            merged = dict((row.forum_tags or {}) if row is not None else {})
            for role, name in tags.items():
                if name is not None:
                    merged.pop(role, None)
            merged.update(checked["forum_tags"])
            checked["forum_tags"] = merged or None
        row = await channel_settings.upsert_setting(
            db, platform=platform, workspace_id=workspace, channel_id=channel_id, **checked
        )
        return row_json(row)

    result = with_database(work)
    echo_policy(result["channel"], result)
    if checked.get("knowledge_filter"):
        warn_if_filter_matches_nothing(str(checked["knowledge_filter"]))


def warn_if_filter_matches_nothing(prefix: str) -> None:
    """A knowledge filter no document is under makes the channel refuse every question: say
    so when the knowledge base can be read (a filter set before the docs are ingested is
    fine, so this is a warning, not an error)."""
    from bot.commands.kb import open_knowledge_base
    from bot.errors import SupportbotError

    try:
        sources = open_knowledge_base("none").sources()
    except SupportbotError:
        return
    if sources and not any(source.startswith(prefix) for source in sources):
        typer.echo(texts.channel_filter_matches_nothing(prefix, len(sources), sources[0]), err=True)


@channels_app.command("show")
def show_channel(
    channel: Annotated[str, typer.Argument(help="PLATFORM:WORKSPACE:CHANNEL", metavar="CHANNEL")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The settings in force for one channel (the defaults when none were set)."""
    platform, workspace, channel_id = parse_channel(channel)
    from bot.channels import ChannelPolicy
    from storage import channel_settings

    async def work(db: Database) -> dict[str, Any]:
        row = await channel_settings.get_setting(
            db, platform=platform, workspace_id=workspace, channel_id=channel_id
        )
        if row is None:
            return {"channel": channel, **ChannelPolicy().as_dict(), "updated_at": None}
        return row_json(row)

    result = with_database(work)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        echo_policy(result["channel"], result)


@channels_app.command("list")
def list_channels(
    platform: Annotated[str | None, typer.Option(help="Only this platform.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every channel with settings."""
    from storage import channel_settings

    async def work(db: Database) -> list[dict[str, Any]]:
        return [row_json(r) for r in await channel_settings.list_settings(db, platform=platform)]

    rows = with_database(work)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no channel settings (every channel uses the defaults)")
    for row in rows:
        flags = [name for name in ("auto_answer", "ephemeral", "archive_on_resolve") if row[name]]
        extras = [
            f"{name}={row[name]}"
            for name in (
                "knowledge_filter",
                "escalation_target",
                "refusal_language",
                "unanswered_reaction",
            )
            if row[name]
        ]
        typer.echo(" ".join([row["channel"], *flags, *extras]))


@channels_app.command("clear")
def clear_channel(
    channel: Annotated[str, typer.Argument(help="PLATFORM:WORKSPACE:CHANNEL", metavar="CHANNEL")],
) -> None:
    """Remove a channel's settings (back to the defaults)."""
    platform, workspace, channel_id = parse_channel(channel)
    from storage import channel_settings

    async def work(db: Database) -> bool:
        return await channel_settings.delete_setting(
            db, platform=platform, workspace_id=workspace, channel_id=channel_id
        )

    typer.echo("cleared" if with_database(work) else "no settings for that channel")
