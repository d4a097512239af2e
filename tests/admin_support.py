"""Seeding for the admin page and metrics tests: a migrated database with something in every
section (answers, a refusal, an open hand-off, a learned draft, a channel setting)."""

from __future__ import annotations

from storage import channel_settings, escalations, learned, migrate
from storage.db import Database
from storage.models import Feedback, Memory

DRAFT_QUESTION = "Can I pay with PayPal?"
DRAFT_ANSWER = "Yes: PayPal is accepted on annual plans. Choose PayPal on the Billing page."
THREAD_LINK = "https://test.slack.com/archives/C1/p2000002"


async def seed_admin_data(url: str) -> int:
    """Returns the learned draft's id."""
    await migrate.upgrade(url)
    db = Database(url)
    try:
        async with db.session() as session:
            rows = [
                ("s1", "user", None),
                ("s1", "assistant", {"kind": "answer", "first_token_ms": 120.0, "cited": [1],
                                     "sources": [{"n": 1, "source": "auth.md"}]}),
                ("s2", "user", None),
                ("s2", "assistant", {"kind": "no_answer", "first_token_ms": 40.0,
                                     "question": "Is there a Kubernetes operator?"}),
                ("s3", "user", None),
                ("s3", "event", {"kind": "unanswered",
                                 "question": "Kubernetes operator available?"}),
            ]  # fmt: skip
            for session_id, role, meta in rows:
                session.add(
                    Memory(session_id=session_id, role=role, content="x", tool_metadata=meta)
                )
            await session.flush()
            session.add(Feedback(memory_id=None, session_id="s1", user_id="u1", value=1))
        escalation = (await escalations.open_escalation(
            db, session_id="slack:T1:C1:1.1", platform="slack", channel_id="C1",
            thread_id="1.1", requested_by="UASK", reason="needs a refund <today>",
        )).escalation  # fmt: skip
        resolved = (await escalations.open_escalation(
            db, session_id="slack:T1:C1:2.2", platform="slack", channel_id="C1",
            thread_id="2.2", requested_by="UASK", reason="paypal",
        )).escalation  # fmt: skip
        await escalations.resolve_escalation(db, escalation_id=resolved.id, resolved_by="UTEAM")
        draft = await learned.create_draft(
            db, escalation_id=resolved.id, session_id=resolved.session_id, platform="slack",
            question=DRAFT_QUESTION, answer=DRAFT_ANSWER, answered_by="UTEAM",
            thread_link=THREAD_LINK,
        )  # fmt: skip
        await channel_settings.upsert_setting(
            db, platform="slack", workspace_id="T1", channel_id="CHELP", auto_answer=True,
            knowledge_filter="billing/",
        )  # fmt: skip
        assert escalation.id and draft is not None
        return int(draft.id)
    finally:
        await db.dispose()
