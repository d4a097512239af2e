"""A black-box fault round against the real processes, as an acceptance harness drives them:
calls Slack carried out before answering with an error, a process stopped mid-answer, double
clicks, a slow model and odd input. Counted at the fake platforms and in the database."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import texts
from storage import channel_settings, events
from storage.db import Database
from storage.models import Escalation, Feedback, LearnedAnswer
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, Turn, default_policy
from tests.fakes.slack_api import DEFAULT_BOT_USER, RESPONSE_URL, FakeMessage, FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import SIGNING_SECRET
from tests.fakes.slack_sender import SlackSender, app_mention, block_action, new_ts
from tests.inbox_support import ledger, model_runs
from tests.process_support import (
    DiscordProcess,
    create_schema,
    discord_process,
    events_url,
    free_port,
    kill,
    mention,
    serve,
    serving,
    slack_env,
    stored_turns,
)

__all__ = ["api", "kb_uri"]
pytestmark = pytest.mark.timeout(90)
ATTACHMENT = {
    "id": "1",
    "filename": "screenshot.png",
    "size": 1024,
    "url": "https://cdn.example/screenshot.png",
    "proxy_url": "https://cdn.example/screenshot.png",
    "content_type": "image/png",
}
STEPS = "".join(f"Step {i}: open Settings and check item {i}.\n" for i in range(12))


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def _buttons(blocks: list[dict]) -> list[str]:
    return [e.get("action_id", "") for b in blocks for e in b.get("elements") or []]


async def test_a_stream_slack_stopped_before_answering_500_keeps_its_answer(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # Slack stops the streamed answer, then its answer is lost (a 500). slack_sdk sent the
    # stop again, Slack refused it (message_not_in_streaming_state), and the bot took the
    # finished answer back and apologised instead. A stop that finds the stream stopped is done.
    env = slack_env(sqlite_url, kb_uri, model, api)
    api.fail("chat.stopStream", status=500, handled=True)
    async with serving(env, "--workers", "0"):
        ts = new_ts()
        await mention(env, ts)
        await api.wait_for(lambda: len(api.calls_to("chat.stopStream")) >= 2, timeout=30)
        await asyncio.sleep(2)
        [answer] = api.posted()
        assert answer.thread_ts == ts and not answer.streaming
        assert "Reset password" in answer.text and "sb_helpful" in _buttons(answer.blocks)
        assert not [m for m in api.messages.values() if m.deleted]
        [row] = (await ledger(sqlite_db, "slack")).values()
        assert (row.status, row.attempts) == (events.ANSWERED, 1)


async def test_a_response_url_that_fails_after_delivering_is_not_answered_twice(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # `/ask`'s answer goes to its response_url, which delivers and then answers 500 (a
    # gateway failing late). slack_sdk posted it again on each 5xx, and then the bot posted it
    # a fourth time with chat.postEphemeral. A response_url nobody listens at (nothing was
    # delivered) still falls back to chat.postEphemeral.
    env = slack_env(sqlite_url, kb_uri, model, api)
    api.fail(RESPONSE_URL, status=500, times=3, handled=True)
    refused = f"http://127.0.0.1:{free_port()}/response/closed"
    async with serving(env, "--workers", "0"):
        async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
            for url in (api.response_url("late"), refused):
                sent = await sender.command("/ask", "how do I reset my password?", response_url=url)
                assert sent.status == 200
        await api.wait_for(lambda: api.ephemerals, timeout=30)
        await asyncio.sleep(2)
        [delivered] = api.responses["late"]
        assert "Reset password" in delivered["text"]
        [fallback] = api.ephemerals
        assert "Reset password" in fallback.params["text"]
        rows = await ledger(sqlite_db, "slack")
        assert {r.status for r in rows.values()} == {events.ANSWERED}


async def test_sigterm_mid_stream_takes_the_half_answer_down_and_the_restart_answers_once(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # SIGTERM while the model is half-way through a slow answer (it would need 12 s more):
    # the process stops within 10 s, and the asker is not left with a half answer that looks
    # as if it were still being written until some process takes the work over. The next
    # process answers once; memory holds the question and its answer once.
    model.queue(Turn(content=STEPS, chunk_chars=20, stall_after=2, stall=12.0))
    env = slack_env(sqlite_url, kb_uri, model, api)
    proc = await serve(env, "--workers", "0")
    try:
        ts = new_ts()
        await mention(env, ts)
        await api.wait_for(lambda: api.posted(), timeout=30)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert time.monotonic() - started < 10
        assert api.posted() == []  # the half answer was taken down
        proc = await serve(env, "--workers", "0")
        await api.wait_for(
            lambda: api.posted() and not any(m.streaming for m in api.posted()), timeout=30
        )
        await asyncio.sleep(2)
        [answer] = api.posted()
        assert answer.thread_ts == ts and "Reset password" in answer.text
        [row] = (await ledger(sqlite_db, "slack")).values()
        assert row.status == events.ANSWERED
        assert [role for _, role, _ in await stored_turns(sqlite_db)] == ["user", "assistant"]
    finally:
        await kill(proc)


async def test_odd_discord_messages_each_get_one_short_reply(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, model: FakeOpenAI
) -> None:
    # `run discord`: a 4,000-character question that is mostly a code block, a mention with
    # only a file (told files cannot be read; it used to be greeted), a bare mention, a
    # question wrapped in zero-width and direction marks, and DMs of only such marks or
    # nothing: each gets one short reply, and the process keeps running.
    async with discord_process(sqlite_url, tmp_path, model) as running:
        world, proc = running.world, running.proc
        code = "```python\n" + "x = 1  # a line of code\n" * 160 + "```"
        marks = "\u200b\u202ehow do I reset\u200d my password?\u200f"
        mentions = {
            "long": await world.say(f"how do I reset my password?\n{code}"[:4000], mention=True),
            "file": await world.say("", mention=True, attachments=[ATTACHMENT]),
            "bare": await world.say("", mention=True),
            "marks": await world.say(marks, mention=True),
        }
        dms = {"marks only": await world.dm("\u200b\u200b\u200f"), "empty": await world.dm("")}
        expected = {
            "long": "Reset password",
            "file": texts.ATTACHMENT_ONLY,
            "bare": texts.EMPTY_QUESTION,
            "marks": "Reset password",
            "marks only": texts.UNREADABLE_INPUT,
            "empty": texts.EMPTY_QUESTION,
        }
        where = {k: m["id"] for k, m in mentions.items()}  # answered in a thread of its own
        where.update({k: m["channel_id"] for k, m in dms.items()})
        for name, channel in where.items():
            [reply] = await world.bot_messages(channel, timeout=20)
            assert expected[name] in reply["content"], name
        await asyncio.sleep(1.5)
        assert all(len(world.api.channel_messages(c)) == 1 for c in where.values())
        assert world.api.channel_messages(world.channel_id) == []
        rows = await ledger(sqlite_db, "discord")
        assert {(r.status, r.attempts) for r in rows.values()} == {(events.ANSWERED, 1)}
        assert proc.returncode is None


async def _count(db: Database, model: type) -> list:
    async with db.sessions() as session:
        return list(await session.scalars(select(model)))


async def _double_click(world: DiscordWorld, message: dict, custom_id: str) -> list[dict]:
    """The same member clicks the same button twice at once; waits for both to be answered
    (publicly or privately)."""
    clicks = await asyncio.gather(*(world.click(message, custom_id) for _ in range(2)))
    return [await world.answer_to(c["token"], timeout=20) for c in clicks]


def _to_team(world: DiscordWorld) -> dict[str, str]:
    """Hand-off notices go to the team's channel."""
    return {"SUPPORTBOT_DISCORD_ESCALATION_CHANNEL": world.no_threads_channel_id}


