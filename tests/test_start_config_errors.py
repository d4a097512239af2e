"""Broken configuration at start, through the real `supportbot` processes: each stops with one
line naming the variable at fault and a non-zero exit code, and never prints a token."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.discord_api import FakeDiscordAPI
from tests.process_support import free_port

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "fake-discord-token-that-must-not-show"


async def _run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """``supportbot ARGS`` in an empty folder with only ``env`` set; its exit code and output."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={**base, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **env},
        cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 45)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def _one_line_naming(output: str, variable: str) -> None:
    [line] = [line for line in output.splitlines() if line.startswith("error:")]
    assert variable in line, output
    assert "Traceback" not in output, output
    assert TOKEN not in output and "xoxb-" not in output


@pytest.mark.parametrize(
    ("args", "variable", "env"),
    [
        (("run", "discord"), "DISCORD_API_URL", {"DISCORD_API_URL": "discord.example/api"}),
        (("serve",), "SLACK_API_URL", {"SLACK_API_URL": "ftp://slack.example/api/"}),
        (("run", "discord"), "OPENAI_BASE_URL", {"OPENAI_BASE_URL": "not a url"}),
    ],
)
async def test_a_malformed_base_url_is_refused_at_start_by_name(
    tmp_path: Path, args: tuple[str, ...], variable: str, env: dict[str, str]
) -> None:
    # DISCORD_API_URL without a scheme made `run discord` die with a 70-line traceback (an
    # aiohttp InvalidUrlClientError); a bad SLACK_API_URL let `serve` start and fail every call.
    tokens = {
        "DISCORD_TOKEN": TOKEN,
        "SLACK_BOT_TOKEN": "xoxb-1-secret",
        "SLACK_SIGNING_SECRET": "signing-secret",
    }
    code, output = await _run(tmp_path, *args, **tokens, **env)
    assert code != 0
    _one_line_naming(output, variable)


async def test_a_discord_token_refused_at_login_is_one_line_naming_it(tmp_path: Path) -> None:
    # Discord answers the login with 401: discord.py's LoginFailure came out as a traceback.
    api = FakeDiscordAPI()
    await api.start()
    api.fail_with(401, "GET", r"/users/@me", times=10)
    try:
        await _run(tmp_path, "db", "upgrade")
        code, output = await _run(
            tmp_path, "run", "discord", DISCORD_TOKEN=TOKEN, DISCORD_API_URL=api.base_url
        )
    finally:
        await api.stop()
    assert code != 0
    _one_line_naming(output, "DISCORD_TOKEN")


async def test_a_discord_api_unreachable_at_start_is_one_line_naming_its_url(
    tmp_path: Path,
) -> None:
    # DISCORD_API_URL at a closed port (Discord down, no network): `run discord` died with a
    # 70-line aiohttp traceback. Now one line names the API base URL (never the token), the log
    # says why, and the exit code is non-zero (a process manager restarts it).
    api_url = f"http://127.0.0.1:{free_port()}/api/v10"
    await _run(tmp_path, "db", "upgrade")
    code, output = await _run(
        tmp_path, "run", "discord", DISCORD_TOKEN=TOKEN, DISCORD_API_URL=api_url
    )
    assert code == 1
    _one_line_naming(output, api_url)
    [logged] = [line for line in output.splitlines() if " ERROR " in line]
    assert api_url in logged and "Cannot connect to host" in logged
