"""Session memories: append, load the recent window, forget, export."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update

from storage.db import Database
from storage.models import Escalation, Feedback, Memory


class MemoryOut(BaseModel):
    """External JSON of a memory; keeps the historical field name ``metadata`` (exports, APIs)."""

    model_config = ConfigDict(populate_by_name=True, from_attributes=True, serialize_by_alias=True)

    id: int
    session_id: str
    role: str
    content: str | None  # None on a record of who asked (ASKER_ROLE): it keeps no words
    # Read from ORM rows by its own name first: a Memory's ``metadata`` attribute is the
    # declarative MetaData, not the column. Written out as "metadata" (the historical name).
    tool_metadata: dict[str, Any] | None = Field(
        default=None,
        validation_alias=AliasChoices("tool_metadata", "metadata"),
        serialization_alias="metadata",
    )
    created_at: datetime | None = None


async def append_memory(
    db: Database,
    *,
    session_id: str,
    role: str,
    content: str,
    tool_metadata: dict[str, Any] | None = None,
) -> Memory:
    async with db.single_statement() as session:
        memory = Memory(
            session_id=session_id, role=role, content=content, tool_metadata=tool_metadata
        )
        session.add(memory)
    return memory


# The metadata keys that tie turns to the platform message they belong to: a question's own
# id, and on its answer the id of the question it answers.
MESSAGE_KEY = "message_id"
REPLY_KEY = "reply_to"
AUTHOR_KEY = "author_id"  # on a question: who asked it
# A record of who asked in a conversation that was forgotten (an author id, no words): not a
# turn of the conversation, so an export shows it without content and a purge does not count
# it among the memories it deleted.
ASKER_ROLE = "asker"


async def append_memories(
    db: Database,
    rows: list[tuple[str, str, dict[str, Any] | None]],
    *,
    session_id: str,
    replacing: Sequence[int] = (),
) -> list[int]:
    """Store (role, content, tool_metadata) rows of one session in ONE multi-row INSERT
    (atomic: all or none, one round trip); returns their ids in the same order.

    A prebuilt Core statement run with a list of parameter sets: SQLAlchemy sends it as one
    ``INSERT … VALUES (…), (…) RETURNING id`` ("insertmanyvalues") and compiles it once per
    process; a ``.values([...])`` statement was compiled again for every call, and the ORM
    unit of work (identity map, flush ordering) costs more than the statement for rows
    nobody reloads. ``replacing``: ids of the session's rows deleted in the same transaction
    (what an earlier attempt at the same message stored).
    """
    values = [
        {"session_id": session_id, "role": role, "content": content, "tool_metadata": metadata}
        for role, content, metadata in rows
    ]

    def store(conn: Connection) -> list[int]:
        if replacing:
            conn.execute(
                delete(Memory).where(Memory.session_id == session_id, Memory.id.in_(replacing))
            )
        result = conn.execute(_INSERT_RETURNING_ID, values)
        # Rows of one VALUES list get ascending ids in list order (one sequence / rowid).
        return sorted(int(row_id) for row_id in result.scalars())

    return await db.write_in_one_step(store)


_INSERT_RETURNING_ID = insert(Memory.__table__).returning(Memory.id)


async def load_recent(db: Database, *, session_id: str, limit: int) -> list[Memory]:
    """The last ``limit`` memories of a session, oldest first."""
    async with db.single_statement() as session:
        rows = await session.scalars(
            select(Memory)
            .where(Memory.session_id == session_id)
            .order_by(Memory.id.desc())
            .limit(limit)
        )
        return list(reversed(rows.all()))


async def get_memory(db: Database, *, memory_id: int) -> Memory | None:
    async with db.single_statement() as session:
        return await session.get(Memory, memory_id)


async def count_memories(db: Database, *, session_id: str) -> int:
    async with db.reads() as conn:
        total = await conn.scalar(_COUNT, {"b_session": session_id})
        return int(total or 0)


async def question_author(
    db: Database, *, session_id: str, message_id: str, roles: Collection[str]
) -> str | None:
    """Who asked the session's stored question of ``message_id`` (rows of ``roles``: the
    questions', and the records of who asked in a forgotten conversation), as recorded with
    it; None when it is not stored or was stored before authors were kept."""
    query = (
        select(Memory.tool_metadata)
        .where(
            Memory.session_id == session_id,
            Memory.role.in_(list(roles)),
            Memory.tool_metadata[MESSAGE_KEY].as_string() == message_id,
        )
        .order_by(Memory.id)
        .limit(1)
    )
    async with db.reads() as conn:
        metadata = await conn.scalar(query)
    author = (metadata or {}).get(AUTHOR_KEY)
    return str(author) if author else None


async def recent_askers(
    db: Database, *, session_id: str, roles: Collection[str]
) -> list[str | None] | None:
    """Who asked the session's most recent stored questions (rows of ``roles``: the questions'
    and the records of who asked in a forgotten conversation), newest first, None for a
    question stored before authors were recorded; None when the session has no stored row at
    all (one read of at most ASKERS_READ rows)."""
    async with db.reads() as conn:
        rows = (await conn.execute(_RECENT, {"b_session": session_id})).all()
    if not rows:
        return None
    return [str(author) if author else None for row_role, author in rows if row_role in roles]


_MEMORIES: Table = Memory.__table__  # type: ignore[assignment]
_COUNT = (
    select(func.count())
    .select_from(_MEMORIES)
    .where(_MEMORIES.c.session_id == bindparam("b_session"))
)
ASKERS_READ = 200  # a thread's recent turns: whoever asked lately may follow up unmentioned
_RECENT = (
    select(_MEMORIES.c.role, _MEMORIES.c.tool_metadata[AUTHOR_KEY].as_string())
    .where(_MEMORIES.c.session_id == bindparam("b_session"))
    .order_by(_MEMORIES.c.id.desc())
    .limit(ASKERS_READ)
)


async def forget_answer(db: Database, *, session_id: str, message_id: str) -> int:
    """Delete the stored answer(s) to one platform message (the question stays); returns how
    many rows were deleted."""
    async with db.single_statement() as session:
        result = await session.execute(
            delete(Memory).where(
                Memory.session_id == session_id,
                Memory.role == "assistant",
                Memory.tool_metadata[REPLY_KEY].as_string() == message_id,
            )
        )
        return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class ForgottenMessage:
    """What :func:`forget_message` removed: how many rows, the questions' texts (a running
    summary may quote them) and the ids of the message's versions that had rows."""

    rows: int = 0
    questions: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()


