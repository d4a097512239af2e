"""Helpers for the inbox tests: a slow model, real database faults, and ledger inspection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select, text

from bot.agent import SEARCH_FIRST_CALL_ID
from storage.db import Database
from storage.models import Base, ProcessedEvent
from tests.fakes.openai_server import FakeOpenAI, Turn, default_policy

INBOX_FAST = {"lease_seconds": 1.0, "recover_every": 0.3}


@contextlib.asynccontextmanager
async def tables_on(url: str) -> AsyncIterator[Database]:
    """A database with the tables made (processes share it), disposed of afterwards."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield db
    finally:
        await db.dispose()


def slow_policy(seconds_per_call: float) -> Callable[[dict[str, Any]], Turn]:
    """The fake model's usual answers, each model call taking ``seconds_per_call``."""

    def policy(request: dict[str, Any]) -> Turn:
        return replace(default_policy(request), delay=seconds_per_call)

    return policy


def model_runs(fake: FakeOpenAI) -> list[str]:
    """The question of every model run: requests that start a run (no tool result yet but
    the agent's own first search)."""
    runs = []
    for body in fake.requests:
        messages = body.get("messages", [])
        last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        calls = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
        if all(m.get("tool_call_id") == SEARCH_FIRST_CALL_ID for m in calls):
            runs.append(str(messages[last_user].get("content", "")))
    return runs


@contextlib.asynccontextmanager
async def finish_fails_once(db: Database, observed: Callable[[], bool]) -> AsyncIterator[None]:
    """A real fault in the database: recording an answer as "answered" raises (a trigger)
    until ``observed()`` says the failure happened; then the trigger is disarmed."""
    statements = (
        [
            "CREATE TABLE fault_armed (x INTEGER)",
            "INSERT INTO fault_armed VALUES (1)",
            "CREATE TRIGGER fail_finish BEFORE UPDATE OF status ON processed_events "
            "WHEN NEW.status = 'answered' AND EXISTS (SELECT 1 FROM fault_armed) "
            "BEGIN SELECT RAISE(ABORT, 'injected fault: finish fails'); END",
        ]
        if db.is_sqlite
        else [
            "CREATE TABLE fault_armed (x INTEGER)",
            "INSERT INTO fault_armed VALUES (1)",
            "CREATE FUNCTION fail_finish() RETURNS trigger AS $$ BEGIN "
            "IF NEW.status = 'answered' AND EXISTS (SELECT 1 FROM fault_armed) THEN "
            "RAISE EXCEPTION 'injected fault: finish fails'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER fail_finish BEFORE UPDATE ON processed_events FOR EACH ROW "
            "EXECUTE FUNCTION fail_finish()",
        ]
    )
    async with db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))

    async def disarm() -> None:
        while not observed():
            await asyncio.sleep(0.005)
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM fault_armed"))

    watcher = asyncio.create_task(disarm())
    try:
        yield
        await asyncio.wait_for(watcher, 20)
    finally:
        watcher.cancel()


async def ledger(db: Database, platform: str) -> dict[str, ProcessedEvent]:
    async with db.sessions() as session:
        rows = await session.scalars(
            select(ProcessedEvent).where(ProcessedEvent.platform == platform)
        )
        return {row.event_id: row for row in rows}
