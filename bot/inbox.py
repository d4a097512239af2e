"""The exactly-once inbox: every platform's work goes through here once, never twice, never lost.

Adapters translate a platform request into a JSON-safe payload and call :meth:`Inbox.submit`
BEFORE they ack it: the claim in the ledger (``storage.events``) is what makes the ack safe. The
inbox then runs the work under one concurrency cap, keeps the lease alive on a heartbeat while
the answer is produced (and cancels the work the moment another process owns the row), records
the outcome fenced on its attempt number, and answers what crashed processes left behind.
Adapters give it a ``deliver(work)`` callable (produce and post the answer), a ``tell(work,
text)`` callable (post a short note to the asker) and, optionally, a ``retract(work)`` callable
(remove what a failed attempt half-posted, before that note); they know nothing of leases.

The state machine and its guarantees are drawn in docs/architecture.md ("The inbox").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot import metrics, texts
from bot.config import Settings
from bot.memory import forget_message
from bot.messages import EDIT_MARK, ConversationKey
from storage import events, memories
from storage.db import Database, unreachable

log = logging.getLogger(__name__)

DEFAULT_LEASE = events.DEFAULT_LEASE
DEFAULT_RECOVER_EVERY = 2.0  # seconds between looks for expired rows (a cheap indexed query)
DEFAULT_RETENTION = timedelta(days=7)
# The payload key naming the conversation's session: ``/forget`` finds the ledger rows by it.
SESSION_KEY = events.SESSION_KEY
# Work forgetting a message someone deleted (bot.deletion): nobody asked, so nobody is told.
DELETION_KIND = "deletion"
PRUNE_EVERY = 3600.0  # seconds between prunes of finished ledger rows
# After a successful post, recording "answered" is retried this long (seconds between tries):
# giving up would let the lease lapse and the question be answered a second time.
FINISH_RETRY_DELAYS = (0.0, 0.1, 0.3, 1.0, 2.0, 4.0, 8.0)
# Seconds before work handed back with TryLater is taken again, by attempt number.
TRY_LATER_DELAYS = (2.0, 8.0)
# Seconds between looks at whether an earlier question of the same asker is still being
# answered in another process (its turn ends when that row is finished or its lease runs out).
TURN_POLL = 0.2
# Seconds a shutdown gives the adapter to take down what an unfinished answer posted (the
# process must stop within 10 s of SIGTERM, grace included).
ABANDON_RETRACT_SECONDS = 1.5
# Claims held while the database is unreachable (platforms without redelivery): seconds between
# tries, the last one repeated, for at most HOLD_FOR; at most HOLD_LIMIT events are held.
HOLD_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
HOLD_FOR = timedelta(minutes=15)
HOLD_LIMIT = 10_000


@dataclass(slots=True)
class OutageLog:
    """Logs a database outage once, not once per attempt: the first failure as a warning with
    its reason, nothing while it lasts, one info line when the next attempt succeeds."""

    logger: logging.Logger
    down: bool = False

    def failed(self, message: str, *args: Any) -> None:
        if not self.down:
            self.down = True
            self.logger.warning(message, *args)

    def back(self, message: str, *args: Any) -> None:
        if self.down:
            self.down = False
            self.logger.info(message, *args)


@dataclass(frozen=True, slots=True)
class Work:
    """One claimed unit of work: ``payload`` is all that is needed to do it, ``attempts`` the
    ledger's attempt number this process holds (the fencing token)."""

    key: str
    payload: dict[str, Any]
    attempts: int = 1

    @property
    def kind(self) -> str:
        return str(self.payload.get("kind", ""))


class Undeliverable(Exception):
    """The work cannot be done at all (no payload, no token, an unknown kind): do not retry."""


class TryLater(Exception):
    """The platform failed for a while (5xx, rate limits past their retries, a dropped
    connection): hand the work back to the ledger to be done again a little later, as a new
    attempt (which removes what this one half-posted). Out of attempts, the asker is told."""


class OwnershipLost(Exception):
    """Another process owns the row now; this one must stop without posting anything more."""


