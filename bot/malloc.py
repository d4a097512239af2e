"""Memory settings for the long-running processes (`run discord`, `run slack`, `serve`).

Measured with bench/discord.py (docs/bench-sections/issue15.md has the figures):

- glibc gives a thread that finds the heap busy an arena of its own (up to eight per core), and
  each arena keeps its own freed pages. Our threads (the to_thread pool, LanceDB's searches,
  aiosqlite) only need two.
- pyarrow allocates through mimalloc by default, which reserves memory up front; the bot's
  Arrow buffers are small, so the system allocator serves them.
- glibc gives memory back to the system only from the top of the heap; ``malloc_trim(0)`` also
  returns the free pages in between: the local model's load and every burst of answers leave
  many (the local model's process holds ~30 MB less after a trim).

All of it is skipped where the C library is not glibc (musl, macOS): there is nothing to tune.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

ARENA_MAX = 2
M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)
TRIM_EVERY = 10.0  # seconds; a trim costs about a millisecond

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
    """Trims every few seconds in a thread, so memory freed after a burst of answers goes back
    to the system instead of staying in the process until the next burst."""

    def __init__(self, every: float = TRIM_EVERY) -> None:
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and glibc() is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="malloc-trim")

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(trim)
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
