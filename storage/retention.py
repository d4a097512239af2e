"""What the bot keeps, and for how long: ``/forget`` and ``supportbot purge``.

A conversation's words live in four tables: ``memories`` (the turns), ``feedback.comment``,
``escalations.reason`` and the inbox's ``processed_events.payload``. Forgetting a conversation
or purging old data must reach all four, or the text survives where nobody looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update

from storage import events
from storage.db import Database
from storage.models import Escalation, Feedback, Memory


@dataclass(frozen=True, slots=True)
class Purged:
    memories: int = 0
    feedback: int = 0
    escalations: int = 0
    ledger_payloads: int = 0
    ledger_rows: int = 0


async def forget_conversation(db: Database, *, session_id: str) -> int:
    """Remove one conversation's text from every table; returns how many memories went.

    Votes and hand-offs stay as facts (who, when, +1/-1) without their words; finished ledger
    rows keep only routing ids."""
    async with db.session() as session:
        removed = await session.execute(delete(Memory).where(Memory.session_id == session_id))
        await session.execute(
            update(Feedback).where(Feedback.session_id == session_id).values(comment=None)
        )
        await session.execute(
            update(Escalation).where(Escalation.session_id == session_id).values(reason=None)
        )
    await events.scrub_payloads(db, session_id=session_id)
    return int(removed.rowcount or 0)


async def purge_older_than(db: Database, *, age: timedelta) -> Purged:
    """Delete memories, feedback and escalations older than ``age``; strip finished ledger rows
    of their payloads (the rows themselves go after the ledger's own retention)."""
    cutoff = events.db_time(db, -age)
    async with db.session() as session:
        feedback = await session.execute(delete(Feedback).where(Feedback.created_at < cutoff))
        memories = await session.execute(delete(Memory).where(Memory.created_at < cutoff))
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
