"""Shared set-ups of the tests that run the real processes (`supportbot serve`, `run slack
--socket-mode`, `run discord`) against the loopback fakes, configured only by the outside
contract's variables: their environment, starting and killing them, and a question mentioned to
a `serve` process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.fakes.discord_world import DiscordWorld, write_docs
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_harness import BOT_TOKEN, SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention

ROOT = Path(__file__).resolve().parent.parent
# Short leases so a killed process's questions are taken over within seconds.
FAST_INBOX = {"SUPPORTBOT_LEASE_SECONDS": "3", "SUPPORTBOT_RECOVER_EVERY": "0.3"}
QUESTION = "how do I reset my password?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(db_url: str, kb: str, model: FakeOpenAI, **extra: str) -> dict[str, str]:
    """A process's environment: this one's without platform or bot settings, then ours."""
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
    return process_env(
        db_url,
        kb,
        model,
        SLACK_API_URL=api.base_url,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        PORT=str(free_port()),
    )


async def discord_env(
    db_url: str, tmp_path: Path, model: FakeOpenAI
) -> tuple[DiscordWorld, dict[str, str]]:
    """A started fake Discord and the environment of a `run discord` process on the test docs
    (the caller stops the world)."""
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


async def spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
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
    """`supportbot serve`, once it answers healthy."""
    proc = await spawn("serve", *extra, env=env)
    for _ in range(400):
        if proc.returncode is not None:
            raise AssertionError("supportbot serve exited early")
        if await health(env["PORT"]) == 200:
            return proc
        await asyncio.sleep(0.1)
    raise AssertionError("supportbot serve never became healthy")


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


def events_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['PORT']}/slack/events"


async def ask_serve(env: dict[str, str], ts: str, question: str = QUESTION) -> None:
    """The bot mentioned with ``question`` at ``ts`` through a `serve` process (acked 200)."""
    async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
        body = app_mention(text=f"<@{DEFAULT_BOT_USER}> {question}", ts=ts)
        assert (await sender.event(body)).status == 200


async def all_streams_closed(api: FakeSlackAPI, timeout: float = 30) -> None:
    """Wait until something is posted and no streamed message is still open."""
    await api.wait_for(
        lambda: api.posted() and not any(m.streaming for m in api.posted()), timeout=timeout
    )
