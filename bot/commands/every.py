"""`supportbot ingest ... --every 6h`: one process that keeps the knowledge base in step with
the docs (a folder on a shared volume, or a published site), for platforms without a scheduler.

A round that fails (the site is down, the disk is full) is reported like a one-shot run's error
and the next round runs on time; what the knowledge base held stays searchable meanwhile (a site
fetch that fails prunes nothing: storage/crawl.py). SIGTERM lets the round in progress finish
and stops before the next one; Ctrl-C stops at once, as for any command.
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
    SIGTERM. A failed run is reported and does not stop the next."""
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stop.is_set():
            started = time.monotonic()
            _run_reporting_failure(job)
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


def _run_reporting_failure(job: Callable[[], None]) -> None:
    try:
        job()
    except SupportbotError as exc:
        typer.echo(f"error: {exc}", err=True)  # the line a one-shot run would end with
    except Exception:
        log.exception("an ingest round failed")
        typer.echo(
            "error: this ingest round failed unexpectedly (the log has the reason); the "
            "knowledge base keeps what it had, and the next round runs on time",
            err=True,
        )
