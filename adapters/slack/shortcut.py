"""The "Ask supportbot" message shortcut: Slack's wire format around bot/ask_message.py.

Slack posts a ``message_action`` interaction to the events URL when someone picks the shortcut
in a message's menu. It is claimed and acked like every request here (the ledger middleware
hands it to :meth:`SlackShortcuts.intake`, which returns the ack), then answered through the
same inbox work as a mention of that message (kind ``message``): in the message's thread, under
its author's name, once. What the clicker must know (a bot's or an empty message, a message
already taken, a conversation the bot is not in) is told to them alone, through the
interaction's ``response_url``, as inbox work of its own (kind :data:`NOTE_KIND`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import convert, render
from adapters.slack.authorize import NotTakenNow
from adapters.slack.failures import DATABASE_FAILURES, database_failure, slack_error
from adapters.slack.manifest import ASK_SHORTCUT_ID
from bot import ask_message, texts
from bot.inbox import SESSION_KEY, Work
from bot.messages import Reply, ReplyKind, message_from_record, message_to_record

if TYPE_CHECKING:
    from adapters.slack.app import SlackBot

log = logging.getLogger(__name__)

NOTE_KIND = "shortcut_note"
# Payload keys of a question asked through the shortcut: who clicked (told privately of
# problems), and where that clicker's note goes (the note's own channel key, so that the inbox
# never posts a failed note's apology in public: see SlackBot._tell).
CLICKER_KEY = "clicker"
NOTE_CHANNEL_KEY = "clicker_channel"
NOTE_TEXT_KEY = "text"
# Slack's errors for a conversation the bot cannot post in (not a member, or cannot see it).
NOT_A_MEMBER = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


def is_ask(body: dict[str, Any]) -> bool:
    return body.get("type") == "message_action" and body.get("callback_id") == ASK_SHORTCUT_ID


def asked_by_shortcut(work: Work) -> bool:
    """Work that answers a message someone pointed the bot at with the shortcut."""
    return work.kind == "message" and CLICKER_KEY in work.payload


class SlackShortcuts:
    """Intake and delivery of the shortcut, for one :class:`~adapters.slack.app.SlackBot`."""

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot

    async def intake(self, body: dict[str, Any], context: Any) -> BoltResponse:
        """Claim the question (or the clicker's note) and ack. A claim the database cannot
        take now is not acked (a 500), so Slack sends the click again."""
        client: AsyncWebClient = context["client"]
        try:
            await self._claim(body, context, client)
        except DATABASE_FAILURES as exc:
            trigger = body.get("trigger_id")
            raise NotTakenNow(
                f"claiming shortcut {trigger} failed: {database_failure(exc)}"
            ) from exc
        return BoltResponse(status=200, body="")

    async def _claim(self, body: dict[str, Any], context: Any, client: AsyncWebClient) -> None:
        team_id = str((body.get("team") or {}).get("id") or context.get("team_id") or "")
        base = {"team_id": team_id, "enterprise_id": context.get("enterprise_id")}
        message = dict(body["message"])
        channel = str(body["channel"]["id"])
        clicker = str((body.get("user") or {}).get("id") or "")
        bot = convert.BotIdentity(context.get("bot_user_id"), context.get("bot_id"))
        note = {
            **base,
            "kind": NOTE_KIND,
            NOTE_CHANNEL_KEY: channel,
            "user": clicker,
            "response_url": body.get("response_url"),
        }
        note_key = f"note:{team_id}:{body.get('trigger_id') or body.get('action_ts')}"

        async def tell_clicker(text: str) -> None:
            payload = {**note, NOTE_TEXT_KEY: text}
            await self.bot.inbox.submit(note_key, payload, run=lambda w: self.send_note(w, client))

        refused = ask_message.refusal(
            from_bot=convert.is_from_bot(message, bot),
            text=convert.plain_text(str(message.get("text") or ""), bot_user_id=bot.user_id),
            attachments=len(message.get("files") or []),
        )
        if refused is not None:
            await tell_clicker(refused)
            return
        # The message as a mention of it (its current text; an edit is not a new question).
        event = {
            **{k: message[k] for k in ("user", "text", "ts", "thread_ts") if message.get(k)},
            "type": "app_mention",
            "channel": channel,
        }
        msg = convert.event_to_incoming(event, team_id=team_id, bot=bot)
        if msg is None:  # not reached: a person's message is always answerable as a mention
            await tell_clicker(texts.ASK_MESSAGE_UNREADABLE)
            return
        msg = ask_message.as_question(msg)
        conversation = msg.conversation
        payload = {
            **base,
            "kind": "message",
            "msg": message_to_record(msg, max_text=self.bot.settings.max_question_chars),
            SESSION_KEY: conversation.session_id,
            "channel": conversation.channel_id,
            "thread_ts": conversation.thread_id,
            "user": msg.author.id,
            CLICKER_KEY: clicker,
            NOTE_CHANNEL_KEY: channel,
            "response_url": body.get("response_url"),
            # Our replies in the thread older than the click are not this answer's (the
            # question may be an old message of a busy thread).
            ask_message.ANSWER_AFTER_KEY: body.get("action_ts") or message.get("ts"),
        }
        key = ask_message.claim_key(
            convert.message_key(team_id=team_id, channel=channel, ts=msg.id)
        )
        told = await ask_message.claim(
            self.bot.inbox,
            key,
            payload,
            request=str(body.get("trigger_id") or body.get("action_ts")),
            run=lambda work: self.bot.process(work, client),
        )
        if told is not None:
            log.info("shortcut on %s: already taken; telling the clicker", key)
            await tell_clicker(told)

    async def answer(
        self,
        work: Work,
        client: AsyncWebClient,
        answer_message: Callable[[Work, AsyncWebClient], Awaitable[None]],
    ) -> None:
        """Answer a shortcut's question with ``answer_message`` (the mention path), unless the
        bot cannot post in that conversation: then its clicker is told how to add it, and the
        question is left (nothing was run or stored for it)."""
        if not await self._member_of(client, str(work.payload["channel"])):
            await self._tell_not_a_member(work, client)
            return
        try:
            await answer_message(work, client)
        except SlackApiError as exc:
            if slack_error(exc) not in NOT_A_MEMBER:
                raise
            # Removed from the channel between the look and the post.
            await self._tell_not_a_member(work, client)
            return
        await self._tell_answered_privately(work, client)

    async def _tell_answered_privately(self, work: Work, client: AsyncWebClient) -> None:
        """Where answers are private (the core's rule) and the answer was for someone else
        (the message's author), the clicker would see nothing happen: they are told so. Best
        effort: the answer is out, and a second one must not follow a failed note."""
        p = work.payload
        msg = message_from_record(p["msg"])
        if p.get(CLICKER_KEY) == msg.author.id:
            return
        if not await self.bot.responder.answers_privately(msg):
            return
        try:
            await self._whisper(client, p, texts.ASK_MESSAGE_ANSWERING_PRIVATELY)
        except SlackApiError as exc:
            log.info("shortcut %s: could not tell the clicker (%s)", work.key, slack_error(exc))

    async def send_note(self, work: Work, client: AsyncWebClient) -> None:
        """The clicker's private note (the inbox's NOTE_KIND work)."""
        p = work.payload
        await self._whisper(client, p, str(p.get(NOTE_TEXT_KEY) or texts.ERROR_GENERIC))

    async def _member_of(self, client: AsyncWebClient, channel: str) -> bool:
        """False only when Slack says the bot cannot post there; any other failure (a scope
        this install lacks, a blip) leaves it to the post to find out."""
        try:
            info = await client.conversations_info(channel=channel)
        except SlackApiError as exc:
            if slack_error(exc) in NOT_A_MEMBER:
                return False
            log.info("conversations.info for a shortcut failed (%s); answering", slack_error(exc))
            return True
        found = info.get("channel") or {}
        return found.get("is_member") is not False or bool(found.get("is_im"))

    async def _tell_not_a_member(self, work: Work, client: AsyncWebClient) -> None:
        log.info(
            "shortcut %s: the bot is not in %s; telling the clicker",
            work.key,
            work.payload["channel"],
        )
        await self._whisper(client, work.payload, texts.SLACK_ASK_MESSAGE_NOT_IN_CHANNEL)

    async def _whisper(self, client: AsyncWebClient, p: dict[str, Any], text: str) -> None:
        where = {
            "response_url": p.get("response_url"),
            "channel": p.get(NOTE_CHANNEL_KEY),
            "user": p.get(CLICKER_KEY) or p.get("user"),
        }
        reply = render.render_reply(Reply(text, ReplyKind.INFO, ephemeral=True), buttons=False)
        await self.bot._send_ephemeral(client, where, reply)
