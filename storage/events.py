"""The exactly-once ledger of platform events (``processed_events``): the inbox's storage.

``claim_event`` inserts ``(platform, event_id)``; the unique constraint makes a retry, the twin of
a double delivery, or a second replica lose the race. The row carries the work's state, a lease
and an attempt number, so a process that starts later can answer what a crashed one acked but
never answered (see docs/architecture.md, "The inbox").

Every lease time is computed by the DATABASE clock inside the statement, never by this host's
clock: replicas on machines whose clocks disagree still agree on who owns a row. The attempt
number is the fencing token: renewing, finishing and releasing only touch the row when the
caller's attempt is still the current one, so a worker that lost its row can change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from storage.db import Database
from storage.models import ProcessedEvent

log = logging.getLogger(__name__)

ANSWERING = "answering"
ANSWERED = "answered"
IGNORED = "ignored"
FAILED = "failed"
FINISHED = (ANSWERED, IGNORED, FAILED)
DEFAULT_LEASE = timedelta(seconds=15)
MAX_ATTEMPTS = 3
# The payload key under which the conversation's session id is kept (``/forget`` finds rows by it).
SESSION_KEY = "session_id"
# What a scrubbed payload keeps: enough to route a late "could not answer" note, no user text.
ROUTING_KEYS = frozenset({"kind", "team_id", "enterprise_id", "channel", "channel_id", "user"})


def db_time(db: Database, offset: timedelta = timedelta(0)) -> ColumnElement[Any]:
    """The database's "now + offset" as a SQL expression of the stored timestamp format.

    SQLite keeps timestamps as text ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's format, UTC):
    the expression produces exactly that, so stored values compare as text and read back as
    datetimes. PostgreSQL compares ``timestamptz`` values natively.
    """
    seconds = offset.total_seconds()
    if db.is_sqlite:
        modifier = f"{seconds:+.3f} seconds"
        # %f is "SS.SSS": keep its milliseconds and pad them to microseconds.
        seconds_part = func.substr(func.strftime("%f", "now", modifier), 3)
        whole = func.strftime("%Y-%m-%d %H:%M:%S", "now", modifier)
        return whole.op("||")(seconds_part).op("||")(literal("000"))
    return func.now() + literal(offset)


@dataclass(frozen=True, slots=True)
class TakenRow:
    """A row handed to exactly one caller by :func:`take_expired`; ``attempts`` is its token."""

    event_id: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Taken:
    """One pass of :func:`take_expired`: rows to work on, and rows that just ran out of tries."""

    work: list[TakenRow]
    given_up: list[TakenRow]


async def claim_event(
    db: Database,
    *,
    platform: str,
    event_id: str,
    payload: dict[str, Any] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    attempts: int = 1,
) -> bool:
    """Take an event for this process. False means someone already took it: do nothing.

    A single Core INSERT (no ORM unit of work): this runs before the platform's ack, on the
    hot path of every request. ``attempts=0`` with a zero lease queues the work for whichever
    worker takes it first (the take then counts as the first attempt).
    """
    statement = insert(ProcessedEvent).values(
        platform=platform,
        event_id=event_id,
        status=ANSWERING,
        attempts=attempts,
        lease_until=db_time(db, lease),
        payload=payload,
        received_at=db_time(db),
    )
    try:
        async with db.single_statement() as session:
            await session.execute(statement)
        return True
    except IntegrityError:
        return False


def _owned(platform: str, event_id: str, attempts: int) -> ColumnElement[bool]:
    return and_(
        ProcessedEvent.platform == platform,
        ProcessedEvent.event_id == event_id,
        ProcessedEvent.status == ANSWERING,
        ProcessedEvent.attempts == attempts,
    )


async def finish_event(
    db: Database,
    *,
    platform: str,
    event_id: str,
    attempts: int,
    status: str = ANSWERED,
) -> bool:
    """Record the outcome; False when ``attempts`` no longer owns the row (fenced)."""
    async with db.single_statement() as session:
        result = await session.execute(
            update(ProcessedEvent)
            .where(_owned(platform, event_id, attempts))
            .values(status=status, lease_until=None, finished_at=db_time(db))
        )
    return bool(result.rowcount == 1)


async def update_payload(
    db: Database, *, platform: str, event_id: str, attempts: int, payload: dict[str, Any]
) -> bool:
    """Replace the work's payload (e.g. the thread its answer goes to), fenced on ``attempts``."""
    async with db.single_statement() as session:
        result = await session.execute(
            update(ProcessedEvent)
            .where(_owned(platform, event_id, attempts))
            .values(payload=payload)
        )
    return bool(result.rowcount == 1)


