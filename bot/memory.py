"""Session-memory policy: the last N turns of a thread plus a running summary; forget.

Memory is always loaded by the message's *own* session id: nothing a user types can make the
bot read another conversation. The summary is extractive (no model call): when turns leave the
window, their questions are folded into one ``summary`` row, so a long thread keeps its gist at
a bounded prompt size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, select

from bot.messages import EDIT_MARK, Author, ConversationKey
from storage import memories, retention
from storage.db import Database
from storage.models import Memory

USER = "user"
ASSISTANT = "assistant"
SUMMARY = "summary"
# What happened without a visible answer (an error, a silent auto-answer post): kept for
# reports, never loaded into a conversation's history (only user and assistant turns are).
EVENT = "event"
# Who asked in a conversation that was forgotten: an author id and no words, never loaded into
# its history, so that forgetting a thread clears what the bot remembers of it but not whom it
# follows there (:meth:`MemoryPolicy.follows`).
ASKER = memories.ASKER_ROLE
FOLLOWED_ROLES = (USER, ASKER)
SUMMARY_MAX_CHARS = 1500
QUESTION_MAX_CHARS = 200


@dataclass(frozen=True)
class ConversationContext:
    """What the agent sees of the conversation before the new question."""

    history: list[dict[str, str]] = field(default_factory=list)  # role/content, oldest first
    summary: str | None = None
    unsummarized: int = 0  # question/answer rows not folded into the summary yet
    # Rows an earlier attempt at this same message stored (the question it kept when it
    # failed, or a turn whose answer never reached the asker): not history, and replaced by
    # this attempt's rows when they are stored.
    earlier_attempt: tuple[int, ...] = ()

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

    async def load(self, session_id: str, message_id: str = "") -> ConversationContext:
        """The summary and every turn after it (at most window + SLACK rows); rows stored
        for ``message_id`` itself (work answered again) are set apart, not history.

        Usually ONE query: the newest window + SLACK + 1 rows of the session, summaries
        included. A summary is written after the turns it covers, so when it is among those
        rows every turn not covered by it is too. Only when it is not (a session whose
        compaction lags) are the summary and its turns looked up on their own.
        """
        limit = self.window + self.SLACK

        def read(conn: Connection) -> ConversationContext:
            found = conn.execute(_NEWEST_ROWS, {"session_id": session_id, "limit": limit + 1})
            newest, earlier = _set_apart(found.all(), message_id)
            summary = next((row for row in newest if row.role == SUMMARY), None)
            if summary is None and len(newest) > limit:
                summary = conn.execute(_LATEST_SUMMARY, {"session_id": session_id}).first()
                covered = _covers_through(summary.tool_metadata if summary else None)
                found = conn.execute(
                    _RECENT_TURNS,
                    {"session_id": session_id, "covered": covered, "limit": limit},
                )
                turns, earlier = _set_apart(found.all(), message_id)
            else:
                covered = _covers_through(summary.tool_metadata if summary else None)
                turns = [r for r in newest if r.role != SUMMARY and r.id > covered][:limit]
            return _context(summary, turns, earlier)

        # The reads and their checkout in one hop into SQLAlchemy's async bridge (storage.db).
        return await self.db.read_in_one_step(read)

    def needs_compaction(self, context: ConversationContext, added: int = 2) -> bool:
        """True when, after ``added`` new rows, more than window + SLACK rows are unsummarized."""
        return context.unsummarized + added > self.window + self.SLACK

    async def remember_turn(
        self,
        session_id: str,
        question: str,
        question_metadata: dict[str, Any] | None,
        answer: str,
        answer_metadata: dict[str, Any] | None,
        *,
        replacing: tuple[int, ...] = (),
    ) -> int:
        """Store a question and its answer together (one statement; in the same transaction
        the rows ``replacing`` names are deleted); returns the answer's id."""
        _, answer_id = await memories.append_memories(
            self.db,
            [(USER, question, question_metadata), (ASSISTANT, answer, answer_metadata)],
            session_id=session_id,
            replacing=replacing,
        )
        return answer_id

    async def remember(
        self,
        session_id: str,
        role: str,
        content: str,
        tool_metadata: dict[str, Any] | None = None,
        *,
        replacing: tuple[int, ...] = (),
    ) -> int:
        (row_id,) = await memories.append_memories(
            self.db, [(role, content, tool_metadata)], session_id=session_id, replacing=replacing
        )
        return row_id

    async def compact(self, session_id: str) -> bool:
        """Fold turns that left the window into the running summary. True if it changed."""
        async with self.db.sessions() as session:
            previous = await session.scalar(_latest_summary_query(session_id))
            covered = _covers_through(previous.tool_metadata if previous is not None else None)
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

    async def follows(
        self, conversation: ConversationKey, author_id: str | None = None, *, open_: bool = False
    ) -> bool:
        """Does the bot answer ``author_id``'s follow-ups here without a mention? When it has
        taken part in this conversation (stored turns under its session) and, in a shared
        thread, this person asked it something here: other people talking in the thread (a
        teammate's "I had that too") are not questions for the bot unless they mention it.
        Questions stored before their authors were recorded name nobody: then anyone, as
        before. Without ``author_id``, whether the bot has taken part at all. ``open_``: a
        conversation the bot answers unasked (a forum post, an auto-answer channel's thread) is
        followed before it has any turn too."""
        askers = await memories.recent_askers(
            self.db, session_id=conversation.session_id, roles=FOLLOWED_ROLES
        )
        if askers is None:
            return open_
        known = {asker for asker in askers if asker}
        return author_id is None or not known or author_id in known

    async def thread_asker(self, thread: ConversationKey) -> str | None:
        """Who asked the question a thread was started for: the author of the thread's stored
        question whose message is the thread's root (the thread id names that message on
        Slack, and on Discord for a thread started from a message)."""
        if thread.thread_id is None:
            return None
        return await memories.question_author(
            self.db,
            session_id=thread.session_id,
            message_id=thread.thread_id,
            roles=FOLLOWED_ROLES,
        )

    async def may_clear_thread(self, thread: ConversationKey, person: Author) -> bool:
        """Whether ``person`` may forget a shared thread's whole conversation: its asker, or
        someone the platform says moderates it. Anyone else may forget only their own turns."""
        return person.moderates or person.id == await self.thread_asker(thread)

    async def forget_message(self, session_id: str, message_id: str) -> memories.ForgottenMessage:
        """Forget a deleted message's turn (see :func:`forget_message`)."""
        return await forget_message(self.db, session_id, message_id)

    async def forget(self, conversation: ConversationKey) -> int:
        """Remove the conversation's text from every table; returns the memories deleted.
        Whom the bot follows there stays, and who asked the question a thread was started for
        (ids, not a word of what they said): the asker who goes on talking in a forgotten
        thread unmentioned is still answered, and may clear it again."""
        session_id = conversation.session_id
        askers = await memories.recent_askers(self.db, session_id=session_id, roles=FOLLOWED_ROLES)
        # A conversation whose questions name nobody (stored before authors were recorded, or
        # none among the newest rows) is followed for anyone: a record naming nobody keeps it so.
        kept = () if askers is None else (list(dict.fromkeys(askers)) or [None])
        root = conversation.thread_id
        asker = await self.thread_asker(conversation) if root and kept else None
        return await retention.forget_conversation(
            self.db,
            session_id=session_id,
            asker_role=ASKER,
            askers=kept,
            root=(root, asker) if root and asker else None,
        )


