"""The agent's own server-sent-events parsing: every way a stream can be cut or garbled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot import texts
from bot.agent import sse_payloads
from bot.errors import ModelError
from bot.memory import EVENT
from bot.messages import ReplyKind
from storage import memories
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import kb_fixture, message, openai_agent, responder, write_docs  # noqa: F401
from tests.fakes.openai_server import FakeOpenAI, Turn, fake_openai_fixture  # noqa: F401

CHUNKS = [
    {"model": "m", "choices": [{"index": 0, "delta": {"content": "Hé "}}]},
    {"model": "m", "choices": [{"index": 0, "delta": {"content": "there\n[1]"}}]},
    {"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "total_tokens": 5}},
]


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _parse(data: bytes, size: int) -> list[dict]:
    return [payload async for payload in sse_payloads(_pieces(data, size))]


def _stream(newline: bytes = b"\n") -> bytes:
    events = [b"data: " + json.dumps(c).encode() for c in CHUNKS] + [b"data: [DONE]"]
    return b"".join(e + newline + newline for e in events)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
async def test_events_survive_any_network_chunking(size: int) -> None:
    assert await _parse(_stream(), size) == CHUNKS
    assert await _parse(_stream(b"\r\n"), size) == CHUNKS


async def test_multi_line_data_comments_and_other_fields() -> None:
    data = (
        b": keep-alive comment\n\n"
        b"event: message\nid: 7\n"
        b'data: {"choices":\ndata: [], "model": "m"}\n\n'
        b'data:{"model": "no-space"}\n\n'
        b"data: [DONE]\n\n"
        b'data: {"model": "after done is ignored"}\n\n'
    )
    assert await _parse(data, 5) == [{"choices": [], "model": "m"}, {"model": "no-space"}]


async def test_stream_cut_before_the_final_blank_line_still_yields_its_event() -> None:
    assert await _parse(b'data: {"model": "m"}', 4) == [{"model": "m"}]


@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b"data: [1, 2]\n\n", b"data: \xff\n\n"])
async def test_unreadable_event_is_a_model_error(bad: bytes) -> None:
    with pytest.raises(ModelError):
        await _parse(bad, 3)


@pytest.mark.parametrize(
    "raw",
    [
        b'data: {"error": {"message": "overloaded"}}\n\n',
        b'data: {"model": "m", "choices": [{"index": 0, "delta": {"content": "Par"}}]}\n\n'
        b"data: {garbled\n\n",
    ],
)
async def test_error_or_garbage_mid_stream_becomes_an_apology_and_keeps_the_question(
    db: Database, kb: KnowledgeBase, fake_openai: FakeOpenAI, raw: bytes
) -> None:
    fake_openai.queue(Turn(raw_stream=raw))
    agent = openai_agent(kb, fake_openai)
    reply = await responder(db, agent).handle(message("How do I reset my password?"))
    await agent.aclose()
    assert reply is not None and reply.kind is ReplyKind.ERROR
    assert reply.text == texts.ERROR_MODEL_UNAVAILABLE
    stored = await memories.load_recent(db, session_id=reply.session_id, limit=5)
    # The question is kept; the failure itself is recorded as an event (for reports).
    assert [(m.role, m.content) for m in stored if m.role != EVENT] == [
        ("user", "How do I reset my password?")
    ]
