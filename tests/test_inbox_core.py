"""The inbox's own rules on a real database (SQLite and PostgreSQL): ownership lost cancels the
work, a cancelled answer hands its row back at once, takeover needs an expired lease, finish is
fenced, one record format round-trips."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text, update

from bot import texts
from bot.inbox import Inbox, Work
from bot.messages import (
    Attachment,
    Author,
    ConversationKey,
    IncomingMessage,
    Platform,
    ReplyKind,
    message_from_record,
    message_to_record,
)
from storage import events
from storage.db import Database
from storage.models import ProcessedEvent
from tests.inbox_support import ledger


class Hanging:
    """A deliver() that runs until released, noting how it ended."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = 0
        self.done = 0

    async def __call__(self, _work: Work) -> None:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.done += 1


async def test_work_whose_row_was_taken_over_is_cancelled(db: Database) -> None:
    deliver = Hanging()
    inbox = Inbox(db, "test", deliver, lease=timedelta(seconds=0.4))
    assert await inbox.submit("k1", {"kind": "x"})
    await asyncio.wait_for(deliver.started.wait(), 5)
    # Another process took the row over (its attempt number moved on).
    async with db.session() as session:
        await session.execute(
            update(ProcessedEvent).where(ProcessedEvent.event_id == "k1").values(attempts=2)
        )
    await inbox.wait_idle(5)
    assert (deliver.cancelled, deliver.done, inbox.stats.lost) == (1, 0, 1)
    row = (await ledger(db, "test"))["k1"]
    assert (row.status, row.attempts) == (events.ANSWERING, 2)  # the new owner's, untouched
    await inbox.aclose(0)


async def test_a_cancelled_answer_is_handed_back_at_once(db: Database) -> None:
    first = Hanging()
    inbox = Inbox(db, "test", first, lease=timedelta(seconds=30))
    assert await inbox.submit("k2", {"kind": "x"})
    await asyncio.wait_for(first.started.wait(), 5)
    await inbox.aclose(grace=0.05)  # SIGTERM: the answer does not finish in time
    assert first.cancelled == 1
    second = Hanging()
    second.release.set()
    successor = Inbox(db, "test", second, lease=timedelta(seconds=30))
    assert await successor.drain() == 1  # no 30 s wait for the lease
    await successor.wait_idle(5)
    row = (await ledger(db, "test"))["k2"]
    assert (row.status, row.attempts, second.done) == (events.ANSWERED, 2, 1)
    await successor.aclose(0)


async def test_takeover_needs_an_expired_lease_and_finish_is_fenced(db: Database) -> None:
    assert await events.claim_event(db, platform="t", event_id="live", lease=timedelta(seconds=30))
    assert await events.claim_event(db, platform="t", event_id="dead", lease=timedelta(seconds=-1))
    taken = await events.take_expired(db, platform="t")
    assert [(r.event_id, r.attempts) for r in taken.work] == [("dead", 2)]
    assert (await events.take_expired(db, platform="t")).work == []  # each row to one caller
    # The dead owner wakes up: its attempt no longer owns the row.
    assert not await events.finish_event(db, platform="t", event_id="dead", attempts=1)
    assert not await events.release_lease(db, platform="t", event_id="dead", attempts=1)
    assert await events.renew_leases(db, platform="t", owned=[("dead", 1), ("live", 1)]) == {"live"}
    assert await events.finish_event(db, platform="t", event_id="dead", attempts=2)
    assert await events.event_status(db, platform="t", event_id="dead") == events.ANSWERED