async def _answered_in_thread(world: DiscordWorld) -> tuple[str, dict]:
    """The asker mentions the bot with a question; its thread and the bot's answer there."""
    question = await world.say("how do I reset my password?", mention=True)
    [answer] = await world.bot_messages(question["id"], timeout=20)
    return question["id"], answer


def _human_button(answer: dict) -> str:
    return str(answer["components"][0]["components"][2]["custom_id"])


async def _handed_off(world: DiscordWorld) -> tuple[str, dict, dict]:
    """The asker's question answered in its thread, then "Talk to a human" clicked and the
    team's notice out: the thread, the answer and the click's reply ("Mark resolved")."""
    thread_id, answer = await _answered_in_thread(world)
    [opened] = await world.interaction_done(
        (await world.click(answer, _human_button(answer)))["token"]
    )
    team = world.no_threads_channel_id
    await world.api.wait_for(lambda: world.api.channel_messages(team), timeout=20)
    return thread_id, answer, opened


async def _restarted_after_sigkill(running: DiscordProcess) -> None:
    """SIGKILL the process while a request is stalled, let Discord answer again, restart."""
    await running.kill()
    running.world.api.unstall()
    await running.restart()


async def test_discord_double_clicks_act_once_and_answer_both_clicks(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, model: FakeOpenAI
) -> None:
    # `run discord`: the asker double-clicks "helpful", then "talk to a human", then "Mark
    # resolved". One vote, one hand-off with one notice to the team, one resolution; each
    # click is answered (deferred within Discord's 3 s, then filled in).

    async with discord_process(sqlite_url, tmp_path, model, _to_team) as running:
        world, proc = running.world, running.proc
        team = world.no_threads_channel_id
        _thread, answer = await _answered_in_thread(world)
        helpful, _unhelpful, human = answer["components"][0]["components"]
        thanks = await _double_click(world, answer, helpful["custom_id"])
        assert {t["content"] for t in thanks} == {texts.FEEDBACK_THANKS_HELPFUL}
        assert len(await _count(sqlite_db, Feedback)) == 1
        opened = await _double_click(world, answer, human["custom_id"])
        await world.api.wait_for(lambda: world.api.channel_messages(team), timeout=20)
        shown = sorted((o["content"], o["flags"] & 64) for o in opened)  # "already open": private
        assert shown == sorted([(texts.ESCALATION_OPENED, 0), (texts.ESCALATION_ALREADY_OPEN, 64)])
        resolve = {o["components"][0]["components"][0]["custom_id"] for o in opened}
        assert len(resolve) == 1
        done = await _double_click(world, opened[0], resolve.pop())
        assert sorted(d["content"] for d in done) == sorted(
            [texts.ESCALATION_RESOLVED, texts.ESCALATION_NOT_OPEN]
        )
        await asyncio.sleep(1.5)
        assert len(world.api.channel_messages(team)) == 1  # the notice
        [escalation] = await _count(sqlite_db, Escalation)
        assert escalation.status == "resolved"
        assert len(world.api.find("POST", r"/interactions/\d+/[^/]+/callback")) == 6
        assert proc.returncode is None


