"""Composes one process's core: database, knowledge base, agent and Responder.

Adapters and CLI commands call :func:`build_runtime` and hand ``runtime.responder`` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy import inspect, text

from bot import malloc, offload, startup, texts
from bot.agent import Agent, OfflineAgent, OpenAIAgent
from bot.config import Settings
from bot.errors import ConfigError, DatabaseError, KnowledgeBaseError
from bot.inbox import OutageLog
from bot.looplag import LoopLagMonitor
from bot.memory import MemoryPolicy
from bot.responder import Responder
from storage.db import Database, unreachable
from storage.embeddings import make_embedder, preload
from storage.knowledge import KnowledgeBase, KnowledgeError
from storage.schema_revision import NEEDED_REVISION, VERSION_TABLE, is_outdated

log = logging.getLogger(__name__)

REQUIRED_TABLES = ("memories", "feedback", "escalations")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    knowledge: KnowledgeBase
    responder: Responder
    agent: Agent | None = None
    loop_lag: LoopLagMonitor | None = None
    trimmer: malloc.Trimmer | None = None

    async def aclose(self) -> None:
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self.trimmer is not None:
            await self.trimmer.stop()
        close = getattr(self.agent, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing an HTTP client must not mask the real shutdown
                log.warning("closing the model client failed", exc_info=True)
        await self.db.dispose()


def make_agent(settings: Settings, knowledge: KnowledgeBase) -> Agent:
    """The OpenAI tool-calling agent when a key is set, else the offline extractive answerer."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    if key:
        return OpenAIAgent(
            knowledge,
            api_key=key,
            model=settings.openai_model,
            base_url=settings.openai_base_url or None,
            timeout=settings.openai_timeout,
            max_retries=settings.openai_max_retries,
            max_retry_wait=settings.openai_max_retry_wait,
            links=settings.docs_links,
        )
    return OfflineAgent(knowledge, links=settings.docs_links)


async def build_runtime(
    settings: Settings, *, db: Database | None = None, load_model: bool = True
) -> Runtime:
    """Open the database engine (schema comes from migrations) and the knowledge base.

    ``load_model``: load a local embedding model now, in a thread while lancedb is imported
    (on two cores, ~0.1 s off start-up); False leaves it to the first question that needs it
    (a `serve` front whose workers answer never does)."""
    database = db or Database(settings.database_url)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    offload.limit_native_threads()  # before a local embedder imports torch (bot/offload.py)
    try:
        embedder = await asyncio.to_thread(
            make_embedder,
            settings.embedder,
            openai_api_key=key,
            openai_base_url=settings.openai_base_url,
            openai_model=settings.openai_embedding_model,
            openai_max_retry_wait=settings.openai_max_retry_wait,
        )
        knowledge, _ = await asyncio.gather(
            asyncio.to_thread(KnowledgeBase.open, settings.kb_uri, embedder),
            asyncio.to_thread(preload, embedder if load_model else None),
        )
    except BaseException as exc:
        if db is None:
            await database.dispose()
        if isinstance(exc, ValueError):  # an embedder that cannot be used here
            raise ConfigError(f"SUPPORTBOT_EMBEDDER: {exc}") from None
        if isinstance(exc, KnowledgeError):
            raise KnowledgeBaseError(str(exc)) from None
        raise
    await report_knowledge_base(knowledge)
    agent = make_agent(settings, knowledge)
    responder = Responder(
        db=database,
        agent=agent,
        memory=MemoryPolicy(database, turns=settings.memory_turns),
        max_question_chars=settings.max_question_chars,
        progress_after=settings.progress_after,
    )
    # Every process that builds a runtime watches its event loop (bot/looplag.py).
    loop_lag = LoopLagMonitor(sample_log=settings.loop_lag_log)
    loop_lag.start()
    trimmer = None
    if malloc.long_running():  # returns freed memory after start-up and after each burst
        trimmer = malloc.Trimmer()
        trimmer.start()
    startup.started()
    return Runtime(
        settings=settings,
        db=database,
        knowledge=knowledge,
        responder=responder,
        agent=agent,
        loop_lag=loop_lag,
        trimmer=trimmer,
    )


