"""`supportbot chat [--demo]` and `supportbot ask QUESTION [--json]`: the core from a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

from bot import texts
from bot.doc_links import is_url

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_docs"
# Questions the bundled sample docs answer, plus one they do not (to show "not in the docs").
DEMO_QUESTIONS = (
    "How do I rotate an SDK key?",
    "What happens when I exceed the API rate limit?",
    "How many times are webhook deliveries retried?",
    "Can I pay with cryptocurrency?",
)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    app.command("chat")(chat)
    app.command("ask")(ask)


def chat(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Ask a few sample questions (non-interactive) or show them as a hint (terminal).",
        ),
    ] = False,
    session: Annotated[
        str | None,
        typer.Option("--session", help="Conversation name; the same name resumes its memory."),
    ] = None,
) -> None:
    """Chat with the bot in this terminal (streams answers, lists sources; /help, /forget)."""
    _quiet_logging()
    asyncio.run(_chat(demo=demo, session=session))


def ask(
    question: Annotated[str, typer.Argument(help="The question to ask.", metavar="QUESTION")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: text, kind, sources, ...")
    ] = False,
    session: Annotated[
        str | None,
        typer.Option("--session", help="Conversation name (default: a new one per call)."),
    ] = None,
) -> None:
    """Ask one question and print the answer (with --json: machine-readable)."""
    _quiet_logging()
    asyncio.run(_ask(question, as_json=as_json, session=session or uuid.uuid4().hex[:12]))


def _quiet_logging() -> None:
    from bot.cli import configure_logging
    from bot.config import load_settings

    level = load_settings().log_level.upper()
    # Chat output shares the terminal with logs: show warnings and errors unless asked for more.
    configure_logging("WARNING" if level == "INFO" else level)


async def _open_runtime() -> Any:
    from bot.config import load_settings
    from bot.runtime import build_runtime, check_knowledge_base, ensure_schema
    from storage.db import Database

    settings = load_settings()
    db = Database(settings.database_url)
    try:
        # Before loading an embedder: fail fast with one clear line (or set up a new database).
        if await ensure_schema(db, create_if_empty=True):
            typer.echo(texts.CONSOLE_SCHEMA_CREATED, err=True)
        runtime = await build_runtime(settings, db=db)
    except BaseException:
        await db.dispose()
        raise
    try:
        await check_knowledge_base(runtime.knowledge)
    except BaseException:
        await runtime.aclose()
        raise
    return runtime


async def _ingest_sample_if_empty(runtime: Any) -> None:
    stats = await asyncio.to_thread(runtime.knowledge.stats)
    if stats.chunks == 0 and SAMPLE_DOCS.is_dir():
        typer.echo("(the knowledge base is empty: ingesting the bundled sample docs first)")
        await asyncio.to_thread(runtime.knowledge.ingest, [SAMPLE_DOCS])


async def _chat(*, demo: bool, session: str | None) -> None:
    from adapters.console import ConsoleAdapter, console_conversation

    runtime = await _open_runtime()
    try:
        if demo:
            await _ingest_sample_if_empty(runtime)
        interactive = sys.stdin.isatty()
        if demo and not interactive and session is None:
            session = f"demo-{uuid.uuid4().hex[:8]}"  # the demo never mixes with real chats
        adapter = ConsoleAdapter(runtime.responder, conversation=console_conversation(session))
        if demo and not interactive:
            for question in DEMO_QUESTIONS:
                adapter.write(f"you> {question}\n")
                await adapter.send(question)
            return
        if interactive:
            adapter.write(texts.CONSOLE_WELCOME + "\n")
            if demo:
                hint = "\n".join(f"  - {q}" for q in DEMO_QUESTIONS)
                adapter.write(f"{texts.CONSOLE_DEMO_HINT}\n{hint}\n")
            adapter.write("\n")
        await adapter.run(stdin_lines("you> " if interactive else None))
        if interactive:
            adapter.write(texts.CONSOLE_BYE + "\n")
    finally:
        await runtime.aclose()


async def _ask(question: str, *, as_json: bool, session: str) -> None:
    from adapters.console import ConsoleAdapter, console_conversation, to_incoming

    runtime = await _open_runtime()
    try:
        conversation = console_conversation(session)
        if not as_json:
            exchange = await ConsoleAdapter(runtime.responder, conversation=conversation).send(
                question
            )
            if exchange.reply is not None and exchange.reply.kind.value == "error":
                raise typer.Exit(1)
            return
        reply = await runtime.responder.handle(to_incoming(question, conversation))
        payload = reply_json(reply)
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        if reply is None or reply.kind.value == "error":
            raise typer.Exit(1)
    finally:
        await runtime.aclose()


def reply_json(reply: Any) -> dict[str, Any]:
    """The stable ``ask --json`` object."""
    if reply is None:
        return {
            "text": "",
            "kind": "none",
            "sources": [],
            "related": [],
            "session_id": None,
            "memory_id": None,
        }
    return {
        "text": reply.text,
        "kind": reply.kind.value,
        "sources": sources_json(reply.sources),
        # Pages offered with a refusal ("kind": "no_answer"): not sources of an answer.
        "related": sources_json(reply.related),
        "session_id": reply.session_id,
        "memory_id": reply.memory_id,
    }


def sources_json(sources: Any) -> list[dict[str, Any]]:
    return [
        {
            "n": n,
            "title": s.title,
            "heading": s.heading,
            "path": s.url_or_path,
            # The page to open: the published URL (SUPPORTBOT_DOCS_URL, a crawled page) or null.
            "url": s.url_or_path if is_url(s.url_or_path) else None,
            "snippet": s.snippet,
            "score": s.score,
        }
        for n, s in enumerate(sources, start=1)
    ]


async def stdin_lines(prompt: str | None) -> AsyncIterator[str]:
    """Lines from stdin until EOF, read on a daemon thread so Ctrl-C never waits for Enter.

    The thread reads a line only when the chat asks for one, so the prompt appears after the
    previous answer, not in the middle of it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    wanted = threading.Event()

    def deliver(line: str | None) -> None:
        # RuntimeError: the loop is gone because the chat already ended.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, line)

    def reader() -> None:
        try:
            while True:
                wanted.wait()
                wanted.clear()
                if prompt is not None:
                    try:
                        line = input(prompt)
                    except EOFError:
                        break
                else:
                    line = sys.stdin.readline()
                    if line == "":
                        break
                deliver(line)
        except Exception:  # a closed or undecodable stdin ends the chat like EOF
            pass
        finally:
            deliver(None)

    threading.Thread(target=reader, name="stdin-reader", daemon=True).start()
    while True:
        wanted.set()
        line = await queue.get()
        if line is None:
            return
        yield line
