"""Bring ``memories`` to the current model.

Adds ``role`` (existing rows were all user turns as far as the legacy schema can tell, so they
become ``user``), renames ``timestamp`` to a timezone-aware ``created_at`` (legacy values were
naive UTC), makes ``session_id``/``content``/``created_at`` NOT NULL (legacy NULLs become ``''``
and the migration time), widens ``id`` to BIGINT and ``tool_metadata`` to JSONB on PostgreSQL,
and replaces the single-column session index by ``(session_id, id)``, which serves both
"this session's memories" and "the last N of this session" from the index alone.

PostgreSQL alters the table in place in one statement (one rewrite). SQLite cannot alter
columns, so the table is rebuilt by hand: create, copy every row with explicit expressions,
drop, rename. Copying by hand (not ``batch_alter_table``) keeps it to one pass and lets the new
NOT NULL ``role`` column be filled without leaving a server default behind. ``tool_metadata``
values are copied as stored (JSON ``null`` and SQL NULL stay distinct).

Revision ID: 0003_memories_current
Revises: 0002_rename_metadata
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003_memories_current"
down_revision: str | None = "0002_rename_metadata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TMP = "_memories_rebuild"


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _sqlite_now() -> str:
    # The text form SQLAlchemy's SQLite DateTime reads and writes.
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_swap_in(new_table: str) -> None:
    op.drop_table("memories")
    op.rename_table(new_table, "memories")


def upgrade() -> None:
    if _is_sqlite():
        op.create_table(
            _TMP,
            sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
            sa.Column("session_id", sa.String(255), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("content", sa.Text(), nullable=False),
            sa.Column("tool_metadata", sa.JSON(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_memories"),
        )
        op.get_bind().execute(
            sa.text(
                f"INSERT INTO {_TMP} (id, session_id, role, content, tool_metadata, created_at) "
                "SELECT id, COALESCE(session_id, ''), 'user', COALESCE(content, ''), "
                "tool_metadata, COALESCE(timestamp, :now) FROM memories"
            ),
            {"now": _sqlite_now()},
        )
        _sqlite_swap_in(_TMP)
    else:
        op.execute(
            "UPDATE memories SET session_id = COALESCE(session_id, ''), "
            "content = COALESCE(content, ''), "
            '"timestamp" = COALESCE("timestamp", now() AT TIME ZONE \'UTC\') '
            'WHERE session_id IS NULL OR content IS NULL OR "timestamp" IS NULL'
        )
        op.execute(
            "ALTER TABLE memories "
            "ALTER COLUMN id TYPE BIGINT, "
            "ALTER COLUMN session_id TYPE VARCHAR(255), "
            "ALTER COLUMN session_id SET NOT NULL, "
            "ALTER COLUMN content TYPE TEXT, "
            "ALTER COLUMN content SET NOT NULL, "
            "ALTER COLUMN tool_metadata TYPE JSONB USING tool_metadata::jsonb, "
            'ALTER COLUMN "timestamp" TYPE TIMESTAMP WITH TIME ZONE '
            "USING \"timestamp\" AT TIME ZONE 'UTC', "
            'ALTER COLUMN "timestamp" SET NOT NULL, '
            "ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'user'"
        )
        op.execute("ALTER TABLE memories ALTER COLUMN role DROP DEFAULT")
        op.alter_column("memories", "timestamp", new_column_name="created_at")
        _pg_id_sequence_as("BIGINT")
        op.execute("DROP INDEX IF EXISTS ix_memories_session_id")
    op.create_index("ix_memories_session_id_id", "memories", ["session_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_memories_session_id_id", table_name="memories")
    if _is_sqlite():
        op.create_table(
            _TMP,
            sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
            sa.Column("session_id", sa.String(255), nullable=True),
            sa.Column("content", sa.Text(), nullable=True),
            sa.Column("tool_metadata", sa.JSON(), nullable=True),
            sa.Column("timestamp", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id", name="pk_memories"),
        )
        op.execute(
            f"INSERT INTO {_TMP} (id, session_id, content, tool_metadata, timestamp) "
            "SELECT id, session_id, content, tool_metadata, created_at FROM memories"
        )
        _sqlite_swap_in(_TMP)
    else:
        op.alter_column("memories", "created_at", new_column_name="timestamp")
        op.execute(
            "ALTER TABLE memories "
            "DROP COLUMN role, "
            "ALTER COLUMN id TYPE INTEGER, "
            "ALTER COLUMN session_id DROP NOT NULL, "
            "ALTER COLUMN content DROP NOT NULL, "
            "ALTER COLUMN tool_metadata TYPE JSON USING tool_metadata::json, "
            'ALTER COLUMN "timestamp" TYPE TIMESTAMP WITHOUT TIME ZONE '
            "USING \"timestamp\" AT TIME ZONE 'UTC', "
            'ALTER COLUMN "timestamp" DROP NOT NULL'
        )
        _pg_id_sequence_as("INTEGER")
    op.create_index("ix_memories_session_id", "memories", ["session_id"])


def _pg_id_sequence_as(sql_type: str) -> None:
    """Keep the id sequence's range equal to the column's (PostgreSQL 10+ sequences are typed)."""
    sequence = op.get_bind().scalar(sa.text("SELECT pg_get_serial_sequence('memories', 'id')"))
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} AS {sql_type}")
