"""One ingest at a time per local knowledge base.

Two ingests writing one table at once (a cron run that outlasts its interval, a release-phase
ingest while an ``ingest --every`` process runs, two operators) each add the passages they
read and delete the ones they think stale, so the second undoes part of the first. An advisory
lock file in the knowledge-base folder makes the second stop at once with one line; the lock
goes with its process, however that process ends (SIGKILL included), so it is never stale.

A file lock only reaches the processes of one host. Replicas on several hosts share the
knowledge base through an object store (s3://...) or a network folder, and share a PostgreSQL
database: there the same rule is held as a PostgreSQL advisory lock keyed by the knowledge
base's URI (:func:`database_ingest_lock`), which also goes with its connection, so a killed
ingest never leaves it behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from storage.kb_errors import KnowledgeError

try:
    import fcntl
except ImportError:  # not on POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".ingest.lock"
# How long taking or releasing the database lock may take before the ingest goes on without it.
DATABASE_LOCK_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


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


class LockUnavailableError(KnowledgeError):
    """The database that would hold the lock could not be reached."""


def advisory_key(uri: str) -> int:
    """The signed 64-bit key of the knowledge base at ``uri`` in PostgreSQL's advisory locks."""
    digest = hashlib.sha256(f"supportbot ingest {uri.rstrip('/')}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def database_ingest_lock(
    database_url: str, uri: str, unreachable: Callable[[str], None]
) -> Iterator[None]:
    """Hold the knowledge base at ``uri`` for one ingest among every host sharing the PostgreSQL
    database at ``database_url``, or raise :class:`IngestBusyError`. SQLite databases are not
    shared between hosts, so nothing is taken for them. When the database cannot be reached,
    ``unreachable`` is told why and the ingest goes on unlocked."""
    if not database_url.startswith("postgresql"):
        yield
        return
    holder = _AdvisoryLockHolder(database_url, advisory_key(uri))
    holder.start()
    try:
        try:
            taken, who = holder.outcome()
        except LockUnavailableError as exc:
            unreachable(str(exc))
        else:
            if not taken:
                raise IngestBusyError(
                    f"another ingest ({who or 'on another host'}) is writing to the knowledge "
                    f"base at {uri}; run this one when it has finished"
                )
        yield
    finally:
        holder.stop()


class _AdvisoryLockHolder:
    """Takes a session-level advisory lock on a connection of its own and keeps that connection
    open, on a thread with its own event loop, until :meth:`stop`: the ingest it guards is
    synchronous and long, and the lock lasts exactly as long as the connection."""

    def __init__(self, database_url: str, key: int) -> None:
        self._url = database_url
        self._key = key
        self._result: queue.Queue[tuple[bool, str | None] | BaseException] = queue.Queue()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-lock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def outcome(self) -> tuple[bool, str | None]:
        """(taken, who holds it when not taken)."""
        try:
            result = self._result.get(timeout=DATABASE_LOCK_TIMEOUT_S)
        except queue.Empty:
            raise LockUnavailableError("the database did not answer in time") from None
        if isinstance(result, BaseException):
            raise LockUnavailableError(f"{type(result).__name__}: {result}") from None
        return result

    def stop(self) -> None:
        self._release.set()
        self._thread.join(DATABASE_LOCK_TIMEOUT_S)

    def _run(self) -> None:
        try:
            asyncio.run(self._hold())
        except BaseException as exc:  # reported to the ingest's thread, which decides
            self._result.put(exc)

    async def _hold(self) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        name = f"supportbot ingest on {socket.gethostname()} (process {os.getpid()})"
        engine = create_async_engine(
            self._url,
            poolclass=NullPool,
            connect_args={"server_settings": {"application_name": name[:63]}},
        )
        try:
            async with engine.connect() as connection:
                taken = (
                    await connection.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                    )
                ).scalar_one()
                await connection.commit()
                if not taken:
                    self._result.put((False, await _holder_name(connection, self._key)))
                    return
                self._result.put((True, None))
                await asyncio.to_thread(self._release.wait)
                # Closing the connection frees the lock too; unlocking first says so at once.
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
                await connection.commit()
        finally:
            await engine.dispose()


async def _holder_name(connection: object, key: int) -> str | None:
    """The application name of the session holding ``key``: which host and process ingests."""
    from sqlalchemy import text

    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = (
        await connection.execute(  # type: ignore[attr-defined]
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = :high AND l.objid::bigint = :low"
            ),
            {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF},
        )
    ).first()
    return str(row[0]) if row and row[0] else None
