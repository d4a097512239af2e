"""The inbox across real processes (issue 11, items 5-7): SIGKILL mid-burst and restart on Slack
and Discord, two PostgreSQL replicas with one killed mid-burst, and `serve --workers 1` whose
worker is killed. Counted at the fake platforms: every question answered exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage import events
from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, Policy, Turn
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention, new_ts
from tests.inbox_support import ledger, slow_policy
from tests.process_support import (
    create_schema,
    discord_process,
    events_url,
    health,
    kill,
    mention,
    serve,
    serving,
    slack_env,
    socket_owner,
)
from tests.test_slack_quick_followups import (
    FIRST,
    SECOND,
    answers_given,
    assert_turns_in_order,
    first_is_slow,
)

__all__ = ["api", "kb_uri"]
pytestmark = pytest.mark.timeout(150)
BURST = 40
QUESTIONS = ["how do I reset my password?", "where can I download past invoices?"]


# An answer is one model call (the agent searches before asking the model): these delays are
# per answer, long enough that a burst is still being answered when a process is killed.
@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(policy=slow_policy(0.3)) as fake:
        yield fake


@pytest.fixture
async def slow_model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(policy=slow_policy(1.2)) as fake:
        yield fake


def _slack_answers(api: FakeSlackAPI) -> Counter[str]:
    """Bot messages per thread (half-written ones included: they count as answers too)."""
    return Counter(m.thread_ts or m.ts for m in api.posted())


def _slack_finished(api: FakeSlackAPI) -> int:
    return sum(1 for m in api.posted() if not m.streaming)


async def _send_burst(urls: list[str], count: int) -> list[str]:
    """``count`` mentions, each to the next URL in turn (no retries)."""
    threads = []
    senders = [SlackSender(url, SIGNING_SECRET) for url in urls]
    for sender in senders:
        await sender.__aenter__()
    try:
        for i in range(count):
            ts = new_ts()
            body = app_mention(text=f"<@{DEFAULT_BOT_USER}> {QUESTIONS[i % 2]} #{i}", ts=ts)
            assert (await senders[i % len(senders)].event(body)).status == 200
            threads.append(ts)
    finally:
        for sender in senders:
            await sender.__aexit__(None, None, None)
    return threads


async def _assert_all_answered_once(
    api: FakeSlackAPI, threads: list[str], db: Database, timeout: float = 60
) -> None:
    await api.wait_for(
        lambda: _slack_finished(api) >= len(threads) and not any(m.streaming for m in api.posted()),
        timeout=timeout,
    )
    await asyncio.sleep(3.5)  # past a lease: a late duplicate would show now
    assert _slack_answers(api) == Counter(threads)
    rows = await ledger(db, "slack")
    assert Counter(row.status for row in rows.values()) == {events.ANSWERED: len(threads)}


async def test_slack_serve_killed_mid_burst_answers_everything_once_after_restart(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    env = slack_env(any_db_url, kb_uri, model, api)
    proc = await serve(env, "--workers", "0")
    try:
        url = events_url(env)
        threads = await _send_burst([url], BURST)
        await api.wait_for(lambda: _slack_finished(api) >= 3, timeout=30)
        await asyncio.sleep(0.2)
        await kill(proc)
        assert _slack_finished(api) < BURST  # killed mid-burst
        proc = await serve(env, "--workers", "0")  # Slack re-delivers nothing
        await _assert_all_answered_once(api, threads, db)
    finally:
        await kill(proc)


async def test_two_postgres_replicas_one_killed_mid_burst(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    db = await create_schema(pg_url)
    envs = [slack_env(pg_url, kb_uri, model, api) for _ in range(2)]
    procs = [await serve(env, "--workers", "0") for env in envs]
    try:
        urls = [events_url(env) for env in envs]
        threads = await _send_burst(urls, BURST)
        await api.wait_for(lambda: _slack_finished(api) >= 3, timeout=30)
        await kill(procs[0])
        assert _slack_finished(api) < BURST
        await _assert_all_answered_once(api, threads, db)  # the survivor takes over
    finally:
        for proc in procs:
            await kill(proc)
        await db.dispose()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_serve_restarts_a_killed_worker_and_is_unhealthy_meanwhile(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    db = await create_schema(pg_url)
    env = slack_env(pg_url, kb_uri, model, api)
    proc = await serve(env, "--workers", "1")
    try:
        url = events_url(env)
        first = await _send_burst([url], 1)
        await api.wait_for(lambda: _slack_finished(api) == 1, timeout=30)
        [worker] = _children(proc.pid)
        os.kill(worker, signal.SIGKILL)
        statuses = []
        for _ in range(50):
            statuses.append(await health(env["PORT"]))
            if statuses[-1] == 503:
                break
            await asyncio.sleep(0.05)
        assert statuses[-1] == 503  # no live worker: acked questions would wait
        second = await _send_burst([url], 1)  # acked and queued while no worker runs
        started = asyncio.get_running_loop().time()
        await api.wait_for(lambda: _slack_finished(api) == 2, timeout=30)
        assert asyncio.get_running_loop().time() - started < 30
        assert await health(env["PORT"]) == 200
        assert [w for w in _children(proc.pid) if w != worker]  # a new worker
        await _assert_all_answered_once(api, first + second, db)
        # SIGKILL the supervisor itself: its workers notice and stop instead of lingering.
        orphans = _children(proc.pid)
        await kill(proc)
        for _ in range(100):
            if not any(Path(f"/proc/{pid}").exists() for pid in orphans):
                break
            await asyncio.sleep(0.1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in orphans)
    finally:
        await kill(proc)
        await db.dispose()


@dataclass
class _Workers:
    model: FakeOpenAI
    db: Database
    env: dict[str, str]
    proc: asyncio.subprocess.Process

    def owner(self, request: int) -> int | None:
        """The worker process that made the model's ``request``-th call."""
        return socket_owner(_children(self.proc.pid), self.model.client_ports[request])


