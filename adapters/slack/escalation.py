"""Hand-offs on Slack: the core's escalation policy in Slack's wire format.

Order matters: the team's notice goes out first (it is what brings a human), then the reply in
the conversation, and only then the cosmetic edit of the clicked message, which may fail
without costing the notice. A target is Slack ids: a channel (``C…``/``G…``) gets the notice,
user groups (``S…``) and users (``U…``/``W…``) are mentioned, in that channel or, with no
channel, in the conversation itself. The team (who may resolve) is the members of those
channels and groups plus those users.

The notice in a channel is inbox work of its own (the core's, ``bot.escalation``), one ledger
row per request for a human, tried again after a passing fault of Slack as an answer is. Slack
has no idempotent post, so it is kept single here: the work claims the escalation's notice
(another request then does nothing), records that it is about to post before posting, and an
attempt that finds that record first looks in the channel for the notice an earlier attempt may
have posted without learning so (a response lost after Slack posted it). The post itself is not
retried inside slack_sdk (except for 429s, which post nothing): every retry goes through that
look (a few quick tries in each attempt, as slack_sdk would make). A request whose notice never
went out tells its asker privately; asking again tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import convert, render
from adapters.slack.delivery import Route, our_messages, post_messages, posting_once
from adapters.slack.failures import CALL_FAILURES, slack_error, transient_failure
from adapters.slack.thread_history import thread_reader
from bot import escalation, escalation_recovery, texts
from bot.config import Settings
from bot.escalation import EscalationPolicy
from bot.escalation_recovery import Record
from bot.inbox import SESSION_KEY, Work
from bot.messages import ConversationKey, Platform, Reply, ReplyKind
from bot.responder import Responder
from storage.db import Database
from storage.models import Escalation

log = logging.getLogger(__name__)

MAX_MEMBER_PAGES = 50  # conversations.members pages (of 1000) read to check one click
# The notice work's payload key: when (a Slack ts, our clock less CLOCK_MARGIN) an attempt began
# posting the notice. A later attempt looks for it in the channel from then on.
POSTING_KEY = "notice_posting_since"
# The click's payload key, recorded with the core's "announcing" record: when (as above) its
# attempt began posting the hand-off's message in the conversation.
ANNOUNCING_SINCE_KEY = "announcing_since"
CLOCK_MARGIN = 300.0  # seconds: our clock and Slack's may disagree a little
HISTORY_LIMIT = 200  # channel messages read looking for a notice an earlier attempt posted
POST_RETRY_DELAYS = (0.5, 1.0)  # seconds before posting again within one attempt (as slack_sdk)

# Hands notice work to the inbox (the adapter's: it knows the client and how to run work).
SubmitNotice = Callable[[AsyncWebClient, str, dict[str, Any]], Awaitable[None]]
RecordProgress = Callable[[Work, dict[str, Any]], Awaitable[Work]]


@dataclass(frozen=True, slots=True)
class SlackTarget:
    channels: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    @classmethod
    def parse(cls, ids: tuple[str, ...]) -> SlackTarget:
        return cls(
            channels=tuple(i for i in ids if i[:1] in ("C", "G")),
            groups=tuple(i for i in ids if i[:1] == "S"),
            users=tuple(i for i in ids if i[:1] in ("U", "W")),
        )

    @property
    def mentions(self) -> list[str]:
        return [render.group_mention(g) for g in self.groups] + [
            render.user_mention(u) for u in self.users
        ]


@dataclass(frozen=True, slots=True)
class Resolution:
    reply: Reply  # ephemeral: the clicker may not resolve; tell only them
    on_notice: bool  # the click was on the team's notice, which is already updated


class SlackEscalations:
    def __init__(self, db: Database, responder: Responder, policy: EscalationPolicy) -> None:
        self.db = db
        self.responder = responder
        self.policy = policy
        self.submit_notice: SubmitNotice | None = None  # set by the app once its inbox exists

    async def target(self, conversation: ConversationKey) -> SlackTarget:
        # A Slack thread's conversation names its channel, whose settings apply: no parent.
        channels = self.responder.channels
        return SlackTarget.parse(await self.policy.target_for(channels, conversation))

    # ---- "Talk to a human" -----------------------------------------------------------------

    async def request(
        self,
        client: AsyncWebClient,
        p: dict[str, Any],
        session_id: str,
        user: str,
        *,
        request_id: str,
        record: Record,
    ) -> Reply | None:
        """Open the hand-off and say so in the conversation. Returns a reply for the clicker
        alone when there is nothing new to tell the conversation (a double click, or a hand-off
        already open). ``request_id``: the click's inbox key (its notice work is named by it);
        ``record``: saves progress in the click's work, which ``p`` is the payload of, so an
        attempt after a crash finishes what an earlier one began (and posts nothing twice)."""
        conversation = convert.conversation_from_session_id(session_id)
        if conversation is None:
            log.warning("escalation button with a bad session id %r", session_id)
            return None
        request = await escalation_recovery.request_human(
            self.responder,
            p,
            conversation,
            user,
            record,
            in_place=not convert.is_private_conversation(conversation),
        )
        escalation_id, opened, reply = request.escalation_id, request.opened, request.reply
        target = await self.target(conversation)
        if escalation_id and not opened:  # already open: nothing new for the thread
            if target.channels:  # but a notice that never went out is tried again
                await self._send_notice(
                    client, p, target, conversation, user, escalation_id, request_id
                )
            return Reply(reply.text, ReplyKind.INFO, ephemeral=True, session_id=session_id)
        extra = [render.resolve_block(escalation_id)] if escalation_id else []
        ping = await self._announce(
            client, p, target, conversation, user, escalation_id, request_id
        )
        if request.resumed and not target.channels and not ping:
            # The attempt that died claimed the mentions for this click's message; still due.
            ping = target.mentions
        text = reply.text
        if ping:
            slots = " ".join(render.mention_slot(i) for i in range(len(ping)))
            text += "\n\n" + texts.slack_escalation_group_ping(slots)
        shown = Reply(text=text, kind=reply.kind, session_id=reply.session_id)
        route = Route(conversation.channel_id, conversation.thread_id)
        messages = render.render_reply(shown, extra_blocks=extra, mentions=ping)
        if not escalation_id:
            await post_messages(client, route, messages)
        elif not request.announced:
            await self._say_opened(client, p, route, messages, request, record)
        if p.get("has_message") and p.get("message_ts"):
            note = render.context_block(render.escape(texts.SLACK_ESCALATION_REQUESTED))
            blocks = render.replace_block(p.get("blocks") or [], render.HUMAN_BLOCK, note)
            await _cosmetic(
                client.chat_update(
                    channel=p["channel"],
                    ts=p["message_ts"],
                    text=p.get("text") or text,
                    blocks=blocks,
                )
            )
        return None

    async def _say_opened(
        self,
        client: AsyncWebClient,
        p: dict[str, Any],
        route: Route,
        messages: list[render.SlackMessage],
        request: escalation_recovery.HumanRequest,
        record: Record,
    ) -> None:
        """Post the hand-off's message in the conversation once. Slack has no idempotent post:
        the core records that the post is beginning (and since when) before it is made, and an
        attempt after a crash that finds that record looks in the conversation for the message
        (its "Mark resolved" button names the hand-off) before posting again."""
        escalation_id = request.escalation_id
        since = p.get(ANNOUNCING_SINCE_KEY)
        posted = None
        if request.announcing and since:
            posted = await _posted_offering_resolve(client, route, escalation_id, str(since))
        if posted is None:
            if not (request.announcing and since):
                since = f"{time.time() - CLOCK_MARGIN:.6f}"
                await escalation_recovery.record_announcing(
                    record, escalation_id, **{ANNOUNCING_SINCE_KEY: since}
                )
            await post_messages(client, route, messages)
        else:
            log.info("escalation %s: its message was posted before a crash", escalation_id)
        await escalation_recovery.record_announced(record, escalation_id)

    async def announce(
        self,
        client: AsyncWebClient,
        origin: dict[str, Any],
        conversation: ConversationKey,
        user: str,
        escalation_id: int,
        *,
        request_id: str,
    ) -> None:
        """The agent handed off by itself: tell the team (once), as for the button. ``origin``:
        the answered work's payload (its workspace); ``request_id``: the question's id."""
        target = await self.target(conversation)
        ping = await self._announce(
            client, origin, target, conversation, user, escalation_id, request_id
        )
        if ping:
            slots = " ".join(render.mention_slot(i) for i in range(len(ping)))
            note = Reply(texts.slack_escalation_group_ping(slots), ReplyKind.INFO)
            route = Route(conversation.channel_id, conversation.thread_id)
            await post_messages(client, route, render.render_reply(note, mentions=ping))

    async def _announce(
        self,
        client: AsyncWebClient,
        origin: dict[str, Any],
        target: SlackTarget,
        conversation: ConversationKey,
        user: str,
        escalation_id: int,
        request_id: str,
    ) -> list[str]:
        """Have the team's notice posted (returns mentions still to be made in the
        conversation, once per escalation, when the target has no channel of its own)."""
        if target.channels:
            await self._send_notice(
                client, origin, target, conversation, user, escalation_id, request_id
            )
            return []
        if not await escalation.claim_notice(self.db, escalation_id):
            return []
        return target.mentions

    async def _send_notice(
        self,
        client: AsyncWebClient,
        origin: dict[str, Any],
        target: SlackTarget,
        conversation: ConversationKey,
        user: str,
        escalation_id: int,
        request_id: str,
    ) -> None:
        """Hand the notice to the inbox as work of its own and wait for its first try."""
        if self.submit_notice is None or not await escalation.notice_wanted(self.db, escalation_id):
            return
        payload = escalation.notice_payload(
            escalation_id,
            target.channels[0],
            conversation,
            user,
            team_id=origin.get("team_id") or conversation.workspace_id,
            enterprise_id=origin.get("enterprise_id"),
        )
        await self.submit_notice(client, escalation.notice_key(escalation_id, request_id), payload)

    async def post_notice(self, client: AsyncWebClient, work: Work, record: RecordProgress) -> None:
        """The notice work: post the team's notice once. Raises when Slack fails (the inbox
        tries again after a passing fault)."""
        p = work.payload
        escalation_id = int(p["escalation_id"])
        row = await escalation.get(self.db, escalation_id)
        if row is None or escalation.notice_posted(row):
            return  # another request's notice went out meanwhile
        if not await escalation.claim_notice_for(self.db, escalation_id, work):
            return  # another request is posting it (and tells its asker if it cannot)
        channel = str(p["notice_channel"])
        since = p.get(POSTING_KEY)
        # An older version's process that died holding the claim may have posted it.
        look = since is not None or escalation.stale_claim(row)
        if since is None:  # the first try: say so before posting, for the tries after it
            began = row.created_at.timestamp() if look else time.time()
            since = f"{began - CLOCK_MARGIN:.6f}"
            await record(work, {**p, POSTING_KEY: since})
        if look and await self._found_posted(client, channel, escalation_id, str(since)):
            return
        session_id = str(p[SESSION_KEY])
        conversation = convert.conversation_from_session_id(session_id)
        target = await self.target(conversation) if conversation else SlackTarget()
        messages = notice_messages(
            session_id, str(p["requested_by"]), target, escalation_id, reason=row.reason
        )
        once = posting_once(client)
        for retry, delay in enumerate((0.0, *POST_RETRY_DELAYS)):
            if retry:  # as slack_sdk would retry, but only after looking for the notice
                await asyncio.sleep(delay)
                if await self._found_posted(client, channel, escalation_id, str(since)):
                    return
            try:
                posted = await post_messages(once, Route(channel, None), messages, retry_delays=())
            except CALL_FAILURES as exc:
                if transient_failure(exc) is None or retry == len(POST_RETRY_DELAYS):
                    raise
                continue
            await escalation.record_notice(self.db, escalation_id, channel, posted[0])
            return

    async def _found_posted(
        self, client: AsyncWebClient, channel: str, escalation_id: int, since: str
    ) -> bool:
        """An earlier try posted the notice and only its answer was lost: record it."""
        found = await _posted_offering_resolve(client, Route(channel, None), escalation_id, since)
        if found is not None:
            await escalation.record_notice(self.db, escalation_id, channel, found)
        return found is not None

    async def tell_notice_failed(
        self, client: AsyncWebClient, p: dict[str, Any], text: str
    ) -> None:
        """The notice never went out: the asker is told privately, where they asked."""
        conversation = convert.conversation_from_session_id(str(p.get(SESSION_KEY) or ""))
        await client.chat_postEphemeral(
            channel=str(p["asked_in"]),
            user=str(p["requested_by"]),
            thread_ts=conversation.thread_id if conversation else None,
            text=text,
        )

    # ---- "Mark resolved" -------------------------------------------------------------------

    async def resolve(
        self,
        client: AsyncWebClient,
        p: dict[str, Any],
        escalation_id: int,
        user: str,
        record: Record,
    ) -> Resolution:
        """Resolve if ``user`` may (an ephemeral reply when not), and update the team's notice.
        ``record``: saves progress in the click's work, as for a request."""
        row = await escalation.get(self.db, escalation_id)
        clicked = f"{p.get('channel')}:{p.get('message_ts')}"
        on_notice = row is not None and row.notice_ref == clicked
        outcome = await escalation_recovery.resolve(
            self.responder,
            self.policy,
            p,
            escalation_id,
            user,
            record=record,
            is_team_member=partial(self._in_team, client, user=user),
            read_thread=thread_reader(client),
            thread_link=partial(_permalink, client),
        )
        resolved = await escalation.get(self.db, escalation_id) if outcome.closed else None
        if resolved is not None:
            await self._mark_notice_resolved(client, resolved)
        return Resolution(outcome.reply, on_notice)

    async def _mark_notice_resolved(self, client: AsyncWebClient, row: Escalation) -> None:
        where = escalation.notice_location(row)
        conversation = convert.conversation_from_session_id(row.session_id)
        if where is None or conversation is None:
            return
        target = await self.target(conversation)
        messages = notice_messages(
            row.session_id, row.requested_by, target, int(row.id), row, reason=row.reason
        )
        await _cosmetic(
            client.chat_update(
                channel=where[0], ts=where[1], text=messages[0].text, blocks=messages[0].blocks
            )
        )

    async def _in_team(self, client: AsyncWebClient, row: Escalation, user: str) -> bool:
        conversation = convert.conversation_from_session_id(row.session_id)
        target = await self.target(conversation) if conversation else SlackTarget()
        if user in target.users:
            return True
        where = escalation.notice_location(row)
        channels = dict.fromkeys([*([where[0]] if where else []), *target.channels])
        try:
            for channel in channels:
                if user in await _channel_members(client, channel):
                    return True
            for group in target.groups:
                response = await client.usergroups_users_list(usergroup=group)
                if user in (response.get("users") or []):
                    return True
        except SlackApiError as exc:
            log.warning("cannot check the support team: %s", slack_error(exc))
        return False