Deliver = Callable[[Work], Awaitable[None]]
Tell = Callable[[Work, str], Awaitable[None]]
# Removes what the work's latest attempt posted (a partial answer, the first pieces of a long
# one), best effort: called once the row is failed, just before the asker is told.
Retract = Callable[[Work], Awaitable[None]]


@dataclass(slots=True)
class _Held:
    attempts: int
    work: Work  # as last recorded by the deliverer (what it posted so far, where it answers)
    task: asyncio.Task[None] | None = None
    finishing: bool = False
    lost: bool = False


@dataclass
class InboxStats:
    """Counters for logs, health and tests."""

    delivered: int = 0
    failed: int = 0
    given_up: int = 0
    lost: int = 0
    recovered: int = 0
    retried: int = 0  # handed back after a passing fault (TryLater)
    finish_retries: int = 0


class Inbox:
    """Claims, runs, renews, finishes and recovers one platform's work (see module doc)."""

    def __init__(
        self,
        db: Database,
        platform: str,
        deliver: Deliver,
        *,
        tell: Tell | None = None,
        retract: Retract | None = None,
        lease: timedelta = DEFAULT_LEASE,
        recover_every: float = DEFAULT_RECOVER_EVERY,
        max_concurrent: int = 32,
        max_attempts: int = events.MAX_ATTEMPTS,
        answer_inline: bool = True,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.db = db
        self.platform = platform
        self.deliver = deliver
        self.tell = tell
        self.retract = retract
        self.lease = lease
        self.recover_every = recover_every
        self.max_concurrent = max_concurrent
        self.max_attempts = max_attempts
        # False: this process only claims and queues; worker processes answer (serve --workers).
        self.answer_inline = answer_inline
        self.retention = retention
        self.try_later_delays = TRY_LATER_DELAYS
        self.stats = InboxStats()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._turns = AskerTurns()
        self._held: dict[str, _Held] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._closing = False
        # Events whose claim failed because the database was unreachable: key -> payload.
        self._unclaimed: dict[str, dict[str, Any]] = {}
        self._claiming: asyncio.Task[None] | None = None
        # One line per outage for each loop that meets it, shared by every piece of work.
        self._renewing = OutageLog(log)
        self._writing = OutageLog(log)
        self._taking = OutageLog(log)

    @classmethod
    def from_settings(
        cls,
        db: Database,
        settings: Settings,
        platform: str,
        deliver: Deliver,
        *,
        tell: Tell | None = None,
        retract: Retract | None = None,
        max_concurrent: int = 32,
        answer_inline: bool = True,
    ) -> Inbox:
        """An inbox with the operator's lease, recovery, retention and slot settings."""
        return cls(
            db,
            platform,
            deliver,
            tell=tell,
            retract=retract,
            lease=timedelta(seconds=settings.lease_seconds),
            recover_every=settings.recover_every,
            max_concurrent=settings.answer_slots or max_concurrent,
            answer_inline=answer_inline,
            retention=timedelta(days=settings.ledger_retention_days),
        )

    # ---- intake ----------------------------------------------------------------------------

    async def submit(
        self, key: str, payload: dict[str, Any], *, run: Deliver | None = None
    ) -> bool:
        """Claim ``key`` (call this before acking). False: a retry, a twin or another replica
        already has it, so do nothing. True: the work is durable and will be done exactly once,
        here (now, by ``run`` or ``deliver``) or, queued, by a worker. Raises when the database
        is unreachable: the caller must then NOT ack, so that the platform retries."""
        claimed = await self._take_new(events.claim_event, key, payload, run)
        metrics.event_claimed(self.platform, claimed)
        return claimed

    async def submit_again(
        self, key: str, payload: dict[str, Any], *, run: Deliver | None = None
    ) -> bool:
        """Claim ``key`` again when its row failed (the answer was given up or refused), as
        new work with ``payload``: someone asked for it explicitly. False: the row is not
        failed (still answering, answered, or another caller reopened it first)."""
        return await self._take_new(events.reopen_failed, key, payload, run)

    async def _take_new(
        self,
        take: Callable[..., Awaitable[bool]],
        key: str,
        payload: dict[str, Any],
        run: Deliver | None,
    ) -> bool:
        """``take`` the row as new work: run here now, or queued (an expired lease, attempt 0)
        for whichever worker takes it first."""
        queued = not self.answer_inline
        taken = await take(
            self.db,
            platform=self.platform,
            event_id=key,
            payload=payload,
            lease=timedelta(0) if queued else self.lease,
            attempts=0 if queued else 1,
            asker=_asker_key(_asker_of(Work(key, payload))),
        )
        if taken and not queued:
            self._start(Work(key, payload, 1), run)
        return taken

    async def claimed_payload(self, key: str) -> dict[str, Any] | None:
        """The payload ``key`` was claimed with (as last recorded), or None."""
        return await events.event_payload(self.db, platform=self.platform, event_id=key)

    async def submit_or_hold(self, key: str, payload: dict[str, Any]) -> bool | None:
        """:meth:`submit` for a platform that never delivers an event twice (the Discord
        gateway): when the database cannot be reached, the event is held in this process and
        claimed as soon as it can be, instead of being lost. True: claimed now; False: already
        taken; None: held. (A crash while holding is covered by the adapter's catch-up.)"""
        try:
            return await self.submit(key, payload)
        except Exception as exc:
            if not unreachable(exc) or len(self._unclaimed) >= HOLD_LIMIT:
                raise
            log.warning(
                "%s %s: the database is unreachable (%s); claiming it when it is back",
                self.platform,
                key,
                type(exc).__name__,
            )
            self._unclaimed[key] = payload
            if self._claiming is None or self._claiming.done():
                self._claiming = asyncio.create_task(self._claim_unclaimed())
            return None

    async def _claim_unclaimed(self) -> None:
        """Claim the held events, oldest first, until none is left or they are too old."""
        deadline = asyncio.get_running_loop().time() + HOLD_FOR.total_seconds()
        tries = 0
        while self._unclaimed and not self._closing:
            await asyncio.sleep(HOLD_RETRY_DELAYS[min(tries, len(HOLD_RETRY_DELAYS) - 1)])
            tries += 1
            for key, payload in list(self._unclaimed.items()):
                try:
                    await self.submit(key, payload)
                except Exception as exc:
                    if unreachable(exc):
                        break  # still unreachable: wait, then start again from this one
                    log.error("%s %s: claiming a held event failed: %s", self.platform, key, exc)
                del self._unclaimed[key]
            if asyncio.get_running_loop().time() > deadline and self._unclaimed:
                log.error(
                    "%s: the database stayed unreachable; dropped %d held event(s)",
                    self.platform,
                    len(self._unclaimed),
                )
                self._unclaimed.clear()
                return
        if not self._unclaimed:
            log.info("%s: the database is back; held events claimed", self.platform)

    async def conversation_work(self, work: Work, *, since: datetime) -> list[dict[str, Any]]:
        """The payloads of the rest of ``work``'s conversation's work received since ``since``
        (what each recorded posting, for instance: a retry's clean-up must leave those alone)."""
        session_id = work.payload.get(SESSION_KEY)
        if not session_id:
            return []
        return await events.conversation_payloads(
            self.db,
            platform=self.platform,
            session_id=str(session_id),
            since=since,
            other_than=work.key,
        )

    async def record(self, work: Work, payload: dict[str, Any]) -> Work:
        """Save a changed payload (e.g. the thread the answer goes to) before acting on it, so
        recovery continues from there. Raises :class:`OwnershipLost` if the row is not ours.

        Retried through a database blip (the heartbeat keeps the lease meanwhile), as
        finishing is: what is recorded here is what lets a later attempt remove a half-posted
        answer. A database that stays unreachable hands the work back (:class:`TryLater`)."""
        owned = await self._through_blips(
            lambda: events.update_payload(
                self.db,
                platform=self.platform,
                event_id=work.key,
                attempts=work.attempts,
                payload=payload,
            ),
            f"recording the progress of {work.key}",
            retry_if=unreachable,
        )
        if owned is None:
            raise TryLater("the database stayed unreachable")
        recorded = replace(work, payload=payload)
        held = self._held.get(work.key)
        if held is not None and held.attempts == work.attempts:
            # A give-up retracts and tells from what was recorded last; a withdrawal (the
            # question was deleted) takes back what was posted, this post included.
            held.work = recorded
        if not owned:
            raise OwnershipLost(work.key)
        return recorded

    # ---- running one unit of work -------------------------------------------------------------

    def _start(self, work: Work, run: Deliver | None = None) -> asyncio.Task[None]:
        held = _Held(work.attempts, work)
        self._held[work.key] = held
        task = asyncio.create_task(self._run(work, held, run or self.deliver))
        held.task = task
        task.add_done_callback(lambda _t: self._forget(work.key, held))
        self._ensure_heartbeat()
        return task

    def _forget(self, key: str, held: _Held) -> None:
        if self._held.get(key) is held:
            del self._held[key]
        self._turns.ended(_asker_of(held.work))

    async def _run(self, work: Work, held: _Held, deliver: Deliver) -> None:
        try:
            await self._stop_earlier_versions(work)
            await self._wait_for_earlier_turns(work)
            async with self._slots:
                await deliver(work)
        except asyncio.CancelledError:
            if held.lost:
                log.warning("%s %s: another process took it over; stopped", self.platform, work.key)
                self.stats.lost += 1
                await self._take_back_if_withdrawn(held.work)
                return
            await self._abandon(held.work)
            raise
        except OwnershipLost:
            log.warning("%s %s: ownership lost; stopped", self.platform, work.key)
            self.stats.lost += 1
            await self._take_back_if_withdrawn(held.work)
            return
        except TryLater as exc:
            await self._try_later(held.work, held, exc)
            return
        except Exception as exc:
            await self._failed(held.work, held, exc)
            return
        held.finishing = True
        # Shielded: a shutdown arriving now must not leave a posted answer unrecorded.
        if await asyncio.shield(self._finish(held.work, events.ANSWERED)):
            self.stats.delivered += 1

    async def _stop_earlier_versions(self, work: Work) -> None:
        """``work`` answers an edited question: the work still answering its earlier
        versions is superseded (the ledger), and stopped at once when this process holds it
        (elsewhere, at its holder's next heartbeat). Each takes back what it posted and
        stored for its version, then lets go (:meth:`_take_back_if_withdrawn`); the edit's
        answer waits for that in :meth:`_wait_for_earlier_turns`."""
        asker = _asker_key(_asker_of(work))
        question_key, mark, _edit = work.key.partition(EDIT_MARK)
        if asker is None or not mark:
            return
        with _database_faults_passing():
            stopped = await events.supersede(
                self.db,
                platform=self.platform,
                event_id=work.key,
                asker=asker,
                question_key=question_key,
                edit_mark=EDIT_MARK,
            )
        if stopped:
            versions = question_key + EDIT_MARK
            self._lose(
                key
                for key in self._held
                if key != work.key and (key == question_key or key.startswith(versions))
            )

    async def _wait_for_earlier_turns(self, work: Work) -> None:
        """One question at a time per asker and conversation, in claim order, in every
        process at once: wait while an earlier question of the same asker is held by a live
        lease (being answered or waiting its own turn, here or in another worker or replica),
        or an earlier version of an edited question is being taken back. Not a slot: the
        wait keeps this row's lease (the heartbeat) and lasts at most until the earlier row's
        holder finishes or, if it died, its lease runs out. Work of the same asker ending in
        this process ends the wait at once (:class:`AskerTurns`); other processes' at the
        next look at the ledger."""
        asker = _asker_of(work)
        ledger_key = _asker_key(asker)
        if asker is None or ledger_key is None or _opens_its_conversation(work):
            return
        with _database_faults_passing():
            while True:
                ended_here = self._turns.signal(asker)
                if not await events.earlier_turn_held(
                    self.db, platform=self.platform, event_id=work.key, asker=ledger_key
                ):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended_here.wait(), min(TURN_POLL, self.heartbeat_every))

    async def _abandon(self, work: Work) -> None:
        """Shutdown: take down what this attempt half-posted (left up, it would look like an
        answer still being written until another process took the work over, which may be
        never), then hand the work to the next process at once."""
        try:
            await asyncio.wait_for(self._retract(work), ABANDON_RETRACT_SECONDS)
        except TimeoutError:
            log.warning(
                "%s %s: taking down the unfinished answer timed out", self.platform, work.key
            )
        await self._release(work)

    async def _failed(self, work: Work, held: _Held, exc: Exception) -> None:
        """The work raised: logged for the operator, marked failed (so no later process repeats
        a half-posted answer), and the asker told once in a short sentence."""
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, Undeliverable) else None
        log.error(
            "%s %s %s failed (attempt %d)%s",
            self.platform,
            work.kind,
            work.key,
            work.attempts,
            f": {reason}" if reason else "",
            exc_info=None if reason else exc,
        )
        held.finishing = True
        self.stats.failed += 1
        await self._fail_and_tell(work, texts.ERROR_GENERIC)

    async def _try_later(self, work: Work, held: _Held, exc: TryLater) -> None:
        """Hand the work back for another attempt after a pause; the last attempt fails and
        tells the asker."""
        held.finishing = True
        if work.attempts >= self.max_attempts:
            log.error(
                "%s %s %s: the platform kept failing (%s); giving up after %d attempts",
                self.platform,
                work.kind,
                work.key,
                exc,
                work.attempts,
            )
            self.stats.given_up += 1
            await self._fail_and_tell(work, texts.ERROR_GENERIC)
            return
        delays = self.try_later_delays
        delay = delays[min(work.attempts, len(delays)) - 1]
        log.warning(
            "%s %s %s: the platform failed (%s); trying again in %.0f s (attempt %d)",
            self.platform,
            work.kind,
            work.key,
            exc,
            delay,
            work.attempts,
        )
        self.stats.retried += 1
        await self._release(work, after=timedelta(seconds=delay))

    async def _fail_and_tell(self, work: Work, text: str) -> None:
        """The end of work that will not be answered: marked failed and, if the row was still
        ours, what this attempt half-posted removed and the asker told ``text`` once."""
        if await self._finish(work, events.FAILED):
            await self._retract(work)
            await self._tell(work, text)

    async def _finish(self, work: Work, status: str) -> bool:
        """Record the outcome, retrying through database blips (the heartbeat keeps the lease
        meanwhile). False when the row is no longer ours or the database never came back."""
        owned = await self._through_blips(
            lambda: events.finish_event(
                self.db,
                platform=self.platform,
                event_id=work.key,
                attempts=work.attempts,
                status=status,
            ),
            f"recording {work.key} as {status}",
            count_retries=True,
        )
        if owned is None:
            log.error(
                "gave up recording %s as %s; the database stayed unreachable", work.key, status
            )
            return False
        if not owned:
            log.warning("%s %s was no longer ours when finishing", self.platform, work.key)
            await self._take_back_if_withdrawn(work)
        return owned

    async def _through_blips(
        self,
        write: Callable[[], Awaitable[bool]],
        what: str,
        *,
        retry_if: Callable[[BaseException], bool] = lambda _exc: True,
        count_retries: bool = False,
    ) -> bool | None:
        """Run one ledger write of a row this process holds, again after each pause of
        FINISH_RETRY_DELAYS while it fails in a way ``retry_if`` accepts (the heartbeat keeps
        the lease meanwhile); other errors are raised. None: the database never came back."""
        for delay in FINISH_RETRY_DELAYS:
            if delay:
                if count_retries:
                    self.stats.finish_retries += 1
                await asyncio.sleep(delay)
            try:
                written = await write()
            except Exception as exc:
                if not retry_if(exc):
                    raise
                if unreachable(exc):  # once per outage, not per try of every piece of work
                    self._writing.failed(
                        "%s: %s failed: the database is unreachable (%s); retrying until it is "
                        "back",
                        self.platform,
                        what,
                        type(exc).__name__,
                    )
                else:
                    log.warning("%s failed: %s", what, type(exc).__name__)
                continue
            self._writing.back("%s: the database is back; recording work again", self.platform)
            return written
        return None

    async def _release(self, work: Work, *, after: timedelta = timedelta(0)) -> None:
        """Hand the work back to the ledger. A row no longer this work's (its question was
        deleted or edited meanwhile) is taken back instead, as no attempt will follow to
        remove what this one posted."""
        try:
            released = await events.release_lease(
                self.db,
                platform=self.platform,
                event_id=work.key,
                attempts=work.attempts,
                after=after,
            )
        except Exception as exc:
            log.warning("could not release %s: %s", work.key, type(exc).__name__)
            return
        if not released:
            await self._take_back_if_withdrawn(work)

    async def _retract(self, work: Work) -> None:
        """Work given up: what it posted is removed (the adapter's ``retract``) and an answer
        it stored but never delivered is forgotten, so the next question's context holds no
        answer the asker never saw (the question stays)."""
        await self._forget_undelivered(work)
        await self._remove_posts(work)

    async def _take_back_if_withdrawn(self, work: Work) -> None:
        """The row is no longer this work's. If that is because its question was deleted
        (withdrawn, bot.deletion), the turn it stored is forgotten and what it posted removed:
        the deletion forgot what existed when it ran, this covers what came after. If it is
        because the question was edited meanwhile (superseded), the same is done for this
        version alone, and then the lease is let go of: the edit's answer waits for that, so
        the thread ends with that one answer and the memory with that one turn."""
        try:
            status = await events.event_status(self.db, platform=self.platform, event_id=work.key)
        except Exception as exc:
            log.warning(
                "%s %s: reading why the work stopped failed: %s",
                self.platform,
                work.key,
                type(exc).__name__,
            )
            return
        if status == events.WITHDRAWN:
            log.info(
                "%s %s: its question was deleted; taking the answer back", self.platform, work.key
            )
            await self._take_back(work, every_version=True)
        elif status == events.SUPERSEDED:
            log.info(
                "%s %s: its question was edited; taking back the answer to the old text",
                self.platform,
                work.key,
            )
            try:
                await self._take_back(work, every_version=False)
            finally:
                await self._let_go(work)

    async def _take_back(self, work: Work, *, every_version: bool) -> None:
        """Forget the turn ``work`` stored (with every edit of its message, or this version
        alone) and remove what it posted."""
        session_id, message_id = _question_of(work)
        try:
            if session_id and message_id:
                await forget_message(self.db, session_id, message_id, with_edits=every_version)
        except Exception as exc:
            log.warning(
                "%s %s: forgetting the answer taken back failed: %s",
                self.platform,
                work.key,
                type(exc).__name__,
            )
            return
        await self._remove_posts(work)

    async def _let_go(self, work: Work) -> None:
        with contextlib.suppress(Exception):  # else its lease runs out by itself
            await events.let_go(
                self.db, platform=self.platform, event_id=work.key, attempts=work.attempts
            )

    async def _remove_posts(self, work: Work) -> None:
        if self.retract is None:
            return
        try:
            await self.retract(work)
        except Exception as exc:
            log.warning(
                "%s %s: removing what the failed attempt posted failed: %s",
                self.platform,
                work.key,
                type(exc).__name__,
            )

    async def _forget_undelivered(self, work: Work) -> None:
        session_id, message_id = _question_of(work)
        if not session_id or not message_id:
            return  # not an answer to a message (a notice, a button)
        try:
            await memories.forget_answer(
                self.db, session_id=str(session_id), message_id=str(message_id)
            )
        except Exception as exc:  # the asker is still told; the context keeps one stale turn
            log.warning(
                "%s %s: forgetting the undelivered answer failed: %s",
                self.platform,
                work.key,
                type(exc).__name__,
            )

    async def _tell(self, work: Work, text: str) -> None:
        if self.tell is None or work.kind == DELETION_KIND:
            return
        try:
            await self.tell(work, text)
        except Exception as exc:
            log.error("telling the asker of %s failed too: %s", work.key, type(exc).__name__)

    # ---- heartbeat ----------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat(), name=f"{self.platform}-heartbeat")

    @property
    def heartbeat_every(self) -> float:
        return max(0.05, self.lease.total_seconds() / 4)

    async def _beat(self) -> None:
        """Renew every held lease a few times per lease; stop work whose row is gone."""
        last_ok = time.monotonic()
        while self._held:
            await asyncio.sleep(self.heartbeat_every)
            snapshot = {key: held.attempts for key, held in self._held.items()}
            if not snapshot:
                break
            try:
                kept = await events.renew_leases(
                    self.db, platform=self.platform, owned=snapshot.items(), lease=self.lease
                )
            except Exception as exc:
                if unreachable(exc):  # once per outage, not every beat
                    self._renewing.failed(
                        "%s: renewing %d leases failed: the database is unreachable (%s); "
                        "retrying until it is back",
                        self.platform,
                        len(snapshot),
                        type(exc).__name__,
                    )
                else:
                    log.warning("renewing %d leases failed: %s", len(snapshot), type(exc).__name__)
                if time.monotonic() - last_ok > self.lease.total_seconds():
                    # Our leases may have lapsed: another process may be answering now.
                    self._lose(snapshot.keys())
                continue
            last_ok = time.monotonic()
            self._renewing.back("%s: the database is back; renewing leases again", self.platform)
            self._lose(key for key in snapshot if key not in kept)

    def _lose(self, keys: Any) -> None:
        for key in list(keys):
            held = self._held.get(key)
            if held is None or held.finishing or held.task is None:
                continue
            held.lost = True
            held.task.cancel()

    # ---- recovery -----------------------------------------------------------------------------

    async def drain(self, *, limit: int | None = None) -> int:
        """Take expired or queued rows (at most ``limit``) and start them; tell the askers of
        rows that ran out of attempts. Each row on its own: one bad row never stops the rest."""
        free = self.max_concurrent - len(self._held)
        limit = free if limit is None else min(limit, free)
        if limit <= 0:
            return 0
        taken = await events.take_expired(
            self.db,
            platform=self.platform,
            limit=limit,
            lease=self.lease,
            max_attempts=self.max_attempts,
            exclude=set(self._held),
        )
        for row in taken.given_up:
            work = Work(row.event_id, row.payload, row.attempts)
            log.error(
                "%s %s %s: gave up after %d attempts (each died, lost its lease or met a passing "
                "fault); telling the asker",
                self.platform,
                work.kind,
                work.key,
                row.attempts - 1,
            )
            self.stats.given_up += 1
            await self._retract(work)
            await self._tell(work, texts.INBOX_GAVE_UP)
        for row in taken.work:
            self.stats.recovered += 1
            self._start(Work(row.event_id, row.payload, row.attempts))
        return len(taken.work) + len(taken.given_up)

    async def recover_forever(self, *, poll: float | None = None) -> None:
        """Keep taking expired (or, for workers, queued) rows, and prune old ones now and then.
        ``poll`` is how long to wait when nothing was found (default ``recover_every``)."""
        wait = self.recover_every if poll is None else poll
        next_prune = time.monotonic()
        while not self._closing:
            found = 0
            try:
                found = await self.drain()
            except Exception as exc:
                if not unreachable(exc):
                    log.error("%s: taking work from the ledger failed: %s", self.platform, exc)
                else:  # not one line per pass (a worker polls 20 times a second)
                    self._taking.failed(
                        "%s: taking work from the ledger failed: the database is unreachable "
                        "(%s); trying again until it is back",
                        self.platform,
                        type(exc).__name__,
                    )
            else:
                self._taking.back(
                    "%s: the database is back; taking work from the ledger", self.platform
                )
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY
                await self.prune()
            if not found:
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(0)

    async def prune(self) -> int:
        try:
            removed = await events.prune_events(self.db, older_than=self.retention)
        except Exception as exc:
            log.warning("pruning the ledger failed: %s", type(exc).__name__)
            return 0
        if removed:
            log.info("pruned %d finished ledger rows older than %s", removed, self.retention)
        return removed

    def start(self, *, recover: bool = True, poll: float | None = None) -> None:
        """Start the recovery loop (idempotent). Call from inside the running event loop."""
        self._closing = False
        metrics.register_collector(self._collect_metrics)
        if recover and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(
                self.recover_forever(poll=poll), name=f"{self.platform}-recovery"
            )

    async def _collect_metrics(self) -> None:
        depth, oldest = await events.backlog(self.db, platform=self.platform)
        metrics.observe_inbox(depth, oldest)

    # ---- shutdown and tests -------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._held)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no work is in flight (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._held:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._held)} {self.platform} answers still in flight")
            await asyncio.sleep(0.02)

    async def aclose(self, grace: float = 8.0) -> None:
        """Stop taking work, give answers in flight ``grace`` seconds, then hand the rest back
        to the ledger (lease ended now) for the next process. Taking down what those posted
        comes out of ``grace``, so the whole takes about ``grace`` seconds at most."""
        self._closing = True
        metrics.unregister_collector(self._collect_metrics)
        await _cancel(self._recovery)
        self._recovery = None
        await _cancel(self._claiming)
        self._claiming = None
        if self._unclaimed:  # the next process's catch-up reads them back from the platform
            log.warning("%s: %d held event(s) left unclaimed", self.platform, len(self._unclaimed))
        tasks = [held.task for held in self._held.values() if held.task is not None]
        if tasks:
            finishing = max(0.0, grace - ABANDON_RETRACT_SECONDS)
            _done, late = await asyncio.wait(tasks, timeout=finishing)
            for task in late:
                task.cancel()
            if late:
                log.warning("handed %d unfinished answers back to the ledger", len(late))
                await asyncio.gather(*late, return_exceptions=True)
        await _cancel(self._heartbeat)
        self._heartbeat = None


