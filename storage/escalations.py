"""Hand-offs to a human: open, look up, resolve."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from storage.db import Database
from storage.models import Escalation


async def open_escalation(
    db: Database,
    *,
    session_id: str,
    platform: str,
    channel_id: str,
    thread_id: str | None,
    requested_by: str,
    reason: str | None = None,
) -> Escalation:
    """Open an escalation, or return the conversation's already open one (no duplicates)."""
    async with db.session() as session:
        existing = await session.scalar(
            select(Escalation).where(
                Escalation.session_id == session_id, Escalation.status == "open"
            )
        )
        if existing is not None:
            return existing
        row = Escalation(
            session_id=session_id,
            platform=platform,
            channel_id=channel_id,
            thread_id=thread_id,
            requested_by=requested_by,
            reason=reason,
        )
        session.add(row)
    return row


async def set_notice_ref(db: Database, *, escalation_id: int, notice_ref: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(Escalation).where(Escalation.id == escalation_id).values(notice_ref=notice_ref)
        )


async def resolve_escalation(db: Database, *, escalation_id: int, resolved_by: str) -> bool:
    """Close an open escalation; False if it was not open (already resolved or unknown)."""
    async with db.session() as session:
        result = await session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id, Escalation.status == "open")
            .values(status="resolved", resolved_by=resolved_by, resolved_at=datetime.now(UTC))
        )
        return result.rowcount == 1


async def get_escalation(db: Database, *, escalation_id: int) -> Escalation | None:
    async with db.sessions() as session:
        return await session.get(Escalation, escalation_id)
