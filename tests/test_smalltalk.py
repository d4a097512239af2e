"""Thanks, "ok" and a thumbs-up get a reaction, not "I couldn't find this in the documentation";
a yes to the refusal's offer of a human brings one in. Core, Slack and Discord."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.messages import Reply, ReplyKind
from bot.report import build_report
from bot.smalltalk import OfferReply, is_acknowledgement, reply_to_offer
from storage import channel_settings, escalations
from storage.db import Database
from storage.knowledge import KnowledgeBase
from storage.models import Escalation, Memory
from tests.core_support import kb_fixture, message, responder  # noqa: F401
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "harness", "kb_uri"]

REFUSED = [{"role": "user", "content": "Can I pay in bitcoin?"}]
REFUSED.append({"role": "assistant", "content": texts.NOT_IN_DOCS})


@pytest.mark.parametrize(
    "text",
    ["thanks!", "Thank you so much", "ok that worked, thank you!", "👍", "🙏🏽", "perfect thx",
     "<@U0BOT> thanks", "it works now", "got it", "Cheers"],
)  # fmt: skip
def test_acknowledgements(text: str) -> None:
    assert is_acknowledgement(text)


@pytest.mark.parametrize(
    "text",
    ["How do I reset my password?", "thanks, but how do I rotate keys?", "ok so what about SSO",
     "great, what about webhooks?", "👎", "?", "thanks for nothing, the export is still broken "
     "after the upgrade"],
)  # fmt: skip
def test_questions_are_not_acknowledgements(text: str) -> None:
    assert not is_acknowledgement(text)


def test_a_yes_or_no_counts_only_right_after_the_offer_of_a_human() -> None:
    assert reply_to_offer("yes please", REFUSED) is OfferReply.ACCEPTED
    assert reply_to_offer("Sure", REFUSED) is OfferReply.ACCEPTED
    assert reply_to_offer("no thanks", REFUSED) is OfferReply.DECLINED
    assert reply_to_offer("ok", REFUSED) is None  # may only acknowledge; a yes pings the team
    assert reply_to_offer("yes, and how do I export?", REFUSED) is None
    answered = [REFUSED[0], {"role": "assistant", "content": "Open Settings [1]"}]
    assert reply_to_offer("yes", answered) is None
    assert reply_to_offer("yes", []) is None


async def _final(resp, msg) -> Reply:  # type: ignore[no-untyped-def]
    final = None
    async for item in resp.stream(msg):
        if isinstance(item, Reply):
            final = item
        else:
            raise AssertionError(f"an acknowledgement streamed text: {item!r}")
    assert final is not None
    return final


async def _memories(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Memory)) or 0)


async def test_thanks_gets_a_reaction_is_not_stored_nor_reported(
    db: Database, kb: KnowledgeBase
) -> None:
    resp = responder(db, kb=kb)
    await _first_reply(resp, "How do I reset my password?")
    stored = await _memories(db)
    reply = await _final(resp, message("thanks, that worked!", msg_id="m2"))
    assert reply.silent and reply.reaction == "+1" and reply.text == ""
    assert await _memories(db) == stored
    report = await build_report(db)
    assert report["questions"] == 1 and report["coverage_gaps"] == []


async def test_thanks_in_an_auto_answer_channel_gets_nothing(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    await channel_settings.upsert_setting(
        sqlite_db, platform="slack", workspace_id="T1", channel_id="C1", auto_answer=True
    )
    reply = await _final(responder(sqlite_db, kb=kb), message("thanks everyone!", thread=None))
    assert reply.silent and reply.reaction is None


async def test_yes_to_the_offer_opens_a_hand_off_for_the_refused_question(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    resp = responder(sqlite_db, kb=kb)
    refusal = await _first_reply(resp, "Can I pay my invoices with PayPal?")
    assert refusal.kind is ReplyKind.NO_ANSWER
    declined = await _first_reply(resp, "no thanks", msg_id="m2")
    assert declined.silent and declined.reaction == "+1"
    assert await escalations.has_open(sqlite_db, session_id=refusal.session_id) is False
    refusal = await _first_reply(resp, "Can I pay my invoices with PayPal?", msg_id="m3")
    accepted = await _first_reply(resp, "yes please", msg_id="m4")
    assert accepted.kind is ReplyKind.ESCALATED and texts.ESCALATION_OPENED in accepted.text
    async with sqlite_db.sessions() as session:
        [row] = (await session.scalars(select(Escalation))).all()
    assert row.reason == "Can I pay my invoices with PayPal?" and row.requested_by == "U1"


async def _first_reply(resp, text: str, msg_id: str = "m1") -> Reply:  # type: ignore[no-untyped-def]
    async for item in resp.stream(message(text, msg_id=msg_id)):
        if isinstance(item, Reply):
            return item
    raise AssertionError("no reply")


async def test_slack_thanks_in_a_thread_is_a_reaction(
    harness: SlackHarness, api: FakeSlackAPI
) -> None:
    root = new_ts()
    async with harness.sender() as sender:
        await sender.event(
            app_mention(text=f"<@{DEFAULT_BOT_USER}> how do I reset my password?", ts=root)
        )
        await api.wait_for(lambda: [m for m in api.posted("C0000001") if not m.streaming])
        await harness.bot.wait_idle()
        thanks = new_ts()
        await sender.event(
            app_mention(
                text="thanks, that worked!", ts=thanks, thread_ts=root,
                event_type="message", channel_type="channel",
            )
        )  # fmt: skip
        await api.wait_for(lambda: api.reactions)
        await harness.bot.wait_idle()
    assert api.reactions == [("C0000001", thanks, "+1")]
    assert len(api.posted("C0000001")) == 1  # the answer only
