"""CPU per answer of our own code: the Responder with the OpenAI agent against the fake model.

One process answers ``--messages`` questions one after another (threads of 8 turns, so memory
windows and summaries are exercised) on SQLite, with a BM25 knowledge base of bot/sample_docs,
exactly as ``supportbot run ...`` would minus the platform adapter. The fake OpenAI server runs
in a thread of this process; its CPU is measured on its own thread clock and subtracted, so the
figure is the answering process's CPU: input hygiene, memory load and store, one search (made
before the model is asked), one streamed model call through the real ``openai`` client.

Baselines, same run: the agent before this work (the model asks for the first search, so two
streamed calls per answer, through the SDK's typed path ``chat.completions.create(stream=True)``:
a typed request transform and a pydantic model per chunk), and our agent with the first search
left to the model (two calls, our own stream parsing), the step before searching first.

    .venv/bin/python bench/answer_cpu.py [--messages 400] [--profile docs/profiles/answer.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import openai  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from bot.agent import OpenAIAgent  # noqa: E402
from bot.memory import MemoryPolicy  # noqa: E402
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, Reply  # noqa: E402
from bot.responder import Responder  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.knowledge import KnowledgeBase  # noqa: E402
from storage.models import Base  # noqa: E402
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, Turn, default_policy  # noqa: E402

SAMPLE_DOCS = ROOT / "bot" / "sample_docs"
QUESTIONS = [
    "How do I rotate an SDK key?",
    "How many times are failed webhook deliveries retried?",
    "What happens when my card payment fails?",
    "Which port serves the Prometheus metrics?",
]
TARGET_CPU_MS = 5.0
BLOCK = 40  # answers per variant before the next variant's turn


class _Fields:
    """Dict-style reads over an SDK model, so the baseline runs the agent's own loop."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        value = getattr(self._obj, name, default)
        if isinstance(value, list):
            return [_Fields(v) if isinstance(v, BaseModel) else v for v in value]
        return _Fields(value) if isinstance(value, BaseModel) else value

    def __bool__(self) -> bool:
        return self._obj is not None


class SdkStreamingAgent(OpenAIAgent):
    """The baseline, what the agent did before: the SDK's typed streaming path over the SDK's
    default (pure-Python) HTTP transport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = openai.AsyncOpenAI(api_key=FAKE_API_KEY, base_url=kwargs["base_url"])

    async def _chunks(self, body: dict[str, Any]) -> AsyncIterator[Any]:
        stream = await self.client.chat.completions.create(**body)
        async for chunk in stream:
            yield _Fields(chunk)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu(thread: threading.Thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))


def message(text: str, thread: str) -> IncomingMessage:
    return IncomingMessage(
        id=uuid.uuid4().hex,
        conversation=ConversationKey(Platform.CONSOLE, "bench", "C1", thread),
        author=Author("U1"),
        text=text,
    )


@dataclass
class Tally:
    """One variant's answers, added up over the blocks it ran in."""

    answers: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    first_tokens: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        return {
            "cpu_ms": self.cpu_s * 1000 / self.answers,
            "wall_ms": self.wall_s * 1000 / self.answers,
            "first_token_ms": statistics.median(self.first_tokens) * 1000,
        }


async def measure(
    responder: Responder, questions: range, fake_thread: threading.Thread, tag: str, tally: Tally
) -> None:
    """Answer questions number ``questions`` (threads of 8) and add their cost to ``tally``."""
    cpu0, fake0, wall0 = cpu_seconds(), thread_cpu(fake_thread), time.perf_counter()
    for i in questions:
        started, first, reply = time.perf_counter(), None, None
        async for item in responder.stream(message(QUESTIONS[i % 4], f"{tag}-{i // 8}")):
            if isinstance(item, Reply):
                reply = item
            elif first is None:
                first = time.perf_counter() - started
        assert reply is not None and reply.memory_id is not None and first is not None, reply
        tally.first_tokens.append(first)
    tally.cpu_s += cpu_seconds() - cpu0 - (thread_cpu(fake_thread) - fake0)
    tally.wall_s += time.perf_counter() - wall0
    tally.answers += len(questions)


