"""At most one open escalation per conversation: a partial unique index on session_id.

Rows that already break the rule (double clicks before this revision) are settled first: the
oldest open escalation of a conversation stays open, later duplicates are marked resolved by
``system:duplicate`` (kept, not deleted, so nothing stored is lost).

Revision ID: 0007_escalation_unique
Revises: 0005_slack_oauth
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_escalation_unique"
down_revision: str | None = "0005_slack_oauth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_escalations_open_session"
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE escalations SET status = 'resolved', resolved_by = 'system:duplicate', "
            "resolved_at = CURRENT_TIMESTAMP "
            "WHERE status = 'open' AND EXISTS ("
            "  SELECT 1 FROM escalations AS older"
            "  WHERE older.session_id = escalations.session_id AND older.status = 'open'"
            "  AND (older.created_at < escalations.created_at"
            "       OR (older.created_at = escalations.created_at AND older.id < escalations.id)))"
        )
    )
    op.create_index(
        INDEX,
        "escalations",
        ["session_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="escalations")