def notice_messages(
    session_id: str,
    asker: str,
    target: SlackTarget,
    escalation_id: int,
    resolved: Escalation | None = None,
    *,
    reason: str | None = None,
) -> list[render.SlackMessage]:
    """The team's notice: who needs help, mentions of the team, and "Mark resolved" (or, once
    resolved, who resolved it and when). A hand-off asked for privately (with /ask, or in a DM
    with the bot) has no thread the team can read or reply in: its notice says what was asked
    (``reason``) and whom to message."""
    mentions = [render.user_mention(asker), *target.mentions]
    conversation = convert.conversation_from_session_id(session_id)
    if conversation is not None and convert.is_private_conversation(conversation):
        text = texts.escalation_notice_direct(render.mention_slot(0), reason)
    else:
        text = texts.escalation_notice(session_id, render.mention_slot(0), None)
    if len(mentions) > 1:
        text += " " + " ".join(render.mention_slot(i) for i in range(1, len(mentions)))
    extra = [render.resolve_block(escalation_id)]
    if resolved is not None and resolved.resolved_at is not None:
        when = resolved.resolved_at
        mentions += [
            render.user_mention(resolved.resolved_by or ""),
            render.date_mention(when.timestamp(), when.strftime("%Y-%m-%d %H:%M UTC")),
        ]
        note = texts.escalation_resolved_notice(
            render.mention_slot(len(mentions) - 2), render.mention_slot(len(mentions) - 1)
        )
        extra = [render.context_block(render.with_mentions(render.escape(note), mentions))]
    notice = Reply(text=text, kind=ReplyKind.INFO)
    return render.render_reply(notice, extra_blocks=extra, mentions=mentions)


