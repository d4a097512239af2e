"""Thanks, "ok" and a thumbs-up get a reaction, not "I couldn't find this in the documentation";
a yes to the refusal's offer of a human brings one in. Core, Slack and Discord."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.messages import Reply, ReplyKind
from bot.report import build_report
from bot.smalltalk import OfferReply, is_acknowledgement, reply_to_offer
from bot.text_commands import FORGET_WORDS, is_forget_request
from storage import channel_settings, escalations
from storage.db import Database
from storage.knowledge import KnowledgeBase
from storage.models import Escalation, Memory
from tests.core_support import kb_fixture, message, responder  # noqa: F401
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, harness, kb_uri
from tests.fakes.slack_harness import SlackHarness, slack_settings
from tests.fakes.slack_sender import app_mention, new_ts

__all__ = ["api", "harness", "kb_uri"]

EVAL_SETS = Path(__file__).resolve().parent.parent / "bench" / "eval"
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


@pytest.mark.parametrize(
    "text",
    ["merci", "Merci beaucoup !", "merci, ça marche", "d'accord", "parfait, merci", "Danke",
     "vielen Dank!", "danke schön", "ok, hat geklappt", "gracias", "¡Muchas gracias!", "vale",
     "de acuerdo", "perfecto, gracias", "<@U0BOT> merci"],
)  # fmt: skip
def test_acknowledgements_in_french_german_and_spanish(text: str) -> None:
    assert is_acknowledgement(text)


@pytest.mark.parametrize(
    "text",
    ["merci, mais comment exporter ?", "¿gracias, y cómo exporto?", "danke, aber wie geht SSO",
     "comment réinitialiser mon mot de passe", "wie setze ich mein Passwort zurück",
     "cómo restablezco mi contraseña", "merci danke gracias"],  # languages are not mixed
)  # fmt: skip
def test_questions_in_other_languages_are_not_acknowledgements(text: str) -> None:
    assert not is_acknowledgement(text)


@pytest.mark.parametrize("language", sorted(texts.NOT_IN_DOCS_TRANSLATIONS))
@pytest.mark.parametrize(
    ("text", "expected"),
    [("oui", OfferReply.ACCEPTED), ("Oui, s'il vous plaît", OfferReply.ACCEPTED),
     ("ja", OfferReply.ACCEPTED), ("Ja, bitte!", OfferReply.ACCEPTED),
     ("ja gerne", OfferReply.ACCEPTED), ("sí", OfferReply.ACCEPTED), ("Si", OfferReply.ACCEPTED),
     ("sí, por favor", OfferReply.ACCEPTED), ("claro", OfferReply.ACCEPTED),
     ("non", OfferReply.DECLINED), ("non merci", OfferReply.DECLINED),
     ("nein", OfferReply.DECLINED), ("nein danke", OfferReply.DECLINED),
     ("no", OfferReply.DECLINED), ("no, gracias", OfferReply.DECLINED),
     # "ok" and its like may only acknowledge: a yes pings the team.
     ("d'accord", None), ("vale", None), ("de acuerdo", None), ("einverstanden", None),
     ("okay", None), ("oui, et comment exporter ?", None), ("¿sí?", None),
     ("oui merci", OfferReply.ACCEPTED), ("ja, danke schön", OfferReply.ACCEPTED),
     ("sí, muchas gracias", OfferReply.ACCEPTED), ("d'accord merci", None)],
)  # fmt: skip
def test_yes_and_no_in_french_german_and_spanish_after_each_refusal(
    language: str, text: str, expected: OfferReply | None
) -> None:
    refused = [REFUSED[0], {"role": "assistant", "content": texts.not_in_docs(language)}]
    assert reply_to_offer(text, refused) is expected
    assert reply_to_offer(text, REFUSED[:1]) is None  # not right after the offer: nothing


def _evaluation_questions() -> list[str]:
    files = sorted(EVAL_SETS.glob("*.jsonl"))
    assert files, f"no evaluation sets in {EVAL_SETS}"
    return [json.loads(line)["question"] for f in files for line in f.open() if line.strip()]


def test_no_evaluation_question_is_small_talk_or_a_command() -> None:
    """Precision: whatever the lists learn, a real question is never acknowledged with a
    reaction, taken for a yes or no to the offer of a human (in any refusal language), or for
    "forget"."""
    questions = _evaluation_questions()
    assert len(questions) > 900
    refusals = [
        [REFUSED[0], {"role": "assistant", "content": refusal}]
        for refusal in texts.NOT_IN_DOCS_TRANSLATIONS.values()
    ]
    assert [q for q in questions if is_acknowledgement(q)] == []
    assert [q for q in questions for h in refusals if reply_to_offer(q, h) is not None] == []
    # "forget" in each of those languages too (bot.text_commands), as a question starts or not.
    assert sorted(FORGET_WORDS) == sorted(texts.NOT_IN_DOCS_TRANSLATIONS)
    assert [q for q in questions if is_forget_request(q)] == []
    said = [" ".join(p) for w in FORGET_WORDS.values() for p in sorted(w.phrases)]
    assert all(is_forget_request(phrase) for phrase in said)
    assert [f"{p} {q}" for p in said for q in questions if is_forget_request(f"{p} {q}")] == []


def test_a_yes_or_no_counts_only_right_after_the_offer_of_a_human() -> None:
    assert reply_to_offer("yes please", REFUSED) is OfferReply.ACCEPTED
    assert reply_to_offer("Sure", REFUSED) is OfferReply.ACCEPTED
    assert reply_to_offer("no thanks", REFUSED) is OfferReply.DECLINED
    assert reply_to_offer("ok", REFUSED) is None  # may only acknowledge; a yes pings the team
    # Thanks riding on a yes keep it a yes; "ok" riding on one does not make "ok" a yes.
    for text in ("yes thanks", "Yes, thank you!", "yes please, thanks a lot"):
        assert reply_to_offer(text, REFUSED) is OfferReply.ACCEPTED, text
    assert reply_to_offer("ok thanks", REFUSED) is None
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


async def test_yes_thanks_accepts_the_offer_of_a_human_and_is_thanks_otherwise(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    """ "yes thanks" reads as thanks (a reaction, nothing searched) unless the bot's last word
    was the refusal's offer of a human: then it is a yes."""
    resp = responder(sqlite_db, kb=kb)
    answer = await _first_reply(resp, "How do I reset my password?")
    assert answer.kind is ReplyKind.ANSWER
    thanks = await _first_reply(resp, "yes thanks", msg_id="m2")
    assert thanks.silent and thanks.reaction == "+1"
    refusal = await _first_reply(resp, "Can I pay my invoices with PayPal?", msg_id="m3")
    assert refusal.kind is ReplyKind.NO_ANSWER
    accepted = await _first_reply(resp, "Yes, thanks!", msg_id="m4")
    assert accepted.kind is ReplyKind.ESCALATED
    assert await escalations.has_open(sqlite_db, session_id=refusal.session_id)


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


