"""One ingest at a time among hosts that share a knowledge base and a PostgreSQL database.

The folder lock (tests/test_knowledge_ingest.py) reaches the processes of one host; replicas on
several hosts write one object-store knowledge base, and two ingests at once each delete what the
other wrote as stale. Here "the other host" holds only the database lock: its folder lock would be
on its own disk.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from storage.ingest_lock import database_ingest_lock
from tests.cli_support import run_supportbot
from tests.core_support import build_kb

ROOT = Path(__file__).resolve().parents[1]


def supportbot(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return run_supportbot(*args, cwd=cwd, env=env, timeout=120)


def ingest_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SUPPORTBOT_KB_URI": str(tmp_path / "kb"),
        "SUPPORTBOT_EMBEDDER": "none",
        "SUPPORTBOT_LEARNED_DIR": str(tmp_path / "learned_docs"),
    }


def unexpected(reason: str) -> None:
    raise AssertionError(f"the database lock was not taken: {reason}")


async def test_an_ingest_from_a_second_host_stops_with_one_line_until_the_first_ends(
    pg_url: str, tmp_path: Path
) -> None:
    build_kb(tmp_path)
    env = ingest_env(tmp_path, pg_url)
    docs = str(tmp_path / "docs")
    with database_ingest_lock(pg_url, str(tmp_path / "kb"), unexpected):
        busy = await asyncio.to_thread(supportbot, "ingest", docs, "--prune", env=env, cwd=tmp_path)
    assert busy.returncode == 1 and busy.stdout == ""
    holder = f"supportbot ingest on {socket.gethostname()} (process {os.getpid()})"
    assert f"another ingest ({holder[:63]}" in busy.stderr, busy.stderr
    assert "run this one when it has finished" in busy.stderr
    assert "Traceback" not in busy.stderr

    done = await asyncio.to_thread(supportbot, "ingest", docs, "--prune", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "0 removed" in done.stdout


async def test_the_lock_of_a_killed_ingest_goes_with_it(pg_url: str, tmp_path: Path) -> None:
    """SIGKILL leaves no stale lock: PostgreSQL frees it when the connection drops."""
    build_kb(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from storage.ingest_lock import database_ingest_lock\n"
            "with database_ingest_lock(sys.argv[1], sys.argv[2], print):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(120)\n",
            pg_url,
            str(tmp_path / "kb"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        env = ingest_env(tmp_path, pg_url)
        docs = str(tmp_path / "docs")
        busy = await asyncio.to_thread(supportbot, "ingest", docs, env=env, cwd=tmp_path)
        assert busy.returncode == 1 and f"(process {holder.pid})" in busy.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    for _ in range(50):  # the server notices the closed socket within moments
        after = await asyncio.to_thread(supportbot, "ingest", docs, env=env, cwd=tmp_path)
        if after.returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert after.returncode == 0, after.stderr


def test_an_unreachable_database_is_one_warning_and_the_docs_are_still_ingested(
    tmp_path: Path,
) -> None:
    build_kb(tmp_path)
    env = ingest_env(tmp_path, "postgresql+asyncpg://bot:s3cret-pw@127.0.0.1:1/none")
    ingested = supportbot("ingest", str(tmp_path / "docs"), env=env, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    warnings = [line for line in ingested.stderr.splitlines() if "lock the knowledge base" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the database could not be")
    assert "s3cret-pw" not in ingested.stderr + ingested.stdout
    assert "unchanged" in ingested.stdout


def test_a_sqlite_database_takes_no_lock_of_its_own(tmp_path: Path) -> None:
    """SQLite is not shared between hosts: the folder lock is the whole story, and an ingest
    does not create the database file by looking for a lock in it."""
    build_kb(tmp_path)
    absent = tmp_path / "never.db"
    env = ingest_env(tmp_path, f"sqlite+aiosqlite:///{absent}")
    ingested = supportbot("ingest", str(tmp_path / "docs"), env=env, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert not absent.exists() and "warning" not in ingested.stderr
