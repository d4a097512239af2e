"""One ingest at a time per local knowledge base.

Two ingests writing one table at once (a cron run that outlasts its interval, a release-phase
ingest while an ``ingest --every`` process runs, two operators) each add the passages they
read and delete the ones they think stale, so the second undoes part of the first. An advisory
lock file in the knowledge-base folder makes the second stop at once with one line; the lock
goes with its process, however that process ends (SIGKILL included), so it is never stale.
Object-store URIs (s3://...) are not locked: no file system is shared there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from storage.kb_errors import KnowledgeError

try:
    import fcntl
except ImportError:  # not on POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".ingest.lock"


class IngestBusyError(KnowledgeError):
    """Another ingest holds the knowledge base."""


@contextlib.contextmanager
def ingest_lock(uri: str) -> Iterator[None]:
    """Hold the knowledge base at ``uri`` for one ingest, or raise :class:`IngestBusyError`."""
    if fcntl is None or ("://" in uri and not uri.startswith("file://")):
        yield
        return
    root = Path(uri.removeprefix("file://"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise IngestBusyError(
                f"another ingest ({holder}) is writing to the knowledge base at {uri}; "
                "run this one when it has finished"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()
            fcntl.flock(lock, fcntl.LOCK_UN)
