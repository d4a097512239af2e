"""Session-memory policy: the last N turns of a thread plus a running summary; forget.

Memory is always loaded by the message's *own* session id: nothing a user types can make the
bot read another conversation. The summary is extractive (no model call): when turns leave the
window, their questions are folded into one ``summary`` row, so a long thread keeps its gist at
a bounded prompt size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from storage import memories
from storage.db import Database
from storage.models import Memory

USER = "user"
ASSISTANT = "assistant"
SUMMARY = "summary"
# What happened without a visible answer (an error, a silent auto-answer post): kept for
# reports, never loaded into a conversation's history (only user and assistant turns are).
EVENT = "event"
SUMMARY_MAX_CHARS = 1500
QUESTION_MAX_CHARS = 200


@dataclass(frozen=True)
class ConversationContext:
    """What the agent sees of the conversation before the new question."""

    history: list[dict[str, str]] = field(default_factory=list)  # role/content, oldest first
    summary: str | None = None
    unsummarized: int = 0  # question/answer rows not folded into the summary yet

    @property
    def previous_question(self) -> str | None:
        return next((m["content"] for m in reversed(self.history) if m["role"] == USER), None)


class MemoryPolicy:
    """The window is ``turns`` question/answer pairs. Turns that leave it are folded into the
    summary a few at a time (``SLACK`` rows), so most messages cost no summary write."""

    SLACK = 4

    def __init__(self, db: Database, *, turns: int) -> None:
        self.db = db
        self.window = max(1, turns) * 2  # a turn is a question and its answer

    async def load(self, session_id: str) -> ConversationContext:
        """The summary and every turn after it (at most window + SLACK rows): one connection."""
        async with self.db.sessions() as session:
            summary = await session.scalar(_latest_summary_query(session_id))
            covered = _covers_through(summary)
            rows = (
                await session.scalars(
                    select(Memory)
                    .where(
                        Memory.session_id == session_id,
                        Memory.role.in_((USER, ASSISTANT)),
                        Memory.id > covered,
                    )
                    .order_by(Memory.id.desc())
                    .limit(self.window + self.SLACK)
                )
            ).all()
        turns = list(reversed(rows))
        return ConversationContext(
            history=[{"role": r.role, "content": r.content} for r in turns],
            summary=summary.content if summary is not None else None,
            unsummarized=len(turns),
        )

    def needs_compaction(self, context: ConversationContext, added: int = 2) -> bool:
        """True when, after ``added`` new rows, more than window + SLACK rows are unsummarized."""
        return context.unsummarized + added > self.window + self.SLACK

    async def remember(
        self,
        session_id: str,
        role: str,
        content: str,
        tool_metadata: dict[str, Any] | None = None,
    ) -> int:
        row = await memories.append_memory(
            self.db, session_id=session_id, role=role, content=content, tool_metadata=tool_metadata
        )
        return int(row.id)

    async def compact(self, session_id: str) -> bool:
        """Fold turns that left the window into the running summary. True if it changed."""
        async with self.db.sessions() as session:
            previous = await session.scalar(_latest_summary_query(session_id))
            covered = _covers_through(previous)
            rows = list(
                (
                    await session.scalars(
                        select(Memory)
                        .where(
                            Memory.session_id == session_id,
                            Memory.role.in_((USER, ASSISTANT)),
                            Memory.id > covered,
                        )
                        .order_by(Memory.id)
                    )
                ).all()
            )
        leaving = rows[: max(0, len(rows) - self.window)]
        if not leaving:
            return False
        text = fold_summary(previous.content if previous else None, leaving)
        async with self.db.session() as session:
            if previous is not None:
                await session.execute(delete(Memory).where(Memory.id == previous.id))
            session.add(
                Memory(
                    session_id=session_id,
                    role=SUMMARY,
                    content=text,
                    tool_metadata={"covers_through": int(leaving[-1].id)},
                )
            )
        return True

    async def forget(self, session_id: str) -> int:
        return await memories.forget_session(self.db, session_id=session_id)


def _latest_summary_query(session_id: str) -> Any:
    return (
        select(Memory)
        .where(Memory.session_id == session_id, Memory.role == SUMMARY)
        .order_by(Memory.id.desc())
        .limit(1)
    )


def _covers_through(summary: Memory | None) -> int:
    if summary is None:
        return 0
    return int((summary.tool_metadata or {}).get("covers_through", 0))


def fold_summary(previous: str | None, leaving: list[Memory]) -> str:
    """Add the questions of turns leaving the window; keep the newest part when too long."""
    questions = [
        _shorten(r.content, QUESTION_MAX_CHARS) for r in leaving if r.role == USER and r.content
    ]
    if not questions:
        return previous or "Earlier in this conversation the user asked:"
    base = previous or "Earlier in this conversation the user asked:"
    text = base + "".join(f"\n- {q}" for q in questions)
    if len(text) > SUMMARY_MAX_CHARS:
        head = "Earlier in this conversation the user asked (oldest dropped):"
        tail = text[-(SUMMARY_MAX_CHARS - len(head)) :]
        tail = tail[tail.find("\n- ") :] if "\n- " in tail else tail
        text = head + tail
    return text


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