async def report_knowledge_base(knowledge: KnowledgeBase) -> None:
    """One line for the operator at start-up when the knowledge base cannot answer anything
    (never ingested, emptied, or unreadable): the process still starts, so that fixing the
    knowledge base needs no restart, but the reason for every refusal or apology is in the log
    from the first second."""
    try:
        passages = await asyncio.to_thread(knowledge.passage_count)
    except Exception as exc:
        log.error(texts.KB_UNREADABLE_AT_START, knowledge.uri, type(exc).__name__)
        return
    if passages == 0:
        log.warning(texts.KB_EMPTY_AT_START, knowledge.uri)


async def check_knowledge_base(knowledge: KnowledgeBase) -> None:
    """One search up front, so a knowledge base built with another embedder (or unreadable) is
    one clear error at start-up instead of an apology on every question."""
    try:
        await asyncio.to_thread(knowledge.search, "start-up check", k=1)
    except KnowledgeError as exc:
        raise KnowledgeBaseError(str(exc)) from None


async def ensure_schema(db: Database, *, create_if_empty: bool = False) -> bool:
    """A clear one-line error when migrations have not been run (instead of SQL errors later).

    With ``create_if_empty`` (the one-shot terminal commands), a database with no tables at all
    (a new SQLite file, an empty PostgreSQL database) is migrated to the newest schema instead:
    nothing can be lost there, and ``ingest`` then ``ask`` should just work. A database with
    other tables, or an older supportbot schema, is left to ``supportbot db upgrade``, which an
    operator runs knowingly. True when the schema was created here."""
    present, revision = await _schema_of(db)
    if all(table in present for table in REQUIRED_TABLES):
        if is_outdated(revision):
            raise DatabaseError(texts.schema_outdated(str(revision), NEEDED_REVISION))
        return False
    if not (create_if_empty and not present):
        raise DatabaseError(texts.CONSOLE_SCHEMA_MISSING)
    from storage import migrate  # Alembic only for this rare path

    try:
        await migrate.upgrade(db.url)  # serialised and idempotent: two at once are safe
    except migrate.MigrationError as exc:
        raise DatabaseError(f"cannot create the database tables: {exc}") from None
    log.info("created the supportbot tables in %s", migrate.safe_url(db.url))
    return True


DATABASE_RETRY_EVERY = 1.0  # seconds between attempts while the database is unreachable


async def ensure_schema_when_reachable(
    db: Database, stop: asyncio.Event, *, retry_every: float = DATABASE_RETRY_EVERY
) -> bool:
    """:func:`ensure_schema` for a long-running process (a `serve` worker) that may start while
    the database is down: wait for it instead of exiting, so work resumes within a second or so
    of the database coming back rather than after the supervisor's restart backoff. One warning
    when the wait starts, one info line when it ends. Any other failure (a missing schema) still
    raises. False when ``stop`` was set before the database came back."""
    outage = OutageLog(log)
    while not stop.is_set():
        try:
            await ensure_schema(db)
        except DatabaseError as exc:
            if not unreachable(exc):
                raise
            outage.failed("%s; waiting for it to come back", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry_every)
            continue
        outage.back("the database is back")
        return True
    return False


async def _schema_of(db: Database) -> tuple[set[str], str | None]:
    """The database's table names and its Alembic revision, on one connection (None without
    a version table: tables made without Alembic, as the tests' create_all makes them)."""
    try:
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            if VERSION_TABLE not in tables:
                return tables, None
            return tables, await conn.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    except Exception as exc:
        raise DatabaseError(f"cannot open the database: {type(exc).__name__}") from None
