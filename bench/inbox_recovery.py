"""Crash-recovery benchmark: SIGKILL the real ``supportbot serve`` mid-burst, start it again.

Usage: ``.venv/bin/python bench/inbox_recovery.py [--questions 40] [--lease 15] [--db postgres]``

The fakes (Slack Web API, OpenAI with 0.3 s per model call) run in this process; ``supportbot
serve`` runs as a subprocess with the default inbox settings unless ``--lease`` says otherwise.
Slack re-delivers nothing. Measured, counted at the fake Slack:

* baseline in the same run: the burst answered by a process that is never killed (seconds from
  the first question to the last answer);
* the crash run: answers before the kill, seconds from the kill (and from the restart) until
  the last answer, duplicates and lost questions (both must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, Turn, default_policy  # noqa: E402
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI  # noqa: E402
from tests.fakes.slack_harness import BOT_TOKEN, SIGNING_SECRET, build_kb  # noqa: E402
from tests.fakes.slack_sender import SlackSender, app_mention, new_ts  # noqa: E402

PG_ADMIN = os.environ.get("SUPPORTBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _slow(request: dict[str, Any]) -> Turn:
    return replace(default_policy(request), delay=0.3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _database(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{folder / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    name = f"sb_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name


async def _run(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await _run(["serve", "--workers", "0"], env)
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            try:
                async with session.get(f"http://127.0.0.1:{env['PORT']}/healthz") as response:
                    if response.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("supportbot serve did not become healthy")


def _answered(api: FakeSlackAPI) -> int:
    return sum(1 for m in api.posted() if not m.streaming)


async def _burst(url: str, count: int) -> list[str]:
    threads = []
    async with SlackSender(url, SIGNING_SECRET) as sender:
        for i in range(count):
            ts = new_ts()
            text = f"<@{DEFAULT_BOT_USER}> how do I reset my password? #{i}"
            assert (await sender.event(app_mention(text=text, ts=ts))).status == 200
            threads.append(ts)
    return threads


async def _wait(api: FakeSlackAPI, count: int, timeout: float) -> None:
    await api.wait_for(lambda: _answered(api) >= count, timeout=timeout)


async def _one_run(
    kind: str, folder: Path, kb: str, count: int, lease: float | None, crash: bool
) -> dict[str, Any]:
    api = FakeSlackAPI()
    await api.start()
    env: dict[str, str] = {"DATABASE_URL": await _database(kind, folder)}
    try:
        async with FakeOpenAI(policy=_slow) as model:
            env.update(
                {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_"))}
            )
            env.update(
                SUPPORTBOT_KB_URI=kb,
                SUPPORTBOT_EMBEDDER="none",
                SLACK_API_URL=api.base_url,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_BOT_TOKEN=BOT_TOKEN,
                OPENAI_API_KEY=FAKE_API_KEY,
                OPENAI_BASE_URL=model.base_url,
                HOST="127.0.0.1",
                PORT=str(_free_port()),
                HF_HUB_OFFLINE="1",
            )
            if lease is not None:
                env["SUPPORTBOT_LEASE_SECONDS"] = str(lease)
            migrate = await _run(["db", "upgrade"], env)
            await migrate.wait()
            proc = await _serve(env)
            url = f"http://127.0.0.1:{env['PORT']}/slack/events"
            started = time.monotonic()
            threads = await _burst(url, count)
            result: dict[str, Any] = {}
            try:
                if crash:
                    await _wait(api, 5, 60)
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
                    killed = time.monotonic()
                    result["answered_before_kill"] = _answered(api)
                    proc = await _serve(env)
                    result["restart_s"] = time.monotonic() - killed
                    await _wait(api, count, 120)
                    result["kill_to_last_answer_s"] = time.monotonic() - killed
                else:
                    await _wait(api, count, 120)
                    result["first_question_to_last_answer_s"] = time.monotonic() - started
                await asyncio.sleep(2)
            finally:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
            per_thread = Counter(m.thread_ts for m in api.posted())
            result["duplicates"] = sum(1 for t in threads if per_thread[t] > 1)
            result["lost"] = sum(1 for t in threads if per_thread[t] == 0)
            return result
    finally:
        await api.close()
        if kind != "sqlite":
            await _drop(env["DATABASE_URL"].rsplit("/", 1)[1])


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--lease", type=float, default=None, help="seconds (default: 15)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kb = build_kb(folder)
        baseline = await _one_run(args.db, folder, kb, args.questions, args.lease, crash=False)
        crashed = await _one_run(args.db, folder, kb, args.questions, args.lease, crash=True)
    print(f"load average: {os.getloadavg()}")
    print(f"questions: {args.questions}, database: {args.db}, lease: {args.lease or 15} s")
    print(f"baseline (no crash): {baseline}")
    print(f"SIGKILL mid-burst, restart: {crashed}")


if __name__ == "__main__":
    asyncio.run(main())
