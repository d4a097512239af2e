"""The event-loop lag monitor (issue 12, point 10): a blocked loop is logged over 250 ms, the
figures are in /healthz, and benchmarks can read every sample from the sample log."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.looplag import SCHEDSTAT, LoopLagMonitor, read_samples, shed_progress
from storage.db import Database
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings

__all__ = ["api", "kb_uri"]


async def test_a_blocked_loop_is_logged_and_sampled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sample_log = tmp_path / "lag.txt"
    monitor = LoopLagMonitor(interval=0.02, sample_log=sample_log)
    started = time.time()
    monitor.start()
    await asyncio.sleep(0.2)
    time.sleep(0.4)  # something blocks the loop
    await asyncio.sleep(0.2)
    await monitor.stop()
    figures = monitor.snapshot()
    assert figures["max_ms"] >= 300 and figures["over_threshold"] == 1
    assert figures["p50_ms"] < 50
    warnings = [r for r in caplog.records if "event loop lag" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    # While it was stuck, the watchdog said where: the blocking call, by file and line.
    [stuck] = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert "test_looplag.py" in stuck and "time.sleep(0.4)" in stuck
    samples = read_samples(sample_log, since=started)
    assert len(samples) >= 10 and max(samples) >= 300


async def test_healthz_shows_loop_lag(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    h = await SlackHarness.start(api, slack_settings(sqlite_url, kb_uri, api), db=sqlite_db)
    try:
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as client, client.get(h.url + "/healthz") as response:
            body = await response.json()
    finally:
        await h.close()
    assert response.status == 200
    assert body["loop_lag"]["samples"] >= 1 and body["loop_lag"]["threshold_ms"] == 250


async def burn(seconds: float) -> None:
    """Keep this process's CPU busy on the event loop, yielding every few milliseconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        slice_end = time.monotonic() + 0.005
        while time.monotonic() < slice_end:
            pass
        await asyncio.sleep(0)


async def test_a_cpu_bound_process_is_seen_as_saturated() -> None:
    monitor = LoopLagMonitor(interval=0.05)
    monitor.start(watchdog=False)
    try:
        await burn(1.3)
        assert monitor.cpu_share() >= 0.9 and monitor.saturated()
        assert shed_progress(monitor, in_flight=5)
        assert not shed_progress(monitor, in_flight=1)  # one answer after busy work: not a burst
        assert not shed_progress(None, in_flight=5)
        await asyncio.sleep(1.3)  # idle, waiting on I/O (a slow model)
        assert monitor.cpu_share() < 0.5 and not monitor.saturated()
    finally:
        await monitor.stop()


@pytest.mark.skipif(not SCHEDSTAT.exists(), reason="needs Linux's per-thread schedstat")
async def test_a_busy_loop_that_shares_its_core_is_still_seen_as_saturated() -> None:
    """On a machine other processes keep busy the loop gets less than a core, yet it never
    idles: time spent waiting for the CPU counts as demand. One core, shared with a busy
    process: this process uses about half of it and waits for the rest."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # this thread, the event loop's
    rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    monitor = LoopLagMonitor(interval=0.05)
    try:
        monitor.start(watchdog=False)
        used = time.process_time()
        started = time.monotonic()
        await burn(1.5)
        used_share = (time.process_time() - used) / (time.monotonic() - started)
        assert used_share < 0.8  # it did share the core
        assert monitor.cpu_share() >= 0.9 and monitor.saturated()
    finally:
        rival.kill()
        rival.wait()
        os.sched_setaffinity(0, cpus)
        await monitor.stop()
