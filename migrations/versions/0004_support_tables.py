"""The tables beside ``memories``: event ledger, feedback, escalations, channel settings.

Column definitions are written out here rather than imported from ``storage.models``: a
revision must keep describing the schema of its own moment after the models move on.

Revision ID: 0004_support_tables
Revises: 0003_memories_current
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_support_tables"
down_revision: str | None = "0003_memories_current"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in the models: BIGINT keys on PostgreSQL (SQLite only autoincrements INTEGER), JSONB there.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
_TS = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "processed_events",
        _id(),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("payload", _JSON, nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.UniqueConstraint("platform", "event_id"),
    )
    op.create_index(
        "ix_processed_events_status_lease_until", "processed_events", ["status", "lease_until"]
    )
    op.create_index("ix_processed_events_received_at", "processed_events", ["received_at"])

    op.create_table(
        "feedback",
        _id(),
        sa.Column(
            "memory_id",
            _ID,
            sa.ForeignKey("memories.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("memory_id", "user_id"),
    )

    op.create_table(
        "escalations",
        _id(),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.String(255), nullable=False),
        sa.Column("thread_id", sa.String(255), nullable=True),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolved_by", sa.String(255), nullable=True),
        sa.Column("notice_ref", sa.String(255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("resolved_at", _TS, nullable=True),
    )
    op.create_index("ix_escalations_session_id", "escalations", ["session_id"])
    op.create_index("ix_escalations_status", "escalations", ["status"])

    op.create_table(
        "channel_settings",
        _id(),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("workspace_id", sa.String(255), nullable=False),
        sa.Column("channel_id", sa.String(255), nullable=False),
        sa.Column("auto_answer", sa.Boolean(), nullable=False),
        sa.Column("ephemeral", sa.Boolean(), nullable=False),
        sa.Column("escalation_target", sa.String(255), nullable=True),
        sa.Column("knowledge_filter", sa.String(255), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("platform", "workspace_id", "channel_id"),
    )


def downgrade() -> None:
    op.drop_table("channel_settings")
    op.drop_index("ix_escalations_status", table_name="escalations")
    op.drop_index("ix_escalations_session_id", table_name="escalations")
    op.drop_table("escalations")
    op.drop_table("feedback")
    op.drop_index("ix_processed_events_received_at", table_name="processed_events")
    op.drop_index("ix_processed_events_status_lease_until", table_name="processed_events")
    op.drop_table("processed_events")
