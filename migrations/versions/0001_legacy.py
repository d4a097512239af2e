"""The legacy schema that earlier deployments have (the old customer-support backend).

``memories.metadata`` is the column whose name crashed the old ``Memory`` model at import.
Databases that already have this table but no ``alembic_version`` are adopted by stamping this
revision (see ``storage.migrate``), never by running it.

Revision ID: 0001_legacy
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_legacy"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(255), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("timestamp", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_memories_session_id", "memories", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_memories_session_id", table_name="memories")
    op.drop_table("memories")
