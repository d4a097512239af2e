"""The ledger's asker column on real SQLite and PostgreSQL: the migration that adds it keeps
every row (SQLite rebuilds the table in batch mode) and downgrades; an earlier question of
the same asker is "held" only while a live lease holds it; an edit supersedes the unfinished
work of its question's earlier versions, whose leases stay until their holders let go."""

from __future__ import annotations

from datetime import timedelta

from storage import events, migrate
from storage.db import Database
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
