"""`supportbot report [--since 7d] [--json | --html FILE]`: the operator's report (bot.report)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.commands import load_settings
from bot.errors import ConfigError, DatabaseError, SupportbotError

log = logging.getLogger(__name__)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.command("report")(report)


def knowledge_for_report() -> tuple[list[str] | None, Any]:
    """The KB's sources and its embedder's ``embed`` (for clustering); (None, None) when the
    knowledge base cannot be opened: the report is still useful without those parts."""
    from bot.commands.kb import open_knowledge_base

    try:
        kb = open_knowledge_base()
        sources = kb.sources()
    except SupportbotError as exc:
        log.warning("knowledge base unavailable, report without never-cited documents: %s", exc)
        return None, None
    embed = kb.embedder.embed if kb.embedder is not None else None
    return sources, embed


async def gather(since: str | None) -> dict[str, Any]:
    from bot.report import build_report, parse_since
    from storage.db import Database

    try:
        window = parse_since(since)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sources, embed = await asyncio.to_thread(knowledge_for_report)
    db = Database(load_settings().database_url)
    try:
        return await build_report(db, since=window, kb_sources=sources, embed=embed)
    except SupportbotError:
        raise
    except Exception as exc:
        raise DatabaseError(
            f"the report could not read the database ({type(exc).__name__}); "
            "has `supportbot db upgrade` run?"
        ) from None
    finally:
        await db.dispose()


def report(
    since: Annotated[str, typer.Option(help="Window: 30m, 12h, 7d, 2w or all.")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")
    ] = None,
) -> None:
    """Questions, outcomes, feedback, latency, coverage gaps and document citations."""
    data = asyncio.run(gather(since))
    if html is not None:
        from bot.report_html import render_report

        html.write_text(render_report(data), encoding="utf-8")
        typer.echo(f"wrote {html}")
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    elif html is None:
        print_summary(data)


def print_summary(data: dict[str, Any]) -> None:
    ttft = data["time_to_first_token_ms"]
    typer.echo(f"since {data['window']['since'] or 'the beginning'}")
    typer.echo(
        f"questions {data['questions']}: answered {data['answered']}, refused {data['refused']}, "
        f"escalated {data['escalated']}, errors {data['errors']}"
    )
    typer.echo(f"feedback: {data['feedback']['up']} up, {data['feedback']['down']} down")
    typer.echo(f"time to first token: median {ttft['median']} ms, p95 {ttft['p95']} ms")
    for gap in data["coverage_gaps"]:
        near = gap.get("nearest_pages") or []
        typer.echo(
            f"gap ({gap['count']}): {gap['label']}"
            + (f" (nearest pages: {', '.join(near)})" if near else "")
        )
    for doc in data["documents"]["most_cited"]:
        typer.echo(f"cited {doc['citations']}: {doc['source']}")
    never = data["documents"].get("never_cited")
    if never:
        typer.echo(f"never cited: {', '.join(never)}")
