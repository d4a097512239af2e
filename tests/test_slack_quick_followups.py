"""One person asks the bot twice in quick succession in the same thread, through slack_sdk
against the fake Slack and the OpenAI fake: the answers come in the order the questions were
asked, and the second is answered knowing the first (the thread's memory holds both turns,
in order), even when the first answer is the slower one."""

from __future__ import annotations

import asyncio
from typing import Any

from storage.db import Database
from tests.fakes.openai_server import FakeOpenAI, Turn, fake_openai
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import model_settings, running_harness
from tests.fakes.slack_sender import app_mention, new_ts
from tests.process_support import stored_turns

__all__ = ["api", "fake_openai", "kb_uri"]
BOT = DEFAULT_BOT_USER
FIRST = "How do I reset my password?"
SECOND = "And where are my invoices?"


def first_is_slow(request: dict[str, Any]) -> Turn:
    """The first question's answer is slow to come, the second's fast."""
    [*_, last] = [m for m in request["messages"] if m.get("role") == "user"]
    if FIRST in str(last.get("content")):
        return Turn(content="Answer one: open the settings page.", delay=1.5)
    return Turn(content="Answer two: the Billing page.")


async def test_two_quick_questions_in_a_thread_are_answered_in_order_knowing_each_other(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.policy = first_is_slow
    settings = model_settings(sqlite_url, kb_uri, api, fake_openai)
    root = new_ts()
    async with running_harness(api, settings, db=sqlite_db) as h, h.sender() as sender:
        await sender.event(app_mention(text=f"<@{BOT}> {FIRST}", ts=root))
        await asyncio.sleep(0.2)  # the same person, a moment later, in the answer's thread
        await sender.event(app_mention(text=f"<@{BOT}> {SECOND}", ts=new_ts(), thread_ts=root))
        await api.wait_for(lambda: len([m for m in api.posted() if "Answer" in m.text]) == 2)
        await h.bot.wait_idle()
    answers = [m.text for m in api.posted() if "Answer" in m.text]
    assert [a.split(":")[0] for a in answers] == ["Answer one", "Answer two"]
    [*_, second_request] = fake_openai.requests
    history = " ".join(str(m.get("content")) for m in second_request["messages"])
    assert FIRST in history and "Answer one" in history  # answered knowing the first turn
    await assert_turns_in_order(sqlite_db)


async def test_two_quick_questions_taken_by_two_replicas_are_answered_one_after_the_other(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, fake_openai: FakeOpenAI
) -> None:
    """The same, with the two questions taken by two replicas sharing the database (two
    inboxes, each with its own in-process turns): the second replica waits for the first's
    answer (its live lease in the ledger) before it answers."""
    first_done_when_second_asked: list[bool] = []

    def policy(request: dict[str, Any]) -> Turn:
        turn = first_is_slow(request)
        if "Answer two" in turn.content:
            first_done_when_second_asked.append(
                any("Answer one" in m.text and not m.streaming for m in api.posted())
            )
        return turn

    fake_openai.policy = policy
    settings = model_settings(any_db_url, kb_uri, api, fake_openai)
    root = new_ts()
    async with (
        running_harness(api, settings, db=db) as one,
        running_harness(api, settings, db=db) as two,
        one.sender() as to_one,
        two.sender() as to_two,
    ):
        await to_one.event(app_mention(text=f"<@{BOT}> {FIRST}", ts=root))
        await asyncio.sleep(0.2)
        await to_two.event(app_mention(text=f"<@{BOT}> {SECOND}", ts=new_ts(), thread_ts=root))
        await api.wait_for(lambda: len(answers_given(api)) == 2, timeout=20)
        await one.bot.wait_idle()
        await two.bot.wait_idle()
    assert first_done_when_second_asked == [True]  # started only once the first was posted
    assert [a.split(":")[0] for a in answers_given(api)] == ["Answer one", "Answer two"]
    await assert_turns_in_order(db)


async def assert_turns_in_order(db: Database) -> None:
    """The thread's memory holds the first turn, then the second."""
    turns = [(role, text) for _session, role, text in await stored_turns(db)]
    assert [role for role, _ in turns] == ["user", "assistant", "user", "assistant"]
    assert FIRST in turns[0][1] and "Answer one" in turns[1][1] and SECOND in turns[2][1]


def answers_given(api: FakeSlackAPI) -> list[str]:
    """The finished answers' texts, in posting order."""
    return [m.text for m in api.posted() if "Answer" in m.text and not m.streaming]
