"""``supportbot run slack --worker``: answers Slack work queued in the ledger by HTTP processes.

With ``supportbot serve --workers N`` the HTTP process only verifies, claims and acks; answering
(retrieval, the model, posting) happens in worker processes that take rows from
``processed_events``. The ledger's compare-and-set keeps each answer exactly-once across any
number of workers, and a worker that dies leaves its rows to be taken again after the lease;
the supervisor (``bot.supervisor``) restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from adapters.slack.app import SlackBot
from bot.config import Settings
from bot.runtime import build_runtime, ensure_schema_when_reachable
from bot.supervisor import heartbeat_forever

log = logging.getLogger(__name__)

# Workers yield the CPU to the processes that ack: an answer may wait a little, an ack may not
# (Slack retries after 3 s). Matters when workers and `serve` share a machine.
WORKER_NICENESS = 10
SHUTDOWN_GRACE = 6.0  # seconds answers in flight get after SIGTERM (the supervisor waits longer)


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    runtime = await build_runtime(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Heartbeat from the start: a worker waiting for its database is alive (and must still
    # notice a supervisor that is gone).
    heartbeat = asyncio.create_task(heartbeat_forever(stop.set))
    try:
        if not await ensure_schema_when_reachable(runtime.db, stop):
            return
        bot = SlackBot(runtime)
        await bot.start(recover=False)
        log.info("supportbot Slack worker taking work from the ledger")
        try:
            await bot.work_loop(stop)
        finally:
            await bot.aclose(timeout=SHUTDOWN_GRACE)
    finally:
        heartbeat.cancel()
        await runtime.aclose()
