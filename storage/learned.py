"""The review queue of answers learned from resolved hand-offs (``learned_answers``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import LearnedAnswer

DRAFT, APPROVED, REJECTED = "draft", "approved", "rejected"


async def create_draft(
    db: Database,
    *,
    escalation_id: int,
    session_id: str,
    platform: str,
    question: str,
    answer: str,
    thread_link: str | None = None,
    answered_by: str | None = None,
) -> LearnedAnswer | None:
    """One draft per escalation: None when this escalation already has one (a second resolve,
    a retried click, another replica)."""
    try:
        async with db.session() as session:
            row = LearnedAnswer(
                escalation_id=escalation_id,
                session_id=session_id,
                platform=platform,
                question=question,
                answer=answer,
                thread_link=thread_link,
                answered_by=answered_by,
                status=DRAFT,
            )
            session.add(row)
        return row
    except IntegrityError:
        return None


async def get(db: Database, *, learned_id: int) -> LearnedAnswer | None:
    async with db.single_statement() as session:
        return await session.get(LearnedAnswer, learned_id)


async def list_answers(
    db: Database, *, status: str | None = None, limit: int = 200
) -> list[LearnedAnswer]:
    query = select(LearnedAnswer).order_by(LearnedAnswer.id).limit(limit)
    if status is not None:
        query = query.where(LearnedAnswer.status == status)
    async with db.single_statement() as session:
        return list((await session.scalars(query)).all())


async def queue_exists(db: Database) -> bool:
    """Whether the database has the review queue (a database never migrated has not)."""
    async with db.engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: inspect(sync).has_table(LearnedAnswer.__tablename__)
        )


async def approved(db: Database) -> list[LearnedAnswer]:
    """Every approved answer with its document, oldest first (what the knowledge base holds)."""
    query = (
        select(LearnedAnswer)
        .where(LearnedAnswer.status == APPROVED, LearnedAnswer.document_source.is_not(None))
        .order_by(LearnedAnswer.id)
    )
    async with db.single_statement() as session:
        return list((await session.scalars(query)).all())


async def review(
    db: Database,
    *,
    learned_id: int,
    status: str,
    reviewed_by: str,
    document_source: str | None = None,
) -> bool:
    """Move a draft to approved or rejected; False when it is not (or no longer) a draft."""
    if status not in (APPROVED, REJECTED):
        raise ValueError("status must be approved or rejected")
    async with db.session() as session:
        result = await session.execute(
            update(LearnedAnswer)
            .where(LearnedAnswer.id == learned_id, LearnedAnswer.status == DRAFT)
            .values(
                status=status,
                reviewed_by=reviewed_by,
                reviewed_at=datetime.now(UTC),
                document_source=document_source,
            )
        )
        return result.rowcount == 1
