"""Read-only queries for reports: what happened since a moment (memories, votes, hand-offs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Escalation, Feedback, Memory


@dataclass(frozen=True)
class Turn:
    id: int
    session_id: str
    role: str
    created_at: datetime
    tool_metadata: dict[str, Any] | None


async def turns_since(
    db: Database, *, since: datetime | None, roles: tuple[str, ...]
) -> list[Turn]:
    """Memories of the given roles created at or after ``since`` (all when None), oldest first."""
    query = select(
        Memory.id, Memory.session_id, Memory.role, Memory.created_at, Memory.tool_metadata
    ).where(Memory.role.in_(roles))
    if since is not None:
        query = query.where(Memory.created_at >= since)
    async with db.single_statement() as session:
        rows = (await session.execute(query.order_by(Memory.id))).all()
    return [Turn(r[0], r[1], r[2], r[3], dict(r[4]) if r[4] is not None else None) for r in rows]


async def feedback_counts(db: Database, *, since: datetime | None) -> dict[int, int]:
    """{+1: votes up, -1: votes down} since ``since``."""
    query = select(Feedback.value, func.count()).group_by(Feedback.value)
    if since is not None:
        query = query.where(Feedback.created_at >= since)
    async with db.single_statement() as session:
        rows = (await session.execute(query)).all()
    counts = {1: 0, -1: 0}
    counts.update({int(value): int(n) for value, n in rows})
    return counts


async def open_escalations(db: Database, *, limit: int = 100) -> list[Escalation]:
    async with db.single_statement() as session:
        query = (
            select(Escalation)
            .where(Escalation.status == "open")
            .order_by(Escalation.created_at)
            .limit(limit)
        )
        return list((await session.scalars(query)).all())


async def recent_sessions(db: Database, *, platform: str, since: datetime, limit: int) -> list[str]:
    """Session ids of ``platform`` with a memory since ``since``, most recently active first."""
    latest = func.max(Memory.created_at)
    query = (
        select(Memory.session_id)
        .where(Memory.session_id.like(f"{platform}:%"), Memory.created_at >= since)
        .group_by(Memory.session_id)
        .order_by(latest.desc())
        .limit(limit)
    )
    async with db.single_statement() as session:
        return list((await session.scalars(query)).all())