@contextlib.asynccontextmanager
async def _two_workers(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, policy: Policy, **env: str
) -> AsyncIterator[_Workers]:
    """`serve --workers 2` on PostgreSQL answering with ``policy``, for the block."""
    async with FakeOpenAI(policy=policy) as model:
        db = await create_schema(pg_url)
        try:
            full_env = {**slack_env(pg_url, kb_uri, model, api), **env}
            async with serving(full_env, "--workers", "2") as proc:
                yield _Workers(model, db, full_env, proc)
        finally:
            await db.dispose()


async def test_a_worker_killed_mid_answer_is_answered_once_by_another_worker(
    api: FakeSlackAPI, pg_url: str, kb_uri: str
) -> None:
    """`serve --workers 2`: the worker writing an answer (streamed slowly) is SIGKILLed while
    the answer is half posted. Once its lease runs out another worker takes the question over,
    removes the half answer and answers it: one answer in the thread, recorded once."""
    slow = Turn(content="Open Settings, then Security, then Reset password. " * 3, chunk_delay=0.2)
    async with _two_workers(api, pg_url, kb_uri, lambda _request: slow) as workers:
        threads = await _send_burst([events_url(workers.env)], 1)
        await api.wait_for(lambda: any(m.streaming for m in api.posted()), timeout=30)
        victim = workers.owner(0)
        assert victim is not None  # the worker talking to the model
        os.kill(victim, signal.SIGKILL)
        await _assert_all_answered_once(api, threads, workers.db)
        [row] = (await ledger(workers.db, "slack")).values()
        assert row.attempts == 2  # the killed attempt, then the one that answered
        assert len(workers.model.requests) == 2
        assert len(set(workers.model.client_ports)) == 2  # from another process


async def test_two_workers_answer_one_askers_two_questions_one_after_the_other(
    api: FakeSlackAPI, pg_url: str, kb_uri: str
) -> None:
    """`serve --workers 2` with one answer slot each: the first question goes to one worker,
    the asker's quick follow-up in its thread to the other, which waits for the first answer
    (its live lease in the ledger) before it answers: in order, knowing the first."""
    one_slot = {"SUPPORTBOT_ANSWER_SLOTS": "1"}
    async with _two_workers(api, pg_url, kb_uri, first_is_slow, **one_slot) as workers:
        root = new_ts()
        await mention(workers.env, root, f"<@{DEFAULT_BOT_USER}> {FIRST}")
        await api.wait_for(lambda: len(workers.model.requests) == 1, timeout=30)
        first_worker = workers.owner(0)
        body = app_mention(text=f"<@{DEFAULT_BOT_USER}> {SECOND}", ts=new_ts(), thread_ts=root)
        async with SlackSender(events_url(workers.env), SIGNING_SECRET) as sender:
            assert (await sender.event(body)).status == 200
        await api.wait_for(lambda: len(answers_given(api)) == 2, timeout=30)
        second_worker = workers.owner(1)
        assert None not in (first_worker, second_worker) and first_worker != second_worker
        assert [a.split(":")[0] for a in answers_given(api)] == ["Answer one", "Answer two"]
        await asyncio.sleep(0.5)  # the second turn's record
        await assert_turns_in_order(workers.db)


async def test_discord_process_killed_mid_burst_answers_everything_once_after_restart(
    db: Database, any_db_url: str, tmp_path: Path, slow_model: FakeOpenAI
) -> None:
    async with discord_process(any_db_url, tmp_path, slow_model) as running:
        world = running.world
        channels: list[str] = []
        for i in range(BURST):
            if i % 4 == 0:  # a channel mention: answered in a new thread
                message = await world.say(f"{QUESTIONS[i % 2]} #{i}", mention=True)
                channels.append(message["id"])
            else:
                channels.append((await world.dm(f"{QUESTIONS[i % 2]} #{i}"))["channel_id"])

        def answered() -> int:
            return sum(1 for c in channels if _final(world.api.channel_messages(c)))

        # Discord has no acks: a message the gateway handed to a process that died before
        # claiming it is gone with that process. Kill once every message is claimed (acked)
        # but most are still being answered.
        async def claimed() -> int:
            return len(await ledger(db, "discord"))

        while await claimed() < BURST:
            await asyncio.sleep(0.02)
        await running.kill()
        assert answered() < BURST
        await running.restart()  # the gateway replays nothing
        await world.api.wait_for(lambda: answered() == BURST, timeout=60, what="every answer")
        await asyncio.sleep(3.5)
        for channel in channels:
            assert len(world.api.channel_messages(channel)) == 1, channel
        assert world.api.channel_messages(world.channel_id) == []
        rows = await ledger(db, "discord")
        assert Counter(row.status for row in rows.values()) == {events.ANSWERED: BURST}


def _final(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and not messages[-1]["content"].endswith("▌")
