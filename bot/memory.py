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
SUMMARY_MAX_CHARS = 1500
QUESTION_MAX_CHARS = 200


@dataclass(frozen=True)
class ConversationContext:
    """What the agent sees of the conversation before the new question."""

    history: list[dict[str, str]] = field(default_factory=list)  # role/content, oldest first
    summary: str | None = None

    @property
    def previous_question(self) -> str | None:
        return next((m["content"] for m in reversed(self.history) if m["role"] == USER), None)


class MemoryPolicy:
    def __init__(self, db: Database, *, turns: int) -> None:
        self.db = db
        self.window = max(1, turns) * 2  # a turn is a question and its answer

    async def load(self, session_id: str) -> ConversationContext:
        rows = await memories.load_recent(self.db, session_id=session_id, limit=self.window * 2)
        summary_row = next((r for r in reversed(rows) if r.role == SUMMARY), None)
        if summary_row is None:
            summary_row = await self._latest_summary(session_id)
        turns = [r for r in rows if r.role in (USER, ASSISTANT)][-self.window :]
        return ConversationContext(
            history=[{"role": r.role, "content": r.content} for r in turns],
            summary=summary_row.content if summary_row is not None else None,
        )

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
        previous = await self._latest_summary(session_id)
        covered = int((previous.tool_metadata or {}).get("covers_through", 0)) if previous else 0
        async with self.db.sessions() as session:
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

    async def _latest_summary(self, session_id: str) -> Memory | None:
        async with self.db.sessions() as session:
            return await session.scalar(
                select(Memory)
                .where(Memory.session_id == session_id, Memory.role == SUMMARY)
                .order_by(Memory.id.desc())
                .limit(1)
            )


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
