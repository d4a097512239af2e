"""The real `supportbot db ...` / `memories export` CLI, run as a subprocess.

Acceptance 3 (a legacy unversioned SQLite file is adopted by `db upgrade`; twice is a no-op)
and 8 (bad URL, unreachable database, unknown revision: one clear line, non-zero exit).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from storage import migrate
from tests.cli_support import run_supportbot

HEAD = migrate.head_revision()

# What the old customer-support backend left behind: its SQLAlchemy model on SQLite.
LEGACY_SCHEMA = """
CREATE TABLE memories (
    id INTEGER NOT NULL,
    session_id VARCHAR,
    content TEXT,
    metadata JSON,
    timestamp DATETIME,
    PRIMARY KEY (id)
);
CREATE INDEX ix_memories_session_id ON memories (session_id);
"""
LEGACY_ROWS = [
    ("s1", "hello", '{"tool": "search", "args": {"q": "Grüße 🎉"}, "hits": [1, 2]}'),
    ("s1", "answer", "null"),
    ("s1", "no metadata", None),
    ("s2", "big", json.dumps({"blob": "y" * 120_000})),
]


def supportbot(
    *args: str, cwd: Path, database_url: str | None = None
) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": database_url} if database_url is not None else {}
    return run_supportbot(*args, cwd=cwd, env=env, unset=["DATABASE_URL"], timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def make_legacy_file(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY_SCHEMA)
        conn.executemany(
            "INSERT INTO memories (session_id, content, metadata, timestamp) "
            "VALUES (?, ?, ?, '2023-05-06 07:08:09.000000')",
            LEGACY_ROWS,
        )
    conn.close()


def test_legacy_file_is_adopted_by_db_upgrade_and_twice_is_a_no_op(tmp_path: Path) -> None:
    database = tmp_path / "customer_support.db"
    make_legacy_file(database)
    url = f"sqlite:///{database}"

    current = supportbot("db", "current", cwd=tmp_path, database_url=url)
    assert current.returncode == 0 and "legacy" in current.stdout

    first = supportbot("db", "upgrade", cwd=tmp_path, database_url=url)
    assert first.returncode == 0, first.stderr
    assert "Adopted a legacy database" in first.stdout and "0001_legacy" in first.stdout
    assert f"upgraded from 0001_legacy to {HEAD}" in first.stdout

    with sqlite3.connect(database) as conn:
        stored = conn.execute("SELECT session_id, content, tool_metadata FROM memories").fetchall()
        schema_after_first = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    assert stored == LEGACY_ROWS  # every value byte for byte, JSON null and SQL NULL distinct

    second = supportbot("db", "upgrade", cwd=tmp_path, database_url=url)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"Database already at {HEAD}; nothing to do."
    with sqlite3.connect(database) as conn:
        assert (
            conn.execute("SELECT session_id, content, tool_metadata FROM memories").fetchall()
            == stored
        )
        assert (
            conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
            == schema_after_first
        )
    conn.close()

    current = supportbot("db", "current", cwd=tmp_path, database_url=url)
    assert current.stdout.strip() == f"{HEAD} (head)"
    check = supportbot("db", "check", cwd=tmp_path, database_url=url)
    assert check.returncode == 0, check.stdout + check.stderr

    export = supportbot("memories", "export", "s1", cwd=tmp_path, database_url=url)
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    assert [line["content"] for line in lines] == ["hello", "answer", "no metadata"]
    assert lines[0]["metadata"] == json.loads(LEGACY_ROWS[0][2])
    assert all("tool_metadata" not in line and "metadata" in line for line in lines)


def test_db_upgrade_on_the_default_embedded_database_in_a_fresh_directory(tmp_path: Path) -> None:
    result = supportbot("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"from an empty database to {HEAD}" in result.stdout
    assert (tmp_path / "supportbot.db").is_file()
    assert supportbot("db", "current", cwd=tmp_path).stdout.strip() == f"{HEAD} (head)"

    down = supportbot("db", "downgrade", "0003_memories_current", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert f"downgraded from {HEAD} to 0003_memories_current" in down.stdout
    behind = supportbot("memories", "export", "s", cwd=tmp_path)
    assert_one_line_error(behind, "0003_memories_current", "supportbot db upgrade")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    ("database_url", "fragments"),
    [
        ("mysql://user@localhost/db", ["DATABASE_URL"]),
        ("postgres://user@localhost:notaport/db", ["DATABASE_URL", "notaport"]),
        ("   ", ["DATABASE_URL", "empty"]),
    ],
)
def test_invalid_database_url_is_one_line(
    tmp_path: Path, database_url: str, fragments: list[str]
) -> None:
    assert_one_line_error(
        supportbot("db", "upgrade", cwd=tmp_path, database_url=database_url), *fragments
    )


def test_unreachable_databases_are_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{closed_port()}/test"
    for args in (["db", "upgrade"], ["db", "current"], ["memories", "export", "s"]):
        result = supportbot(*args, cwd=tmp_path, database_url=url)
        assert_one_line_error(result, "cannot connect", "127.0.0.1")
        assert "hunter2" not in result.stderr  # no password in messages
    missing_dir = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
    assert_one_line_error(
        supportbot("db", "upgrade", cwd=tmp_path, database_url=missing_dir), "cannot connect"
    )


def test_database_newer_than_the_code_is_one_line(tmp_path: Path) -> None:
    database = tmp_path / "supportbot.db"
    assert supportbot("db", "upgrade", cwd=tmp_path).returncode == 0
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999_from_the_future'")
    conn.close()
    for args in (["db", "upgrade"], ["db", "current"], ["db", "downgrade", "-1"], ["db", "check"]):
        assert_one_line_error(
            supportbot(*args, cwd=tmp_path), "0999_from_the_future", "does not know"
        )
    assert_one_line_error(supportbot("db", "upgrade", "0042_nope", cwd=tmp_path), "0042_nope")


def reuse_installed_setuptools() -> list[str]:
    """Skip pip's isolated build env (slow, downloads) when this venv's setuptools can build
    wheels by itself (70.1+ has bdist_wheel built in; a fresh 3.11 venv has an older one)."""
    try:
        import setuptools
    except ImportError:
        return []
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2])
    return ["--no-build-isolation"] if version >= (70, 1) else []


def test_migrations_are_found_from_a_non_editable_install(tmp_path: Path) -> None:
    """Build the wheel, install it (not editable) elsewhere, and migrate from a fresh folder."""
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("bot", "adapters", "storage", "migrations"):
        shutil.copytree(root / package, source / package, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [*pip, "wheel", "--no-deps", *reuse_installed_setuptools(), "-w", wheels, source],
        check=True,
        capture_output=True,
        timeout=180,
    )
    [wheel] = wheels.glob("supportbot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"migrations/env.py", "migrations/script.py.mako"} <= names
    assert {f"migrations/versions/{rev}.py" for rev in migrate.known_revisions()} <= names
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
        timeout=180,
    )
    shutil.rmtree(source)  # nothing may be read from the source tree any more

    work = tmp_path / "fresh"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("DATABASE_URL", None)
    where = subprocess.run(
        [sys.executable, "-c", "import storage.migrate as m; print(m.MIGRATIONS_DIR)"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert where.stdout.strip() == str(site / "migrations"), where.stderr
    result = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"to {HEAD}" in result.stdout
