"""Models: the renamed JSON column (acceptance 1), in-place edits and NULLs (5), MemoryOut (6)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import JSON, Column, Integer, select, text
from sqlalchemy.exc import InvalidRequestError, SAWarning
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage import memories
from storage.db import Database
from storage.memories import MemoryOut
from storage.models import Memory


def test_models_import_in_a_fresh_interpreter() -> None:
    # The original bug crashed exactly here, at import.
    result = subprocess.run(
        [sys.executable, "-c", "from storage.models import Memory; print(Memory.__tablename__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "memories"


def test_tool_metadata_is_a_mutable_json_column() -> None:
    column = Memory.__table__.c.tool_metadata
    assert Memory.tool_metadata.property.columns[0] is column
    assert isinstance(column.type, JSON)
    assert column.type.none_as_null
    assert column.nullable
    assert "metadata" not in Memory.__table__.c
    # MutableDict tracks in-place changes (see the persistence test below).
    assert isinstance(Memory(tool_metadata={"a": 1}).tool_metadata, MutableDict)


def test_an_attribute_named_metadata_is_rejected_by_sqlalchemy() -> None:
    """Why the column is called tool_metadata: Declarative reserves ``metadata``.

    SQLAlchemy 2.0 raises InvalidRequestError when the class is created (the original crash);
    2.1 turned it into an SAWarning. Warnings are errors here, so either way the name is refused.
    """

    class Base(DeclarativeBase):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        with pytest.raises(
            (InvalidRequestError, SAWarning), match=r"'metadata' (is|should be left) reserved"
        ):

            class LegacyMemory(Base):
                __tablename__ = "legacy_memories"
                id: Mapped[int] = mapped_column(Integer, primary_key=True)
                metadata = Column(JSON)  # type: ignore[assignment]


async def test_in_place_edits_are_persisted(db: Database) -> None:
    memory = await memories.append_memory(
        db, session_id="s", role="assistant", content="a", tool_metadata={"tools": ["search"]}
    )
    async with db.session() as session:
        loaded = await session.get(Memory, memory.id)
        assert loaded is not None and loaded.tool_metadata is not None
        loaded.tool_metadata["model"] = "gpt"  # an in-place change, no reassignment
        loaded.tool_metadata["tools"] = ["search", "escalate"]
    reloaded = await memories.get_memory(db, memory_id=memory.id)
    assert reloaded is not None
    assert reloaded.tool_metadata == {"tools": ["search", "escalate"], "model": "gpt"}


async def test_none_is_stored_as_sql_null(db: Database) -> None:
    empty = await memories.append_memory(db, session_id="s", role="user", content="q")
    explicit = await memories.append_memory(
        db, session_id="s", role="user", content="q", tool_metadata=None
    )
    filled = await memories.append_memory(
        db, session_id="s", role="user", content="q", tool_metadata={"k": None}
    )
    async with db.sessions() as session:
        rows = dict(
            (await session.execute(text("SELECT id, tool_metadata IS NULL FROM memories"))).all()
        )
        assert rows == {empty.id: True, explicit.id: True, filled.id: False}
        nulls = await session.scalars(select(Memory.id).where(Memory.tool_metadata.is_(None)))
        assert set(nulls) == {empty.id, explicit.id}


async def test_memory_out_round_trips_with_the_historical_field_name(db: Database) -> None:
    metadata = {"sources": [{"title": "Grüße", "score": 0.5}], "usage": {"tokens": 12}}
    stored = await memories.append_memory(
        db, session_id="s", role="assistant", content="answer", tool_metadata=metadata
    )
    out = MemoryOut.model_validate(stored)
    assert out.tool_metadata == metadata

    as_json = out.model_dump_json()
    payload = json.loads(as_json)
    assert payload["metadata"] == metadata
    assert "tool_metadata" not in payload

    back = MemoryOut.model_validate_json(as_json)
    assert back == out
    assert MemoryOut(**payload) == out  # by the alias ...
    assert MemoryOut(**{**payload, "tool_metadata": payload.pop("metadata")}) == out  # ... or name
    [exported] = await memories.export_session(db, session_id="s")
    assert exported == out


async def test_timestamps_come_back_as_aware_utc(db: Database) -> None:
    """SQLite stores no zone; the models still hand back aware UTC values on both databases."""
    stored = await memories.append_memory(db, session_id="s", role="user", content="q")
    [loaded] = await memories.load_recent(db, session_id="s", limit=1)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.created_at == stored.created_at
    assert abs(datetime.now(UTC) - loaded.created_at) < timedelta(minutes=1)
