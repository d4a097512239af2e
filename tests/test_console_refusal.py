"""A refusal says how to ask for a human with what the platform has: Slack and Discord show a
"Talk to a human" button, the console has none and says what to type; what it says works, and
the hand-off it opens says where the request went (nobody can reply in a terminal)."""

from __future__ import annotations

import io

from adapters.console import ConsoleAdapter
from bot import texts
from bot.messages import HumanRoute, Platform, ReplyKind
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.core_support import kb_fixture, message, responder  # noqa: F401

QUESTION = "How do I configure the quantum flux capacitor?"


async def test_the_console_refusal_promises_no_button_and_its_advice_works(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    out = io.StringIO()
    adapter = ConsoleAdapter(responder(sqlite_db, kb=kb), out=out)
    refused = await adapter.send(QUESTION)
    assert refused.reply is not None and refused.reply.kind is ReplyKind.NO_ANSWER
    shown = out.getvalue()
    assert "button" not in shown.lower()
    assert "Reply “yes”, or say “talk to a human”." in shown
    accepted = await adapter.send("yes")  # what the refusal told them to type
    assert accepted.reply is not None and accepted.reply.kind is ReplyKind.ESCALATED
    # Nobody can reply in a terminal: it says where the request went, not "they'll reply here".
    said = accepted.reply.text
    assert "reply here" not in said and f"hand-off #{accepted.reply.escalation_id}" in said
    assert "supportbot report" in said


async def test_platforms_with_buttons_keep_the_button_in_the_refusal(
    sqlite_db: Database, kb: KnowledgeBase
) -> None:
    replies = [r async for r in responder(sqlite_db, kb=kb).stream(message(QUESTION))]
    assert replies[-1].kind is ReplyKind.NO_ANSWER
    assert "Use the *Talk to a human* button" in replies[-1].text


def test_a_refusal_in_every_language_on_the_console_says_what_to_type() -> None:
    for code in texts.NOT_IN_DOCS_TRANSLATIONS:
        typed = texts.not_in_docs(code, HumanRoute.TYPED)
        assert "*Talk to a human*" not in typed and "talk to a human" in typed
        assert typed != texts.not_in_docs(code)


def test_each_platform_offers_a_human_the_way_its_reply_can() -> None:
    # Slack's /ask reply has no buttons (a private response): it says to ask by mention.
    assert Platform.SLACK.human_route(command=True) is HumanRoute.MENTION
    assert Platform.SLACK.human_route(command=False) is HumanRoute.BUTTON
    assert Platform.DISCORD.human_route(command=True) is HumanRoute.BUTTON
    assert Platform.CONSOLE.human_route(command=False) is HumanRoute.TYPED
    for code in texts.NOT_IN_DOCS_TRANSLATIONS:
        by_mention = texts.not_in_docs(code, HumanRoute.MENTION)
        assert by_mention.startswith(texts.not_in_docs(code).split("?")[0])
        assert by_mention not in (texts.not_in_docs(code), texts.not_in_docs(code, "typed"))
