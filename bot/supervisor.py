"""Worker processes for ``supportbot serve --workers N``: started, watched and restarted.

The HTTP process only claims and acks; answering happens in worker processes that take rows
from the inbox's ledger. A worker proves it is alive (and its event loop responsive) by writing
one byte to its stdout every :data:`HEARTBEAT_EVERY` seconds; the supervisor restarts a worker
that exits, with a growing backoff so a worker that dies at start-up cannot spin, and reports
itself unhealthy while no worker has sent a heartbeat recently (``/healthz`` answers 503 then:
acked questions would wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "SUPPORTBOT_WORKER_HEARTBEAT"  # set to "stdout" by the supervisor
HEARTBEAT_EVERY = 1.0
HEARTBEAT_STALE = 5.0  # no heartbeat for this long: the worker counts as not answering
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a worker that lived this long restarts without accumulated backoff


def workers_for(requested: str, *, database_url: str, cpu_count: int | None = None) -> int:
    """``--workers``: a number, or ``auto``: one per spare core on PostgreSQL (at least one,
    so acks never wait behind answering), none on SQLite (one writer: one process)."""
    if requested != "auto":
        count = int(requested)
        if count < 0:
            raise ValueError("--workers must be 0 or more, or auto")
        return count
    if database_url.startswith("sqlite"):
        return 0
    return max(1, (cpu_count or os.cpu_count() or 1) - 1)


async def heartbeat_forever(
    on_orphaned: Callable[[], None], every: float = HEARTBEAT_EVERY
) -> None:
    """In a worker started by the supervisor: tell it, every ``every`` seconds, that we live.
    When the supervisor is gone (killed with SIGKILL, say), call ``on_orphaned`` so the worker
    stops instead of running on unsupervised beside the supervisor's replacement."""
    if os.environ.get(HEARTBEAT_ENV) != "stdout":
        return
    parent = os.getppid()
    while True:
        try:
            os.write(sys.stdout.fileno(), b".")
        except OSError:
            break  # the pipe's reader, the supervisor, is gone
        if os.getppid() != parent:
            break
        await asyncio.sleep(every)
    log.warning("the supervising process is gone; this worker stops")
    on_orphaned()


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    last_beat: float | None = None
    restarts: int = 0
    runner: asyncio.Task[None] | None = field(default=None, repr=False)


class WorkerPool:
    """``count`` copies of ``command``, each restarted when it dies."""

    def __init__(self, command: Sequence[str], count: int, *, grace: float = 8.0) -> None:
        self.command = list(command)
        self.count = count
        self.grace = grace
        self._slots = [_Slot(i) for i in range(count)]
        self._stopping = False

    def start(self) -> None:
        for slot in self._slots:
            slot.runner = asyncio.create_task(self._keep_running(slot), name=f"worker-{slot.index}")

    @property
    def alive(self) -> int:
        """Workers that sent a heartbeat within :data:`HEARTBEAT_STALE` seconds."""
        now = time.monotonic()
        return sum(
            1
            for s in self._slots
            if s.last_beat is not None and now - s.last_beat < HEARTBEAT_STALE
        )

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self._slots)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process and s.process.returncode is None]

    async def _keep_running(self, slot: _Slot) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping:
            started = time.monotonic()
            env = {**os.environ, HEARTBEAT_ENV: "stdout"}
            try:
                slot.process = await asyncio.create_subprocess_exec(
                    *self.command, stdout=asyncio.subprocess.PIPE, env=env
                )
            except OSError as exc:
                log.error("could not start worker %d: %s", slot.index, exc)
            else:
                await self._watch(slot, slot.process)
            slot.last_beat = None
            if self._stopping:
                return
            code = slot.process.returncode if slot.process else None
            if time.monotonic() - started > STABLE_AFTER:
                backoff = BACKOFF_FIRST
            slot.restarts += 1
            log.error("worker %d exited (code %s); restarting in %.1f s", slot.index, code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_MAX, backoff * 2)

    async def _watch(self, slot: _Slot, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            beat = await process.stdout.read(64)
            if not beat:
                break  # EOF: the worker died (or is stopping)
            slot.last_beat = time.monotonic()
        await process.wait()

    async def aclose(self) -> None:
        """SIGTERM every worker (they hand unfinished work back to the ledger), then wait."""
        self._stopping = True
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signal.SIGTERM)
        for slot in self._slots:
            if slot.process is not None:
                try:
                    await asyncio.wait_for(slot.process.wait(), self.grace + 1)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        slot.process.kill()
                    await slot.process.wait()
            if slot.runner is not None:
                slot.runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await slot.runner