async def test_leases_are_read_back_as_aware_times_near_the_database_clock(db: Database) -> None:
    assert await events.claim_event(db, platform="t", event_id="c", lease=timedelta(seconds=60))
    row = (await ledger(db, "t"))["c"]
    assert row.lease_until is not None and row.lease_until.tzinfo is not None
    delta = row.lease_until - row.received_at
    assert timedelta(seconds=59) < delta < timedelta(seconds=61)
    assert abs(row.received_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_ledger_statements_keep_the_stored_formats(db: Database) -> None:
    """SQLite compares the timestamps as text: every one the ledger writes has SQLAlchemy's
    format; a missing payload is SQL NULL; the heartbeat renews past one 200-row chunk."""
    assert await events.claim_event(db, platform="t", event_id="done", lease=timedelta(seconds=5))
    assert await events.finish_event(db, platform="t", event_id="done", attempts=1)
    for key in ("queued", "spent", "mine"):
        assert await events.claim_event(db, platform="t", event_id=key, lease=timedelta(0))
    assert await events.update_payload(
        db, platform="t", event_id="spent", attempts=1, payload={"kind": "x"}
    )
    async with db.session() as session:  # "spent" already had its last try
        await session.execute(
            update(ProcessedEvent).where(ProcessedEvent.event_id == "spent").values(attempts=3)
        )
    taken = await events.take_expired(db, platform="t", exclude={"mine"})
    assert [(r.event_id, r.attempts) for r in taken.work] == [("queued", 2)]
    assert [(r.event_id, r.payload) for r in taken.given_up] == [("spent", {"kind": "x"})]
    many = [(f"r{i}", 1) for i in range(250)]
    for key, _ in many:
        assert await events.claim_event(db, platform="t", event_id=key)
    stale = [(key, 2) for key, _ in many[:3]]
    kept = await events.renew_leases(db, platform="t", owned=[*many[3:], *stale, ("queued", 2)])
    assert kept == {key for key, _ in many[3:]} | {"queued"}
    query = text(
        "SELECT event_id, lease_until, received_at, finished_at, payload IS NULL"
        " FROM processed_events WHERE platform = 't' AND event_id NOT LIKE 'r%'"
    )
    async with db.reads() as conn:
        rows = {row[0]: row[1:] for row in (await conn.execute(query)).all()}
    assert [rows[k][3] for k in ("done", "queued", "spent")] == [True, True, False]
    assert rows["done"][0] is None and rows["spent"][0] is None and rows["queued"][2] is None
    if db.is_sqlite:
        stamps = [value for row in rows.values() for value in row[:3] if value is not None]
        assert len(stamps) == 8
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", s) for s in stamps)


def test_one_record_format_round_trips() -> None:
    msg = IncomingMessage(
        id="m1",
        conversation=ConversationKey(Platform.DISCORD, "G1", "C1", "T1"),
        author=Author("U1", "Ada"),
        text="x" * 50,
        sent_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        is_direct=True,
        mentions_bot=True,
        command="ask",
        attachments=(Attachment("a.txt", "https://x/a.txt", "text/plain", 3),),
        raw={"not": "stored"},
    )
    assert message_from_record(message_to_record(msg)) == msg
    assert message_from_record(message_to_record(msg, max_text=10)).text == "x" * 11


def test_serve_chooses_its_shape_from_the_database() -> None:
    from bot.supervisor import workers_for

    pg = "postgresql+asyncpg://db/x"
    assert workers_for("auto", database_url=pg, cpu_count=4) == 3  # one per spare core
    assert workers_for("auto", database_url=pg, cpu_count=1) == 1  # at least one
    assert workers_for("auto", database_url="sqlite+aiosqlite:///x.db", cpu_count=8) == 0
    assert workers_for("0", database_url=pg) == 0  # inline on request
    assert workers_for("2", database_url="sqlite+aiosqlite:///x.db") == 2


async def test_a_failure_retracts_what_was_recorded_last_then_tells_once(db: Database) -> None:
    said: list[tuple[str, object]] = []
    inbox: Inbox

    async def deliver(work: Work) -> None:
        await inbox.record(work, {**work.payload, "posted": ["m1", "m2"]})
        raise RuntimeError("the platform refused")

    async def retract(work: Work) -> None:
        said.append(("retract", work.payload.get("posted")))

    async def tell(work: Work, text: str) -> None:
        said.append(("tell", text))

    inbox = Inbox(db, "test", deliver, tell=tell, retract=retract)
    assert await inbox.submit("k-retract", {"kind": "x"})
    await inbox.wait_idle(5)
    assert said == [("retract", ["m1", "m2"]), ("tell", texts.ERROR_GENERIC)]
    assert (await ledger(db, "test"))["k-retract"].status == events.FAILED
    await inbox.aclose(0)


async def test_work_taken_over_before_its_failure_is_neither_retracted_nor_told(
    db: Database,
) -> None:
    said: list[str] = []

    async def deliver(work: Work) -> None:
        # Another process takes the row over (its attempt number moves on) just before this
        # attempt fails: what is posted now is the new owner's to keep or remove.
        async with db.session() as session:
            await session.execute(
                update(ProcessedEvent)
                .where(ProcessedEvent.event_id == work.key)
                .values(attempts=work.attempts + 1)
            )
        raise RuntimeError("the platform refused")

    async def retract(_work: Work) -> None:
        said.append("retract")

    async def tell(_work: Work, _text: str) -> None:
        said.append("tell")

    inbox = Inbox(db, "test", deliver, tell=tell, retract=retract)
    assert await inbox.submit("k-lost", {"kind": "x"})
    await inbox.wait_idle(5)
    assert said == []
    await inbox.aclose(0)


async def test_an_answer_stored_but_never_delivered_is_forgotten_when_the_work_fails(
    db: Database, tmp_path: Path
) -> None:
    """The platform refused every attempt: the asker is told, and the conversation keeps the
    question but not the answer they never saw (the next question's context must not hold it)."""
    from bot.inbox import SESSION_KEY
    from storage import memories
    from tests.core_support import build_kb, message, responder

    resp = responder(db, kb=build_kb(tmp_path))
    asked = message("How do I reset my password?")
    session = asked.conversation.session_id
    told: list[str] = []

    async def deliver(work: Work) -> None:
        reply = await resp.handle(message_from_record(work.payload["msg"]))
        assert reply.kind is ReplyKind.ANSWER  # stored with the question, then ...
        raise RuntimeError("the platform refused")  # ... never delivered

    async def tell(_work: Work, text: str) -> None:
        told.append(text)

    inbox = Inbox(db, "test", deliver, tell=tell)
    payload = {"kind": "message", "msg": message_to_record(asked), SESSION_KEY: session}
    assert await inbox.submit("k-undelivered", payload)
    await inbox.wait_idle(10)
    await inbox.aclose(0)
    assert told == [texts.ERROR_GENERIC]
    rows = await memories.load_recent(db, session_id=session, limit=10)
    assert [(r.role, r.content) for r in rows] == [("user", "How do I reset my password?")]
