"""What the bot keeps, and for how long: ``/forget`` and ``supportbot purge``.

A conversation's words live in four tables: ``memories`` (the turns), ``feedback.comment``,
``escalations.reason`` and the inbox's ``processed_events.payload``. Forgetting a conversation
or purging old data must reach all four, or the text survives where nobody looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, true, update

from storage import events
from storage.db import Database
from storage.memories import ASKER_ROLE, AUTHOR_KEY, MESSAGE_KEY
from storage.models import Escalation, Feedback, Memory


@dataclass(frozen=True, slots=True)
class Purged:
    memories: int = 0
    feedback: int = 0
    escalations: int = 0
    ledger_payloads: int = 0
    ledger_rows: int = 0


async def forget_conversation(
    db: Database,
    *,
    session_id: str,
    asker_role: str | None = None,
    askers: Sequence[str | None] = (),
    root: tuple[str, str] | None = None,
) -> int:
    """Remove one conversation's text from every table; returns how many memories went.

    Votes and hand-offs stay as facts (who, when, +1/-1) without their words; finished ledger
    rows keep only routing ids. ``asker_role``: rows that record who asked here (an author id,
    no words) are not counted as memories; the conversation keeps one such row for each of
    ``askers`` (None: someone whose id was never recorded) and no other. ``root``: the
    message a thread was started for and who asked it, kept on that asker's record (the
    thread's asker may still clear it, ``question_author``)."""
    async with db.session() as session:
        kept = Memory.role != asker_role if asker_role is not None else true()
        removed = await session.execute(delete(Memory).where(Memory.session_id == session_id, kept))
        if asker_role is not None:
            await session.execute(
                delete(Memory).where(Memory.session_id == session_id, Memory.role == asker_role)
            )
            session.add_all(
                Memory(
                    session_id=session_id,
                    role=asker_role,
                    content="",
                    tool_metadata=_asker_record(asker, root),
                )
                for asker in reversed(askers)  # the newest asker last, as their questions were
            )
        await session.execute(
            update(Feedback).where(Feedback.session_id == session_id).values(comment=None)
        )
        await session.execute(
            update(Escalation).where(Escalation.session_id == session_id).values(reason=None)
        )
    await events.scrub_payloads(db, session_id=session_id)
    return int(removed.rowcount or 0)


def _asker_record(asker: str | None, root: tuple[str, str] | None) -> dict[str, str] | None:
    if not asker:
        return None
    if root is not None and root[1] == asker:
        return {AUTHOR_KEY: asker, MESSAGE_KEY: root[0]}
    return {AUTHOR_KEY: asker}


async def purge_older_than(db: Database, *, age: timedelta) -> Purged:
    """Delete memories, feedback and escalations older than ``age``; strip finished ledger rows
    of their payloads (the rows themselves go after the ledger's own retention)."""
    cutoff = events.db_time(db, -age)
    async with db.session() as session:
        feedback = await session.execute(delete(Feedback).where(Feedback.created_at < cutoff))
        # Records of who asked go too, but they are not memories: not counted as such.
        old = Memory.created_at < cutoff
        await session.execute(delete(Memory).where(old, Memory.role == ASKER_ROLE))
        memories = await session.execute(delete(Memory).where(old))
        escalations = await session.execute(
            delete(Escalation).where(Escalation.created_at < cutoff)
        )
    payloads = await events.scrub_payloads(db, older_than=age)
    rows = await events.prune_events(db, older_than=age)
    return Purged(
        memories=int(memories.rowcount or 0),
        feedback=int(feedback.rowcount or 0),
        escalations=int(escalations.rowcount or 0),
        ledger_payloads=payloads,
        ledger_rows=rows,
    )
