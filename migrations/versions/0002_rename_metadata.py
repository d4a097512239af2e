"""Rename ``memories.metadata`` to ``tool_metadata``, keeping every value as it is.

``batch_alter_table`` renames in place on PostgreSQL and rebuilds the table on SQLite, copying
each stored value unchanged (JSON ``null`` stays JSON ``null``, SQL NULL stays SQL NULL).

Revision ID: 0002_rename_metadata
Revises: 0001_legacy
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_rename_metadata"
down_revision: str | None = "0001_legacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.alter_column("metadata", new_column_name="tool_metadata", existing_type=sa.JSON())


def downgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.alter_column("tool_metadata", new_column_name="metadata", existing_type=sa.JSON())
