"""What forgetting a deleted message removes from storage, on SQLite and PostgreSQL: its turn
and its edits' turns, its line in a running summary, a vote's comment and a hand-off's reason
that came with its answer; other turns stay."""

from __future__ import annotations

from sqlalchemy import select

from bot.memory import SUMMARY, MemoryPolicy, forget_message
from bot.messages import edited_id
from storage import escalations, feedback, memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from storage.models import Escalation, Feedback
from tests.core_support import kb_fixture, message, responder  # noqa: F401

SESSION = "slack:T1:D1"
SECRET = "hunter2-SECRET"


async def _turn(policy: MemoryPolicy, message_id: str, question: str, **answer: object) -> int:
    return await policy.remember_turn(
        SESSION,
        question,
        {memories.MESSAGE_KEY: message_id, memories.AUTHOR_KEY: "U1"},
        f"answer to {question}",
        {memories.REPLY_KEY: message_id, "kind": "answer", **answer},
    )


async def test_forgetting_a_message_takes_its_turns_summary_line_and_words(db: Database) -> None:
    policy = MemoryPolicy(db, turns=1)
    hand_off = await escalations.open_escalation(
        db, session_id=SESSION, platform="slack", channel_id="D1", thread_id=None,
        requested_by="U1", reason=f"my token {SECRET} does not work",
    )  # fmt: skip
    answer_id = await _turn(
        policy, "1.1", f"my token {SECRET} fails", escalation_id=hand_off.escalation.id
    )
    await feedback.record_feedback(
        db, memory_id=answer_id, session_id=SESSION, user_id="U1", value=-1, comment=SECRET
    )
    await _turn(policy, edited_id("1.1", "1.5"), f"my token {SECRET} still fails")
    await _turn(policy, "2.2", "how do I reset my password?")
    await _turn(policy, "3.3", "where are invoices?")
    assert await policy.compact(SESSION)
    assert SECRET in (await policy.load(SESSION)).summary

    forgotten = await policy.forget_message(SESSION, "1.1")

    assert forgotten.rows == 4  # the question, its edit, and an answer to each
    assert forgotten.versions == ("1.1", "1.1:edit:1.5")
    context = await policy.load(SESSION)
    assert SECRET not in (context.summary or "")
    assert "reset my password" in (context.summary or "")
    rows = await memories.export_session(db, session_id=SESSION)
    assert SECRET not in str([(m.content, m.tool_metadata) for m in rows])
    assert [m.content for m in rows if m.role == "user"] == [
        "how do I reset my password?",
        "where are invoices?",
    ]
    assert sum(m.role == SUMMARY for m in rows) == 1
    async with db.sessions() as session:
        vote = (await session.scalars(select(Feedback))).one()
        escalation = (await session.scalars(select(Escalation))).one()
    assert (vote.value, vote.comment) == (-1, None)  # the fact stays, the words go
    assert escalation.reason is None
    # Forgetting it again (a second delete event) finds nothing and changes nothing.
    assert (await policy.forget_message(SESSION, "1.1")).rows == 0
    assert len(await memories.export_session(db, session_id=SESSION)) == len(rows)


async def test_an_answer_cut_short_has_stored_its_question_once_its_stream_is_closed(
    db: Database, kb: KnowledgeBase
) -> None:
    """Work that stops reading an answer (its question was deleted meanwhile) takes back what
    the answer stored once the stream is closed. The question an answer cut short keeps was
    stored later, when the inner generator was finalised, so it outlived that take-back (a
    Discord question deleted at once stayed stored, now and then)."""
    bot = responder(db, kb=kb)
    question = message("how do I reset my password?")
    stream = bot.stream(question)
    assert isinstance(await anext(stream), str)  # the answer has begun
    await stream.aclose()
    session = question.conversation.session_id
    assert [m.role for m in await memories.export_session(db, session_id=session)] == ["user"]
    assert (await forget_message(db, session, question.id)).rows == 1  # all there is to take