async def _posted_offering_resolve(
    client: AsyncWebClient, route: Route, escalation_id: int, since: str
) -> str | None:
    """The ts of our message at ``route`` with the "Mark resolved" button of ``escalation_id``
    (the team's notice, or the hand-off's message in the conversation) posted after ``since``,
    if an earlier attempt made it. Raises on a passing fault; a refusal (no access to the
    history) is logged and answered None: a second message is better than none."""
    try:
        found = await our_messages(client, route, since, limit=HISTORY_LIMIT)
    except CALL_FAILURES as exc:
        if transient_failure(exc) is not None:
            raise
        reason = slack_error(exc) if isinstance(exc, SlackApiError) else exc
        log.warning("cannot look for an earlier post of escalation %s: %s", escalation_id, reason)
        return None
    return next((str(m["ts"]) for m in found if _resolves(m, escalation_id)), None)


def _resolves(message: dict[str, Any], escalation_id: int) -> bool:
    """Whether ``message`` carries the "Mark resolved" button of ``escalation_id``."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") != render.ACTION_RESOLVE:
                continue
            if render.parse_button_value(element.get("value")).get("e") == escalation_id:
                return True
    return False


async def _channel_members(client: AsyncWebClient, channel: str) -> set[str]:
    members: set[str] = set()
    cursor = None
    for _ in range(MAX_MEMBER_PAGES):
        response = await client.conversations_members(channel=channel, cursor=cursor, limit=1000)
        members.update(response.get("members") or [])
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return members


async def _cosmetic(call: Any) -> None:
    """Edits that only tidy up must never undo what already went out."""
    try:
        await call
    except Exception as exc:
        log.warning("cosmetic Slack update failed: %s", type(exc).__name__)


def policy_for(settings: Settings) -> EscalationPolicy:
    return EscalationPolicy.from_settings(settings, Platform.SLACK)


async def _permalink(client: AsyncWebClient, row: Escalation) -> str | None:
    """The hand-off thread's permalink, for the learned draft; None when Slack cannot say."""
    if not row.thread_id:
        return None
    try:
        found = await client.chat_getPermalink(channel=row.channel_id, message_ts=row.thread_id)
    except SlackApiError as exc:
        log.info("no permalink for escalation %s: %s", row.id, slack_error(exc))
        return None
    link = found.get("permalink")
    return str(link) if link else None
