"""Hand-offs to a human: open (at most one open per conversation), notice, look up, resolve.

"One open escalation per conversation" is enforced by the partial unique index
``uq_escalations_open_session`` (WHERE status = 'open'): opening is an insert that does nothing
on conflict, so two clicks or two replicas racing get one row and exactly one of them learns it
created it. The team's notice is claimed the same way, so it is sent once: for good
(``claim_notice``, a mention in the conversation), or by one piece of inbox work until it posts
the notice or gives up (``claim_notice_for``, ``release_notice``). A bare claim an older version
left behind is taken over once its lease has run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.models import Escalation

OPEN = "open"
RESOLVED = "resolved"
# notice_ref of a bare claim: a process of an older version made it as it opened the escalation,
# right before posting the notice in a channel, and replaced it by the notice's place once posted.
# Held no longer than NOTICE_PENDING_LEASE after the escalation was opened: a claim older than
# that is a process that died (or failed alone) in between, and the notice is still wanted.
NOTICE_PENDING = "pending"
NOTICE_PENDING_LEASE = timedelta(minutes=2)
# notice_ref once the team was mentioned in the conversation itself (a target with no channel).
NOTICE_MENTIONED = "mentioned"
# notice_ref while a piece of inbox work (named after the prefix) posts the notice; unlike the
# bare claim it is released when that work gives up, so asking again tries again.
NOTICE_HELD_BY = "pending="


@dataclass(frozen=True, slots=True)
class Opened:
    escalation: Escalation
    created: bool  # False: the conversation already had an open escalation (this is it)


async def open_escalation(
    db: Database,
    *,
    session_id: str,
    platform: str,
    channel_id: str,
    thread_id: str | None,
    requested_by: str,
    reason: str | None = None,
) -> Opened:
    """Open an escalation, or return the conversation's already open one (no duplicates)."""
    values = {
        "session_id": session_id,
        "platform": platform,
        "channel_id": channel_id,
        "thread_id": thread_id,
        "requested_by": requested_by,
        "reason": reason,
        "status": OPEN,
        "created_at": datetime.now(UTC),
    }
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(Escalation)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["session_id"], index_where=text("status = 'open'"))
        .returning(Escalation.id)
    )
    async with db.session() as session:
        created_id = await session.scalar(statement)
        row = await session.scalar(
            select(Escalation).where(Escalation.session_id == session_id, Escalation.status == OPEN)
        )
    if row is None:  # resolved between the insert and the read: the next click opens anew
        raise LookupError(f"escalation for {session_id} vanished while opening")
    return Opened(row, created=created_id is not None and created_id == row.id)


async def claim_notice(db: Database, *, escalation_id: int) -> bool:
    """True for exactly one caller per escalation: the one that mentions the team."""
    async with db.session() as session:
        result = await session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id, Escalation.notice_ref.is_(None))
            .values(notice_ref=NOTICE_MENTIONED)
        )
        return result.rowcount == 1


def _pending_cutoff() -> datetime:
    # ``created_at`` is written by the application's clock, so it is compared with that clock.
    return datetime.now(UTC) - NOTICE_PENDING_LEASE


def stale_pending(row: Escalation) -> bool:
    """Whether ``row`` carries a bare claim whose lease ran out (see ``NOTICE_PENDING``)."""
    return row.notice_ref == NOTICE_PENDING and row.created_at < _pending_cutoff()


def held_by(owner: str) -> str:
    """The notice_ref of a notice claimed by ``owner`` (an inbox key)."""
    return (NOTICE_HELD_BY + owner)[:255]


async def claim_notice_for(db: Database, *, escalation_id: int, owner: str) -> bool:
    """True when ``owner`` holds the notice of the escalation: it took it now, or already held
    it (an earlier attempt of the same work), or took over a stale bare claim. False: posted,
    or another request (or a live process of an older version) is posting it."""
    mine = held_by(owner)
    stale = (Escalation.notice_ref == NOTICE_PENDING) & (Escalation.created_at < _pending_cutoff())
    async with db.session() as session:
        result = await session.execute(
            update(Escalation)
            .where(
                Escalation.id == escalation_id,
                Escalation.notice_ref.is_(None) | (Escalation.notice_ref == mine) | stale,
            )
            .values(notice_ref=mine)
        )
        return result.rowcount == 1


async def release_notice(db: Database, *, escalation_id: int, owner: str) -> None:
    """``owner`` gave up posting the notice: the next request for a human may try again."""
    async with db.session() as session:
        await session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id, Escalation.notice_ref == held_by(owner))
            .values(notice_ref=None)
        )


async def set_notice_ref(db: Database, *, escalation_id: int, notice_ref: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(Escalation).where(Escalation.id == escalation_id).values(notice_ref=notice_ref)
        )


async def resolve_escalation(
    db: Database, *, escalation_id: int, resolved_by: str
) -> Escalation | None:
    """Close an open escalation and return it; None if it was not open (resolved or unknown)."""
    async with db.session() as session:
        result = await session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id, Escalation.status == OPEN)
            .values(status=RESOLVED, resolved_by=resolved_by, resolved_at=datetime.now(UTC))
        )
        if result.rowcount != 1:
            return None
    return await get_escalation(db, escalation_id=escalation_id)


async def has_open(db: Database, *, session_id: str) -> bool:
    """Is a hand-off open in this conversation? Asked for thread replies that do not mention
    the bot (where one is open the bot steps back), so a prebuilt read of at most one id."""
    async with db.reads() as conn:
        return (await conn.scalar(_OPEN_ID, {"b_session": session_id})) is not None


_ESCALATIONS: Table = Escalation.__table__  # type: ignore[assignment]
_OPEN_ID = (
    select(_ESCALATIONS.c.id)
    .where(_ESCALATIONS.c.session_id == bindparam("b_session"), _ESCALATIONS.c.status == OPEN)
    .limit(1)
)


async def get_escalation(db: Database, *, escalation_id: int) -> Escalation | None:
    async with db.sessions() as session:
        return await session.get(Escalation, escalation_id)
