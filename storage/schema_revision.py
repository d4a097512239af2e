"""The schema revisions this code knows, oldest first, without importing Alembic.

Every process checks at start that the database is not at an OLDER revision than the newest
here (bot.runtime.ensure_schema): new code on a database whose `supportbot db upgrade` did not
run (a skipped release phase) failed on every event with an SQL error about a missing column.
A database at a revision this code does not know is newer (a rolled-back deploy): migrations
only add, so the older code runs on it. tests/test_schema_revision.py keeps this list equal to
the migrations folder's.
"""

from __future__ import annotations

SCHEMA_REVISIONS = (
    "0001_legacy",
    "0002_rename_metadata",
    "0003_memories_current",
    "0004_support_tables",
    "0005_slack_oauth",
    "0007_escalation_unique",
    "0008_ops",
    "0009_event_askers",
)
NEEDED_REVISION = SCHEMA_REVISIONS[-1]
VERSION_TABLE = "alembic_version"  # where Alembic stamps the database's revision


def is_outdated(revision: str | None) -> bool:
    """Whether a database stamped ``revision`` lacks what this code needs."""
    return revision in SCHEMA_REVISIONS[:-1]
