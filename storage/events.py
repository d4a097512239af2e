"""The exactly-once ledger of platform events (``processed_events``).

``claim_event`` inserts ``(platform, event_id)``; the unique constraint makes a retry, the twin of
a double delivery, or a second replica lose the race. The row carries the work's state and a
lease, so a process that starts later can answer what a crashed one acked but never answered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import ProcessedEvent

ANSWERING = "answering"
ANSWERED = "answered"
IGNORED = "ignored"
FAILED = "failed"
DEFAULT_LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


async def claim_event(
    db: Database,
    *,
    platform: str,
    event_id: str,
    payload: dict[str, Any] | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> bool:
    """Take an event for this process. False means someone already took it: do nothing.

    A single Core INSERT (no ORM unit of work): this runs before the platform's ack, on the
    hot path of every request.
    """
    statement = insert(ProcessedEvent).values(
        platform=platform,
        event_id=event_id,
        status=ANSWERING,
        attempts=1,
        lease_until=_now() + lease,
        payload=payload,
        received_at=_now(),
    )
    try:
        async with db.single_statement() as session:
            await session.execute(statement)
        return True
    except IntegrityError:
        return False


async def finish_event(
    db: Database, *, platform: str, event_id: str, status: str = ANSWERED
) -> None:
    async with db.session() as session:
        await session.execute(
            update(ProcessedEvent)
            .where(ProcessedEvent.platform == platform, ProcessedEvent.event_id == event_id)
            .values(status=status, lease_until=None, finished_at=_now())
        )


async def take_expired(
    db: Database, *, platform: str, limit: int = 20, lease: timedelta = DEFAULT_LEASE
) -> list[ProcessedEvent]:
    """Re-lease events whose worker died mid-answer. Each is handed to exactly one caller.

    The conditional UPDATE (same lease as read) is the compare-and-set that keeps two replicas
    from taking the same expired event. Events that failed ``MAX_ATTEMPTS`` times are marked failed.
    """
    now = _now()
    async with db.sessions() as session:
        candidates = (
            await session.scalars(
                select(ProcessedEvent)
                .where(
                    ProcessedEvent.platform == platform,
                    ProcessedEvent.status == ANSWERING,
                    or_(ProcessedEvent.lease_until.is_(None), ProcessedEvent.lease_until < now),
                )
                .order_by(ProcessedEvent.id)
                .limit(limit)
            )
        ).all()
    taken: list[ProcessedEvent] = []
    for row in candidates:
        give_up = row.attempts >= MAX_ATTEMPTS
        async with db.session() as session:
            result = await session.execute(
                update(ProcessedEvent)
                .where(
                    ProcessedEvent.id == row.id,
                    ProcessedEvent.status == ANSWERING,
                    ProcessedEvent.attempts == row.attempts,
                )
                .values(
                    status=FAILED if give_up else ANSWERING,
                    attempts=row.attempts + 1,
                    lease_until=None if give_up else now + lease,
                )
            )
        if result.rowcount == 1 and not give_up:
            taken.append(row)
    return taken


async def event_status(db: Database, *, platform: str, event_id: str) -> str | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(ProcessedEvent.status).where(
                ProcessedEvent.platform == platform, ProcessedEvent.event_id == event_id
            )
        )


async def prune_events(db: Database, *, older_than: timedelta) -> int:
    """Forget finished ledger rows older than ``older_than`` (platform retries stop long before)."""
    async with db.session() as session:
        result = await session.execute(
            delete(ProcessedEvent).where(
                ProcessedEvent.received_at < _now() - older_than,
                ProcessedEvent.status != ANSWERING,
            )
        )
        return int(result.rowcount or 0)


async def renew_lease(
    db: Database,
    *,
    platform: str,
    event_id: str,
    attempts: int,
    lease: timedelta = DEFAULT_LEASE,
) -> bool:
    """Extend the lease of an event this worker still owns; False if another worker took it over.

    ``attempts`` is the count the worker's claim saw (1 for ``claim_event``, the row's count plus
    one after ``take_expired``): it changes when a takeover happens, so it is the ownership check.
    """
    async with db.session() as session:
        result = await session.execute(
            update(ProcessedEvent)
            .where(
                ProcessedEvent.platform == platform,
                ProcessedEvent.event_id == event_id,
                ProcessedEvent.status == ANSWERING,
                ProcessedEvent.attempts == attempts,
            )
            .values(lease_until=_now() + lease)
        )
        return result.rowcount == 1


async def release_lease(db: Database, *, platform: str, event_id: str, attempts: int) -> bool:
    """Give up an event at shutdown without finishing it: its lease ends now, so a restarted
    process or another replica takes it at once instead of waiting for the lease to run out."""
    async with db.session() as session:
        result = await session.execute(
            update(ProcessedEvent)
            .where(
                ProcessedEvent.platform == platform,
                ProcessedEvent.event_id == event_id,
                ProcessedEvent.status == ANSWERING,
                ProcessedEvent.attempts == attempts,
            )
            .values(lease_until=_now() - timedelta(seconds=1))
        )
        return result.rowcount == 1