class AskerTurns:
    """Wakes the work of this process waiting for an asker's turn (:meth:`Inbox.
    _wait_for_earlier_turns`) as soon as this process ends a piece of that asker's work, so
    a follow-up answered in the same process starts at once instead of at the next look at
    the ledger. Only a wake-up: the ledger decides whose turn it is (rows in id order, the
    same in every process, so waits never form a cycle, as a lock taken in arrival order
    here and a ledger wait there could after a takeover)."""

    def __init__(self) -> None:
        self._ended: dict[tuple[str, str], asyncio.Event] = {}

    def signal(self, asker: tuple[str, str]) -> asyncio.Event:
        """The event set when this process next ends work of ``asker`` (take it before
        looking at the ledger, so an end in between is not missed)."""
        return self._ended.setdefault(asker, asyncio.Event())

    def ended(self, asker: tuple[str, str] | None) -> None:
        if asker is not None and (event := self._ended.pop(asker, None)) is not None:
            event.set()


def _asker_of(work: Work) -> tuple[str, str] | None:
    """(session id, author id) of the question ``work`` answers; None for other work."""
    session_id, _message_id = _question_of(work)
    record = work.payload.get("msg")
    author = record.get("author_id") if isinstance(record, dict) else None
    return (session_id, str(author)) if session_id and author else None


