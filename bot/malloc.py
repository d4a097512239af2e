"""Memory settings for the long-running processes (`run discord`, `run slack`, `serve`).

Measured with bench/discord.py (docs/bench-sections/issue15.md has the figures):

- glibc gives a thread that finds the heap busy an arena of its own (up to eight per core), and
  each arena keeps its own freed pages. Our threads (the to_thread pool, LanceDB's searches,
  aiosqlite) only need two.
- pyarrow allocates through mimalloc by default, which reserves memory up front; the bot's
  Arrow buffers are small, so the system allocator serves them.
- glibc gives memory back to the system only from the top of the heap; ``malloc_trim(0)`` also
  returns the free pages in between: the local model's load and every burst of answers leave
  many (the local model's process holds ~30 MB less after a trim). It runs once after
  start-up and then whenever a burst of work ends, not during one: pages handed back while
  answering would only be faulted in (and zeroed) again.

All of it is skipped where the C library is not glibc (musl, macOS): there is nothing to tune.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

ARENA_MAX = 2
M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)
CHECK_EVERY = 0.5  # seconds between looks at the process's CPU use
IDLE_SHARE = 0.1  # below this share of one core over CHECK_EVERY, a burst has ended

_long_running = False


@functools.cache
def glibc() -> Any:
    """The C library through ctypes when it is glibc, else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
    except (AttributeError, ValueError, OSError):  # no confstr, or not glibc
        return None
    import ctypes

    try:
        return ctypes.CDLL(None)  # this process's symbols, glibc's among them
    except OSError:
        return None


def tune_for_long_run() -> None:
    """Call before other threads start and before pyarrow is imported. Settings made by the
    operator in the environment (``MALLOC_ARENA_MAX``, ``ARROW_DEFAULT_MEMORY_POOL``) win."""
    global _long_running
    _long_running = True
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    libc = glibc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(M_ARENA_MAX, ARENA_MAX)


def long_running() -> bool:
    return _long_running


def trim() -> bool:
    """Hand the heap's free pages back to the system; False where that is not possible."""
    libc = glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class Trimmer:
    """Trims (in a thread) after start-up and whenever the process goes quiet after work, so
    memory freed by a burst of answers goes back to the system instead of staying in the
    process until the next burst."""

    def __init__(self, every: float = CHECK_EVERY, idle_share: float = IDLE_SHARE) -> None:
        self.every = every
        self.idle_share = idle_share
        self.trims = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and glibc() is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="malloc-trim")

    async def _trim(self) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(trim)
        self.trims += 1
        log.debug("malloc_trim took %.1f ms", (time.perf_counter() - started) * 1000)

    async def _run(self) -> None:
        await self._trim()  # what start-up (the local model's load) freed
        busy = False
        last = time.process_time()
        while True:
            await asyncio.sleep(self.every)
            now = time.process_time()
            if now - last >= self.idle_share * self.every:
                busy = True
            elif busy:
                await self._trim()
                busy = False
                now = time.process_time()  # the trim's own CPU is not work
            last = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
