"""Fixtures for the Discord end-to-end tests: a fake Discord world, a real runtime (SQLite +
LanceDB with two tiny docs, offline answerer or the OpenAI fake) and the real adapter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.app import DiscordAdapter
from bot import texts
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from storage import channel_settings
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.fakes.discord_world import DiscordWorld, write_docs
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI

FAST_CLIENT = {"guild_ready_timeout": 0.05, "identify_spacing": 0.05}


@pytest.fixture
async def world() -> AsyncIterator[DiscordWorld]:
    world = await DiscordWorld.start()
    yield world
    await world.stop()


@pytest.fixture
def kb_uri(tmp_path: Path) -> str:
    uri = str(tmp_path / "kb")
    KnowledgeBase.open(uri, None).ingest(write_docs(tmp_path / "docs"))
    return uri


def make_settings(world: DiscordWorld, sqlite_url: str, kb_uri: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": sqlite_url,
        "kb_uri": kb_uri,
        "embedder": "none",
        "openai_api_key": None,
        "openai_base_url": None,
    }
    values.update(world.settings())
    values.update(overrides)
    return load_settings(**values)


def team_settings(world: DiscordWorld, sqlite_url: str, kb_uri: str, **overrides: Any) -> Settings:
    """Settings whose hand-offs are noticed in the world's team channel, the support role's."""
    return make_settings(
        world,
        sqlite_url,
        kb_uri,
        discord_escalation_channel=world.no_threads_channel_id,
        discord_support_role=world.support_role_id,
        **overrides,
    )


def model_overrides(model: FakeOpenAI) -> dict[str, Any]:
    """The settings that answer with the OpenAI agent against ``model``, without retries."""
    return {
        "openai_api_key": FAKE_API_KEY,
        "openai_base_url": model.base_url,
        "openai_max_retries": 0,
    }


class RunningBot:
    """A started adapter (a new discord.py client) on a runtime; ``stop()`` closes it."""

    def __init__(self, adapter: DiscordAdapter, task: asyncio.Task[None]) -> None:
        self.adapter = adapter
        self.task = task

    async def stop(self) -> None:
        await self.adapter.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 10)
        await self.adapter.runtime.aclose()  # the model client; the engine can be reused


async def start_bot(
    world: DiscordWorld, runtime: Runtime, *, sessions: int | None = None, **adapter_options: Any
) -> RunningBot:
    adapter_options.setdefault("client_options", dict(FAST_CLIENT))
    # Show typing and the first partial post at once, so tests see streaming even when the
    # offline answerer finishes in milliseconds.
    adapter_options.setdefault("first_post_delay", 0.0)
    # The typing indicator comes when the core finds the answer slow (bot/progress.py): at the
    # first post's delay here too, so tests see it as they see the first partial post.
    runtime.responder.progress_after = adapter_options["first_post_delay"]
    adapter_options.setdefault("stream_interval", 0.2)
    adapter = DiscordAdapter(runtime, **adapter_options)
    before = len(world.gateway.sessions)
    task = asyncio.create_task(adapter.start("fake-discord-token"))
    try:
        await world.gateway.wait_ready(before + (sessions or 1), timeout=10)
        await asyncio.wait_for(adapter.client.wait_until_ready(), 10)
    except BaseException:
        task.cancel()
        raise
    return RunningBot(adapter, task)


@asynccontextmanager
async def running_bot(
    world: DiscordWorld, settings: Settings, db: Database, **adapter_options: Any
) -> AsyncIterator[RunningBot]:
    """A bot on a new runtime of ``settings`` for the ``async with`` block, then stopped."""
    running = await start_bot(world, await build_runtime(settings, db=db), **adapter_options)
    try:
        yield running
    finally:
        await running.stop()


BotFactory = Callable[..., Awaitable[RunningBot]]

# Seconds before a row handed back after a passing fault is tried again (2 s, 8 s in production).
RETRY_SOON = (0.2, 0.2)


async def start_retrying_bot(
    world: DiscordWorld, db: Database, url: str, kb_uri: str, **overrides: Any
) -> RunningBot:
    """A bot whose leases and retries after a passing fault come round within a test."""
    settings = make_settings(world, url, kb_uri, lease_seconds=2.0, recover_every=0.2, **overrides)
    running = await start_bot(world, await build_runtime(settings, db=db))
    running.adapter.inbox.try_later_delays = RETRY_SOON
    return running


@asynccontextmanager
async def retrying_bot(
    world: DiscordWorld, db: Database, url: str, kb_uri: str, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """:func:`start_retrying_bot` for the ``async with`` block, then stopped."""
    running = await start_retrying_bot(world, db, url, kb_uri, **overrides)
    try:
        yield running
    finally:
        await running.stop()


async def start_model_bot(
    world: DiscordWorld,
    db: Database,
    db_url: str,
    kb_uri: str,
    model: FakeOpenAI,
    **adapter_options: Any,
) -> RunningBot:
    """A bot answering with the OpenAI agent against ``model`` (no retries)."""
    settings = make_settings(world, db_url, kb_uri, **model_overrides(model))
    return await start_bot(world, await build_runtime(settings, db=db), **adapter_options)


@pytest.fixture
async def retrying(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> AsyncIterator[RunningBot]:
    """:func:`start_retrying_bot` on the test's database and docs, stopped at the end."""
    async with retrying_bot(world, sqlite_db, sqlite_url, kb_uri) as running:
        yield running


async def private_channel(world: DiscordWorld, db: Database) -> None:
    """The world's channel answers privately (`channels set C --ephemeral on`)."""
    await channel_settings.upsert_setting(
        db, platform="discord", workspace_id=world.guild_id, channel_id=world.channel_id,
        ephemeral=True,
    )  # fmt: skip


def finished(message: dict[str, Any]) -> bool:
    """An answer's last edit brings its buttons: a message with them is a finished answer."""
    return bool(message.get("components"))


def apology(message: dict[str, Any]) -> bool:
    return message["content"] == texts.ERROR_GENERIC


async def settle(
    world: DiscordWorld,
    running: RunningBot,
    messages: Callable[[], list[dict[str, Any]]],
    done: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    linger: float = 0.0,
) -> list[dict[str, Any]]:
    """``messages()`` once one of them is ``done`` and the bot has nothing left to do, and
    ``linger`` seconds more (a late apology or duplicate would show by then)."""
    await world.api.wait_for(lambda: any(done(m) for m in messages()), what=what)
    await running.adapter.inbox.wait_idle(10)
    if linger:
        await asyncio.sleep(linger)
    return messages()


@pytest.fixture
async def runtime(
    world: DiscordWorld, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> AsyncIterator[Runtime]:
    settings = make_settings(world, sqlite_url, kb_uri)
    rt = await build_runtime(settings, db=sqlite_db)
    yield rt


@pytest.fixture
async def bot(world: DiscordWorld, runtime: Runtime) -> AsyncIterator[RunningBot]:
    running = await start_bot(world, runtime)
    yield running
    await running.stop()
