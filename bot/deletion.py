"""A question its author deletes is forgotten: once, in the core, for every platform.

People delete what they asked the bot because it held a password, a token or a customer's data.
The bot then forgets the message as if it had never been asked: its question and every answer
to it (and to its edits) leave the memories, so later answers, ``memories export``, the report
and /admin no longer see them; their words leave the ledger, a vote's comment and a hand-off's
reason that came with the answer go, its line leaves the running summary; and the bot's answers
are deleted on the platform. Work still answering it, or one of its edits, is withdrawn: it
stops and takes back what it posted or stored (``bot.inbox``). Platforms do not say who
deleted a message: its author or a moderator, and both are reason enough.

The adapter turns the platform's delete event into deletion work with :func:`deletion_payload`,
claimed in the ledger like any event (so a duplicate delivery, a retry or a second replica does
nothing more), and runs it with :func:`run_deletion`, giving two callables: which messages an
answer's work posted, and deleting one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.inbox import DELETION_KIND, Inbox, Work

if TYPE_CHECKING:
    from bot.responder import Responder

log = logging.getLogger(__name__)

# The deletion work's record of the bot's messages still to delete: a retry after a passing
# platform fault goes on from it (the memories and ledger rows it came from are gone by then).
TO_DELETE_KEY = "to_delete"

PostedBy = Callable[[Work], Awaitable[Iterable[str]]]
Remove = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Deleted:
    """What forgetting a deleted message did: how many memories went, and the ledger work of
    its answers as it was (each payload records what that answer posted, in the adapter's own
    keys), for the adapter to delete on the platform."""

    memories: int = 0
    answers: tuple[Work, ...] = ()


def deletion_payload(
    message_id: str, sessions: Sequence[str], ledger_prefix: str, **routing: Any
) -> dict[str, Any]:
    """The deletion work for a message: its platform id, the sessions it may belong to (the
    adapter cannot always tell which: its answer's ledger row adds the one it was answered in)
    and the prefix that makes its id the ledger key of its answer's work."""
    return {
        **routing,
        "kind": DELETION_KIND,
        "message_id": message_id,
        "sessions": list(dict.fromkeys(sessions)),
        "ledger_prefix": ledger_prefix,
    }


async def run_deletion(
    work: Work, inbox: Inbox, responder: Responder, *, posted_by: PostedBy, remove: Remove
) -> None:
    """Forget the deleted message (:meth:`Responder.forget_deleted`), record which of the
    bot's messages answered it, then delete them one by one (``remove`` ignores one that is
    gone already; a passing fault raises, and the next attempt goes on from the record)."""
    p = work.payload
    to_delete = p.get(TO_DELETE_KEY)
    if not isinstance(to_delete, list):
        platform = inbox.platform
        deleted = await responder.forget_deleted(
            platform=platform,
            message_id=str(p["message_id"]),
            sessions=[str(s) for s in p.get("sessions") or []],
            ledger_prefix=str(p.get("ledger_prefix") or ""),
        )
        if not deleted.memories and not deleted.answers:
            return  # not a message the bot answered (most deletions)
        posted: set[str] = set()
        for answer in deleted.answers:
            posted.update(await posted_by(answer))
        to_delete = sorted(posted)
        log.info(
            "%s: a deleted message was forgotten (%d memories, %d answer message(s) to delete)",
            platform,
            deleted.memories,
            len(to_delete),
        )
        if not to_delete:
            return
        work = await inbox.record(work, {**p, TO_DELETE_KEY: to_delete})
    for message in to_delete:
        await remove(str(message))
