"""Retention (issue 11, item 8): finished ledger rows are pruned after the retention period,
`supportbot purge --older-than DAYS` removes old conversations, and `/forget` removes the
conversation's words from every table, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from bot.cli import main
from bot.inbox import Inbox, Work
from storage import events, feedback, memories
from storage.db import Database
from storage.models import Base, Escalation, Memory, ProcessedEvent
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings

__all__ = ["api", "kb_uri"]
SECRET_WORDS = "zebra quokka platypus"


async def _age(db: Database, table: type[Base], column: str, days: int) -> None:
    """Make every row of ``table`` look ``days`` old (by the database clock)."""
    async with db.session() as session:
        await session.execute(
            update(table).values({column: events.db_time(db, timedelta(days=-days))})
        )


async def _nothing(_work: Work) -> None:
    return None


async def test_finished_ledger_rows_are_pruned_after_the_retention(db: Database) -> None:
    for key in ("old-answered", "old-failed", "old-in-progress"):
        assert await events.claim_event(db, platform="slack", event_id=key, payload={"k": key})
    await events.finish_event(db, platform="slack", event_id="old-answered", attempts=1)
    await events.finish_event(
        db, platform="slack", event_id="old-failed", attempts=1, status=events.FAILED
    )
    await _age(db, ProcessedEvent, "received_at", 8)
    assert await events.claim_event(db, platform="slack", event_id="new", payload={"k": "new"})
    await events.finish_event(db, platform="slack", event_id="new", attempts=1)

    inbox = Inbox(db, "slack", _nothing, retention=timedelta(days=7))
    assert await inbox.prune() == 2
    async with db.sessions() as session:
        left = set(await session.scalars(select(ProcessedEvent.event_id)))
    assert left == {"old-in-progress", "new"}  # work in progress is never pruned
    assert await inbox.prune() == 0


async def test_finishing_a_row_drops_its_secrets_from_the_payload(db: Database) -> None:
    # An interaction's webhook token (valid 15 minutes) stayed in the ledger until the row was
    # pruned, days later.
    def payload(key: str) -> dict[str, object]:
        return {"kind": "interaction", "token": f"secret-{key}", "msg": {"text": key}}

    for key in ("answered", "failed", "given-up", "running"):
        assert await events.claim_event(db, platform="discord", event_id=key, payload=payload(key))
    assert await events.finish_event(db, platform="discord", event_id="answered", attempts=1)
    assert await events.finish_event(
        db, platform="discord", event_id="failed", attempts=1, status=events.FAILED
    )
    # The last attempt died: recovery gives the row up, and still gets the token to tell the
    # asker through it.
    await events.release_lease(db, platform="discord", event_id="given-up", attempts=1)
    taken = await events.take_expired(db, platform="discord", max_attempts=1, exclude={"running"})
    assert [(r.event_id, r.payload) for r in taken.given_up] == [("given-up", payload("given-up"))]
    async with db.sessions() as session:
        stored = dict(
            (await session.execute(select(ProcessedEvent.event_id, ProcessedEvent.payload))).all()
        )
    for key in ("answered", "failed", "given-up"):
        assert stored[key] == {"kind": "interaction", "msg": {"text": key}}, key
    assert stored["running"] == payload("running")  # still needed to answer


async def test_purge_command_removes_old_conversations(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", any_db_url)
    await asyncio.to_thread(main, ["db", "upgrade"])
    db = Database(any_db_url)
    try:
        old = await memories.append_memory(db, session_id="s-old", role="user", content="old q")
        await feedback.record_feedback(
            db, memory_id=old.id, session_id="s-old", user_id="U1", value=-1, comment="old note"
        )
        assert await events.claim_event(
            db, platform="slack", event_id="e-old", payload={"msg": {"text": "old q"}, "kind": "x"}
        )
        await events.finish_event(db, platform="slack", event_id="e-old", attempts=1)
        await _age(db, Memory, "created_at", 40)
        await _age(db, ProcessedEvent, "received_at", 40)
        async with db.session() as session:
            await session.execute(
                text("UPDATE feedback SET created_at = (SELECT created_at FROM memories LIMIT 1)")
            )
        await memories.append_memory(db, session_id="s-new", role="user", content="new q")
        capsys.readouterr()
        await asyncio.to_thread(main, ["purge", "--older-than", "30"])
        out = capsys.readouterr().out
        assert "Purged 1 memories, 1 feedback votes" in out
        async with db.sessions() as session:
            contents = list(await session.scalars(select(Memory.content)))
            payloads = list(await session.scalars(select(ProcessedEvent.payload)))
        assert contents == ["new q"]
        assert "old q" not in str(payloads)
    finally:
        await db.dispose()


async def test_forget_removes_the_question_text_from_every_table(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    h = await SlackHarness.start(api, slack_settings(any_db_url, kb_uri, api), db=db)
    dm = "D0000001"
    try:
        async with h.sender() as sender:
            for key, question in (
                ("a", f"how do I reset my password? {SECRET_WORDS}"),
                ("h", f"talk to a human about {SECRET_WORDS}"),
            ):
                await sender.command(
                    "/ask", question, channel=dm, response_url=api.response_url(key)
                )
                await api.wait_for(lambda key=key: api.responses.get(key))
                await h.bot.wait_idle()
            session_id = f"slack:T0000001:{dm}"
            found = await memories.load_recent(db, session_id=session_id, limit=10)
            answer = next(m for m in found if m.role == "assistant")
            await h.runtime.responder.feedback(
                memory_id=answer.id, session_id=session_id, user_id="UHUMAN001", helpful=False
            )
            await feedback.record_feedback(
                db,
                memory_id=answer.id,
                session_id=session_id,
                user_id="UOTHER001",
                value=-1,
                comment=f"the {SECRET_WORDS} part was wrong",
            )
            assert SECRET_WORDS in await _everything(db)  # it is stored before /forget
            await sender.command("/forget", "", channel=dm, response_url=api.response_url("f"))
            await api.wait_for(lambda: api.responses.get("f"))
            await h.bot.wait_idle()
            await asyncio.sleep(0.1)
    finally:
        await h.close()
    assert SECRET_WORDS not in await _everything(db)
    async with db.sessions() as session:
        escalation = await session.scalar(select(Escalation))
    assert escalation is not None and escalation.reason is None  # the hand-off itself stays


async def _everything(db: Database) -> str:
    """Every row of every table, as text."""
    dump = []
    async with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(select(table))).all()
            dump.extend(repr(tuple(row)) for row in rows)
    return "\n".join(dump)