def _click_payload(message: FakeMessage, action_id: str, key: str, api: FakeSlackAPI) -> dict:
    """A click of ``message``'s ``action_id`` button by the asker, answered at ``key``."""
    element = next(
        e
        for b in message.blocks
        for e in b.get("elements") or []
        if e.get("action_id") == action_id
    )
    shown = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
    if message.thread_ts:
        shown["thread_ts"] = message.thread_ts
    return block_action(
        action_id=action_id,
        value=element["value"],
        message=shown,
        response_url=api.response_url(key),
    )


async def _double_click_slack(
    senders: list[SlackSender], api: FakeSlackAPI, message: FakeMessage, action_id: str
) -> None:
    """The same click twice at once, one to each replica; both acked."""
    clicks = [_click_payload(message, action_id, f"{action_id}{i}", api) for i in range(2)]
    sent = await asyncio.gather(*(s.interaction(c) for s, c in zip(senders, clicks, strict=True)))
    assert [r.status for r in sent] == [200, 200]


async def test_slack_double_clicks_on_two_replicas_act_once(
    api: FakeSlackAPI, pg_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # Two `serve` replicas on one PostgreSQL; each button of an answer is clicked twice at once,
    # one click to each replica: one vote, one hand-off (one message in the thread, one notice
    # to the team, the second click told privately it is open already), one resolution.
    db = await create_schema(pg_url)
    envs = [slack_env(pg_url, kb_uri, model, api) for _ in range(2)]
    for env in envs:
        env["SUPPORTBOT_SLACK_ESCALATION_CHANNEL"] = "CTEAM0001"
    procs = [await serve(env, "--workers", "0") for env in envs]
    senders = [SlackSender(events_url(env), SIGNING_SECRET) for env in envs]
    try:
        for sender in senders:
            await sender.__aenter__()
        ts = new_ts()
        await mention(envs[0], ts)
        await api.wait_for(lambda: [m for m in api.posted() if not m.streaming], timeout=30)
        [answer] = api.posted()
        await _double_click_slack(senders, api, answer, "sb_helpful")
        await api.wait_for(lambda: len(api.calls_to("chat.update")) >= 2, timeout=20)
        await _double_click_slack(senders, api, answer, "sb_human")
        await api.wait_for(lambda: api.posted("CTEAM0001") and api.all_responses(), timeout=20)
        await asyncio.sleep(1.5)
        [_answer, handoff] = api.posted("C0000001")
        assert handoff.thread_ts == ts and texts.ESCALATION_OPENED in handoff.text
        assert len(api.posted("CTEAM0001")) == 1
        assert [r["text"] for r in api.all_responses()] == [texts.ESCALATION_ALREADY_OPEN]
        await _double_click_slack(senders, api, handoff, "sb_resolve")
        await api.wait_for(lambda: len(api.all_responses()) >= 2, timeout=20)
        await asyncio.sleep(1.5)
        assert [r["text"] for r in api.all_responses()][1:] == [texts.ESCALATION_NOT_OPEN]
        assert texts.ESCALATION_RESOLVED in str(api.messages[("C0000001", handoff.ts)].blocks)
        assert len(await _count(db, Feedback)) == 1
        [escalation] = await _count(db, Escalation)
        assert escalation.status == "resolved"
        assert not api.ephemerals
    finally:
        for sender in senders:
            await sender.__aexit__(None, None, None)
        for proc in procs:
            await kill(proc)
        await db.dispose()


def _slow_answers(first_token: float, pause: float) -> Callable[[dict[str, Any]], Turn]:
    """The usual answers, the first piece after ``first_token`` seconds and a ``pause`` in the
    middle: each answer outlasts several 3-second leases."""

    def policy(request: dict[str, Any]) -> Turn:
        turn = default_policy(request)
        return replace(turn, delay=first_token, chunk_chars=16, stall_after=2, stall=pause)

    return policy


async def test_discord_slow_model_is_deferred_at_once_and_answered_once(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    # `run discord` with a model whose first token takes 4 s and which then pauses for 7 s:
    # `/ask` is deferred within Discord's 3 s, a DM shows typing meanwhile, and each is
    # answered once, by one model run, although every answer outlasts several leases.
    async with (
        FakeOpenAI(policy=_slow_answers(4.0, 7.0)) as model,
        discord_process(sqlite_url, tmp_path, model) as running,
    ):
        world = running.world
        asked = time.monotonic()
        command = await world.slash("ask", {"question": "how do I reset my password?"})
        dm = await world.dm("where can I download past invoices?")
        callback = rf"/interactions/\d+/{command['token']}/callback"
        await world.api.wait_for(lambda: world.api.find("POST", callback), timeout=3)
        assert world.api.find("POST", callback)[0].at - asked < 3
        typing = rf"/channels/{dm['channel_id']}/typing"
        await world.api.wait_for(lambda: world.api.find("POST", typing), timeout=5)
        [answer] = await world.interaction_done(command["token"], timeout=40)
        [direct] = await world.bot_messages(dm["channel_id"], timeout=20)
        await asyncio.sleep(3.5)  # past a lease: a second answer would show now
        assert "Reset password" in answer["content"]
        assert "invoices" in direct["content"].lower()
        assert len(world.api.interaction_messages(command["token"])) == 1
        assert len(world.api.channel_messages(dm["channel_id"])) == 1
        assert len(model_runs(model)) == 2
        rows = await ledger(sqlite_db, "discord")
        assert {(r.status, r.attempts) for r in rows.values()} == {(events.ANSWERED, 1)}


async def test_odd_slack_messages_each_get_one_short_reply(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # `serve`: a bare mention, a DM that is only a file (it used to be greeted as if nothing
    # had been said), a DM of only zero-width and direction marks, and a question wrapped in
    # such marks: one short reply each, nothing crashes. The bare mention's hint is for the
    # one who mentioned: it comes privately, in the thread.
    env = slack_env(sqlite_url, kb_uri, model, api)
    async with serving(env, "--workers", "0") as proc:
        file_only = {"subtype": "file_share", "files": [{"id": "F1", "name": "screenshot.png"}]}
        bodies = {
            "bare": app_mention(text=f"<@{DEFAULT_BOT_USER}>"),
            "file": app_mention(text="", channel="D0000011", event_type="message",
                                channel_type="im", extra=file_only),
            "marks only": app_mention(text="\u200b\u200f\u202e", channel="D0000012",
                                      event_type="message", channel_type="im"),
            "marks": app_mention(text=f"<@{DEFAULT_BOT_USER}> \u200bhow do I reset\u200d my "
                                 "password?\u202e\u200f", channel="C0000013"),
        }  # fmt: skip
        async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
            for body in bodies.values():
                assert (await sender.event(body)).status == 200
        channels = {"file": "D0000011", "marks only": "D0000012", "marks": "C0000013"}

        def hints() -> list[str]:
            return [str(call.params.get("text", "")) for call in api.ephemerals]

        await api.wait_for(
            lambda: (
                all(api.posted(c) for c in channels.values())
                and not any(m.streaming for m in api.posted())
                and hints()
            ),
            timeout=20,
        )
        await asyncio.sleep(1.5)
        assert hints() == [texts.EMPTY_QUESTION] and not api.posted("C0000001")
        expected = {
            "file": texts.ATTACHMENT_ONLY,
            "marks only": texts.UNREADABLE_INPUT,
            "marks": "Reset password",
        }
        for name, channel in channels.items():
            [reply] = api.posted(channel)
            assert expected[name] in reply.text, name
        rows = await ledger(sqlite_db, "slack")
        assert {(r.status, r.attempts) for r in rows.values()} == {(events.ANSWERED, 1)}
        assert len(rows) == 4 and proc.returncode is None


async def _answered_mention(env: dict[str, str], api: FakeSlackAPI) -> tuple[str, FakeMessage]:
    """A mention to the `serve` process of ``env``, once its answer is finished: (the
    question's ts, the answer)."""
    ts = new_ts()
    await mention(env, ts)
    await api.wait_for(lambda: [m for m in api.posted() if not m.streaming], timeout=30)
    [answer] = api.posted()
    return ts, answer


# (escalation target, the channel whose post is cut short, whether Slack made that post)
HAND_OFF_CUTS = {
    "notice-unsent": ("CTEAM0001", "CTEAM0001", False),
    "notice-sent": ("CTEAM0001", "CTEAM0001", True),
    "mention-unsent": ("S0TEAM0001", "C0000001", False),
    # The hand-off's message in the thread was posted, its record lost with the process: it
    # used to be posted a second time after the restart.
    "message-sent": ("CTEAM0001", "C0000001", True),
    "mention-sent": ("S0TEAM0001", "C0000001", True),
}


@pytest.mark.parametrize("cut", HAND_OFF_CUTS.values(), ids=HAND_OFF_CUTS.keys())
async def test_a_hand_off_cut_short_by_sigkill_is_said_in_the_thread_after_restart(
    api: FakeSlackAPI,
    sqlite_db: Database,
    sqlite_url: str,
    kb_uri: str,
    model: FakeOpenAI,
    cut: tuple[str, str, bool],
) -> None:
    # "Talk to a human" is clicked and the process is SIGKILLed while Slack has not answered
    # the team's notice (which it did or did not post), or, for a team mentioned in the
    # conversation, the hand-off message. The restarted process took the click over, found
    # the hand-off the killed attempt had opened "already open", and told the asker so
    # privately: the thread never said a human was asked nor offered "Mark resolved", and a
    # team to mention was never mentioned. Now the click carries on as the one that opened
    # it: one notice (or mention), one message.
    target, stalled, posted = cut
    env = slack_env(sqlite_url, kb_uri, model, api)
    env["SUPPORTBOT_SLACK_ESCALATION_CHANNEL"] = target
    proc = await serve(env, "--workers", "0")
    try:
        ts, answer = await _answered_mention(env, api)
        api.stall("chat.postMessage", handled=posted, channel=stalled)
        async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
            click = _click_payload(answer, "sb_human", "clicker", api)
            assert (await sender.interaction(click)).status == 200
        await api.wait_for(
            lambda: (
                api.calls_to("chat.postMessage")
                and api.calls_to("chat.postMessage")[-1].params.get("channel") == stalled
            ),
            timeout=20,
        )
        await kill(proc)
        api.unstall("chat.postMessage")
        proc = await serve(env, "--workers", "0")
        await api.wait_for(lambda: len(api.posted("C0000001")) == 2, timeout=30)
        await asyncio.sleep(3.5)  # past a lease: a late duplicate would show now
        assert len(api.posted("CTEAM0001")) == (target == "CTEAM0001")
        [_answer, handoff] = api.posted("C0000001")
        assert handoff.thread_ts == ts and texts.ESCALATION_OPENED in handoff.text
        assert "sb_resolve" in _buttons(handoff.blocks)
        if target.startswith("S"):
            assert f"<!subteam^{target}>" in handoff.text
        assert not api.all_responses() and not api.ephemerals
        [escalation] = await _count(sqlite_db, Escalation)
        assert escalation.status == "open"
        rows = await ledger(sqlite_db, "slack")
        assert {r.status for r in rows.values()} == {events.ANSWERED}
    finally:
        await kill(proc)


async def test_a_resolve_cut_short_by_sigkill_is_finished_after_restart(
    api: FakeSlackAPI, sqlite_db: Database, sqlite_url: str, kb_uri: str, model: FakeOpenAI
) -> None:
    # The asker clicks "Mark resolved" and the process is SIGKILLed while it reads the thread
    # for the team's answer (the hand-off is resolved in the database by then). The restarted
    # process took the click over, found the hand-off "not open" and told the asker so: no
    # draft was ever learned from the team's answer, and the thread kept its button.
    env = slack_env(sqlite_url, kb_uri, model, api)
    env["SUPPORTBOT_SLACK_ESCALATION_CHANNEL"] = "CTEAM0001"
    proc = await serve(env, "--workers", "0")
    try:
        ts, answer = await _answered_mention(env, api)
        async with SlackSender(events_url(env), SIGNING_SECRET) as sender:
            click = _click_payload(answer, "sb_human", "human", api)
            assert (await sender.interaction(click)).status == 200
            await api.wait_for(lambda: len(api.posted("C0000001")) == 2, timeout=20)
            handoff = api.posted("C0000001")[1]
            api.add_user_message(
                "C0000001", "Use the reset link from the login page.", user="UTEAM0001",
                thread_ts=ts,
            )  # fmt: skip
            api.stall("conversations.replies")
            click = _click_payload(handoff, "sb_resolve", "resolver", api)
            assert (await sender.interaction(click)).status == 200
        await api.wait_for(lambda: api.calls_to("conversations.replies"), timeout=20)
        await kill(proc)
        api.unstall("conversations.replies")
        proc = await serve(env, "--workers", "0")
        await api.wait_for(
            lambda: texts.ESCALATION_RESOLVED in str(api.messages[("C0000001", handoff.ts)].blocks),
            timeout=30,
        )
        await asyncio.sleep(1.5)
        assert not [r for r in api.all_responses() if r["text"] == texts.ESCALATION_NOT_OPEN]
        [escalation] = await _count(sqlite_db, Escalation)
        assert escalation.status == "resolved"
        [draft] = await _count(sqlite_db, LearnedAnswer)
        assert "reset link" in draft.answer
    finally:
        await kill(proc)


# The Discord request a "Talk to a human" click is cut short in: (method, path) of the team's
# notice or of the click's reply, given the team's channel.
DISCORD_HAND_OFF_CUTS = {
    "notice-unsent": ("POST", "/channels/{team}/messages"),
    "reply-unsent": ("PATCH", r"/webhooks/\d+/[^/]+/messages/@original"),
}


@pytest.mark.parametrize("cut", DISCORD_HAND_OFF_CUTS.values(), ids=DISCORD_HAND_OFF_CUTS.keys())
async def test_a_discord_hand_off_cut_short_by_sigkill_is_said_after_restart(
    sqlite_db: Database,
    sqlite_url: str,
    tmp_path: Path,
    model: FakeOpenAI,
    cut: tuple[str, str],
) -> None:
    # `run discord`: "Talk to a human" is clicked and the process is SIGKILLed while Discord
    # has not answered the team's notice or the click's reply (the hand-off is open by then).
    # The restarted process told the click to try again, and a second click found the hand-off
    # "already open": the conversation never said a human was asked. Now the click carries on
    # as the one that opened it: one notice, the reply with "Mark resolved".
    async with discord_process(sqlite_url, tmp_path, model, _to_team) as running:
        world = running.world
        team = world.no_threads_channel_id
        method, path = cut
        _thread, answer = await _answered_in_thread(world)
        world.api.stall(method, path.format(team=team))
        click = await world.click(answer, _human_button(answer))
        await world.api.wait_for(lambda: world.api.find(method, path.format(team=team)), timeout=20)
        await _restarted_after_sigkill(running)
        [done] = await world.interaction_done(click["token"], timeout=30)
        assert done["content"] == texts.ESCALATION_OPENED
        [resolve] = done["components"][0]["components"]
        assert resolve["custom_id"].startswith("sb:resolve:")
        await world.api.wait_for(lambda: world.api.channel_messages(team), timeout=20)
        await asyncio.sleep(1.5)
        assert len(world.api.interaction_messages(click["token"])) == 1
        assert len(world.api.channel_messages(team)) == 1
        [escalation] = await _count(sqlite_db, Escalation)
        assert escalation.status == "open"


# The Discord request a click finding the hand-off open is cut short in: the deletion of its
# public "thinking" response, or the private reply that takes its place.
DISCORD_FOUND_OPEN_CUTS = {
    "response-not-deleted": ("DELETE", r"/webhooks/\d+/[^/]+/messages/@original"),
    "private-reply-unsent": ("POST", r"/webhooks/\d+/[^/]+"),
}


@pytest.mark.parametrize(
    "cut", DISCORD_FOUND_OPEN_CUTS.values(), ids=DISCORD_FOUND_OPEN_CUTS.keys()
)
async def test_a_discord_click_finding_the_hand_off_open_is_answered_once_after_sigkill(
    sqlite_db: Database,
    sqlite_url: str,
    tmp_path: Path,
    model: FakeOpenAI,
    cut: tuple[str, str],
) -> None:
    # `run discord`: Bob clicks "Talk to a human" under an answer whose hand-off Alice opened,
    # and the process is SIGKILLed while Discord has not answered the deletion of the click's
    # public "thinking" response or the private reply that replaces it. The restarted process
    # finishes it as the click that found the hand-off open: "already open", once, to Bob
    # alone; the thread shows nothing new; still one hand-off, one notice.
    async with discord_process(sqlite_url, tmp_path, model, _to_team) as running:
        world = running.world
        team = world.no_threads_channel_id
        method, path = cut
        _thread, answer, _opened = await _handed_off(world)
        seen = world.api.visible_messages(answer["channel_id"])
        calls = len(world.api.find(method, path))
        world.api.stall(method, path)
        click = await world.click(answer, _human_button(answer), author=world.bob)
        await world.api.wait_for(lambda: len(world.api.find(method, path)) > calls, timeout=20)
        await _restarted_after_sigkill(running)
        told = await world.private_answer(click["token"], timeout=30)
        assert told["content"] == texts.ESCALATION_ALREADY_OPEN
        await asyncio.sleep(1.5)
        assert world.api.interaction_messages(click["token"]) == [told]
        assert world.api.visible_messages(answer["channel_id"]) == seen
        assert len(world.api.channel_messages(team)) == 1
        [escalation] = await _count(sqlite_db, Escalation)
        assert escalation.status == "open" and escalation.requested_by == world.alice["id"]


async def test_a_discord_resolve_cut_short_by_sigkill_is_finished_after_restart(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, model: FakeOpenAI
) -> None:
    # `run discord`: the asker clicks "Mark resolved" and the process is SIGKILLed while it
    # reads the thread for the team's answer (the hand-off is closed by then). The restarted
    # process told the click to try again, and a second click found the hand-off "not open":
    # no draft was ever learned from the team's answer.
    async with discord_process(sqlite_url, tmp_path, model, _to_team) as running:
        world = running.world
        team = world.no_threads_channel_id
        thread_id, _answer, opened = await _handed_off(world)
        await world.say("Use the reset link from the login page.",
                        channel_id=thread_id, author=world.bob)  # fmt: skip
        history = rf"/channels/{thread_id}/messages"
        world.api.stall("GET", history)
        resolve = opened["components"][0]["components"][0]["custom_id"]
        click = await world.click(opened, resolve)
        await world.api.wait_for(lambda: world.api.find("GET", history), timeout=20)
        await _restarted_after_sigkill(running)
        [done] = await world.interaction_done(click["token"], timeout=30)
        assert done["content"] == texts.ESCALATION_RESOLVED
        await asyncio.sleep(1.5)
        assert len(world.api.interaction_messages(click["token"])) == 1
        [notice] = world.api.channel_messages(team)
        assert notice["content"].count("Resolved by") == 1
        [escalation] = await _count(sqlite_db, Escalation)
        assert escalation.status == "resolved"
        assert escalation.resolved_by == world.alice["id"]
        [draft] = await _count(sqlite_db, LearnedAnswer)
        assert draft.answer == "Use the reset link from the login page."
        # A click after the resolve is done is told so, and learns nothing more.
        [again] = await world.interaction_done((await world.click(opened, resolve))["token"])
        assert again["content"] == texts.ESCALATION_NOT_OPEN
        assert len(await _count(sqlite_db, LearnedAnswer)) == 1


async def test_a_private_discord_answer_cut_short_by_sigkill_is_sent_once_after_restart(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, model: FakeOpenAI
) -> None:
    # `run discord` in a channel set to ephemeral: a mention's answer went to the asker's DM,
    # and the process was SIGKILLed while it posted the channel's one line. The restarted
    # process answered again and sent the whole answer to the DM a second time.
    async with discord_process(sqlite_url, tmp_path, model) as running:
        world = running.world
        await channel_settings.upsert_setting(
            sqlite_db, platform="discord", workspace_id=world.guild_id,
            channel_id=world.channel_id, ephemeral=True,
        )  # fmt: skip
        line = rf"/channels/{world.channel_id}/messages"
        world.api.stall("POST", line)
        await world.say("How do I reset my password?", mention=True)
        alice = world.alice["id"]
        await world.api.wait_for(lambda: world.api.find("POST", line), timeout=30)
        assert len(world.api.dm_messages(alice)) == 1
        await _restarted_after_sigkill(running)
        await world.api.wait_for(lambda: world.api.channel_messages(world.channel_id), timeout=30)
        await asyncio.sleep(1.5)  # a late duplicate would show now
    [answer] = world.api.dm_messages(alice)
    assert "Reset password" in answer["content"]
    [note] = world.api.channel_messages(world.channel_id)
    assert note["content"] == texts.DISCORD_ANSWER_SENT_PRIVATELY
