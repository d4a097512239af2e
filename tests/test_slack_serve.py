"""The real `supportbot serve` process: migrations, /healthz, a signed mention, SIGTERM; the
manifest command; start-up refusal without credentials."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, ToolCall, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import BOT_TOKEN, SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention

__all__ = ["api", "fake_openai", "kb_uri"]
SUPPORTBOT = [sys.executable, "-m", "bot"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "SUPPORTBOT_EMBEDDER": "none",
            "HOST": "127.0.0.1",
            "HF_HUB_OFFLINE": "1",
        }
    )
    env.update(extra)
    return env


async def _run(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *SUPPORTBOT,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process) -> dict:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if proc.returncode is not None:
                raise AssertionError("supportbot serve exited early")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return await response.json()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("supportbot serve never became healthy")


async def _start_serve(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *SUPPORTBOT,
        "serve",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    health = await _wait_healthy(f"http://127.0.0.1:{env['PORT']}/healthz", proc)
    assert health.pop("loop_lag")["threshold_ms"] == 250  # the process watches its loop
    assert health == {"status": "ok", "database": True, "knowledge_base": True}
    return proc


async def _sigterm(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM must stop the process cleanly within 10 s; returns its output."""
    started = asyncio.get_running_loop().time()
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 10)
    assert asyncio.get_running_loop().time() - started < 10
    output = (await proc.stdout.read()).decode() if proc.stdout else ""
    assert proc.returncode == 0, output
    return output


def _ledger_status(db_file: Path, ts: str) -> tuple[str, bool]:
    with sqlite3.connect(db_file) as conn:
        status, lease = conn.execute(
            "SELECT status, lease_until FROM processed_events WHERE event_id = ?",
            (f"msg:T0000001:C0000001:{ts}",),
        ).fetchone()
    expired = lease is not None and datetime.fromisoformat(lease).replace(tzinfo=UTC) < (
        datetime.now(UTC)
    )
    return status, expired


async def test_supportbot_serve_end_to_end(
    api: FakeSlackAPI, kb_uri: str, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """db upgrade, serve, answer once despite a retry, SIGTERM mid-answer within 10 s, restart:
    the abandoned question is answered by the new process."""
    env = _env(
        tmp_path,
        SUPPORTBOT_KB_URI=kb_uri,
        SLACK_API_URL=api.base_url,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        OPENAI_API_KEY=FAKE_API_KEY,
        OPENAI_BASE_URL=fake_openai.base_url,
        PORT=str(_free_port()),
    )
    code, out = await _run("db", "upgrade", env=env, cwd=tmp_path)
    assert code == 0, out
    events_url = f"http://127.0.0.1:{env['PORT']}/slack/events"
    outputs = []
    proc = await _start_serve(env, tmp_path)
    try:
        async with SlackSender(events_url, SIGNING_SECRET) as sender:
            first = app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?")
            assert (await sender.event(first)).status == 200
            assert (await sender.event(first, retry_num=1)).status == 200
            await api.wait_for(lambda: [m for m in api.posted() if not m.streaming], timeout=20)
            [answer] = api.posted()
            assert answer.thread_ts == first["event"]["ts"] and answer.token == BOT_TOKEN
            assert api.calls_to("auth.test")  # the bot learnt who it is

            # a question whose model call hangs, then SIGTERM while it is being answered
            fake_openai.queue(
                Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "x"})], delay=9)
            )
            calls = len(fake_openai.requests)
            second = app_mention(text=f"<@{DEFAULT_BOT_USER}> when are invoices sent?")
            assert (await sender.event(second)).status == 200
            await api.wait_for(lambda: len(fake_openai.requests) > calls, timeout=10)
        outputs.append(await _sigterm(proc))
        ts = second["event"]["ts"]
        assert _ledger_status(tmp_path / "serve.db", ts) == ("answering", True)

        proc = await _start_serve(env, tmp_path)  # the restart finishes what was abandoned
        await api.wait_for(
            lambda: any(m.thread_ts == ts and not m.streaming for m in api.posted()), timeout=20
        )
        await asyncio.sleep(0.3)
        outputs.append(await _sigterm(proc))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [m.thread_ts for m in api.posted()] == [first["event"]["ts"], ts]
    assert _ledger_status(tmp_path / "serve.db", ts)[0] == "answered"
    for output in outputs:
        assert SIGNING_SECRET not in output and BOT_TOKEN not in output
        # Bolt's start-up notes that the token it read from the environment is "unused" /
        # "ignored" (we give it a client and an authorize using that token) are not shown.
        assert "`token`" not in output, output


async def test_serve_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    code, out = await _run("serve", env=_env(tmp_path, SLACK_BOT_TOKEN="xoxb-1"), cwd=tmp_path)
    assert code == 1
    assert "SLACK_SIGNING_SECRET" in out and "Traceback" not in out
    code, out = await _run("run", "slack", "--socket-mode", env=_env(tmp_path), cwd=tmp_path)
    assert code == 1 and "SLACK_APP_TOKEN" in out and "SLACK_BOT_TOKEN" in out


def test_manifest_points_everything_at_slack_events(capsys: pytest.CaptureFixture[str]) -> None:
    main(["slack", "manifest", "--url", "https://bot.example.com/"])
    manifest = json.loads(capsys.readouterr().out)
    events_url = "https://bot.example.com/slack/events"
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"] == events_url
    assert settings["interactivity"] == {"is_enabled": True, "request_url": events_url}
    assert {"app_mention", "message.im", "message.channels"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert {"/ask", "/forget"} <= set(commands)
    assert all(c["url"] == events_url for c in commands.values())
    assert "chat:write" in manifest["oauth_config"]["scopes"]["bot"]
    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://bot.example.com/slack/oauth_redirect"
    ]
    main(["slack", "manifest", "--url", "https://bot.example.com", "--format", "yaml"])
    yaml = capsys.readouterr().out
    assert 'request_url: "https://bot.example.com/slack/events"' in yaml
    assert '- command: "/ask"' in yaml
