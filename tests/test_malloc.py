"""bot/malloc.py: glibc tuning for long-running processes, harmless where glibc is absent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import malloc

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def not_glibc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A C library that is not glibc (musl, macOS): confstr does not know the name."""

    def confstr(name: str) -> str:
        raise ValueError(f"unrecognized configuration name {name!r}")

    malloc.glibc.cache_clear()
    monkeypatch.setattr(os, "confstr", confstr)
    yield
    malloc.glibc.cache_clear()


def test_everything_is_a_no_op_without_glibc(not_glibc: None) -> None:
    assert malloc.glibc() is None
    assert malloc.trim() is False

    async def run() -> None:
        trimmer = malloc.Trimmer(every=0.01)
        trimmer.start()
        await trimmer.stop()  # never started a task

    asyncio.run(run())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc on this machine")
def test_a_long_running_process_is_tuned_before_pyarrow_loads() -> None:
    code = (
        "from bot import malloc\n"
        "malloc.tune_for_long_run()\n"
        "import pyarrow\n"
        "print(malloc.long_running(), pyarrow.default_memory_pool().backend_name, malloc.trim())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    assert out.stdout.split() == ["True", "system", "True"]


def test_the_operator_s_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setattr(malloc, "_long_running", False)
    malloc.tune_for_long_run()
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "jemalloc"
    assert malloc.long_running()


@pytest.mark.skipif(malloc.glibc() is None, reason="needs glibc")
def test_the_trimmer_trims_after_start_up_and_after_a_burst_not_during_idle() -> None:
    async def run() -> None:
        trimmer = malloc.Trimmer(every=0.05)
        trimmer.start()
        await asyncio.sleep(0.3)
        assert trimmer.trims == 1  # after start-up; idle since
        end = time.process_time() + 0.3
        while time.process_time() < end:  # a burst of work (on the loop thread, as answers)
            pass
        await asyncio.sleep(0.3)
        assert trimmer.trims == 2  # once the burst ended
        await trimmer.stop()
        await trimmer.stop()  # twice is harmless

    asyncio.run(run())
