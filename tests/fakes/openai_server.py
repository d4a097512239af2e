"""A loopback fake of the OpenAI API for tests, driven through the real ``openai`` client.

Speaks ``POST /v1/chat/completions`` (streamed as server-sent events, or one JSON body), with
tool calls streamed in pieces like the real API, and ``POST /v1/embeddings`` (deterministic
bag-of-words vectors). Every request body is recorded.

What it answers, in order of precedence:
1. queued failures (``fail_next(429, times=2)``): an error status with ``Retry-After`` headers;
2. queued scripted turns (``queue(Turn(...), ...)``), one per request;
3. the ``policy`` function (default :func:`default_policy`): with no tool result since the last
   user message it calls ``search_knowledge_base`` with the user's words; otherwise it answers
   from the first passage, citing ``[1]``, or says ``NO_ANSWER`` when nothing was found.

Use it as ``async with FakeOpenAI() as fake:`` (same event loop), with the ``fake_openai``
fixture (import it into your test module or conftest), or ``with FakeOpenAI().in_thread() as
fake:`` for synchronous code and subprocesses. Point the client at ``fake.base_url``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import re
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.loopback import serve_on_loopback

FAKE_API_KEY = "sk-test-fake"
DEFAULT_MODEL = "fake-gpt"
EMBEDDING_DIMENSION = 64  # for models the fake does not know
# The real models' sizes, so embedders that assume them get vectors of that length.
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] | str
    id: str = ""

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Turn:
    """One scripted model response."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    delay: float = 0.0  # seconds before the response starts (timeouts)
    chunk_chars: int = 8  # streamed content is cut into pieces of this size
    chunk_delay: float = 0.0  # seconds between streamed chunks (time-to-first-token tests)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    abort_after: int | None = None  # drop the connection after this many content chunks
    stall_after: int | None = None  # go silent after this many content chunks...
    stall: float = 0.0  # ...for this many seconds, then go on (a model that stalls mid-stream)
    raw_stream: bytes | None = None  # served verbatim as the SSE body (malformed-stream tests)
    finish_reason: str | None = None  # e.g. "length" or "content_filter"; default stop/tool_calls
    end_early: bool = False  # the body ends cleanly after the content: no finish_reason, no [DONE]


@dataclass
class Failure:
    status: int
    retry_after_ms: int | None = 10  # small, so the client's retry waits ~10 ms
    message: str = "fake failure"
    code: str | None = None  # the error's code, e.g. "context_length_exceeded" (with a 400)


Policy = Callable[[dict[str, Any]], Turn]


def default_policy(request: dict[str, Any]) -> Turn:
    """Search once with the user's words, then answer from the first passage with [1]."""
    messages = request.get("messages", [])
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    tool_results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    if not tool_results:
        question = str(messages[last_user].get("content", "")) if last_user >= 0 else ""
        return Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": question[:200]})])
    passages = str(tool_results[-1].get("content", ""))
    match = re.search(r"\[(\d+)\][^\n]*\n([^\n]+)", passages)
    if not match:
        return Turn(content="NO_ANSWER The documentation does not cover this.")
    number, first_line = match.group(1), match.group(2).strip()
    return Turn(content=f"According to the docs: {first_line[:160]} [{number}]")


