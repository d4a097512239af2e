"""Real `supportbot` processes against the loopback fakes, configured only through the outside
contract's variables (DESIGN.md §8): starting, asking, stopping and reading what they stored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from sqlalchemy import select

from storage.db import Database
from storage.models import Base, Memory
from tests.fakes.discord_world import DiscordWorld, write_docs
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_harness import BOT_TOKEN, SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention

ROOT = Path(__file__).resolve().parent.parent
# Short leases so a killed process's questions are taken over within seconds.
FAST_INBOX = {"SUPPORTBOT_LEASE_SECONDS": "3", "SUPPORTBOT_RECOVER_EVERY": "0.3"}
QUESTION = f"<@{DEFAULT_BOT_USER}> how do I reset my password?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(db_url: str, kb: str, model: FakeOpenAI, **extra: str) -> dict[str, str]:
    """The environment of a process on ``db_url`` and ``kb``, answering with ``model``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "OPENAI_", "DISCORD", "SUPPORTBOT_"))
    }
    env.update(
        DATABASE_URL=db_url,
        SUPPORTBOT_KB_URI=kb,
        SUPPORTBOT_EMBEDDER="none",
        OPENAI_API_KEY=FAKE_API_KEY,
        OPENAI_BASE_URL=model.base_url,
        HOST="127.0.0.1",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
        **FAST_INBOX,
    )
    env.update(extra)
    return env


def slack_env(db_url: str, kb: str, model: FakeOpenAI, api: FakeSlackAPI) -> dict[str, str]:
    """A Slack process's environment, on a port of its own."""
    return process_env(
        db_url,
        kb,
        model,
        SLACK_API_URL=api.base_url,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        PORT=str(free_port()),
    )


async def spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``python -m bot ARGS`` (its log in /tmp, for reading after a failure)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(
            f"/tmp/inbox_proc_{args[0]}_{os.getpid()}_{asyncio.get_running_loop().time():.0f}.log",
            "w",
        ),
    )


async def health(port: str) -> int | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            return response.status
    except aiohttp.ClientError:
        return None


async def serve(env: dict[str, str], *extra: str) -> asyncio.subprocess.Process:
    """`supportbot serve`, once its /healthz answers 200."""
    proc = await spawn("serve", *extra, env=env)
    for _ in range(400):
        if proc.returncode is not None:
            raise AssertionError("supportbot serve exited early")
        if await health(env["PORT"]) == 200:
            return proc
        await asyncio.sleep(0.1)
    raise AssertionError("supportbot serve never became healthy")


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], *extra: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`supportbot serve` (healthy) for the block, SIGKILLed after it whatever happens."""
    proc = await serve(env, *extra)
    try:
        yield proc
    finally:
        await kill(proc)


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


def socket_owner(pids: list[int], local_port: int) -> int | None:
    """Which of ``pids`` holds the TCP connection whose local port is ``local_port`` (the
    client side of a connection a fake saw), from /proc/net/tcp and the processes' fds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
    return None


def events_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['PORT']}/slack/events"


async def mention(env: dict[str, str], ts: str, text: str = QUESTION) -> None:
    """One signed ``app_mention`` to a `serve` process, acked."""
    async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
        assert (await sender.event(app_mention(text=text, ts=ts))).status == 200


async def create_schema(db_url: str) -> Database:
    """A database with every table (a PostgreSQL one is shared by replicas)."""
    db = Database(db_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return db


async def stored_turns(db: Database) -> list[tuple[str, str, str]]:
    """Every stored question and answer: (session, role, content), in order."""
    async with db.sessions() as session:
        rows = await session.scalars(
            select(Memory).where(Memory.role.in_(("user", "assistant"))).order_by(Memory.id)
        )
        return [(r.session_id, r.role, r.content) for r in rows]


async def discord_world(
    db_url: str, tmp_path: Path, model: FakeOpenAI
) -> tuple[DiscordWorld, dict[str, str]]:
    """A fake Discord and the environment of a `run discord` process on the test docs."""
    from storage.knowledge import KnowledgeBase

    kb = str(tmp_path / "kb")
    KnowledgeBase.open(kb, None).ingest(write_docs(tmp_path / "docs"))
    world = await DiscordWorld.start()
    env = process_env(
        db_url,
        kb,
        model,
        DISCORD_TOKEN="fake-discord-token",
        DISCORD_API_URL=world.api.base_url,
        SUPPORTBOT_DISCORD_MESSAGE_CONTENT="true",
    )
    return world, env


@dataclass
class DiscordProcess:
    """A fake Discord and the `run discord` process connected to it, which a test may kill
    and start again (the gateway replays nothing to the new one)."""

    world: DiscordWorld
    env: dict[str, str]
    proc: asyncio.subprocess.Process

    async def kill(self) -> None:
        await kill(self.proc)

    async def restart(self) -> None:
        """A new process in place of the killed one (not waited for: it connects by itself)."""
        self.proc = await spawn("run", "discord", env=self.env)


@contextlib.asynccontextmanager
async def discord_process(
    db_url: str,
    tmp_path: Path,
    model: FakeOpenAI,
    extra_env: Callable[[DiscordWorld], dict[str, str]] = lambda _world: {},
) -> AsyncIterator[DiscordProcess]:
    """A fake Discord and a `run discord` process connected to it (killed at the end, as is
    any process started in its place), with ``extra_env(world)`` added to its environment."""
    world, env = await discord_world(db_url, tmp_path, model)
    env.update(extra_env(world))
    running = DiscordProcess(world, env, await spawn("run", "discord", env=env))
    try:
        await world.gateway.wait_ready(1, timeout=30)
        yield running
    finally:
        await running.kill()
        await world.stop()
