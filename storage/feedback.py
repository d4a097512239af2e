"""Helpful / not-helpful votes on answers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import Feedback


async def record_feedback(
    db: Database,
    *,
    memory_id: int | None,
    session_id: str,
    user_id: str,
    value: int,
    comment: str | None = None,
) -> Feedback:
    """Store a vote; a user voting again on the same answer changes their vote."""
    if value not in (1, -1):
        raise ValueError("feedback value must be +1 or -1")
    try:
        return await _upsert(db, memory_id, session_id, user_id, value, comment)
    except IntegrityError:
        # A double click: the other click's vote was inserted after we looked. Update it.
        return await _upsert(db, memory_id, session_id, user_id, value, comment)


async def _upsert(
    db: Database,
    memory_id: int | None,
    session_id: str,
    user_id: str,
    value: int,
    comment: str | None,
) -> Feedback:
    async with db.session() as session:
        existing = None
        if memory_id is not None:
            existing = await session.scalar(
                select(Feedback).where(Feedback.memory_id == memory_id, Feedback.user_id == user_id)
            )
        if existing is not None:
            existing.value = value
            existing.comment = comment if comment is not None else existing.comment
            return existing
        row = Feedback(
            memory_id=memory_id,
            session_id=session_id,
            user_id=user_id,
            value=value,
            comment=comment,
        )
        session.add(row)
    return row


async def list_feedback(db: Database, *, session_id: str | None = None) -> list[Feedback]:
    async with db.sessions() as session:
        query = select(Feedback).order_by(Feedback.id)
        if session_id is not None:
            query = query.where(Feedback.session_id == session_id)
        return list((await session.scalars(query)).all())
