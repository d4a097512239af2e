"""The ledger names each question's asker and conversation (``processed_events.asker``).

The inbox answers one asker's questions in one conversation one at a time across processes:
before answering, it looks for an earlier question of the same asker still held by a live
lease elsewhere, through a partial index on the rows that hold a lease. Existing rows keep
everything and get no asker (None: not ordered, as before this revision).

Revision ID: 0009_event_askers
Revises: 0008_ops
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_event_askers"
down_revision: str | None = "0008_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_processed_events_asker_held"
HELD = sa.text("lease_until IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("processed_events") as batch:
        batch.add_column(sa.Column("asker", sa.String(255), nullable=True))
    op.create_index(
        INDEX,
        "processed_events",
        ["platform", "asker"],
        postgresql_where=HELD,
        sqlite_where=HELD,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="processed_events")
    with op.batch_alter_table("processed_events") as batch:
        batch.drop_column("asker")
