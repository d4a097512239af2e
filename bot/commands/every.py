"""`supportbot ingest ... --every 6h`: one process that keeps the knowledge base in step with
the docs (a folder on a shared volume, or a published site), for platforms without a scheduler.

A round that fails (the site is down, the disk is full) is reported like a one-shot run's error
and tried again soon, at most twice (a quarter of the period later, at most 5 minutes: most
failures pass, and waiting a whole period of 6 hours for the next round left the docs stale that
long); the next round still runs on time. What the knowledge base held stays searchable
meanwhile (a site fetch that fails prunes nothing: storage/crawl.py). SIGTERM lets the round in
progress finish and stops before the next one; Ctrl-C stops at once, as for any command.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from bot import malloc
from bot.errors import SupportbotError

log = logging.getLogger(__name__)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 1.0  # seconds; a site is fetched at most once per round anyway
RETRIES = 2  # of a failed round, before the schedule's next round
RETRY_AFTER_MAX = 300.0  # seconds; a retry comes a quarter of the period later, at most this


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``1d`` (or combined: ``1h30m``) in seconds."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; use a number and s, m, h or d (6h, 30m)")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds < MIN_INTERVAL:
        raise ValueError(f"{text!r} is too short; the shortest is 1s")
    return seconds


def run_every(interval: float, job: Callable[[], None]) -> None:
    """Run ``job`` now and then every ``interval`` seconds (counted from each start) until
    SIGTERM. A failed run is reported, tried again up to RETRIES times a little later (never
    past the next round), and does not stop the next."""
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stop.is_set():
            started = time.monotonic()
            _run_with_retries(job, stop, next_round=started + interval, interval=interval)
            malloc.trim()  # a round's parsing and embedding buffers, back to the system
            wait = max(0.0, interval - (time.monotonic() - started))
            if stop.is_set():
                break
            at = datetime.now(UTC) + timedelta(seconds=wait)
            typer.echo(f"Next ingest at {at:%Y-%m-%d %H:%M:%S} UTC.", err=True)
            stop.wait(wait)
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo("Stopped (SIGTERM).", err=True)


def _run_with_retries(
    job: Callable[[], None], stop: threading.Event, *, next_round: float, interval: float
) -> None:
    """One round; if it fails, the same round again after a short wait, up to RETRIES times,
    as long as the retry starts before the schedule's next round (that one comes on time)."""
    delay = min(interval / 4, RETRY_AFTER_MAX)
    for retry in range(1, RETRIES + 1):
        if _run_reporting_failure(job) or stop.is_set():
            return
        if time.monotonic() + delay >= next_round:
            return
        typer.echo(f"Retrying this round in {_seconds(delay)} ({retry} of {RETRIES}).", err=True)
        if stop.wait(delay):
            return
    _run_reporting_failure(job)


def _seconds(value: float) -> str:
    """``15 s``, ``5 min``: how long a retry waits, as people say it."""
    if value >= 60:
        return f"{round(value / 60, 1):g} min"
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"


def _run_reporting_failure(job: Callable[[], None]) -> bool:
    """Whether the job ran; its failure is reported on stderr, the same as a one-shot run's."""
    try:
        job()
    except SupportbotError as exc:
        typer.echo(f"error: {exc}", err=True)  # the line a one-shot run would end with
    except Exception:
        log.exception("an ingest round failed")
        typer.echo(
            "error: this ingest round failed unexpectedly (the log has the reason); the "
            "knowledge base keeps what it had",
            err=True,
        )
    else:
        return True
    return False
