"""The ledger's asker column on real SQLite and PostgreSQL: the migration that adds it keeps
every row (SQLite rebuilds the table in batch mode) and downgrades; an earlier question of
the same asker is "held" only while a live lease holds it; an edit supersedes the unfinished
work of its question's earlier versions, whose leases stay until their holders let go."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from bot.inbox import Inbox, TryLater, Work
from storage import events, migrate
from storage.db import Database
from tests.inbox_support import ledger
from tests.test_migrations import execute

PREVIOUS = "0008_ops"
ASKER = "slack:T1:C1:1.0 U1"


async def test_the_asker_migration_keeps_every_row_and_downgrades(any_db_url: str) -> None:
    await migrate.upgrade(any_db_url, PREVIOUS)
    now = "CURRENT_TIMESTAMP"
    for row_id, status in [(1, "answered"), (2, "answering"), (3, "failed")]:
        await execute(
            any_db_url,
            "INSERT INTO processed_events (id, platform, event_id, status, attempts, "
            f"received_at) VALUES ({row_id}, 'slack', 'ev{row_id}', '{status}', 1, {now})",
        )
    columns = "id, platform, event_id, status, attempts"
    before = await execute(any_db_url, f"SELECT {columns} FROM processed_events ORDER BY id")
    await migrate.upgrade(any_db_url, "head")
    assert await migrate.check(any_db_url) == []
    after = await execute(any_db_url, f"SELECT {columns}, asker FROM processed_events ORDER BY id")
    assert [tuple(row[:-1]) for row in after] == [tuple(row) for row in before]
    assert {row[-1] for row in after} == {None}
    await migrate.downgrade(any_db_url, PREVIOUS)
    kept = await execute(any_db_url, f"SELECT {columns} FROM processed_events ORDER BY id")
    assert [tuple(row) for row in kept] == [tuple(row) for row in before]
    assert (await migrate.upgrade(any_db_url, "head")).after == migrate.head_revision()


async def _claim(db: Database, key: str, *, asker: str = ASKER, lease: float = 15.0) -> None:
    assert await events.claim_event(
        db,
        platform="slack",
        event_id=key,
        payload={},
        lease=timedelta(seconds=lease),
        asker=asker,
    )


async def _held_before(db: Database, key: str) -> bool:
    return await events.earlier_turn_held(db, platform="slack", event_id=key, asker=ASKER)


async def test_an_earlier_question_is_waited_for_only_while_a_live_lease_holds_it(
    db: Database,
) -> None:
    await _claim(db, "other", asker="slack:T1:C1:1.0 U2")  # someone else's question
    await _claim(db, "first")
    await _claim(db, "second")
    assert not await _held_before(db, "first")
    assert await _held_before(db, "second")
    await events.finish_event(db, platform="slack", event_id="first", attempts=1)
    assert not await _held_before(db, "second")  # answered: its turn is over
    await events.finish_event(db, platform="slack", event_id="second", attempts=1)
    await _claim(db, "dead", lease=-1)  # its owner died: the lease ran out
    await _claim(db, "third")
    assert not await _held_before(db, "third")


async def test_an_edit_supersedes_its_earlier_versions_which_hold_until_let_go(
    db: Database,
) -> None:
    for key in ("q", "q:edit:1", "other", "q:edit:2"):
        await _claim(db, key)
    stopped = await events.supersede(
        db,
        platform="slack",
        event_id="q:edit:2",
        asker=ASKER,
        question_key="q",
        edit_mark=":edit:",
    )
    assert stopped == 2
    statuses = {
        key: await events.event_status(db, platform="slack", event_id=key)
        for key in ("q", "q:edit:1", "other", "q:edit:2")
    }
    assert statuses == {
        "q": events.SUPERSEDED,
        "q:edit:1": events.SUPERSEDED,
        "other": events.ANSWERING,
        "q:edit:2": events.ANSWERING,
    }
    await events.finish_event(db, platform="slack", event_id="other", attempts=1)
    assert await _held_before(db, "q:edit:2")  # the old versions' holders still take back
    for key in ("q", "q:edit:1"):
        assert await events.let_go(db, platform="slack", event_id=key, attempts=1)
    assert not await _held_before(db, "q:edit:2")
    taken = await events.take_expired(db, platform="slack")
    assert taken.work == [] and taken.given_up == []  # nobody answers the old text again


def _question(n: int) -> dict[str, Any]:
    return {
        "kind": "message",
        "session_id": "slack:T1:C1:1.0",
        "msg": {"id": f"m{n}", "author_id": "U1"},
    }


async def test_a_dead_workers_question_holds_the_askers_next_only_until_its_lease_runs_out(
    db: Database,
) -> None:
    """A worker took the asker's first question and was killed: its row keeps a live lease
    nobody renews. The asker's next question waits for it, but only until that lease runs
    out; then both are answered (the first taken over by the recovery)."""
    lease = timedelta(seconds=1.5)
    queue = Inbox(db, "slack", _never, answer_inline=False)
    assert await queue.submit("q1", _question(1))
    [taken] = (await events.take_expired(db, platform="slack", lease=lease)).work
    assert taken.event_id == "q1"  # ...by a worker that dies now, holding it
    started: dict[str, float] = {}

    async def deliver(work: Work) -> None:
        started[work.key] = time.monotonic()

    inbox = Inbox(db, "slack", deliver, lease=lease, recover_every=0.1)
    asked = time.monotonic()
    assert await inbox.submit("q2", _question(2))
    inbox.start()
    try:
        while "q1" not in started:
            assert time.monotonic() - asked < 10
            await asyncio.sleep(0.05)
        await inbox.wait_idle(5)
    finally:
        await inbox.aclose(0)
    assert 0.8 < started["q2"] - asked < 5  # waited for the dead worker's lease, not for ever
    rows = await ledger(db, "slack")
    assert {key: row.status for key, row in rows.items()} == {
        "q1": events.ANSWERED,
        "q2": events.ANSWERED,
    }


async def _never(work: Work) -> None:
    raise AssertionError(f"the queueing process answered {work.key}")


async def test_work_handed_back_after_its_question_was_edited_is_taken_back_not_retried(
    db: Database,
) -> None:
    """The platform failed for a while (TryLater) just as the question was edited: no attempt
    will follow to remove what this one posted, so it is taken back at once and the row let
    go of (else the edit's answer would wait for the whole lease)."""
    edited = asyncio.Event()
    retracted: list[str] = []

    async def deliver(work: Work) -> None:
        await edited.wait()
        raise TryLater("the platform failed")

    async def retract(work: Work) -> None:
        retracted.append(work.key)

    inbox = Inbox(db, "slack", deliver, retract=retract, lease=timedelta(seconds=30))
    assert await inbox.submit("q", _question(1))
    await _claim(db, "q:edit:1")
    await events.supersede(
        db, platform="slack", event_id="q:edit:1", asker=ASKER, question_key="q", edit_mark=":edit:"
    )
    edited.set()
    await inbox.wait_idle(5)
    await inbox.aclose(0)
    assert retracted == ["q"]
    row = (await ledger(db, "slack"))["q"]
    assert (row.status, row.lease_until) == (events.SUPERSEDED, None)
    assert not await _held_before(db, "q:edit:1")