def count_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def fake_embedding(text: str, dimension: int = EMBEDDING_DIMENSION) -> list[float]:
    """Hashed bag of words, normalised: texts sharing words get similar vectors."""
    vector = [0.0] * dimension
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimension
        vector[slot] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class FakeOpenAI:
    def __init__(self, policy: Policy | None = None, *, model: str = DEFAULT_MODEL) -> None:
        self.policy: Policy = policy or default_policy
        self.model = model
        self.requests: list[dict[str, Any]] = []  # chat completion bodies, in arrival order
        self.embedding_requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # request headers of chat calls
        self.client_ports: list[int] = []  # the client's port per chat call (connection reuse)
        self.failures_served = 0
        self._script: deque[Turn] = deque()
        self._failures: deque[Failure] = deque()
        self._embedding_failures: deque[Failure] = deque()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- scripting ------------------------------------------------------------------------

    def queue(self, *turns: Turn) -> None:
        self._script.extend(turns)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after_ms: int | None = 10,
        code: str | None = None,
        message: str = "fake failure",
        embeddings: bool = False,
    ) -> None:
        """Fail the next chat calls (or, ``embeddings``, the next embedding calls)."""
        queue = self._embedding_failures if embeddings else self._failures
        queue.extend(Failure(status, retry_after_ms, message, code) for _ in range(times))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def messages_sent(self) -> list[list[dict[str, Any]]]:
        return [r.get("messages", []) for r in self.requests]

    def all_text_sent(self) -> str:
        """Everything any request carried, for "was X ever sent to the model?" assertions."""
        return json.dumps(self.requests)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FakeOpenAI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.contextmanager
    def in_thread(self, timeout: float = 10.0) -> Iterator[FakeOpenAI]:
        """Serve from a background thread with its own event loop (sync tests, subprocesses)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop: asyncio.Event | None = None

        async def serve() -> None:
            nonlocal stop
            stop = asyncio.Event()
            await self.start()
            ready.set()
            await stop.wait()
            await self.close()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("fake OpenAI server did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
            thread.join(timeout)
            loop.close()

    # --- handlers ---------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.client_ports.append(request.transport.get_extra_info("peername")[1])
        if self._failures:
            return self._failure(self._failures.popleft())
        turn = self._script.popleft() if self._script else self.policy(body)
        if turn.delay:
            await asyncio.sleep(turn.delay)
        usage = {
            "prompt_tokens": turn.prompt_tokens or count_tokens(body.get("messages", [])),
            "completion_tokens": turn.completion_tokens
            or count_tokens([turn.content, [t.arguments_json() for t in turn.tool_calls]]),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = str(body.get("model") or self.model)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, turn, model, usage if include_usage else None)
        return web.json_response(self._completion(turn, model, usage))

    def _failure(self, failure: Failure) -> web.Response:
        self.failures_served += 1
        headers = {"x-request-id": uuid.uuid4().hex}
        if failure.retry_after_ms is not None:
            headers["retry-after-ms"] = str(failure.retry_after_ms)
            headers["retry-after"] = str(max(1, math.ceil(failure.retry_after_ms / 1000)))
        kind = "rate_limit_exceeded" if failure.status == 429 else "server_error"
        if failure.status == 400:
            kind = "invalid_request_error"
        error = {"message": failure.message, "type": kind, "code": failure.code or kind}
        if failure.status == 400:
            error["param"] = "messages"
        return web.json_response(
            {"error": error},
            status=failure.status,
            headers=headers,
        )

    @staticmethod
    def _tool_calls_payload(turn: Turn) -> list[dict[str, Any]]:
        return [
            {
                "id": call.id or f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call in turn.tool_calls
        ]

    def _completion(self, turn: Turn, model: str, usage: dict[str, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
        if turn.tool_calls:
            message["tool_calls"] = self._tool_calls_payload(turn)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if turn.tool_calls else "stop",
                }
            ],
            "usage": usage,
        }

    async def _stream(
        self, request: web.Request, turn: Turn, model: str, usage: dict[str, int] | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if turn.raw_stream is not None:
            await response.write(turn.raw_stream)
            await response.write_eof()
            return response
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        async def send(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
            payload = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
            }
            payload.update(extra or {})
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())
            if turn.chunk_delay:
                await asyncio.sleep(turn.chunk_delay)

        def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "finish_reason": finish}]

        await send(delta({"role": "assistant", "content": ""}))
        size = max(1, turn.chunk_chars)
        for number, start in enumerate(range(0, len(turn.content), size)):
            if turn.abort_after is not None and number >= turn.abort_after:
                # Mid-stream failure: the server goes away before the response is complete.
                if request.transport is not None:
                    request.transport.abort()
                return response
            await send(delta({"content": turn.content[start : start + size]}))
            if turn.stall_after is not None and number + 1 == turn.stall_after:
                await asyncio.sleep(turn.stall)
        for index, call in enumerate(self._tool_calls_payload(turn)):
            # Like the real API: id, type and name first, then the arguments in pieces.
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            await send(delta({"tool_calls": [head]}))
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 7):
                piece = {"index": index, "function": {"arguments": arguments[start : start + 7]}}
                await send(delta({"tool_calls": [piece]}))
        if turn.end_early:  # a body that ends cleanly, but before the answer is finished
            await response.write_eof()
            return response
        finish = turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")
        await send(delta({}, finish))
        if usage is not None:
            await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(body)
        if self._embedding_failures:
            return self._failure(self._embedding_failures.popleft())
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        model = str(body.get("model", "text-embedding-3-small"))
        dimension = int(body.get("dimensions") or MODEL_DIMENSIONS.get(model, EMBEDDING_DIMENSION))
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vector: Any = fake_embedding(str(text), dimension)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(count_tokens(str(t)) for t in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


@pytest.fixture(name="fake_openai")
async def fake_openai_fixture() -> AsyncIterator[FakeOpenAI]:
    """A running fake in the test's event loop, as the ``fake_openai`` fixture.

    Import ``fake_openai_fixture`` into a test module (or conftest) to make it available; the
    alias ``fake_openai`` is the same fixture.
    """
    async with FakeOpenAI() as fake:
        yield fake


fake_openai = fake_openai_fixture