def _opens_its_conversation(work: Work) -> bool:
    """Whether ``work``'s question is the one its conversation's thread was started from (a
    mention answered in a new thread): every other question there came after it, so it has
    no earlier turn to wait for, and the look at the ledger is saved (most questions)."""
    session_id, message_id = _question_of(work)
    key = ConversationKey.from_session_id(session_id) if session_id else None
    return key is not None and key.thread_id is not None and key.thread_id == message_id


@contextlib.contextmanager
def _database_faults_passing() -> Iterator[None]:
    """An unreachable database hands the work back (:class:`TryLater`): the question is safe
    in the ledger and answered once the database is back."""
    try:
        yield
    except Exception as exc:
        if unreachable(exc):
            raise TryLater("the database is unreachable") from exc
        raise


def _asker_key(asker: tuple[str, str] | None) -> str | None:
    """The ledger's ``asker`` column for (session id, author id): readable, or a digest when
    it would not fit."""
    if asker is None:
        return None
    key = " ".join(asker)
    return key if len(key) <= 255 else hashlib.sha256(key.encode()).hexdigest()


def _question_of(work: Work) -> tuple[str | None, str | None]:
    """(session id, message id) of the question a piece of work answers; None for others."""
    record = work.payload.get("msg")
    message_id = record.get("id") if isinstance(record, dict) else None
    session_id = work.payload.get(SESSION_KEY)
    return (str(session_id) if session_id else None), (str(message_id) if message_id else None)


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