async def test_a_french_channel_thanks_declines_and_accepts_in_french(
    db: Database, kb: KnowledgeBase
) -> None:
    await channel_settings.upsert_setting(
        db, platform="slack", workspace_id="T1", channel_id="C1", refusal_language="fr"
    )
    resp = responder(db, kb=kb)
    refusal = await _first_reply(resp, "Can I pay my invoices with PayPal?")
    assert refusal.text.startswith(texts.not_in_docs("fr")[:40])
    stored = await _memories(db)
    thanks = await _final(resp, message("Merci beaucoup !", msg_id="m2"))
    declined = await _final(resp, message("non merci", msg_id="m3"))
    for reply in (thanks, declined):
        assert reply.silent and reply.reaction == "+1"
    assert await _memories(db) == stored  # neither is stored as a question
    assert await escalations.has_open(db, session_id=refusal.session_id) is False
    await _first_reply(resp, "Can I pay my invoices with PayPal?", msg_id="m4")
    accepted = await _first_reply(resp, "Oui", msg_id="m5")
    assert accepted.kind is ReplyKind.ESCALATED
    async with db.sessions() as session:
        [row] = (await session.scalars(select(Escalation))).all()
    assert row.reason == "Can I pay my invoices with PayPal?"


async def test_slack_a_spanish_channel_thanks_and_si_in_a_thread(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    await channel_settings.upsert_setting(
        db, platform="slack", workspace_id="T0000001", channel_id="C0000001",
        refusal_language="es",
    )  # fmt: skip
    h = await SlackHarness.start(api, slack_settings(any_db_url, kb_uri, api), db=db)
    root, thanks = new_ts(), new_ts()

    def in_thread(text: str, ts: str | None = None) -> dict:
        return app_mention(
            text=text, ts=ts, thread_ts=root, event_type="message", channel_type="channel"
        )

    def answered() -> list:
        return [m for m in api.posted("C0000001") if not m.streaming]

    try:
        async with h.sender() as sender:
            await sender.event(
                app_mention(text=f"<@{DEFAULT_BOT_USER}> can I pay in bitcoin?", ts=root)
            )
            await api.wait_for(lambda: answered())
            await h.bot.wait_idle()
            assert answered()[0].text.startswith("No encontré esto")
            await sender.event(in_thread("¡Muchas gracias!", thanks))
            await api.wait_for(lambda: api.reactions)
            await h.bot.wait_idle()
            await sender.event(in_thread("sí"))
            await api.wait_for(lambda: len(answered()) == 2)
            await h.bot.wait_idle()
    finally:
        await h.close()
    assert api.reactions == [("C0000001", thanks, "+1")]
    assert texts.ESCALATION_OPENED in answered()[1].text
    session = f"slack:T0000001:C0000001:{root}"
    assert await escalations.has_open(db, session_id=session)
