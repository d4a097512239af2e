"""Learning from resolved hand-offs: the team's answer becomes a draft, a reviewed draft a doc.

When an escalation is resolved, the adapter hands over the thread's messages (a
:data:`ThreadReader`); the team's messages after the hand-off are the answer, the asker's
question is the question. Nothing reaches the knowledge base until an operator approves the
draft: approval writes ``learned/<id>-<slug>.md`` under the learned-docs folder and ingests it
like any other source, so answers cite it as "Answered by the team on DATE".
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from storage import escalations, learned
from storage.db import Database
from storage.models import Escalation, LearnedAnswer, Memory

log = logging.getLogger(__name__)

LEARNED_FOLDER = "learned"  # sources of approved answers start with "learned/"
MAX_ANSWER_CHARS = 8000
MAX_QUESTION_CHARS = 1000


@dataclass(frozen=True)
class ThreadMessage:
    author_id: str
    text: str
    sent_at: datetime
    is_bot: bool = False


ThreadReader = Callable[[Escalation], Awaitable[list[ThreadMessage]]]


class Ingestor(Protocol):
    def ingest(self, paths: list[Path]) -> Any: ...


class ReviewError(Exception):
    """A review that cannot happen (unknown id, not a draft); ``str`` is one line."""


async def capture_resolution(
    db: Database, *, escalation_id: int, read_thread: ThreadReader, thread_link: str | None = None
) -> LearnedAnswer | None:
    """Draft a Q&A from a resolved hand-off; None when the team wrote nothing or a draft exists."""
    escalation = await escalations.get_escalation(db, escalation_id=escalation_id)
    if escalation is None or escalation.status != "resolved":
        return None
    messages = await read_thread(escalation)
    opened = escalation.created_at
    team = [
        m
        for m in messages
        if not m.is_bot
        and m.author_id != escalation.requested_by
        and m.sent_at >= opened
        and m.text.strip()
    ]
    if not team:
        log.info("escalation %s resolved without a team answer in the thread", escalation_id)
        return None
    question = await asked_question(db, escalation, messages)
    answer = "\n\n".join(m.text.strip() for m in team)[:MAX_ANSWER_CHARS]
    return await learned.create_draft(
        db,
        escalation_id=escalation.id,
        session_id=escalation.session_id,
        platform=escalation.platform,
        question=question[:MAX_QUESTION_CHARS],
        answer=answer,
        thread_link=thread_link,
        answered_by=", ".join(dict.fromkeys(m.author_id for m in team)),
    )


async def asked_question(
    db: Database, escalation: Escalation, messages: list[ThreadMessage]
) -> str:
    """The asker's last question stored before the hand-off, else their first message in the
    thread, else the reason given for the hand-off."""
    async with db.single_statement() as session:
        stored = await session.scalar(
            select(Memory.content)
            .where(
                Memory.session_id == escalation.session_id,
                Memory.role == "user",
                Memory.created_at <= escalation.created_at,
            )
            .order_by(Memory.id.desc())
            .limit(1)
        )
    if stored:
        return str(stored)
    asked = [m for m in messages if m.author_id == escalation.requested_by and m.text.strip()]
    if asked:
        return asked[0].text.strip()
    return escalation.reason or ""


def slug(text: str, limit: int = 48) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:limit].strip("-") or "answer"


def document_text(draft: LearnedAnswer, reviewed_at: datetime) -> str:
    """The Markdown document an approved draft becomes: title = the question, one section
    headed with the date the team answered (what citations show)."""
    answered_on = (draft.created_at or reviewed_at).date().isoformat()
    question = " ".join(draft.question.split())
    lines = [
        f"# {question}",
        "",
        f"## Answered by the team on {answered_on}",
        "",
        f"**Question:** {question}",
        "",
        draft.answer.strip(),
    ]
    if draft.thread_link:
        lines += ["", f"Thread: {draft.thread_link}"]
    return "\n".join(lines) + "\n"


async def approve(
    db: Database,
    knowledge: Ingestor,
    *,
    learned_id: int,
    reviewed_by: str,
    learned_root: Path,
) -> str:
    """Write the approved answer as a document, ingest it, mark the draft approved; returns the
    document's source path (``learned/<id>-<slug>.md``)."""
    draft = await learned.get(db, learned_id=learned_id)
    if draft is None:
        raise ReviewError(f"no learned answer with id {learned_id}")
    if draft.status != learned.DRAFT:
        raise ReviewError(f"learned answer {learned_id} is already {draft.status}")
    now = datetime.now(UTC)
    source = f"{LEARNED_FOLDER}/{draft.id}-{slug(draft.question)}.md"
    path = learned_root / source
    await asyncio.to_thread(_write, path, document_text(draft, now))
    await asyncio.to_thread(knowledge.ingest, [learned_root])
    if not await learned.review(
        db, learned_id=learned_id, status=learned.APPROVED, reviewed_by=reviewed_by,
        document_source=source,
    ):  # fmt: skip
        raise ReviewError(f"learned answer {learned_id} was reviewed by someone else meanwhile")
    return source


async def reject(db: Database, *, learned_id: int, reviewed_by: str) -> None:
    if not await learned.review(
        db, learned_id=learned_id, status=learned.REJECTED, reviewed_by=reviewed_by
    ):
        draft = await learned.get(db, learned_id=learned_id)
        if draft is None:
            raise ReviewError(f"no learned answer with id {learned_id}")
        raise ReviewError(f"learned answer {learned_id} is already {draft.status}")


async def write_approved(db: Database, learned_root: Path) -> int:
    """Write each approved answer's document under ``learned_root`` as it was approved, where the
    folder lacks it or holds another text; returns how many were written. The database is the
    record of what the team approved, a folder only one machine's copy: a replica, or a new
    machine, whose folder is empty or behind gets every approved answer before an ingest reads
    the folder, so its ``ingest --prune`` keeps them in a knowledge base the replicas share."""
    written = 0
    for row in await learned.approved(db):
        source = str(row.document_source)
        parts = Path(source).parts
        if len(parts) != 2 or parts[0] != LEARNED_FOLDER or not source.endswith(".md"):
            log.warning("learned answer %s: unexpected document path %r, skipped", row.id, source)
            continue
        text = document_text(row, row.reviewed_at or datetime.now(UTC))
        path = learned_root / source
        if await asyncio.to_thread(_differs, path, text):
            await asyncio.to_thread(_write, path, text)
            written += 1
    return written


def _differs(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") != text
    except (FileNotFoundError, UnicodeDecodeError):
        return True


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # never a half-written document for a concurrent ingest