async def forget_message(
    db: Database, session_id: str, message_id: str, *, with_edits: bool = True
) -> memories.ForgottenMessage:
    """Forget one platform message of a conversation (it was deleted): its question and what
    answered it, for every version of it (its edits; ``with_edits=False``: this version
    alone, an old text an edit replaced), and its line in the running summary when it had
    already been folded in."""
    forgotten = await memories.forget_message(
        db,
        session_id=session_id,
        message_id=message_id,
        edits_prefix=message_id + EDIT_MARK if with_edits else None,
    )
    if forgotten.questions:
        async with db.session() as session:
            summary = await session.scalar(_latest_summary_query(session_id))
            if summary is not None:
                text = summary.content
                for question in forgotten.questions:
                    text = text.replace("\n- " + _shorten(question, QUESTION_MAX_CHARS), "", 1)
                summary.content = text
    return forgotten


def _latest_summary_query(session_id: str) -> Any:
    return (
        select(Memory)
        .where(Memory.session_id == session_id, Memory.role == SUMMARY)
        .order_by(Memory.id.desc())
        .limit(1)
    )


# Built once with bound parameters, so each load reuses SQLAlchemy's compiled statement.
# The platform message a turn's row belongs to: a question's own id, an answer's reply_to.
_FOR_MESSAGE = case(
    (Memory.role == USER, Memory.tool_metadata[memories.MESSAGE_KEY].as_string()),
    (Memory.role == ASSISTANT, Memory.tool_metadata[memories.REPLY_KEY].as_string()),
    else_=None,
).label("for_message")
_NEWEST_ROWS = (
    select(
        Memory.id,
        Memory.role,
        Memory.content,
        # Only a summary's metadata is needed (covers_through): turns' is never decoded.
        case((Memory.role == SUMMARY, Memory.tool_metadata), else_=None).label("tool_metadata"),
        _FOR_MESSAGE,
    )
    .where(
        Memory.session_id == bindparam("session_id"),
        Memory.role.in_((USER, ASSISTANT, SUMMARY)),
    )
    .order_by(Memory.id.desc())
    .limit(bindparam("limit"))
)
_LATEST_SUMMARY = (
    select(Memory.content, Memory.tool_metadata)
    .where(Memory.session_id == bindparam("session_id"), Memory.role == SUMMARY)
    .order_by(Memory.id.desc())
    .limit(1)
)
_RECENT_TURNS = (
    select(Memory.id, Memory.role, Memory.content, _FOR_MESSAGE)
    .where(
        Memory.session_id == bindparam("session_id"),
        Memory.role.in_((USER, ASSISTANT)),
        Memory.id > bindparam("covered"),
    )
    .order_by(Memory.id.desc())
    .limit(bindparam("limit", literal_execute=False))
)


def _set_apart(rows: list[Any], message_id: str) -> tuple[list[Any], tuple[int, ...]]:
    """Split rows into the conversation and those stored for ``message_id`` itself."""
    if not message_id:
        return rows, ()
    earlier = tuple(r.id for r in rows if r.for_message == message_id)
    return [r for r in rows if r.for_message != message_id], earlier


def _context(summary: Any, turns: list[Any], earlier: tuple[int, ...]) -> ConversationContext:
    return ConversationContext(
        history=[{"role": r.role, "content": r.content} for r in reversed(turns)],
        summary=summary.content if summary is not None else None,
        unsummarized=len(turns),
        earlier_attempt=earlier,
    )


def _covers_through(summary_metadata: dict[str, Any] | None) -> int:
    return int((summary_metadata or {}).get("covers_through", 0))


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