async def forget_message(
    db: Database, *, session_id: str, message_id: str, edits_prefix: str | None
) -> ForgottenMessage:
    """Delete every row of a session that belongs to one platform message: its question(s)
    (``MESSAGE_KEY``) and what answered them (``REPLY_KEY``: answers, silent auto-answer
    events), for the message itself and its edits (ids starting with ``edits_prefix``; None:
    the message alone). In the
    same transaction, votes on those answers lose their comments and hand-offs they opened
    lose their reasons (the facts stay, the words go)."""

    def of_message(key: str) -> Any:
        value = Memory.tool_metadata[key].as_string()
        if edits_prefix is None:
            return value == message_id
        return or_(value == message_id, value.startswith(edits_prefix, autoescape=True))

    async with db.session() as session:
        rows = (
            await session.execute(
                select(Memory.id, Memory.content, Memory.tool_metadata).where(
                    Memory.session_id == session_id,
                    or_(of_message(MESSAGE_KEY), of_message(REPLY_KEY)),
                )
            )
        ).all()
        if not rows:
            return ForgottenMessage()
        ids = [row.id for row in rows]
        questions, versions, hand_offs = [], set(), set()
        for row in rows:
            metadata = row.tool_metadata or {}
            if metadata.get(MESSAGE_KEY) and row.content:
                questions.append(row.content)
            versions.add(str(metadata.get(MESSAGE_KEY) or metadata.get(REPLY_KEY)))
            if isinstance(metadata.get("escalation_id"), int):
                hand_offs.add(metadata["escalation_id"])
        await session.execute(
            update(Feedback).where(Feedback.memory_id.in_(ids)).values(comment=None)
        )
        if hand_offs:
            await session.execute(
                update(Escalation).where(Escalation.id.in_(hand_offs)).values(reason=None)
            )
        await session.execute(delete(Memory).where(Memory.id.in_(ids)))
    return ForgottenMessage(len(ids), tuple(questions), tuple(sorted(versions)))


async def forget_session(db: Database, *, session_id: str) -> int:
    """Delete every memory of a session; returns how many were deleted."""
    async with db.single_statement() as session:
        result = await session.execute(delete(Memory).where(Memory.session_id == session_id))
        return int(result.rowcount or 0)


async def export_session(db: Database, *, session_id: str) -> list[MemoryOut]:
    """Every row the session holds, in order; a record of who asked (``ASKER_ROLE``) with
    ``content`` None, not an empty turn."""
    async with db.single_statement() as session:
        rows = await session.scalars(
            select(Memory).where(Memory.session_id == session_id).order_by(Memory.id)
        )
        exported = [MemoryOut.model_validate(row) for row in rows]
    return [
        row.model_copy(update={"content": None}) if row.role == ASKER_ROLE else row
        for row in exported
    ]