async def run(args: argparse.Namespace, fake: FakeOpenAI, fake_thread: threading.Thread) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase.open(str(Path(tmp) / "kb"), None)
        kb.ingest([SAMPLE_DOCS])
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        variants: list[tuple[str, type[OpenAIAgent], dict[str, Any]]] = [
            ("SDK typed streaming (baseline)", SdkStreamingAgent, {"search_first": False}),
            ("ours, the model asks for the first search", OpenAIAgent, {"search_first": False}),
            ("ours", OpenAIAgent, {}),
        ]
        if args.only:  # one variant alone, e.g. under py-spy for a flame graph
            variants = [v for v in variants if v[1].__name__ == args.only][-1:]
        agents, responders = [], []
        for number, (_, cls, options) in enumerate(variants):
            agent = cls(
                kb, api_key=FAKE_API_KEY, model="fake-gpt", base_url=fake.base_url, **options
            )
            responder = Responder(db=db, agent=agent, memory=MemoryPolicy(db, turns=10))
            for i in range(10):  # warm-up: pool, statement caches, HTTP keep-alive
                await responder.handle(message(QUESTIONS[i % 4], f"v{number}-warm{i // 8}"))
            agents.append(agent)
            responders.append(responder)
        # The variants take turns in blocks of 40 answers, so a change in the machine's load
        # during the run falls on all of them alike.
        tallies = [Tally() for _ in variants]
        # CPU time of the event-loop thread, not wall time (idle waits would dominate)
        profiler = cProfile.Profile(time.thread_time) if args.profile else None
        for block in range(0, args.messages, BLOCK):
            questions = range(block, min(block + BLOCK, args.messages))
            for number, (name, _, _) in enumerate(variants):
                profiled = profiler is not None and (args.only or name == "ours")
                if profiled:
                    profiler.enable()
                await measure(
                    responders[number], questions, fake_thread, f"v{number}", tallies[number]
                )
                if profiled:
                    profiler.disable()
        if profiler is not None:
            Path(args.profile).parent.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(args.profile)
        results = {}
        for (name, _, _), tally, agent in zip(variants, tallies, agents, strict=True):
            await agent.aclose()
            results[name] = figures = tally.figures()
            print(
                f"{name}: CPU {figures['cpu_ms']:.2f} ms per answer, "
                f"wall {figures['wall_ms']:.2f} ms per answer, "
                f"first token p50 {figures['first_token_ms']:.1f} ms"
                + (" (under cProfile)" if profiler and (args.only or name == "ours") else "")
            )
        await db.dispose()
        search_ms = search_cpu(kb, args.messages)
    print(f"of which retrieval (one BM25 search in LanceDB, measured alone): {search_ms:.2f} ms")
    if len(results) < 2:
        return 0
    base, ours = results[variants[0][0]], results["ours"]
    own = ours["cpu_ms"] - search_ms
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"{args.messages} answers per row; CPU saved {base['cpu_ms'] - ours['cpu_ms']:.2f} ms "
        f"per answer ({1 - ours['cpu_ms'] / base['cpu_ms']:.0%}); ours without retrieval "
        f"{own:.2f} ms; target <= {TARGET_CPU_MS} ms"
    )
    return 0 if ours["cpu_ms"] <= TARGET_CPU_MS else 1


def search_cpu(kb: KnowledgeBase, n: int) -> float:
    """Process CPU of one search as the agent runs it (same questions, same k)."""
    for question in QUESTIONS:
        kb.search(question, k=5)
    started = cpu_seconds()
    for i in range(n):
        kb.search(QUESTIONS[i % len(QUESTIONS)], k=5)
    return (cpu_seconds() - started) * 1000 / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--profile", help="write a cProfile of our variant to this file")
    parser.add_argument(
        "--model-delay",
        type=float,
        default=0.0,
        help="seconds each model call waits before its first byte, like a real model's time to "
        "first token (the CPU figures exclude the wait; use with fewer --messages)",
    )
    parser.add_argument(
        "--only", choices=("SdkStreamingAgent", "OpenAIAgent"), help="run one variant only"
    )
    args = parser.parse_args()
    before = set(threading.enumerate())

    def delayed(request: dict[str, Any]) -> Turn:
        return replace(default_policy(request), delay=args.model_delay)

    with FakeOpenAI(policy=delayed).in_thread() as fake:
        (fake_thread,) = set(threading.enumerate()) - before
        return asyncio.run(run(args, fake, fake_thread))


if __name__ == "__main__":
    raise SystemExit(main())
