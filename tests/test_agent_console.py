"""Acceptance 6: `supportbot chat` in a real pseudo-terminal, `supportbot ask --json`, and the
console adapter in-process (streaming and sources)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.console import ConsoleAdapter, console_conversation, to_incoming
from storage.db import Database
from storage.knowledge import KnowledgeBase
from storage.models import Base
from tests.core_support import build_kb, kb_fixture, responder  # noqa: F401

SUPPORTBOT = [sys.executable, "-m", "bot"]
WAIT = 30.0


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """Environment of a complete embedded deployment: SQLite with tables, an ingested KB."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'supportbot.db'}"

    async def create() -> None:
        database = Database(db_url)
        async with database.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await database.dispose()

    asyncio.run(create())
    build_kb(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SUPPORTBOT_"))}
    env.update(
        DATABASE_URL=db_url,
        SUPPORTBOT_KB_URI=str(tmp_path / "kb"),
        SUPPORTBOT_EMBEDDER="none",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        HF_HUB_OFFLINE="1",
    )
    return env


def _read_until(fd: int, needle: bytes, buffer: bytearray, timeout: float = WAIT) -> bytes:
    deadline = time.monotonic() + timeout
    while needle not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {bytes(buffer)[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buffer.extend(chunk)
    if needle not in buffer:
        raise AssertionError(f"{needle!r} never arrived; got {bytes(buffer)[-500:]!r}")
    index = buffer.index(needle) + len(needle)
    seen = bytes(buffer[:index])
    del buffer[:index]
    return seen


def test_chat_in_a_pseudo_terminal(deployment: dict[str, str], tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*SUPPORTBOT, "chat"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=deployment,
        cwd=tmp_path,
        close_fds=True,
    )
    os.close(slave)
    buffer = bytearray()
    try:
        welcome = _read_until(master, b"you> ", buffer)
        assert b"/forget" in welcome  # the welcome line lists the commands
        os.write(master, b"How do I reset my password?\r")
        answer = _read_until(master, b"you> ", buffer).decode()
        assert "Offline answer" in answer and "[1]" in answer
        assert "Sources:" in answer and "auth.md" in answer
        os.write(master, b"/help\r")
        assert b"/ask" in _read_until(master, b"you> ", buffer)
        os.write(master, b"/forget\r")
        assert b"forgot this conversation" in _read_until(master, b"you> ", buffer)
        os.write(master, b"\x04")  # Ctrl-D ends the chat
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        os.close(master)


def test_chat_reads_stdin_until_eof(deployment: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*SUPPORTBOT, "chat"],
        input="When are invoices sent?\n/forget\n",
        capture_output=True,
        text=True,
        env=deployment,
        cwd=tmp_path,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    assert "billing.md" in result.stdout and "forgot this conversation" in result.stdout


def test_demo_without_a_terminal_asks_sample_questions(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    env = dict(deployment, SUPPORTBOT_KB_URI=str(tmp_path / "empty_kb"))
    result = subprocess.run(
        [*SUPPORTBOT, "chat", "--demo"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ingesting the bundled sample docs" in out
    assert out.count("you> ") == 4 and out.count("Sources:") == 3
    assert "auth/api-keys.md" in out and "webhooks.html" in out
    assert "couldn't find this in the documentation" in out  # the uncovered demo question


def ask_json(question: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """``supportbot ask --json QUESTION`` in a new process; its JSON object."""
    result = subprocess.run(
        [*SUPPORTBOT, "ask", "--json", question],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ask_json_prints_valid_json(deployment: dict[str, str], tmp_path: Path) -> None:
    payload = ask_json("When are invoices sent?", deployment, tmp_path)
    assert payload["kind"] == "answer" and "[1]" in payload["text"]
    assert payload["sources"][0]["path"] == "billing.md"
    assert payload["session_id"].startswith("console:local:")
    assert isinstance(payload["memory_id"], int)
    assert payload["sources"][0]["url"] is None  # a local path: no page to open


def test_ask_json_cites_the_published_page_with_docs_url(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    """With SUPPORTBOT_DOCS_URL the cited file is its page, in ``path`` (where a source is, as
    for a crawled page) and in ``url`` (the page to open)."""
    env = dict(deployment, SUPPORTBOT_DOCS_URL="https://docs.example.com/v2")
    source = ask_json("When are invoices sent?", env, tmp_path)["sources"][0]
    page = "https://docs.example.com/v2/billing#invoices"
    assert (source["path"], source["url"], source["heading"]) == (page, page, "Invoices")


def test_ask_on_a_new_database_creates_the_schema(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    """`supportbot ingest` then `supportbot ask` just works: an empty database (a new SQLite
    file here) gets the newest schema, said on stderr, and stdout stays one JSON object. Two
    asks starting at once on the same new file both answer (the migration is serialised)."""
    env = dict(deployment, DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}")
    asks = [
        subprocess.Popen(
            [*SUPPORTBOT, "ask", "--json", "When are invoices sent?"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [ask.communicate(timeout=WAIT) for ask in asks]
    for ask, (stdout, stderr) in zip(asks, outputs, strict=True):
        assert ask.returncode == 0, stderr
        assert json.loads(stdout)["kind"] == "answer"
    assert sum("created the supportbot tables" in stderr for _, stderr in outputs) >= 1
    current = subprocess.run(
        [*SUPPORTBOT, "db", "current"], capture_output=True, text=True, env=env, timeout=WAIT
    )
    assert current.returncode == 0 and "head" in current.stdout, current.stdout


def test_missing_schema_in_a_used_database_is_one_clear_line(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    """A database that already holds other tables is not migrated behind the operator's
    back: one clear line, and its tables are untouched."""
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO orders VALUES (7)")
    env = dict(deployment, DATABASE_URL=f"sqlite:///{path}")
    result = subprocess.run(
        [*SUPPORTBOT, "ask", "anything"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=WAIT,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the database has no supportbot tables yet; run `supportbot db upgrade` first."
    ]
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert tables == {"orders"} and conn.execute("SELECT id FROM orders").fetchall() == [(7,)]


async def test_console_adapter_streams_and_lists_sources(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    out = io.StringIO()
    adapter = ConsoleAdapter(responder(sqlite_db, kb=kb), out=out)
    exchange = await adapter.send("How do I reset my password?")
    assert exchange.reply is not None and exchange.first_delta_s is not None
    text = out.getvalue()
    assert text.startswith(exchange.streamed)
    assert "Sources:\n  [1] Authentication › Resetting your password (auth.md)" in text


def test_console_lines_become_commands() -> None:
    conv = console_conversation("s1")
    assert conv.session_id.endswith(":s1")
    assert to_incoming("/forget", conv).command == "forget"
    ask = to_incoming("/ask  how do refunds work? ", conv)
    assert ask.command == "ask" and ask.text == "how do refunds work?"
    plain = to_incoming("/etc/hosts is broken", conv)
    assert plain.command is None and plain.text == "/etc/hosts is broken"


async def test_knowledge_base_built_with_another_embedder_is_one_clear_error(
    tmp_path: Path,
) -> None:
    from bot.errors import KnowledgeBaseError
    from bot.runtime import check_knowledge_base
    from storage.embeddings import make_embedder
    from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI

    build_kb(tmp_path)  # BM25 only
    with FakeOpenAI().in_thread() as fake:
        embedder = make_embedder(
            "openai", openai_api_key=FAKE_API_KEY, openai_base_url=fake.base_url
        )
        reopened = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
        with pytest.raises(KnowledgeBaseError, match="embedder"):
            await check_knowledge_base(reopened)
