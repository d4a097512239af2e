"""A hand-off's two clicks carried through a crash, once for every platform.

"Talk to a human" opens a hand-off and "Mark resolved" closes one; each click is inbox work,
and each changes the hand-off before the platform has shown anything. A process killed in
between leaves the change made and the click unfinished, and a later attempt of the same work
would find the hand-off "already open" (the conversation never told a human was asked, nor
offered "Mark resolved") or "not open" (no draft ever learned from the team's answer).

So before changing the hand-off a click records in its work's payload what it is doing: the
hand-off it opened and who asked where, or the hand-off it is closing and who resolves it. A
later attempt reads that record and carries on as the click that did it: a request says the
hand-off was opened (and the team's notice, inbox work of its own, goes out once), a resolve
finishes (``Responder.resolve_escalation(resumed=True)``). A request that found the hand-off
open already records that too (who asked where), so a later attempt answers "already open"
instead of "try again". Where the conversation is told with a new post that is not
idempotent (Slack), the post is recorded as beginning before it is made, so a later attempt
looks for it before posting again (``record_announcing``). The adapter keeps the wire
format: reading the click, the thread's link, showing the reply, the notice and the forum
tags; it updates the notice and the tags only when the core says the click closed the hand-off
(``Resolution.closed``).

The payload keys are those earlier versions wrote (a row they stored still resumes).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bot import escalation, texts
from bot.escalation import EscalationPolicy
from bot.inbox import Inbox, Work
from bot.learning import ThreadReader
from bot.messages import ConversationKey, Reply, ReplyKind
from storage import escalations
from storage.models import Escalation

if TYPE_CHECKING:
    from bot.responder import Responder

log = logging.getLogger(__name__)

# A request for a human: the hand-off it opened, and the hand-off it said so for in the
# conversation (a platform whose announcement is not idempotent asks before posting again).
OPENED_KEY = "opened_escalation"
ANNOUNCED_KEY = "announced_escalation"
# The conversation is being told (recorded just before the post): a later attempt on a
# platform without an idempotent post looks for that post before posting again.
ANNOUNCING_KEY = "announcing_escalation"
# A request that found the hand-off open already (another click or the agent opened it).
FOUND_KEY = "found_escalation"
# Who asked, and in which conversation (a session id): what a later attempt of the request
# needs when it cannot read the click again (Discord's stored work keeps only its webhook).
REQUESTER_KEY = "requester"
REQUESTED_IN_KEY = "requested_in"
# A "Mark resolved": the hand-off it is closing, and who resolves it.
RESOLVING_KEY = "resolving_escalation"
RESOLVER_KEY = "resolver"

# Saves these keys in the payload of the click's work, on top of what it recorded before.
Record = Callable[[dict[str, Any]], Awaitable[None]]


def recorder(inbox: Inbox, work: Work) -> Record:
    """The ``Record`` of ``work``: each call saves its keys on top of the last call's."""
    held = work

    async def record(changes: dict[str, Any]) -> None:
        nonlocal held
        held = await inbox.record(held, {**held.payload, **changes})

    return record


