"""`supportbot db upgrade|downgrade|current|check`, `supportbot memories export` and
`supportbot purge --older-than DAYS`.

The work is in ``storage.migrate`` and ``storage.memories``; this module reads the settings,
prints one line per outcome and turns storage's errors into :class:`DatabaseError` (which the
CLI prints as one line, exit code 1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from bot import texts
from bot.commands import load_settings
from bot.errors import DatabaseError

if TYPE_CHECKING:
    from storage.memories import MemoryOut
    from storage.migrate import MigrationResult
    from storage.retention import Purged

T = TypeVar("T")

db_app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)
memories_app = typer.Typer(help="Conversation memories.", no_args_is_help=True)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add the `db` and `memories` groups to the root app."""
    app.add_typer(db_app, name="db")
    app.add_typer(memories_app, name="memories")
    app.command("purge")(purge)


def _run(work: Coroutine[Any, Any, T]) -> T:
    from storage import migrate

    try:
        return asyncio.run(work)
    except migrate.InvalidDatabaseUrlError as exc:
        raise DatabaseError(texts.db_invalid_url(str(exc))) from None
    except migrate.MigrationError as exc:
        raise DatabaseError(str(exc)) from None


def _database_url() -> str:
    return load_settings().database_url


def _report(result: MigrationResult, *, upgrading: bool) -> None:
    from storage import migrate

    if result.adopted_legacy:
        typer.echo(texts.db_adopted_legacy(migrate.LEGACY_REVISION))
    if result.before == result.after:
        typer.echo(texts.db_unchanged(result.after))
    elif upgrading:
        typer.echo(texts.db_upgraded(result.before, result.after))
    else:
        typer.echo(texts.db_downgraded(result.before, result.after))


@db_app.command("upgrade")
def upgrade(
    revision: str = typer.Argument(
        "head", help="Target revision (default: the newest).", metavar="REVISION"
    ),
) -> None:
    """Create or upgrade the schema; adopts a legacy database that has no migration history."""
    from storage import migrate

    _report(_run(migrate.upgrade(_database_url(), revision)), upgrading=True)


# ignore_unknown_options: let "-1" through as the revision instead of parsing it as an option.
@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: str = typer.Argument(
        ..., help="Target revision, -1, or base (drops every table).", metavar="REVISION"
    ),
) -> None:
    """Downgrade the schema to REVISION."""
    from storage import migrate

    _report(_run(migrate.downgrade(_database_url(), revision)), upgrading=False)


@db_app.command("current")
def current() -> None:
    """Show the database's revision."""
    from storage import migrate

    state = _run(migrate.current(_database_url()))
    if state.revision is None:
        typer.echo(texts.DB_LEGACY_UNVERSIONED if state.legacy_unversioned else texts.DB_EMPTY)
    else:
        typer.echo(texts.db_current(state.revision, state.head))


@db_app.command("check")
def check() -> None:
    """Compare the models with the database; exit code 1 if they differ."""
    from storage import migrate

    differences = _run(migrate.check(_database_url()))
    if not differences:
        typer.echo(texts.DB_CHECK_CLEAN)
        return
    typer.echo(texts.db_check_differences(len(differences)))
    for difference in differences:
        typer.echo(f"  {difference}")
    raise typer.Exit(1)


@memories_app.command("export")
def export(
    session_id: str = typer.Argument(
        ..., help="The conversation's session id.", metavar="SESSION_ID"
    ),
) -> None:
    """Print a session's memories as JSON lines (the tool metadata under "metadata"). A line
    with role "asker" and content null records who asked in a conversation that was forgotten
    (an id, no words)."""
    from storage import migrate

    url = _database_url()
    state = _run(migrate.current(url))
    if not state.at_head:
        raise DatabaseError(texts.db_not_at_head(state.revision, state.head))
    for memory in asyncio.run(_export(url, session_id)):
        typer.echo(memory.model_dump_json(by_alias=True))


async def _export(url: str, session_id: str) -> list[MemoryOut]:
    from storage.db import Database
    from storage.memories import export_session

    database = Database(url)
    try:
        return await export_session(database, session_id=session_id)
    finally:
        await database.dispose()


def purge(
    older_than: float = typer.Option(
        ..., "--older-than", min=0, help="Delete what is older than this many DAYS."
    ),
) -> None:
    """Delete memories, feedback and escalations older than DAYS, and the question text kept
    in finished ledger rows (run it from cron to enforce a retention policy)."""
    from storage import migrate

    url = _database_url()
    state = _run(migrate.current(url))
    if not state.at_head:
        raise DatabaseError(texts.db_not_at_head(state.revision, state.head))
    purged = asyncio.run(_purge(url, timedelta(days=older_than)))
    typer.echo(
        texts.purged(
            purged.memories,
            purged.feedback,
            purged.escalations,
            purged.ledger_payloads + purged.ledger_rows,
        )
    )


async def _purge(url: str, age: timedelta) -> Purged:
    from storage.db import Database
    from storage.retention import purge_older_than

    database = Database(url)
    try:
        return await purge_older_than(database, age=age)
    finally:
        await database.dispose()
