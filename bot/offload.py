"""Where blocking work runs, so the event loop never waits for it.

Retrieval with a local embedder is CPU-bound (a transformer forward pass, then LanceDB's own
threads). Run through ``asyncio.to_thread`` it lands in the default pool (cores + 4 threads):
on a 2-core machine six searches at once, each using every core through torch's own threads,
leave the loop thread starved of CPU and of the GIL, and heartbeats, acks and streamed edits
wait. Knowledge-base work therefore gets its own small pool: at most one search per core but
one, so one core always stays with the loop; searches queue briefly instead of stalling it.

Native libraries add their own threads: torch (through OpenMP/MKL) runs every forward pass on
all cores and spins between them. For one short query at a time that buys nothing and, with the
loop and the pool sharing two cores, it oversubscribes them: measured here at 40 searches/s,
search p50 717 ms and loop lag max 192 ms with torch's default 2 threads, against 21 ms and
6 ms with 1. Serving processes therefore default to one native thread per call (an operator's
own OMP_NUM_THREADS wins); ingest, which embeds big batches, keeps the library default.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

KB_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))
# The pool's threads yield the CPU to the loop thread when both want it (Linux: per-thread nice).
KB_NICE = 5
NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_kb_pool: ThreadPoolExecutor | None = None


def limit_native_threads() -> None:
    """One native thread per call, unless configured; must run before torch is imported."""
    for name in NATIVE_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def kb_pool() -> ThreadPoolExecutor:
    global _kb_pool
    if _kb_pool is None:
        _kb_pool = ThreadPoolExecutor(
            max_workers=KB_WORKERS, thread_name_prefix="kb", initializer=_lower_priority
        )
    return _kb_pool


def _lower_priority() -> None:
    try:  # on Linux a thread id names one thread; elsewhere this is best left alone
        if sys.platform == "linux":
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), KB_NICE)
    except OSError:
        pass


async def run_kb(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run knowledge-base work (search, embedding) in the bounded pool; await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(kb_pool(), functools.partial(func, *args, **kwargs))
