"""The core's recovery of a hand-off click cut short (bot.escalation_recovery): what a click
records before changing the hand-off, how a later attempt of its work carries on, and work rows
stored by the previous version (whose payload keys were written by each adapter) still resuming."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot import escalation_recovery, texts
from bot.escalation import EscalationPolicy, Resolvers
from bot.learning import ThreadMessage
from bot.messages import ConversationKey, Platform, ReplyKind
from bot.responder import Responder
from storage import escalations, learned
from storage.db import Database
from storage.models import Escalation
from tests.core_support import build_kb, conversation, responder

TEAM_ANSWER = "Use the reset link from the login page."
SLACK_ASKED_IN = conversation("1700000000.000100")
DISCORD_ASKED_IN = ConversationKey(Platform.DISCORD, "900", "901", "901")


class ClickWork:
    """The payload of one click's work, as the inbox keeps it between attempts."""

    def __init__(self, payload: dict[str, Any] | None = None) -> None:
        self.payload: dict[str, Any] = dict(payload or {})

    async def record(self, changes: dict[str, Any]) -> None:
        self.payload = {**self.payload, **changes}


async def _team_thread(_row: Escalation) -> list[ThreadMessage]:
    return [ThreadMessage("UTEAM", TEAM_ANSWER, datetime.now(UTC))]


async def _no_link(_row: Escalation) -> str | None:
    return None


async def _not_in_team(_row: Escalation) -> bool:
    return False


@pytest.fixture
def bot(db: Database, tmp_path: Path) -> Responder:
    return responder(db, kb=build_kb(tmp_path))


async def _resolve(
    bot: Responder, work: ClickWork, escalation_id: int, user: str, **platform_fields: Any
) -> escalation_recovery.Resolution:
    return await escalation_recovery.resolve(
        bot,
        EscalationPolicy(resolvers=Resolvers.TEAM_OR_ASKER),
        work.payload,
        escalation_id,
        user,
        record=work.record,
        is_team_member=_not_in_team,
        read_thread=_team_thread,
        thread_link=_no_link,
        **platform_fields,
    )


async def _opened(bot: Responder, where: ConversationKey, asker: str = "UASK") -> int:
    hand_off = await bot.escalate(conversation=where, requested_by=asker)
    assert hand_off.created
    return hand_off.escalation_id


async def test_a_request_records_what_a_later_attempt_needs_and_that_attempt_says_opened(
    bot: Responder,
) -> None:
    work = ClickWork({"kind": "interaction"})
    first = await escalation_recovery.request_human(
        bot, work.payload, DISCORD_ASKED_IN, "UASK", work.record, parent_channel_id="800"
    )
    assert first.opened and not first.resumed and first.reply.text == texts.ESCALATION_OPENED
    assert work.payload["parent_channel_id"] == "800"
    recorded = escalation_recovery.recorded_request(work.payload)
    assert recorded == escalation_recovery.RecordedRequest(
        first.escalation_id, "UASK", DISCORD_ASKED_IN
    )
    # The attempt after a crash finds its own hand-off open: opened, not "already open".
    again = await escalation_recovery.request_human(
        bot, work.payload, recorded.conversation, recorded.requested_by, work.record
    )
    assert (again.escalation_id, again.opened, again.resumed) == (first.escalation_id, True, True)
    assert again.reply.text == texts.ESCALATION_OPENED and not again.announced
    assert not again.announcing
    # About to post: a later attempt knows a post may exist (and the adapter's "since").
    await escalation_recovery.record_announcing(work.record, first.escalation_id, since="1.0")
    posting = await escalation_recovery.request_human(
        bot, work.payload, DISCORD_ASKED_IN, "UASK", work.record
    )
    assert posting.announcing and not posting.announced and work.payload["since"] == "1.0"
    await escalation_recovery.record_announced(work.record, first.escalation_id)
    told = await escalation_recovery.request_human(
        bot, work.payload, DISCORD_ASKED_IN, "UASK", work.record
    )
    assert told.announced
    # Another click (its own work) finds it already open.
    other = await escalation_recovery.request_human(
        bot, {}, DISCORD_ASKED_IN, "UOTHER", ClickWork().record
    )
    assert not other.opened and other.reply.text == texts.ESCALATION_ALREADY_OPEN