# ---- "Talk to a human" ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HumanRequest:
    """What a click of "Talk to a human" did. ``opened``: this click opened the hand-off, now
    or in an attempt before a crash (the conversation is to be told; otherwise it was open
    already). ``announced``: an earlier attempt told the conversation so. ``announcing``: an
    earlier attempt began telling it and may have (its post made, its record lost)."""

    reply: Reply
    escalation_id: int
    opened: bool
    resumed: bool
    announced: bool
    announcing: bool = False


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request for a human an earlier attempt of the work began: it opened the hand-off, or
    found it open already (``opened`` False)."""

    escalation_id: int
    requested_by: str
    conversation: ConversationKey
    opened: bool = True


async def request_human(
    responder: Responder,
    payload: Mapping[str, Any],
    conversation: ConversationKey,
    user: str,
    record: Record,
    *,
    in_place: bool = True,
    **platform_fields: Any,
) -> HumanRequest:
    """Open (or find) ``conversation``'s hand-off for ``user``'s click, whose work holds
    ``payload``. What the click found is recorded (with the adapter's own fields) before
    anything is said: a hand-off it opened, so that a later attempt says it was opened, not
    already open; one open already, so that a later attempt still says so (instead of asking
    the clicker to try again). ``in_place``: the team can reply in ``conversation`` (not in a
    DM with the bot, nor under a private /ask answer: Responder.escalate)."""
    hand_off = await responder.escalate(
        conversation=conversation, requested_by=user, in_place=in_place
    )
    escalation_id = hand_off.escalation_id
    resumed = (
        not hand_off.created and bool(escalation_id) and payload.get(OPENED_KEY) == escalation_id
    )
    reply = hand_off.reply
    who = {REQUESTER_KEY: user, REQUESTED_IN_KEY: conversation.session_id, **platform_fields}
    if resumed:
        opened_text = texts.ESCALATION_OPENED if in_place else texts.ESCALATION_OPENED_DIRECT
        reply = replace(reply, text=opened_text)
    elif hand_off.created:
        await record({OPENED_KEY: escalation_id, **who})
    elif escalation_id and payload.get(FOUND_KEY) != escalation_id:
        await record({FOUND_KEY: escalation_id, **who})
    announced = bool(escalation_id) and payload.get(ANNOUNCED_KEY) == escalation_id
    announcing = bool(escalation_id) and payload.get(ANNOUNCING_KEY) == escalation_id
    opened = hand_off.created or resumed
    return HumanRequest(reply, escalation_id, opened, resumed, announced, announcing)


async def record_announcing(record: Record, escalation_id: int, **platform_fields: Any) -> None:
    """The conversation is about to be told of ``escalation_id`` (with the adapter's fields, such
    as when it began): a later attempt knows a post may exist and looks for it first."""
    await record({ANNOUNCING_KEY: escalation_id, **platform_fields})


async def record_announced(record: Record, escalation_id: int) -> None:
    """The conversation was told of ``escalation_id``: a later attempt does not tell it again."""
    await record({ANNOUNCED_KEY: escalation_id})


def recorded_request(payload: Mapping[str, Any]) -> RecordedRequest | None:
    """The request an earlier attempt of this work began, when it recorded who asked where
    (a Slack click is read again instead: its rows may lack them)."""
    opened = int(payload.get(OPENED_KEY) or 0)
    escalation_id = opened or int(payload.get(FOUND_KEY) or 0)
    requester = payload.get(REQUESTER_KEY)
    conversation = ConversationKey.from_session_id(str(payload.get(REQUESTED_IN_KEY) or ""))
    if not escalation_id or not requester or conversation is None:
        return None
    return RecordedRequest(escalation_id, str(requester), conversation, opened=bool(opened))


# ---- "Mark resolved" -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedResolve:
    """A resolve an earlier attempt of the work began (after its checks)."""

    escalation_id: int
    resolved_by: str | None  # None in a Slack row of an older version: its click says who


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a click of "Mark resolved" did. ``closed``: it closed the hand-off (now, or in an
    attempt a crash cut short), so the platform updates the team's notice and the thread (the
    forum tags); otherwise ``reply`` is a short note for the clicker alone (the hand-off was
    closed already, or they may not close it) and nothing else changes."""

    reply: Reply
    closed: bool


def recorded_resolve(payload: Mapping[str, Any]) -> RecordedResolve | None:
    escalation_id = int(payload.get(RESOLVING_KEY) or 0)
    if not escalation_id:
        return None
    resolver = payload.get(RESOLVER_KEY)
    return RecordedResolve(escalation_id, str(resolver) if resolver else None)


async def resolve(
    responder: Responder,
    policy: EscalationPolicy,
    payload: Mapping[str, Any],
    escalation_id: int,
    user: str,
    *,
    record: Record,
    is_team_member: Callable[[Escalation], Awaitable[bool]],
    read_thread: ThreadReader,
    thread_link: Callable[[Escalation], Awaitable[str | None]],
    **platform_fields: Any,
) -> Resolution:
    """A click of "Mark resolved" on ``escalation_id`` by ``user``, whose work holds
    ``payload``: refused (an ephemeral reply) when the policy says ``user`` may not; else
    recorded, with the adapter's own fields, then closed and its answer learned. A later
    attempt of a click that got that far finishes it (its checks were passed already). A click
    on a hand-off closed already is told so, privately, and changes nothing."""
    earlier = recorded_resolve(payload)
    resumed = earlier is not None and earlier.escalation_id == escalation_id
    resolved_by = (earlier.resolved_by if earlier is not None and resumed else None) or user
    row = await escalation.get(responder.db, escalation_id)
    if row is not None and row.status == escalations.OPEN and not resumed:
        if not await policy.may_resolve(row, user, lambda: is_team_member(row)):
            log.info("escalation %s: %s may not resolve it", escalation_id, user)
            refused = Reply(texts.ESCALATION_RESOLVE_NOT_ALLOWED, ReplyKind.INFO, ephemeral=True)
            return Resolution(refused, closed=False)
        await record({RESOLVING_KEY: escalation_id, RESOLVER_KEY: user, **platform_fields})
    reply = await responder.resolve_escalation(
        escalation_id=escalation_id,
        resolved_by=resolved_by,
        read_thread=read_thread,
        thread_link=await thread_link(row) if row is not None else None,
        resumed=resumed,
    )
    # ESCALATION_RESOLVED is the Responder's one reply for a hand-off this call closed (or
    # finished closing); "not open" and errors are the clicker's alone.
    return Resolution(reply, closed=reply.text == texts.ESCALATION_RESOLVED)
