"""Learning from resolved hand-offs: one draft per resolved escalation, nothing in the KB until
approved, and after approval the same question is answered from the team's answer, cited."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.thread_history import thread_reader
from bot import learning
from bot.agent import OfflineAgent
from bot.memory import MemoryPolicy
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, ReplyKind
from bot.responder import Responder
from storage import learned, migrate
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.cli_support import run_supportbot
from tests.core_support import build_kb
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api  # noqa: F401

QUESTION = "Can I pay with PayPal?"
TEAM_ANSWER = "Yes: PayPal is accepted on annual plans. Choose PayPal on the Billing page."


def asked(text: str, thread: str, msg_id: str) -> IncomingMessage:
    return IncomingMessage(
        id=msg_id,
        conversation=ConversationKey(Platform.SLACK, "T1", "C1", thread),
        author=Author("UASK"),
        text=text,
        mentions_bot=True,
    )


def supportbot(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return run_supportbot(*args, cwd=cwd, env=env)


async def answered_from_learned(responder: Responder, thread: str) -> object:
    """The running process sees the CLI's ingest within LanceDB's read-consistency interval."""
    reply = None
    for attempt in range(20):
        reply = await responder.handle(asked(QUESTION, thread, f"{thread}-{attempt}"))
        if reply.kind is ReplyKind.ANSWER:
            return reply
        await asyncio.sleep(0.3)
    return reply


async def test_resolved_escalation_becomes_one_draft_then_a_cited_answer(
    any_db_url: str,
    tmp_path: Path,
    api: FakeSlackAPI,  # noqa: F811
) -> None:
    await migrate.upgrade(any_db_url)
    db = Database(any_db_url)
    kb = build_kb(tmp_path)
    responder = Responder(db=db, agent=OfflineAgent(kb), memory=MemoryPolicy(db, turns=5))
    client = AsyncWebClient(token="xoxb-test", base_url=api.base_url)
    thread = f"{datetime.now(UTC).timestamp() - 5:.6f}"
    try:
        refused = await responder.handle(asked(QUESTION, thread, "m1"))
        assert refused.kind is ReplyKind.NO_ANSWER
        handoff = await responder.handle(asked("talk to a human please", thread, "m2"))
        assert handoff.kind is ReplyKind.ESCALATED and handoff.escalation_id
        api.add_user_message("C1", "anyone?", user="UASK", thread_ts=thread)
        api.add_user_message("C1", TEAM_ANSWER, user="UTEAM", thread_ts=thread)

        resolved = await responder.resolve_escalation(
            escalation_id=handoff.escalation_id, resolved_by="UTEAM",
            read_thread=thread_reader(client),
        )  # fmt: skip
        assert resolved.kind is ReplyKind.INFO
        again = await responder.resolve_escalation(
            escalation_id=handoff.escalation_id, resolved_by="UTEAM",
            read_thread=thread_reader(client),
        )  # fmt: skip
        assert again.kind is ReplyKind.INFO
        assert (
            await learning.capture_resolution(
                db, escalation_id=handoff.escalation_id, read_thread=thread_reader(client)
            )
            is None
        )
        [draft] = await learned.list_answers(db)
        assert (draft.status, draft.question, draft.answer) == ("draft", QUESTION, TEAM_ANSWER)
        assert draft.answered_by == "UTEAM"

        # Unapproved: nothing entered the knowledge base, the question is still refused.
        assert not any(s.startswith("learned/") for s in kb.sources())
        still = await responder.handle(asked(QUESTION, "t-before", "m3"))
        assert still.kind is ReplyKind.NO_ANSWER

        env = {
            "DATABASE_URL": any_db_url,
            "SUPPORTBOT_KB_URI": str(tmp_path / "kb"),
            "SUPPORTBOT_EMBEDDER": "none",
            "SUPPORTBOT_LEARNED_DIR": str(tmp_path / "learned_docs"),
        }
        listed = supportbot("learned", "list", "--json", env=env, cwd=tmp_path)
        assert [d["id"] for d in json.loads(listed.stdout)] == [draft.id], listed.stderr
        approved = supportbot("learned", "approve", str(draft.id), env=env, cwd=tmp_path)
        assert approved.returncode == 0, approved.stderr
        twice = supportbot("learned", "approve", str(draft.id), env=env, cwd=tmp_path)
        assert twice.returncode == 1 and "already approved" in twice.stderr

        reply = await answered_from_learned(responder, "t-after")
        assert reply.kind is ReplyKind.ANSWER
        [source, *_] = reply.sources
        today = datetime.now(UTC).date().isoformat()
        assert source.url_or_path.startswith("learned/") and source.url_or_path.endswith(".md")
        assert source.heading == f"Answered by the team on {today}"
        assert f"Answered by the team on {today}" in reply.text and "PayPal" in reply.text
        [row] = await learned.list_answers(db, status="approved")
        assert row.document_source == source.url_or_path

        # The documented upkeep of the docs (README: ingest ./docs --prune, --recreate for a
        # new embedder) keeps what the team taught: an approved answer is part of the base.
        for upkeep in (["--prune"], ["--prune", "--recreate"]):
            ingested = supportbot("ingest", str(tmp_path / "docs"), *upkeep, env=env, cwd=tmp_path)
            assert ingested.returncode == 0, ingested.stderr
            assert row.document_source in KnowledgeBase.open(str(tmp_path / "kb"), None).sources()
        kept = await answered_from_learned(responder, "t-kept")
        assert kept.kind is ReplyKind.ANSWER
        assert kept.sources[0].url_or_path == row.document_source

        # A replica (same database and knowledge base, its own, empty learned folder: DESIGN
        # keeps processes stateless apart from those two) runs the same upkeep. The database
        # records what was approved, so its prune keeps the answer, and its folder gets a copy.
        replica = dict(env, SUPPORTBOT_LEARNED_DIR=str(tmp_path / "replica_learned"))
        docs = str(tmp_path / "docs")
        for attempt in range(2):
            ingested = supportbot("ingest", docs, "--prune", env=replica, cwd=tmp_path)
            assert ingested.returncode == 0, ingested.stderr
            assert row.document_source in KnowledgeBase.open(str(tmp_path / "kb"), None).sources()
            written = "note: 1 approved learned answer written to"
            assert (written in ingested.stderr) is (attempt == 0)  # then up to date
        copy = tmp_path / "replica_learned" / str(row.document_source)
        original = tmp_path / "learned_docs" / str(row.document_source)
        assert copy.read_text(encoding="utf-8") == original.read_text(encoding="utf-8")
    finally:
        await db.dispose()


async def test_rejected_or_silent_threads_add_nothing(
    db: Database,
    tmp_path: Path,
    api: FakeSlackAPI,  # noqa: F811
) -> None:
    responder = Responder(
        db=db, agent=OfflineAgent(build_kb(tmp_path)), memory=MemoryPolicy(db, turns=5)
    )
    client = AsyncWebClient(token="xoxb-test", base_url=api.base_url)
    quiet_thread = f"{datetime.now(UTC).timestamp() - 5:.6f}"
    handoff = await responder.handle(asked("talk to a human", quiet_thread, "q1"))
    api.add_user_message("C1", "hello?", user="UASK", thread_ts=quiet_thread)
    await responder.resolve_escalation(
        escalation_id=handoff.escalation_id, resolved_by="UTEAM", read_thread=thread_reader(client)
    )
    assert await learned.list_answers(db) == []  # the team never wrote: no draft

    thread = f"{datetime.now(UTC).timestamp() - 4:.6f}"
    other = await responder.handle(asked("talk to a human", thread, "r1"))
    api.add_user_message("C1", "Restart the agent.", user="UTEAM", thread_ts=thread)
    await responder.resolve_escalation(
        escalation_id=other.escalation_id, resolved_by="UTEAM", read_thread=thread_reader(client)
    )
    [draft] = await learned.list_answers(db)
    assert draft.question == "talk to a human"  # no earlier question: the asker's words
    await learning.reject(db, learned_id=draft.id, reviewed_by="ops")
    assert (await learned.get(db, learned_id=draft.id)).status == "rejected"


def test_a_draft_id_that_is_not_a_number_is_one_clear_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_knowledge_ingest import run_cli

    code, _, err = run_cli(["learned", "reject", "abc"], capsys)
    assert code == 2
    assert "'abc' is not a draft id: use the number `supportbot learned list` shows" in err
    assert "valid integer" not in err


def test_an_ingest_whose_database_cannot_be_read_still_ingests_and_says_why(
    tmp_path: Path,
) -> None:
    # The learned answers are read from the database before an ingest; a database that is down
    # is one warning line, not a failed ingest (the docs are still read), and no secret of the
    # URL is printed. A SQLite file that does not exist is not created by looking for them.
    build_kb(tmp_path)
    env = {
        "SUPPORTBOT_KB_URI": str(tmp_path / "kb"),
        "SUPPORTBOT_EMBEDDER": "none",
        "SUPPORTBOT_LEARNED_DIR": str(tmp_path / "learned_docs"),
    }
    down = dict(env, DATABASE_URL="postgresql+asyncpg://bot:s3cret-pw@127.0.0.1:1/none")
    ingested = supportbot("ingest", str(tmp_path / "docs"), env=down, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert "warning: approved learned answers could not be read from the database" in (
        ingested.stderr
    )
    assert "s3cret-pw" not in ingested.stderr + ingested.stdout
    assert "unchanged" in ingested.stdout + ingested.stderr

    absent = tmp_path / "never.db"
    fresh = dict(env, DATABASE_URL=f"sqlite+aiosqlite:///{absent}")
    ingested = supportbot("ingest", str(tmp_path / "docs"), env=fresh, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert not absent.exists() and "warning" not in ingested.stderr
