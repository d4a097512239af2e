"""Slack hand-offs that reach people (issue 12, points 2, 3, 4), through the real bolt app and the
fake Slack API: real mentions in the team's notice, the notice first, a per-channel target, one
open escalation per conversation under a double click, and who may press "Mark resolved"."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, update

from adapters.slack import convert, render
from adapters.slack.escalation import SlackTarget, notice_messages
from bot import texts
from storage import escalations, events
from storage.db import Database
from storage.models import ChannelSetting, Escalation
from tests.fakes.slack_api import DEFAULT_BOT_USER, FakeMessage, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import (
    BOT_TOKEN,
    RETRY_SOON,
    SlackHarness,
    install_via_oauth,
    oauth_settings,
    running_harness,
    slack_settings,
)
from tests.fakes.slack_sender import SlackSender, app_mention, block_action, new_ts, thread_reply
from tests.inbox_support import INBOX_FAST, ledger

__all__ = ["api", "kb_uri"]
BOT = DEFAULT_BOT_USER
ASKER = "UHUMAN001"


def _payload(message: FakeMessage) -> dict[str, Any]:
    payload = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
    if message.thread_ts:
        payload["thread_ts"] = message.thread_ts
    return payload


def _button(message: FakeMessage, action_id: str) -> dict[str, Any]:
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button")


async def _answered_question(
    h: SlackHarness, api: FakeSlackAPI, sender: SlackSender, channel: str = "C0000001"
) -> FakeMessage:
    event = app_mention(text=f"<@{BOT}> can I pay in bitcoin?", ts=new_ts(), channel=channel)
    await sender.event(event)
    await api.wait_for(lambda: [m for m in api.posted(channel) if not m.streaming])
    await h.bot.wait_idle()
    return api.posted(channel)[0]


async def _click(sender: SlackSender, message: FakeMessage, action_id: str, **options: Any) -> None:
    button = _button(message, action_id)
    click = block_action(
        action_id=action_id,
        value=button["value"],
        message=_payload(message),
        channel=message.channel,
        **options,
    )
    assert (await sender.interaction(click)).status == 200


Asked = tuple[SlackHarness, SlackSender, FakeMessage]


@asynccontextmanager
async def _asked(
    api: FakeSlackAPI,
    db: Database,
    url: str,
    kb_uri: str,
    target: str = "CSUPPORT",
    *,
    channel: str = "C0000001",
    try_later_delays: tuple[float, ...] | None = None,
    **settings: Any,
) -> AsyncIterator[Asked]:
    """The bot noticing the team in ``target`` (``settings``: more of them), a sender, and
    its answer (with its buttons) to a question of ``channel`` that the docs do not answer."""
    values = slack_settings(url, kb_uri, api, slack_escalation_target=target, **settings)
    async with (
        running_harness(api, values, db=db, try_later_delays=try_later_delays) as h,
        h.sender() as sender,
    ):
        yield h, sender, await _answered_question(h, api, sender, channel)


def _retrying(
    api: FakeSlackAPI, db: Database, url: str, kb_uri: str
) -> AbstractAsyncContextManager[Asked]:
    """:func:`_asked` of a bot noticing the team in CSUPPORT, whose inbox tries again work
    that a passing fault handed back within a test."""
    return _asked(api, db, url, kb_uri, try_later_delays=RETRY_SOON, **INBOX_FAST)


async def _hand_off(
    h: SlackHarness, api: FakeSlackAPI, sender: SlackSender, answer: FakeMessage
) -> FakeMessage:
    """Ask for a human under ``answer``; the bot's hand-off reply, once the bot is idle."""
    await _click(sender, answer, "sb_human")
    await api.wait_for(lambda: len(api.posted(answer.channel)) == 2)
    await h.bot.wait_idle()
    return api.posted(answer.channel)[1]


async def _escalations(db: Database) -> list[Escalation]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Escalation).order_by(Escalation.id))).all())


