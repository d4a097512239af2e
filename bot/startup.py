"""The garbage collector around a process's start-up and exit.

Start-up allocates some 120,000-270,000 tracked objects that live as long as the process
(modules, classes, SQLAlchemy and pydantic structures) and next to no garbage: a full
collection right after start-up frees about 20 objects. With the default thresholds (a young
collection every 700 allocations) the collector still walks the growing heap over and over:
about 0.1 s of `supportbot ask`. At exit, the final collections walk every object once more,
another 0.1 s, to free memory the operating system takes back anyway.
(docs/bench-sections/issue15.md has the figures.)
"""

from __future__ import annotations

import atexit
import gc

# Young collections every 50,000 allocations while starting: still bounded for a long
# one-shot command (an ingest) that never reaches `started()`.
STARTUP_THRESHOLDS = (50_000, 10, 10)

_saved: tuple[int, int, int] | None = None
_exit_hook = False


def starting() -> None:
    """Call first thing in a process: fewer collections until :func:`started`, none of the
    heap at exit (objects still alive then are left to the OS; their cycles' finalizers do
    not run, which CPython never promised at exit anyway)."""
    global _saved, _exit_hook
    if _saved is None:
        _saved = gc.get_threshold()
        gc.set_threshold(*STARTUP_THRESHOLDS)
    if not _exit_hook:
        atexit.register(gc.freeze)
        _exit_hook = True


def started() -> None:
    """Start-up is over (the runtime is built): the collector's usual thresholds again."""
    global _saved
    if _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None
