"""Switching a SQLite database to WAL without failing when another process holds its lock.

``PRAGMA journal_mode=WAL`` needs an exclusive lock the first time and can fail at once with
"database is locked" (SQLite does not wait on the busy handler for it) while another process is
writing, e.g. a second release process migrating at the same moment. Once a database is in WAL
mode the setting is persistent, so a connection reads the mode first and switches only when it
must, retrying for as long as a busy writer would be waited for.
"""

from __future__ import annotations

import time
from typing import Any

RETRY_EVERY_S = 0.05


def ensure_wal(cursor: Any, *, timeout_s: float) -> None:
    """On a DB-API cursor (sqlite3's, or SQLAlchemy's adapter of aiosqlite's)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, whichever driver it is
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_EVERY_S)