async def take_expired(
    db: Database,
    *,
    platform: str,
    limit: int = 20,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
    exclude: Collection[str] = (),
) -> Taken:
    """Lease rows whose owner died or that were queued for workers; each goes to one caller.

    The conditional UPDATE (same attempt as read, lease still expired by the database clock)
    is the compare-and-set that keeps two replicas from taking the same row. A row that already
    had ``max_attempts`` tries is marked failed instead and returned in ``given_up`` exactly
    once, so the caller can tell its asker. ``exclude``: ids the caller itself is still working
    on (a late heartbeat must not make a process take its own work a second time).
    """
    expired = or_(ProcessedEvent.lease_until.is_(None), ProcessedEvent.lease_until < db_time(db))
    async with db.sessions() as session:
        candidates = (
            await session.execute(
                select(ProcessedEvent.id, ProcessedEvent.attempts)
                .where(
                    ProcessedEvent.platform == platform,
                    ProcessedEvent.status == ANSWERING,
                    expired,
                    ProcessedEvent.event_id.not_in(list(exclude)),
                )
                .order_by(ProcessedEvent.id)
                .limit(limit)
            )
        ).all()
    taken = Taken([], [])
    for row_id, attempts in candidates:
        give_up = attempts >= max_attempts
        try:
            won = await _take_one(db, row_id, attempts, give_up, expired, lease)
        except SQLAlchemyError as exc:  # one row's trouble must not cost the others their turn
            log.warning("taking ledger row %s failed: %s", row_id, type(exc).__name__)
            continue
        if won is None:
            continue  # another replica took it between the read and the update
        row = TakenRow(won.event_id, dict(won.payload or {}), attempts + 1)
        (taken.given_up if give_up else taken.work).append(row)
    return taken


async def _take_one(
    db: Database,
    row_id: int,
    attempts: int,
    give_up: bool,
    expired: ColumnElement[bool],
    lease: timedelta,
) -> Any:
    async with db.single_statement() as session:
        result = await session.execute(
            update(ProcessedEvent)
            .where(
                ProcessedEvent.id == row_id,
                ProcessedEvent.status == ANSWERING,
                ProcessedEvent.attempts == attempts,
                expired,
            )
            .values(
                status=FAILED if give_up else ANSWERING,
                attempts=attempts + 1,
                lease_until=None if give_up else db_time(db, lease),
                finished_at=db_time(db) if give_up else None,
            )
            .returning(ProcessedEvent.event_id, ProcessedEvent.payload)
        )
        return result.first()


async def renew_leases(
    db: Database,
    *,
    platform: str,
    owned: Iterable[tuple[str, int]],
    lease: timedelta = DEFAULT_LEASE,
) -> set[str]:
    """Extend the leases of rows this process still owns, in one statement per 200 rows.

    ``owned`` pairs each event id with the attempt this process holds. Returns the ids still
    owned; the others were taken over (or finished) elsewhere and their work must stop.
    """
    pairs = list(owned)
    kept: set[str] = set()
    for start in range(0, len(pairs), 200):
        chunk = pairs[start : start + 200]
        matches = or_(
            *(
                and_(ProcessedEvent.event_id == key, ProcessedEvent.attempts == attempts)
                for key, attempts in chunk
            )
        )
        async with db.single_statement() as session:
            result = await session.execute(
                update(ProcessedEvent)
                .where(
                    ProcessedEvent.platform == platform,
                    ProcessedEvent.status == ANSWERING,
                    matches,
                )
                .values(lease_until=db_time(db, lease))
                .returning(ProcessedEvent.event_id)
            )
            kept.update(result.scalars().all())
    return kept


async def release_lease(db: Database, *, platform: str, event_id: str, attempts: int) -> bool:
    """Give up an event without finishing it: its lease ends now, so a restarted process or
    another replica takes it at once instead of waiting for the lease to run out."""
    async with db.single_statement() as session:
        result = await session.execute(
            update(ProcessedEvent)
            .where(_owned(platform, event_id, attempts))
            .values(lease_until=db_time(db, timedelta(seconds=-1)))
        )
    return bool(result.rowcount == 1)


async def event_status(db: Database, *, platform: str, event_id: str) -> str | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(ProcessedEvent.status).where(
                ProcessedEvent.platform == platform, ProcessedEvent.event_id == event_id
            )
        )


async def backlog(db: Database, *, platform: str) -> tuple[int, float]:
    """(questions acked and not yet finished, age in seconds of the oldest): inbox gauges."""
    async with db.sessions() as session:
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(ProcessedEvent.received_at)).where(
                    ProcessedEvent.platform == platform, ProcessedEvent.status == ANSWERING
                )
            )
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())


async def prune_events(db: Database, *, older_than: timedelta) -> int:
    """Forget finished ledger rows older than ``older_than`` (platform retries stop long before)."""
    async with db.session() as session:
        result = await session.execute(
            delete(ProcessedEvent).where(
                ProcessedEvent.received_at < db_time(db, -older_than),
                ProcessedEvent.status.in_(FINISHED),
            )
        )
        return int(result.rowcount or 0)


def _scrubbed(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    if not payload:
        return payload
    return {k: v for k, v in payload.items() if k in ROUTING_KEYS}


async def scrub_payloads(
    db: Database, *, session_id: str | None = None, older_than: timedelta | None = None
) -> int:
    """Remove user text from finished rows' payloads: one conversation's (``/forget``) or all
    rows older than ``older_than`` (``supportbot purge``). Work still in progress keeps its
    payload: it is needed to answer, and it ends up here once finished."""
    query = select(ProcessedEvent.id, ProcessedEvent.payload).where(
        ProcessedEvent.payload.is_not(None)
    )
    query = query.where(ProcessedEvent.status.in_(FINISHED))
    if session_id is not None:
        query = query.where(ProcessedEvent.payload[SESSION_KEY].as_string() == session_id)
    if older_than is not None:
        query = query.where(ProcessedEvent.received_at < db_time(db, -older_than))
    async with db.session() as session:
        rows: Sequence[Any] = (await session.execute(query)).all()
        for row_id, payload in rows:
            await session.execute(
                update(ProcessedEvent)
                .where(ProcessedEvent.id == row_id)
                .values(payload=_scrubbed(payload))
            )
    return len(rows)