async def test_a_request_that_finds_the_hand_off_open_records_it_for_a_later_attempt(
    bot: Responder,
) -> None:
    # Another click found the hand-off open and recorded nothing: a crash before its reply
    # left a later attempt nothing to finish, and the clicker was told to try again. Now what
    # it found is recorded, and the later attempt says "already open" again (and opens nothing).
    escalation_id = await _opened(bot, DISCORD_ASKED_IN)
    work = ClickWork({"kind": "interaction"})
    found = await escalation_recovery.request_human(
        bot, work.payload, DISCORD_ASKED_IN, "UOTHER", work.record, parent_channel_id="800"
    )
    assert (found.escalation_id, found.opened) == (escalation_id, False)
    recorded = escalation_recovery.recorded_request(work.payload)
    assert recorded == escalation_recovery.RecordedRequest(
        escalation_id, "UOTHER", DISCORD_ASKED_IN, opened=False
    )
    assert work.payload["parent_channel_id"] == "800"
    again = await escalation_recovery.request_human(
        bot, work.payload, recorded.conversation, recorded.requested_by, work.record
    )
    assert (again.escalation_id, again.opened, again.resumed) == (escalation_id, False, False)
    assert again.reply.text == texts.ESCALATION_ALREADY_OPEN


async def test_a_request_recorded_by_the_previous_version_resumes(bot: Responder) -> None:
    # The previous version's Slack click recorded only the hand-off it opened (and announced):
    # Slack reads the click again, and the core still knows it as the click that opened it.
    escalation_id = await _opened(bot, SLACK_ASKED_IN)
    old_row = {"kind": "action", "user": "UASK", "opened_escalation": escalation_id}
    resumed = await escalation_recovery.request_human(
        bot, old_row, SLACK_ASKED_IN, "UASK", ClickWork().record
    )
    assert resumed.resumed and resumed.reply.text == texts.ESCALATION_OPENED
    assert not resumed.announced
    announced = {**old_row, "announced_escalation": escalation_id}
    assert (
        await escalation_recovery.request_human(
            bot, announced, SLACK_ASKED_IN, "UASK", ClickWork().record
        )
    ).announced
    # Without who asked where, nothing to resume on a platform that cannot read the click.
    assert escalation_recovery.recorded_request(old_row) is None


async def test_a_resolve_is_checked_then_recorded_and_a_later_attempt_finishes_it(
    bot: Responder, db: Database
) -> None:
    escalation_id = await _opened(bot, SLACK_ASKED_IN)
    bystander = ClickWork()
    refused = await _resolve(bot, bystander, escalation_id, "UBYSTANDER")
    assert refused.reply.text == texts.ESCALATION_RESOLVE_NOT_ALLOWED and refused.reply.ephemeral
    assert bystander.payload == {} and not refused.closed

    work = ClickWork({"kind": "interaction"})
    done = await _resolve(bot, work, escalation_id, "UASK", guild_id=900)
    assert done.reply.text == texts.ESCALATION_RESOLVED and done.closed
    assert escalation_recovery.recorded_resolve(work.payload) == (
        escalation_recovery.RecordedResolve(escalation_id, "UASK")
    )
    assert work.payload["guild_id"] == 900
    # The attempt after a crash (the hand-off closed already) finishes instead of "not open",
    # as the resolver who passed the checks.
    again = await _resolve(bot, work, escalation_id, "")
    assert again.reply.text == texts.ESCALATION_RESOLVED and again.closed
    row = await escalations.get_escalation(db, escalation_id=escalation_id)
    assert row is not None and row.resolved_by == "UASK"
    [draft] = await learned.list_answers(db)
    assert draft.answer == TEAM_ANSWER
    # Another click (its own work) finds it closed.
    # Another click (its own work) finds it closed: a note for the clicker alone, nothing for
    # the platform to update (the notice and the forum tags were updated by the close).
    late = await _resolve(bot, ClickWork(), escalation_id, "UASK")
    assert late.reply.text == texts.ESCALATION_NOT_OPEN and late.reply.kind is ReplyKind.INFO
    assert late.reply.ephemeral and not late.closed


@pytest.mark.parametrize(
    "old_row",
    [
        pytest.param({"kind": "action", "user": "UASK"}, id="slack"),
        pytest.param({"kind": "interaction", "resolver": "UASK", "guild_id": 900}, id="discord"),
    ],
)
async def test_a_resolve_recorded_by_the_previous_version_is_finished(
    bot: Responder, db: Database, old_row: dict[str, Any]
) -> None:
    # The previous version closed the hand-off and died before learning the team's answer.
    escalation_id = await _opened(bot, SLACK_ASKED_IN)
    assert await escalations.resolve_escalation(db, escalation_id=escalation_id, resolved_by="UASK")
    work = ClickWork({**old_row, "resolving_escalation": escalation_id})
    recorded = escalation_recovery.recorded_resolve(work.payload)
    assert recorded is not None and recorded.escalation_id == escalation_id
    resolver = recorded.resolved_by or str(work.payload["user"])
    assert resolver == "UASK"
    done = await _resolve(bot, work, escalation_id, resolver)
    assert done.reply.text == texts.ESCALATION_RESOLVED and done.closed
    [draft] = await learned.list_answers(db)
    assert draft.answer == TEAM_ANSWER
