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

from sqlalchemy import (
    Insert,
    Integer,
    Interval,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from storage.db import Database
from storage.models import ProcessedEvent

log = logging.getLogger(__name__)

ANSWERING = "answering"
ANSWERED = "answered"
IGNORED = "ignored"
FAILED = "failed"
# The question was deleted: whoever still holds the work must stop, post nothing more and take
# back what it posted and stored (bot.inbox); nobody takes the row again.
WITHDRAWN = "withdrawn"
# The question was edited while this version was being answered: its holder stops, takes back
# what it posted and stored for this version alone, then lets go of the lease (which it keeps
# until then, so the edit's answer waits for that); nobody takes the row again.
SUPERSEDED = "superseded"
FINISHED = (ANSWERED, IGNORED, FAILED, WITHDRAWN, SUPERSEDED)
DEFAULT_LEASE = timedelta(seconds=15)
MAX_ATTEMPTS = 3
# The payload key under which the conversation's session id is kept (``/forget`` finds rows by it).
SESSION_KEY = "session_id"
# What a scrubbed payload keeps: enough to route a late "could not answer" note, no user text.
ROUTING_KEYS = frozenset({"kind", "team_id", "enterprise_id", "channel", "channel_id", "user"})
# Payload keys holding secrets that are only needed while the work runs (a Discord interaction's
# webhook token, valid 15 minutes; a Slack ``response_url``, 30 minutes): a row that is finished
# (or given up) drops them at once instead of keeping them until it is pruned days later.
SECRET_KEYS = ("token", "response_url")

# Seconds a claim waits for SQLite's write lock held by another process: the claim runs before
# the platform's ack (Slack waits 3 s), and failing it in time means a 500 and Slack's retry.
CLAIM_LOCK_WAIT = 1.0


def db_time(db: Database, offset: timedelta = timedelta(0)) -> ColumnElement[Any]:
    """The database's "now + offset" as a SQL expression of the stored timestamp format.

    SQLite keeps timestamps as text ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's format, UTC):
    the expression produces exactly that, so stored values compare as text and read back as
    datetimes. PostgreSQL compares ``timestamptz`` values natively.
    """
    return _now_plus(db.is_sqlite, literal(_offset_value(db.is_sqlite, offset)))


def _offset_value(sqlite: bool, offset: timedelta) -> Any:
    """What the offset parameter of :func:`_now_plus` takes: SQLite's modifier text (e.g.
    ``+15.000 seconds``), PostgreSQL's interval."""
    return f"{offset.total_seconds():+.3f} seconds" if sqlite else offset


def _now_plus(sqlite: bool, offset: ColumnElement[Any]) -> ColumnElement[Any]:
    """:func:`db_time` with its offset a bound parameter (see :func:`_offset_value`)."""
    if sqlite:
        # %f is "SS.SSS": keep its milliseconds and pad them to microseconds.
        seconds_part = func.substr(func.strftime("%f", "now", offset), 3)
        whole = func.strftime("%Y-%m-%d %H:%M:%S", "now", offset)
        return whole.op("||")(seconds_part).op("||")(literal("000"))
    return func.now() + offset


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


@dataclass(frozen=True, slots=True)
class _Statements:
    """The inbox's statements for one dialect, built once per process.

    They run on every message, so they are Core statements with bound parameters (``b_*``):
    SQLAlchemy computes a prebuilt statement's cache key once and finds its compiled form in the
    cache, where a statement built per call costs a fresh expression tree and cache key, and an
    ORM session adds its bulk-update machinery (synchronize_session) for rows nobody holds.
    """

    claim: Insert
    finish: Update
    update_payload: Update
    release: Update
    candidates: Select[Any]
    take: Update
    give_up: Update
    renew: Update
    strip_secrets: Update
    earlier_turn: Select[Any]
    supersede: Update
    let_go: Update


_EVENTS: Table = ProcessedEvent.__table__  # type: ignore[assignment]


def _without_secrets(sqlite: bool) -> ColumnElement[Any]:
    """The row's payload minus :data:`SECRET_KEYS` (NULL stays NULL), computed in the
    statement, so finishing needs no read of the payload and no second round trip."""
    payload = _EVENTS.c.payload
    if sqlite:
        return func.json_remove(payload, *(f'$."{key}"' for key in SECRET_KEYS))
    listed = ", ".join(f"'{key}'" for key in SECRET_KEYS)  # constants of this module
    keys = literal_column(f"CAST(ARRAY[{listed}] AS TEXT[])")
    # Unchanged unless a key is there: a large payload then keeps its stored (TOASTed) value
    # instead of being written again.
    return case((payload.op("?|")(keys), payload.op("-")(keys)), else_=payload)


def _build(sqlite: bool) -> _Statements:
    c = _EVENTS.c
    without_secrets = _without_secrets(sqlite)
    now = _now_plus(sqlite, literal(_offset_value(sqlite, timedelta(0))))
    leased = _now_plus(sqlite, bindparam("b_lease", type_=String() if sqlite else Interval()))
    owned = and_(
        c.platform == bindparam("b_platform"),
        c.event_id == bindparam("b_event_id"),
        c.status == ANSWERING,
        c.attempts == bindparam("b_attempts"),
    )
    expired = or_(c.lease_until.is_(None), c.lease_until < now)
    # Rows of the same asker and conversation claimed before the row ``b_event_id``, among
    # those that hold a lease (the partial index on platform and asker).
    this_row = (
        select(c.id)
        .where(c.platform == bindparam("b_platform"), c.event_id == bindparam("b_event_id"))
        .scalar_subquery()
    )
    same_asker_before = and_(
        c.platform == bindparam("b_platform"),
        c.asker == bindparam("b_asker"),
        c.lease_until.is_not(None),
        c.id < this_row,
    )
    takeable = and_(
        c.id == bindparam("b_id"),
        c.status == ANSWERING,
        c.attempts == bindparam("b_attempts"),
        expired,
    )
    return _Statements(
        claim=insert(_EVENTS)
        .values(
            platform=bindparam("b_platform"),
            event_id=bindparam("b_event_id"),
            status=ANSWERING,
            attempts=bindparam("b_attempts"),
            lease_until=leased,
            payload=bindparam("b_payload", type_=c.payload.type),
            received_at=now,
            asker=bindparam("b_asker", type_=String()),
        )
        # No RETURNING of the new id on PostgreSQL: nobody reads it.
        .inline(),
        finish=update(_EVENTS)
        .where(owned)
        .values(
            status=bindparam("b_status"),
            lease_until=None,
            finished_at=now,
            payload=without_secrets,
        ),
        update_payload=update(_EVENTS)
        .where(owned)
        .values(payload=bindparam("b_payload", type_=c.payload.type)),
        release=update(_EVENTS).where(owned).values(lease_until=leased),
        candidates=select(c.id, c.attempts)
        .where(
            c.platform == bindparam("b_platform"),
            c.status == ANSWERING,
            expired,
            c.event_id.not_in(bindparam("b_exclude", expanding=True)),
        )
        .order_by(c.id)
        .limit(bindparam("b_limit", type_=Integer())),
        take=update(_EVENTS)
        .where(takeable)
        .values(
            status=ANSWERING,
            attempts=bindparam("b_next"),
            lease_until=leased,
            finished_at=None,
        )
        .returning(c.event_id, c.payload),
        give_up=update(_EVENTS)
        .where(takeable)
        .values(status=FAILED, attempts=bindparam("b_next"), lease_until=None, finished_at=now)
        .returning(c.event_id, c.payload),
        renew=update(_EVENTS)
        .where(
            c.platform == bindparam("b_platform"),
            c.status == ANSWERING,
            # (event id, attempt) pairs, expanded at execution to as many as given.
            tuple_(c.event_id, c.attempts).in_(bindparam("b_owned", expanding=True)),
        )
        .values(lease_until=leased)
        .returning(c.event_id),
        strip_secrets=update(_EVENTS)
        .where(c.id == bindparam("b_id"))
        .values(payload=without_secrets),
        earlier_turn=select(literal(1)).where(same_asker_before, c.lease_until > now).limit(1),
        supersede=update(_EVENTS)
        .where(
            same_asker_before,  # which hold a lease
            c.status == ANSWERING,
            or_(
                c.event_id == bindparam("b_question"),
                c.event_id.like(bindparam("b_versions"), escape="/"),
            ),
        )
        .values(status=SUPERSEDED, finished_at=now, payload=without_secrets),
        let_go=update(_EVENTS)
        .where(
            c.platform == bindparam("b_platform"),
            c.event_id == bindparam("b_event_id"),
            c.status == SUPERSEDED,
            c.attempts == bindparam("b_attempts"),
        )
        .values(lease_until=None),
    )


_BY_DIALECT = {True: _build(sqlite=True), False: _build(sqlite=False)}


def _statements(db: Database) -> _Statements:
    return _BY_DIALECT[db.is_sqlite]


def storable(value: Any) -> Any:
    """``value`` without what PostgreSQL cannot keep in text or JSON (NUL characters, lone
    UTF-16 surrogates): a message carrying one would otherwise fail its claim on every retry
    and never be answered."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


async def claim_event(
    db: Database,
    *,
    platform: str,
    event_id: str,
    payload: dict[str, Any] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    attempts: int = 1,
    asker: str | None = None,
) -> bool:
    """Take an event for this process. False means someone already took it: do nothing.

    A single Core INSERT (no ORM unit of work): this runs before the platform's ack, on the
    hot path of every request. ``attempts=0`` with a zero lease queues the work for whichever
    worker takes it first (the take then counts as the first attempt). ``asker``: the asker
    and conversation of a question (see :func:`earlier_turn_held`).
    """
    params = {
        "b_platform": platform,
        "b_event_id": event_id,
        "b_attempts": attempts,
        "b_lease": _offset_value(db.is_sqlite, lease),
        "b_payload": storable(payload),
        "b_asker": asker,
    }
    try:
        async with db.write(lock_wait=CLAIM_LOCK_WAIT) as conn:
            await conn.execute(_statements(db).claim, params)
        return True
    except IntegrityError:
        return False


async def _owned_update(db: Database, statement: Update, params: dict[str, Any]) -> bool:
    """Run a fenced UPDATE of one row; False when the caller's attempt no longer owns it."""
    async with db.write() as conn:
        result = await conn.execute(statement, params)
    return bool(result.rowcount == 1)


async def finish_event(
    db: Database,
    *,
    platform: str,
    event_id: str,
    attempts: int,
    status: str = ANSWERED,
) -> bool:
    """Record the outcome, dropping the payload's :data:`SECRET_KEYS`; False when
    ``attempts`` no longer owns the row (fenced)."""
    return await _owned_update(
        db,
        _statements(db).finish,
        {
            "b_platform": platform,
            "b_event_id": event_id,
            "b_attempts": attempts,
            "b_status": status,
        },
    )


async def update_payload(
    db: Database, *, platform: str, event_id: str, attempts: int, payload: dict[str, Any]
) -> bool:
    """Replace the work's payload (e.g. the thread its answer goes to), fenced on ``attempts``."""
    return await _owned_update(
        db,
        _statements(db).update_payload,
        {
            "b_platform": platform,
            "b_event_id": event_id,
            "b_attempts": attempts,
            "b_payload": storable(payload),
        },
    )


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
    statements = _statements(db)
    async with db.reads() as conn:
        candidates = (
            await conn.execute(
                statements.candidates,
                {"b_platform": platform, "b_exclude": list(exclude), "b_limit": limit},
            )
        ).all()
    taken = Taken([], [])
    lease_value = _offset_value(db.is_sqlite, lease)
    for row_id, attempts in candidates:
        give_up = attempts >= max_attempts
        statement = statements.give_up if give_up else statements.take
        params = {"b_id": row_id, "b_attempts": attempts, "b_next": attempts + 1}
        if not give_up:
            params["b_lease"] = lease_value
        try:
            async with db.write() as conn:
                won = (await conn.execute(statement, params)).first()
                if give_up and won is not None:
                    # Failed now: the secrets go, in the same transaction; the caller still
                    # gets them (``won``) to tell the asker through them.
                    await conn.execute(statements.strip_secrets, {"b_id": row_id})
        except SQLAlchemyError as exc:  # one row's trouble must not cost the others their turn
            log.warning("taking ledger row %s failed: %s", row_id, type(exc).__name__)
            continue
        if won is None:
            continue  # another replica took it between the read and the update
        row = TakenRow(won.event_id, dict(won.payload or {}), attempts + 1)
        (taken.given_up if give_up else taken.work).append(row)
    return taken


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
    lease_value = _offset_value(db.is_sqlite, lease)
    for start in range(0, len(pairs), 200):
        params = {
            "b_platform": platform,
            "b_owned": pairs[start : start + 200],
            "b_lease": lease_value,
        }
        async with db.write() as conn:
            result = await conn.execute(_statements(db).renew, params)
            kept.update(result.scalars().all())
    return kept


async def release_lease(
    db: Database,
    *,
    platform: str,
    event_id: str,
    attempts: int,
    after: timedelta = timedelta(0),
) -> bool:
    """Give up an event without finishing it: its lease ends now (or ``after`` from now, to
    try again later), so a restarted process or another replica takes it then instead of
    waiting for the lease to run out."""
    return await _owned_update(
        db,
        _statements(db).release,
        {
            "b_platform": platform,
            "b_event_id": event_id,
            "b_attempts": attempts,
            "b_lease": _offset_value(db.is_sqlite, after or timedelta(seconds=-1)),
        },
    )


async def withdraw(
    db: Database,
    *,
    platform: str,
    event_ids: Collection[str],
    hold: str | None = None,
    in_flight_prefix: str | None = None,
) -> list[TakenRow]:
    """The rows of ``event_ids`` (a deleted question's work) as they end up: work still in
    progress is withdrawn first (its holder loses it and no process takes it again), so no
    payload changes after that; then each row keeps only its routing ids (the question's text
    goes). Returned with their payloads from before that scrub (what each answer posted). The
    unique index finds the rows.

    ``hold``: a key claimed as withdrawn when nobody has claimed it yet, so that the question's
    own event, arriving after its deletion (a slow handler, a retry), is absorbed as a duplicate
    instead of being answered.

    ``in_flight_prefix``: work still in progress whose key starts with it is withdrawn too (a
    deleted question's edits, answered under keys that extend its own, which nothing stored
    names yet). Found through the status index: only unfinished rows are read."""
    c = _EVENTS.c
    now = db_time(db)
    if in_flight_prefix:
        async with db.reads() as conn:
            found = await conn.scalars(
                select(c.event_id).where(
                    c.status == ANSWERING,
                    c.platform == platform,
                    c.event_id.startswith(in_flight_prefix, autoescape=True),
                )
            )
            event_ids = list(dict.fromkeys([*event_ids, *found.all()]))
    if hold is not None:
        try:
            async with db.write() as conn:
                await conn.execute(
                    insert(_EVENTS).values(
                        platform=platform,
                        event_id=hold,
                        status=WITHDRAWN,
                        attempts=0,
                        received_at=now,
                        finished_at=now,
                    )
                )
            event_ids = [key for key in event_ids if key != hold]  # nothing else was there
        except IntegrityError:
            pass  # claimed already: withdrawn below
    if not event_ids:
        return []
    mine = and_(c.platform == platform, c.event_id.in_(list(event_ids)))
    async with db.write() as conn:
        await conn.execute(
            update(_EVENTS)
            .where(mine, c.status == ANSWERING)
            .values(status=WITHDRAWN, lease_until=None, finished_at=now)
        )
    async with db.session() as session:
        rows = (
            await session.execute(select(c.id, c.event_id, c.payload, c.attempts).where(mine))
        ).all()
        for row in rows:
            await session.execute(
                update(_EVENTS).where(c.id == row.id).values(payload=_scrubbed(row.payload))
            )
    return [TakenRow(row.event_id, dict(row.payload or {}), row.attempts) for row in rows]


async def conversation_payloads(
    db: Database, *, platform: str, session_id: str, since: datetime, other_than: str
) -> list[dict[str, Any]]:
    """The payloads of a conversation's other work received since ``since`` (what each of
    them recorded posting, for instance). Bounded by the ``received_at`` index, then filtered
    by the session key in the payload."""
    query = select(ProcessedEvent.payload).where(
        ProcessedEvent.platform == platform,
        ProcessedEvent.received_at >= since,
        ProcessedEvent.event_id != other_than,
        ProcessedEvent.payload[SESSION_KEY].as_string() == session_id,
    )
    async with db.sessions() as session:
        return [payload for payload in (await session.scalars(query)).all() if payload]


async def reopen_failed(
    db: Database,
    *,
    platform: str,
    event_id: str,
    payload: dict[str, Any],
    lease: timedelta = DEFAULT_LEASE,
    attempts: int = 1,
    asker: str | None = None,
) -> bool:
    """Take a ``failed`` row again as new work (someone asked for it explicitly): it is
    answering again under ``attempts`` with ``payload`` (and ``asker``, as a claim). A
    compare-and-set on the status, so one caller wins; False when the row is not failed (or
    not there)."""
    c = _EVENTS.c
    statement = (
        update(_EVENTS)
        .where(c.platform == platform, c.event_id == event_id, c.status == FAILED)
        .values(
            status=ANSWERING,
            attempts=attempts,
            lease_until=db_time(db, lease),
            payload=storable(payload),
            finished_at=None,
            asker=asker,
        )
    )
    async with db.write() as conn:
        result = await conn.execute(statement)
    return bool(result.rowcount == 1)


async def earlier_turn_held(db: Database, *, platform: str, event_id: str, asker: str) -> bool:
    """Whether a question of the same ``asker`` (and conversation), claimed before the row
    ``event_id``, is still held by a live lease (being answered, waiting its own turn, or
    being let go of after an edit), by the database clock. A holder that died stops holding
    it when its lease runs out, so a wait on this is bounded by that lease."""
    async with db.reads() as conn:
        found = await conn.scalar(
            _statements(db).earlier_turn,
            {"b_platform": platform, "b_event_id": event_id, "b_asker": asker},
        )
    return found is not None


async def supersede(
    db: Database, *, platform: str, event_id: str, asker: str, question_key: str, edit_mark: str
) -> int:
    """Mark the unfinished work of the earlier versions of an edited question (the row
    ``question_key`` and rows keyed ``question_key + edit_mark + …`` claimed before
    ``event_id``) as :data:`SUPERSEDED`; their leases stay until their holders let go.
    Returns how many rows that stopped."""
    async with db.write() as conn:
        result = await conn.execute(
            _statements(db).supersede,
            {
                "b_platform": platform,
                "b_event_id": event_id,
                "b_asker": asker,
                "b_question": question_key,
                "b_versions": _like_prefix(question_key + edit_mark),
            },
        )
    return int(result.rowcount or 0)


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching what starts with ``text`` (escaped with ``/``)."""
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return escaped + "%"


async def let_go(db: Database, *, platform: str, event_id: str, attempts: int) -> bool:
    """The holder of a superseded row is done taking it back: its lease ends (fenced)."""
    return await _owned_update(
        db,
        _statements(db).let_go,
        {"b_platform": platform, "b_event_id": event_id, "b_attempts": attempts},
    )


async def event_payload(db: Database, *, platform: str, event_id: str) -> dict[str, Any] | None:
    """The stored payload of one row (None: no row, or none stored)."""
    async with db.reads() as conn:
        return await conn.scalar(
            select(_EVENTS.c.payload).where(
                _EVENTS.c.platform == platform, _EVENTS.c.event_id == event_id
            )
        )


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
