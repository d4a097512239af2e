"""`supportbot learned list|show|approve|reject`: the review queue of answers learned from
resolved hand-offs. Approving writes a document and ingests it (bot.learning)."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.commands import load_settings
from bot.errors import ConfigError, DatabaseError, SupportbotError

if TYPE_CHECKING:  # imported by the commands: `supportbot --help` loads no SQLAlchemy
    from storage.db import Database

learned_app = typer.Typer(
    help="Answers learned from resolved hand-offs, waiting for review.", no_args_is_help=True
)
STATUSES = ("draft", "approved", "rejected", "all")


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.add_typer(learned_app, name="learned")


def draft_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "escalation_id": row.escalation_id,
        "platform": row.platform,
        "question": row.question,
        "answer": row.answer,
        "answered_by": row.answered_by,
        "thread_link": row.thread_link,
        "document_source": row.document_source,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "reviewed_by": row.reviewed_by,
    }


async def _with_db(work: Any) -> Any:
    from bot.learning import ReviewError
    from storage.db import Database

    db = Database(load_settings().database_url)
    try:
        return await work(db)
    except ReviewError as exc:
        raise ConfigError(str(exc)) from None
    except SupportbotError:
        raise
    except Exception as exc:
        raise DatabaseError(
            f"the learned answers could not be read or written ({type(exc).__name__}); "
            "has `supportbot db upgrade` run?"
        ) from None
    finally:
        await db.dispose()


@learned_app.command("list")
def list_learned(
    status: Annotated[str, typer.Option(help="draft, approved, rejected or all.")] = "draft",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Drafts waiting for review (or the reviewed ones)."""
    if status not in STATUSES:
        raise ConfigError(f"--status must be one of {', '.join(STATUSES)}")
    from storage import learned

    async def work(db: Database) -> list[dict[str, Any]]:
        rows = await learned.list_answers(db, status=None if status == "all" else status)
        return [draft_json(r) for r in rows]

    rows = asyncio.run(_with_db(work))
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no {status} learned answers" if status != "all" else "no learned answers")
    for row in rows:
        answer = " ".join(row["answer"].split())
        typer.echo(f"#{row['id']} [{row['status']}] Q: {row['question']}")
        typer.echo(f"    A: {answer[:200]}{'…' if len(answer) > 200 else ''}")


def _draft_id(text: str) -> int:
    """A draft's id as `learned list` shows it (``#12`` or ``12``)."""
    try:
        return int(text.strip().removeprefix("#"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a draft id: use the number `supportbot learned list` shows"
        ) from None


DRAFT_ID = typer.Argument(
    help="The draft's id (see `learned list`).", metavar="ID", parser=_draft_id
)


@learned_app.command("approve")
def approve_learned(
    learned_id: Annotated[int, DRAFT_ID],
    reviewer: Annotated[str | None, typer.Option(help="Who approves (default: you).")] = None,
) -> None:
    """Turn a draft into a knowledge-base document (learned/<id>-<slug>.md) and ingest it."""
    from bot import learning
    from bot.commands.kb import open_knowledge_base, storage_errors

    settings = load_settings()
    knowledge = open_knowledge_base(settings=settings)

    async def work(db: Database) -> str:
        with storage_errors():
            return await learning.approve(
                db,
                knowledge,
                learned_id=learned_id,
                reviewed_by=reviewer or getpass.getuser(),
                learned_root=Path(settings.learned_dir),
            )

    source = asyncio.run(_with_db(work))
    typer.echo(f"approved #{learned_id}: {source} is in the knowledge base")


@learned_app.command("reject")
def reject_learned(
    learned_id: Annotated[int, DRAFT_ID],
    reviewer: Annotated[str | None, typer.Option(help="Who rejects (default: you).")] = None,
) -> None:
    """Discard a draft; nothing enters the knowledge base."""
    from bot import learning

    async def work(db: Database) -> None:
        await learning.reject(db, learned_id=learned_id, reviewed_by=reviewer or getpass.getuser())

    asyncio.run(_with_db(work))
    typer.echo(f"rejected #{learned_id}")
