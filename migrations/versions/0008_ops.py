"""Operations: more per-channel settings, and the review queue of answers learned from humans.

``channel_settings`` gains the refusal language, the reaction used when an auto-answer channel
stays silent, the Discord forum tag names and whether resolving archives a forum post (all
nullable: None means the built-in behaviour, so existing rows need no default).
``learned_answers`` holds drafts captured from resolved hand-offs until an operator reviews them.

Revision ID: 0008_ops
Revises: 0005_slack_oauth
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_ops"
down_revision: str | None = "0007_escalation_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("channel_settings") as batch:
        batch.add_column(sa.Column("refusal_language", sa.String(16), nullable=True))
        batch.add_column(sa.Column("unanswered_reaction", sa.String(64), nullable=True))
        batch.add_column(sa.Column("forum_tags", _JSON, nullable=True))
        batch.add_column(sa.Column("archive_on_resolve", sa.Boolean(), nullable=True))
    op.create_table(
        "learned_answers",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("escalation_id", _ID, nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("thread_link", sa.String(1000), nullable=True),
        sa.Column("answered_by", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewed_by", sa.String(255), nullable=True),
        sa.Column("document_source", sa.String(1000), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("reviewed_at", _TS, nullable=True),
        sa.UniqueConstraint("escalation_id"),
    )
    op.create_index("ix_learned_answers_status", "learned_answers", ["status"])


def downgrade() -> None:
    op.drop_index("ix_learned_answers_status", table_name="learned_answers")
    op.drop_table("learned_answers")
    with op.batch_alter_table("channel_settings") as batch:
        batch.drop_column("archive_on_resolve")
        batch.drop_column("forum_tags")
        batch.drop_column("unanswered_reaction")
        batch.drop_column("refusal_language")