async def test_notice_mentions_the_team_and_goes_out_before_the_cosmetic_update(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    target = "CSUPPORT+SHELPERS+UONCALL1"
    async with _asked(api, sqlite_db, sqlite_url, kb_uri, target) as (h, sender, answer):
        api.error("chat.update", "cant_update_message", times=10)  # the cosmetic edit fails
        handoff = await _hand_off(h, api, sender, answer)
    [notice] = api.posted("CSUPPORT")
    shown = notice.text + json.dumps(notice.blocks)
    for mention in ("<!subteam^SHELPERS>", f"<@{ASKER}>", "<@UONCALL1>"):
        assert mention in shown, shown
    assert "&lt;" not in shown
    assert _button(notice, "sb_resolve")
    # The notice went out first; the edit of the clicked message came later (and failed).
    posts = [i for i, c in enumerate(api.calls) if c.method == "chat.postMessage"]
    notice_call = next(i for i in posts if api.calls[i].params.get("channel") == "CSUPPORT")
    update_call = next(i for i, c in enumerate(api.calls) if c.method == "chat.update")
    assert notice_call < update_call
    assert texts.ESCALATION_OPENED in handoff.text
    [row] = await _escalations(sqlite_db)
    assert row.notice_ref == f"CSUPPORT:{notice.ts}"


async def test_group_only_target_is_pinged_in_the_conversation_unescaped(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    async with _asked(api, sqlite_db, sqlite_url, kb_uri, "SHELPERS") as (h, sender, answer):
        handoff = await _hand_off(h, api, sender, answer)
    section = handoff.blocks[0]["text"]["text"]
    assert "<!subteam^SHELPERS>" in section and "<!subteam^SHELPERS>" in handoff.text
    assert "&lt;!subteam" not in section


async def test_channel_setting_overrides_the_default_target(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    async with sqlite_db.session() as session:
        session.add(
            ChannelSetting(
                platform="slack",
                workspace_id="T0000001",
                channel_id="C0000009",
                escalation_target="CBILLING",
            )
        )
    asked = _asked(api, sqlite_db, sqlite_url, kb_uri, "CDEFAULT", channel="C0000009")
    async with asked as (h, sender, answer):
        await _hand_off(h, api, sender, answer)
    assert api.posted("CBILLING") and not api.posted("CDEFAULT")


async def test_double_click_opens_one_escalation_with_one_notice_and_one_reply(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """The repeated clicks are told privately that a human was already asked (they used to
    post that in the thread too, one message per click)."""
    async with _asked(api, db, any_db_url, kb_uri) as (h, sender, answer):
        await asyncio.gather(*(_click(sender, answer, "sb_human") for _ in range(4)))
        await api.wait_for(lambda: len(api.posted("C0000001")) == 2 and api.posted("CSUPPORT"))
        await api.wait_for(lambda: len(api.ephemerals) == 3)
        await h.bot.wait_idle()
    rows = await _escalations(db)
    assert [r.status for r in rows] == ["open"]
    assert len(api.posted("CSUPPORT")) == 1
    [_answer, handoff] = api.posted("C0000001")
    assert texts.ESCALATION_OPENED in handoff.text
    for told in api.ephemerals:
        assert told.params["user"] == "UHUMAN001"
        assert texts.ESCALATION_ALREADY_OPEN in told.params["text"]


async def test_only_the_team_or_the_asker_may_resolve_and_the_notice_says_who(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    api.channel_members["CSUPPORT"] = ["UAGENT01", "UAGENT02", "UAGENT03"]
    async with _asked(api, sqlite_db, sqlite_url, kb_uri) as (h, sender, answer):
        await _hand_off(h, api, sender, answer)
        [notice] = api.posted("CSUPPORT")
        # A bystander is refused, privately; nothing changes.
        await _click(sender, notice, "sb_resolve", user="UBYSTAND1")
        await api.wait_for(lambda: api.ephemerals)
        await h.bot.wait_idle()
        assert texts.ESCALATION_RESOLVE_NOT_ALLOWED in json.dumps(api.ephemerals[-1].params)
        assert [r.status for r in await _escalations(sqlite_db)] == ["open"]
        # A member of the escalation channel (found on the second page) may.
        await _click(sender, notice, "sb_resolve", user="UAGENT03")
        await api.wait_for(lambda: "Resolved by" in json.dumps(notice.blocks))
        await h.bot.wait_idle()
    [row] = await _escalations(sqlite_db)
    assert row.status == "resolved" and row.resolved_by == "UAGENT03"
    shown = json.dumps(notice.blocks)
    assert "<@UAGENT03>" in shown and "<!date^" in shown and "sb_resolve" not in shown


async def test_the_asker_may_resolve_their_own_question(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    api.channel_members["CSUPPORT"] = []
    async with _asked(api, sqlite_db, sqlite_url, kb_uri) as (h, sender, answer):
        handoff = await _hand_off(h, api, sender, answer)
        await _click(sender, handoff, "sb_resolve", user=ASKER)
        await api.wait_for(lambda: texts.ESCALATION_RESOLVED in json.dumps(handoff.blocks))
        await h.bot.wait_idle()
    [row] = await _escalations(sqlite_db)
    assert row.status == "resolved" and row.resolved_by == ASKER
    assert f"<@{ASKER}>" in json.dumps(api.posted("CSUPPORT")[0].blocks)


async def test_each_workspace_has_its_own_escalation_target(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    teams = {"T0000AAA1": "UBOTAAA01", "T0000BBB2": "UBOTBBB02"}
    for n, (team, bot_user) in enumerate(teams.items()):
        api.grant_oauth(f"code-{n}", team_id=team, token=f"xoxb-{team}", bot_user_id=bot_user)
    settings = oauth_settings(
        sqlite_url,
        kb_uri,
        api,
        slack_escalation_target="CDEFAULT",
        slack_escalation_targets="T0000BBB2=CTEAMB",
    )
    h = await SlackHarness.start(api, settings, db=sqlite_db)
    try:
        await install_via_oauth(h.url, "code-0")
        await install_via_oauth(h.url, "code-1")
        async with h.sender() as sender:
            for team, bot_user in teams.items():
                channel = "C" + team[1:]
                event = app_mention(
                    text=f"<@{bot_user}> can I pay in bitcoin?", team=team, channel=channel
                )
                await sender.event(event)
                await api.wait_for(lambda c=channel: [m for m in api.posted(c) if not m.streaming])
                await h.bot.wait_idle()
                await _click(sender, api.posted(channel)[0], "sb_human", team=team)
                await api.wait_for(lambda c=channel: len(api.posted(c)) == 2)
                await h.bot.wait_idle()
    finally:
        await h.close()
    [default_notice] = api.posted("CDEFAULT")
    [team_b_notice] = api.posted("CTEAMB")
    assert default_notice.token == "xoxb-T0000AAA1" and "T0000AAA1" in default_notice.text
    assert team_b_notice.token == "xoxb-T0000BBB2" and "T0000BBB2" in team_b_notice.text


# ---- the team's notice through passing faults (inbox work of its own) -----------------------

NOTICE_POST_TRIES = 3  # per attempt: the first post and its two quick retries
FAILED = texts.ESCALATION_NOTICE_FAILED


async def _notice_settled(db: Database, api: FakeSlackAPI, timeout: float = 20.0) -> Escalation:
    """The open escalation once its notice is recorded and no notice work is left unfinished."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await _escalations(db)  # the click's work may not have opened it yet
        ref = rows[0].notice_ref if rows else None
        notices = [r for k, r in (await ledger(db, "slack")).items() if "notice" in k]
        settled = all(r.status != events.ANSWERING for r in notices)
        if ref and not ref.startswith("pending") and settled:
            return rows[0]
        assert time.monotonic() < deadline, (ref, [r.status for r in notices])
        await asyncio.sleep(0.05)


def _notice_posts(api: FakeSlackAPI) -> int:
    return len([c for c in api.calls_to("chat.postMessage") if c.params["channel"] == "CSUPPORT"])


@pytest.mark.parametrize("handled", [False, True], ids=["before-posting", "after-posting"])
async def test_a_notice_cut_off_by_a_passing_fault_is_posted_once_later(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, handled: bool
) -> None:
    """Slack failing past the client's retries used to lose the notice (logged, nobody told);
    a 500 after Slack had posted it made slack_sdk post it again. Now it is tried again, after
    looking for the one Slack may have made, and posted once."""
    async with _retrying(api, db, any_db_url, kb_uri) as (h, sender, answer):
        # The notice is the click's first post: every try of a whole attempt fails (or,
        # handled, the first post is made but answered with a 500).
        api.fail(
            "chat.postMessage",
            status=500,
            times=1 if handled else NOTICE_POST_TRIES,
            handled=handled,
            channel="CSUPPORT",
        )
        await _click(sender, answer, "sb_human")
        row = await _notice_settled(db, api)
        await api.wait_for(lambda: len(api.posted("C0000001")) == 2)
        await h.bot.wait_idle()
    [notice] = api.posted("CSUPPORT")
    assert row.notice_ref == f"CSUPPORT:{notice.ts}"
    assert _notice_posts(api) == (1 if handled else NOTICE_POST_TRIES + 1)
    assert texts.ESCALATION_OPENED in api.posted("C0000001")[1].text
    assert not [e for e in api.ephemerals if e.params.get("text") == FAILED]


async def test_a_notice_slack_keeps_refusing_is_told_privately_and_asking_again_tries_again(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """The asker used to believe a human was told; now they are told privately that the
    notice did not go out, and clicking again (Slack works again) posts it, once."""
    async with _retrying(api, db, any_db_url, kb_uri) as (h, sender, answer):
        as_shown = replace(answer, blocks=copy.deepcopy(answer.blocks))  # before the click
        tries = NOTICE_POST_TRIES * events.MAX_ATTEMPTS
        api.fail("chat.postMessage", status=500, times=tries, channel="CSUPPORT")
        await _click(sender, answer, "sb_human")
        told = await api.wait_for(
            lambda: [
                e for e in api.ephemerals if e.params.get("text") == texts.ESCALATION_NOTICE_FAILED
            ],
            timeout=20,
        )
        await h.bot.wait_idle()
        assert api.posted("CSUPPORT") == []
        [row] = await _escalations(db)
        assert row.status == "open" and row.notice_ref is None  # free for the next request
        await _click(sender, as_shown, "sb_human")  # Slack works again
        row = await _notice_settled(db, api)
        await h.bot.wait_idle()
    [note] = told
    assert note.params["user"] == ASKER and note.params["channel"] == "C0000001"
    [notice] = api.posted("CSUPPORT")
    assert row.notice_ref == f"CSUPPORT:{notice.ts}"
    assert len(api.posted("C0000001")) == 2  # the answer and one hand-off reply, no more
    notices = {k: r for k, r in (await ledger(db, "slack")).items() if "notice" in k}
    assert sorted(r.status for r in notices.values()) == [events.ANSWERED, events.FAILED]


async def test_a_double_click_during_a_passing_fault_still_gives_one_notice(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """Four clicks, the first notice cut off by a fault: one request holds the notice and posts
    it once when Slack is back; the other clicks neither post one nor tell of a failure."""
    async with _retrying(api, db, any_db_url, kb_uri) as (h, sender, answer):
        api.fail("chat.postMessage", status=500, times=NOTICE_POST_TRIES, channel="CSUPPORT")
        await asyncio.gather(*(_click(sender, answer, "sb_human") for _ in range(4)))
        row = await _notice_settled(db, api)
        await api.wait_for(lambda: len(api.ephemerals) == 3)
        await h.bot.wait_idle()
    [notice] = api.posted("CSUPPORT")
    assert row.notice_ref == f"CSUPPORT:{notice.ts}"
    assert len(api.posted("C0000001")) == 2
    assert all(texts.ESCALATION_ALREADY_OPEN in e.params["text"] for e in api.ephemerals)
    assert await escalations.get_escalation(db, escalation_id=row.id) is not None


async def test_the_bot_steps_back_in_a_thread_while_a_human_has_it(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """After a hand-off, the team's replies and the asker's un-mentioned follow-ups in the thread
    are for the humans: the bot answers only when mentioned, and follows the thread again once
    the hand-off is resolved."""
    api.channel_members["CSUPPORT"] = ["UAGENT01"]
    async with _asked(api, db, any_db_url, kb_uri) as (h, sender, answer):
        root = answer.thread_ts

        async def say(text: str, user: str) -> None:
            await sender.event(thread_reply(text=text, thread_ts=root, user=user))
            await h.bot.wait_idle()

        # Before the hand-off an un-mentioned follow-up is answered (the bot joined).
        await say("how do I reset my password?", ASKER)
        await api.wait_for(lambda: len(api.posted("C0000001")) == 2)
        await _click(sender, answer, "sb_human")
        await api.wait_for(lambda: len(api.posted("C0000001")) == 3 and api.posted("CSUPPORT"))
        await h.bot.wait_idle()
        await say("Hi, I'm on it: which plan are you on?", "UAGENT01")
        await say("the team plan, how do I reset my password again?", ASKER)
        await asyncio.sleep(0.3)
        await h.bot.wait_idle()
        assert len(api.posted("C0000001")) == 3  # nothing said over the human
        # A mention still reaches the bot.
        await say(f"<@{BOT}> how do I reset my password?", ASKER)
        await api.wait_for(lambda: len(api.posted("C0000001")) == 4)
        # Resolved: the bot follows the thread again.
        [row] = await _escalations(db)
        await escalations.resolve_escalation(db, escalation_id=row.id, resolved_by="UAGENT01")
        await say("and how do I reset my password on mobile?", ASKER)
        await api.wait_for(lambda: len(api.posted("C0000001")) == 5)
        await h.bot.wait_idle()


# ---- a bare claim left by a process of an older version ---------------------------------------


async def _bare_claim(db: Database, session_id: str, age: timedelta) -> int:
    """The escalation as an older version left it: opened ``age`` ago and its notice claimed
    with the bare marker that version replaced by the notice's place once posted."""
    conversation = convert.conversation_from_session_id(session_id)
    assert conversation is not None
    opened = await escalations.open_escalation(
        db,
        session_id=session_id,
        platform="slack",
        channel_id=conversation.channel_id,
        thread_id=conversation.thread_id,
        requested_by=ASKER,
    )
    async with db.session() as session:
        await session.execute(
            update(Escalation)
            .where(Escalation.id == opened.escalation.id)
            .values(notice_ref="pending", created_at=datetime.now(UTC) - age)
        )
    return opened.escalation.id


@pytest.mark.parametrize(
    "case", ["died-before-posting", "died-after-posting", "live"], ids=lambda c: c
)
async def test_an_older_versions_bare_notice_claim_is_taken_over_only_once_its_lease_ran_out(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str, case: str
) -> None:
    """An older version's process that died between claiming the notice and recording it left
    a bare "pending" that counted as posted: the team never heard. Once its lease has run out,
    asking for a human posts it through the notice work, once (not again if the dead process
    had posted it); a fresh claim (that process may be posting right now) is left alone."""
    age = timedelta(seconds=5) if case == "live" else timedelta(minutes=10)
    async with _asked(api, db, any_db_url, kb_uri, **INBOX_FAST) as (h, sender, answer):
        session_id = render.parse_button_value(_button(answer, "sb_human")["value"])["s"]
        escalation_id = await _bare_claim(db, session_id, age)
        if case == "died-after-posting":
            old = notice_messages(session_id, ASKER, SlackTarget(("CSUPPORT",)), escalation_id)
            client = AsyncWebClient(token=BOT_TOKEN, base_url=api.base_url)
            await client.chat_postMessage(
                channel="CSUPPORT", text=old[0].text, blocks=old[0].blocks
            )
        await asyncio.gather(*(_click(sender, answer, "sb_human") for _ in range(3)))
        await api.wait_for(lambda: len(api.ephemerals) == 3)
        if case != "live":
            row = await _notice_settled(db, api)
        await h.bot.wait_idle()
    notices = api.posted("CSUPPORT")
    if case == "live":
        assert notices == []
        [row] = await _escalations(db)
        assert row.notice_ref == "pending"
        return
    [notice] = notices
    assert row.notice_ref == f"CSUPPORT:{notice.ts}"
    assert _notice_posts(api) == 1  # after posting: the dead process's, found and recorded
    assert len(api.posted("C0000001")) == 1  # the answer; each click told privately only
    assert all(texts.ESCALATION_ALREADY_OPEN in e.params["text"] for e in api.ephemerals)


async def test_ask_talk_to_a_human_tells_the_team_and_promises_only_what_happens(
    api: FakeSlackAPI, db: Database, any_db_url: str, kb_uri: str
) -> None:
    """`/ask talk to a human` opened a hand-off in the asker's private /ask conversation, told
    them "someone from the team will reply here", and told the team nothing: nobody could see
    it, and nobody can reply to a private /ask answer. The team is noticed now, with what was
    asked, and the asker is told someone will message them directly."""
    question = "How do I configure the quantum flux capacitor?"
    async with _asked(api, db, any_db_url, kb_uri) as (h, sender, _answer):
        await sender.command("/ask", question, response_url=api.response_url("q"))
        await api.wait_for(lambda: api.responses.get("q"))
        await sender.command("/ask", "talk to a human", response_url=api.response_url("h"))
        await api.wait_for(lambda: api.responses.get("h") and api.posted("CSUPPORT"))
        await h.bot.wait_idle()
    [told] = api.responses["h"]
    assert told["text"].startswith(texts.ESCALATION_OPENED_DIRECT), told["text"]
    assert "reply here" not in told["text"]
    [notice] = api.posted("CSUPPORT")
    assert f"<@{ASKER}>" in notice.text and "/ask" in notice.text
    assert question in notice.text
    ask_rows = [r for r in await _escalations(db) if r.thread_id == f"ask-{ASKER}"]
    assert [r.status for r in ask_rows] == ["open"]
    # Nothing was posted where the question was asked: the hand-off is between the team and
    # the asker (the mention's own answer from the set-up is the channel's only message).
    assert len(api.posted("C0000001")) == 1


async def test_a_dm_hand_off_promises_a_direct_message_and_the_notice_says_so(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str
) -> None:
    """Nobody but the asker and the bot can post in a DM with the bot: "someone from the team
    will reply here" could not come true. The asker is told someone will message them, and the
    team's notice says what was asked and to message them directly."""
    question = "can I pay in bitcoin?"
    values = slack_settings(sqlite_url, kb_uri, api, slack_escalation_target="CSUPPORT")
    async with running_harness(api, values, db=sqlite_db) as h, h.sender() as sender:
        dm = app_mention(text=question, channel="D0000009", event_type="message", channel_type="im")
        await sender.event(dm)
        await api.wait_for(lambda: [m for m in api.posted("D0000009") if not m.streaming])
        await h.bot.wait_idle()
        [refusal] = api.posted("D0000009")
        await _click(sender, refusal, "sb_human")
        await api.wait_for(lambda: len(api.posted("D0000009")) == 2 and api.posted("CSUPPORT"))
        await h.bot.wait_idle()
    handoff = api.posted("D0000009")[1]
    assert texts.ESCALATION_OPENED_DIRECT in handoff.text and "reply here" not in handoff.text
    [notice] = api.posted("CSUPPORT")
    assert f"<@{ASKER}>" in notice.text and "message them directly" in notice.text
    assert question in notice.text
