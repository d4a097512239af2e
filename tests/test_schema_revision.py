"""New code on a database whose `supportbot db upgrade` did not run is one clear line at start,
not an SQL error on every event (0009 added a column every claim writes)."""

from __future__ import annotations

from pathlib import Path

from storage import migrate
from storage.schema_revision import NEEDED_REVISION, SCHEMA_REVISIONS, is_outdated
from tests.cli_support import run_supportbot


def test_the_known_revisions_are_the_migrations_folders() -> None:
    assert list(SCHEMA_REVISIONS) == migrate.known_revisions()
    assert migrate.head_revision() == NEEDED_REVISION
    assert is_outdated("0008_ops") and not is_outdated(NEEDED_REVISION)
    assert not is_outdated("0010_from_a_newer_version") and not is_outdated(None)


async def test_a_database_one_migration_behind_is_one_clear_line_until_upgraded(
    any_db_url: str, tmp_path: Path
) -> None:
    await migrate.upgrade(any_db_url, SCHEMA_REVISIONS[-2])
    env = {
        "DATABASE_URL": any_db_url,
        "SUPPORTBOT_KB_URI": str(tmp_path / "kb"),
        "SUPPORTBOT_EMBEDDER": "none",
    }
    env_off = ["OPENAI_API_KEY"]
    asked = run_supportbot(
        "ask", "How do I reset my password?", cwd=tmp_path, env=env, unset=env_off
    )
    assert asked.returncode == 1
    assert asked.stderr.strip().splitlines() == [
        f"error: the database schema is at revision {SCHEMA_REVISIONS[-2]}, and this version of "
        f"supportbot needs {NEEDED_REVISION}; run `supportbot db upgrade` first."
    ]
    upgraded = run_supportbot("db", "upgrade", cwd=tmp_path, env=env, unset=env_off)
    assert upgraded.returncode == 0, upgraded.stderr
    asked = run_supportbot(
        "ask", "How do I reset my password?", cwd=tmp_path, env=env, unset=env_off
    )
    assert asked.returncode == 0 and "error" not in asked.stderr, asked.stderr
