"""The Slack bot: one slack_bolt ``AsyncApp`` wired to the Responder, for HTTP and Socket Mode.

Flow of a request (docs/architecture.md, "Flow of one message"): bolt verifies the signature and
authorizes; our middleware decides whether the request is work for us, hands it to the core's
:class:`~bot.inbox.Inbox` (which claims it) and only then acks (it returns the HTTP 200 / Socket
Mode ack itself; the answer runs in the background). A claim that fails (database down) is a 500,
so Slack retries instead of the question being lost. Leases, recovery and exactly-once are the
inbox's job; this module translates requests into payloads and delivers answers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import convert, escalation, render
from adapters.slack.admins import with_admin_flag
from adapters.slack.authorize import (
    InstallationAuthorize,
    NotTakenNow,
    StoreUnavailable,
    TokenAuthorize,
    find_bot,
)
from adapters.slack.delivery import (
    AnswerWriter,
    ChannelThrottle,
    Route,
    post_messages,
    respond,
)
from adapters.slack.escalation import SlackEscalations
from adapters.slack.failures import (
    CALL_FAILURES,
    DATABASE_FAILURES,
    database_failure,
    slack_error,
    transient_failure,
)
from adapters.slack.manifest import BOT_SCOPES, INSTALL_PATH, REDIRECT_PATH
from adapters.slack.oauth_state import PruningOAuthStateStore
from adapters.slack.shortcut import NOTE_KIND as SHORTCUT_NOTE
from adapters.slack.shortcut import SlackShortcuts, asked_by_shortcut, is_ask
from bot import escalation as core_escalation
from bot import escalation_recovery, texts
from bot.ask_message import ANSWER_AFTER_KEY
from bot.config import Settings
from bot.deletion import deletion_payload, run_deletion
from bot.escalation import NOTICE_KIND
from bot.inbox import DELETION_KIND, SESSION_KEY, Inbox, TryLater, Undeliverable, Work
from bot.looplag import shed_progress
from bot.messages import (
    IncomingMessage,
    Reply,
    ReplyKind,
    Slow,
    message_from_record,
    message_to_record,
)
from bot.runtime import Runtime
from storage import memories
from storage.db import unreachable

log = logging.getLogger(__name__)

PLATFORM = "slack"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
ACTION_PATTERN = re.compile(r"^sb_")
# The payload key recording every message of an answer being posted, in order (see
# _answer_message); rows written before that recorded only the first, under LEGACY_PARTIAL_KEY.
PARTIAL_KEY = "posted"
LEGACY_PARTIAL_KEY = "posted_ts"
# In a slash command's work: its response_url shows the slow answer's private note, which the
# answer (or the apology) of any later attempt must replace, not leave above itself.
NOTED_KEY = "noted"
# Slack's clock (a message's ts) against the database's (received_at): rows received this long
# before the question still count as the conversation's other work.
CLOCK_SKEW = timedelta(minutes=5)
# Ledger payloads keep at most this much of a message's blocks (buttons need only their ids).
MAX_STORED_BLOCKS = 60


def retry_handlers() -> list[Any]:
    """Honour Retry-After on 429, retry 5xx and dropped connections (slack_sdk's handlers)."""
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


def make_web_client(settings: Settings, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url or DEFAULT_SLACK_API_URL,
        timeout=15,
        retry_handlers=retry_handlers(),
    )


class _ChosenArguments(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and then warns that it ignores
    it, because we hand it a client and an ``authorize`` (which use that very token): two
    WARNING lines at every start that told operators their token was "unused" / "ignored"."""

    def filter(self, record: logging.LogRecord) -> bool:
        from slack_bolt.logger import messages

        return record.getMessage() not in {
            messages.warning_client_prioritized_and_token_skipped(),
            messages.warning_token_skipped(),
        }


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("adapters.slack.bolt")
    if not any(isinstance(f, _ChosenArguments) for f in logger.filters):
        logger.addFilter(_ChosenArguments())
    return logger


def oauth_enabled(settings: Settings) -> bool:
    return bool(settings.slack_client_id and settings.slack_client_secret)


class SlackBot:
    """Owns the bolt app, its Web API client and the inbox its requests go through."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        socket_mode: bool = False,
        update_interval: float = 1.0,
        streaming: bool = True,
        max_concurrent_answers: int = 32,
        answer_inline: bool = True,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.db = runtime.db
        self.responder = runtime.responder
        self.streaming = streaming
        self.throttle = ChannelThrottle(update_interval)
        self.client = make_web_client(self.settings)
        self.escalations = SlackEscalations(
            self.db, self.responder, escalation.policy_for(self.settings)
        )
        self.installation_store: AsyncSQLAlchemyInstallationStore | None = None
        # answer_inline=False: this process only acks and queues; worker processes
        # (`supportbot run slack --worker`) answer. Keeps acks fast under load.
        self.inbox = Inbox.from_settings(
            self.db,
            self.settings,
            PLATFORM,
            self._deliver,
            tell=self._tell,
            retract=self._retract,
            max_concurrent=max_concurrent_answers,
            answer_inline=answer_inline,
        )
        self.escalations.submit_notice = self._submit_notice
        self.shortcuts = SlackShortcuts(self)
        self._session: aiohttp.ClientSession | None = None
        self.app = self._build_app(socket_mode)
        self._register()

    # ---- construction ----------------------------------------------------------------------

    def _build_app(self, socket_mode: bool) -> AsyncApp:
        settings = self.settings
        common: dict[str, Any] = {
            "name": "supportbot",
            "logger": _bolt_logger(),
            "process_before_response": False,
            "request_verification_enabled": not socket_mode,
            "signing_secret": settings.secret("slack_signing_secret") if not socket_mode else "",
        }
        if oauth_enabled(settings):
            client_id = str(settings.slack_client_id)
            self.installation_store = AsyncSQLAlchemyInstallationStore(
                client_id=client_id, engine=self.db.engine
            )
            oauth = AsyncOAuthSettings(
                client_id=client_id,
                client_secret=settings.secret("slack_client_secret"),
                scopes=list(BOT_SCOPES),
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                installation_store=self.installation_store,
                installation_store_bot_only=True,
                state_store=PruningOAuthStateStore(engine=self.db.engine),
            )
            self.client.token = None
            authorize = InstallationAuthorize(self.installation_store)
            return AsyncApp(client=self.client, oauth_settings=oauth, authorize=authorize, **common)
        token = settings.secret("slack_bot_token")
        self.client.token = token
        authorize = TokenAuthorize(token, settings.slack_api_url or DEFAULT_SLACK_API_URL)
        return AsyncApp(client=self.client, authorize=authorize, **common)

    def _register(self) -> None:
        # Our work (mentions, messages, the Assistant panel, /ask /forget /help, our buttons) is
        # acked by the ledger middleware itself right after the claim; requests it does not
        # recognise continue to bolt's listeners (none: bolt answers them as unhandled).
        self.app.use(self._ledger_middleware)
        self.app.error(self._on_error)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, *, recover: bool = True, poll: float | None = None) -> None:
        """Share one HTTP connection pool and start finishing work that crashed processes left
        (an HTTP process that queues for workers leaves that to them)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self.client.session = self._session
        if recover and self.inbox.answer_inline:
            self.inbox.start(poll=poll)

    async def aclose(self, timeout: float = 8.0) -> None:
        """Stop taking work, give answers in flight ``timeout`` seconds, then hand the rest back
        to the ledger for the next process."""
        await self.inbox.aclose(timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for the answers in flight (tests and benchmarks)."""
        await self.inbox.wait_idle(timeout)

    # ---- intake ------------------------------------------------------------------------------

    async def _ledger_middleware(self, body: dict[str, Any], context: Any, next: Any) -> Any:
        if is_ask(body):  # the "Ask supportbot" message shortcut (adapters/slack/shortcut.py)
            return await self.shortcuts.intake(body, context)
        work = await self._classify(body, context)
        if work is None:
            if body.get("type") == "event_callback":
                # Not for us (another bot's message, an unjoined thread, an unknown event):
                # ack it so Slack does not retry, and do nothing.
                event_type = (body.get("event") or {}).get("type")
                log.debug("ignoring %s event %s", event_type, body.get("event_id"))
                return BoltResponse(status=200, body="")
            return await next()
        client = context["client"]
        try:
            claimed = await self.inbox.submit(
                work.key, work.payload, run=lambda claimed: self.process(claimed, client)
            )
        except DATABASE_FAILURES as exc:
            raise NotTakenNow(f"claiming {work.key} failed: {database_failure(exc)}") from exc
        if not claimed:
            log.info("duplicate delivery of %s absorbed by the ledger", work.key)
        # The ack: an empty 200 (for a slash command, "no visible reply yet").
        return BoltResponse(status=200, body="")

    async def _classify(self, body: dict[str, Any], context: Any) -> Work | None:
        """What this request asks of us, as ledger-ready work (None: nothing)."""
        team_id = str(body.get("team_id") or context.get("team_id") or "")
        base = {"team_id": team_id, "enterprise_id": context.get("enterprise_id")}
        if body.get("type") == "event_callback":
            return await self._classify_event(body, context, base)
        if body.get("command"):
            msg = convert.command_to_incoming(body)
            key = f"cmd:{team_id}:{body.get('trigger_id') or msg.id}"
            payload = {
                **base,
                "kind": "command",
                "msg": message_to_record(msg, max_text=self.settings.max_question_chars),
                SESSION_KEY: msg.conversation.session_id,
                "response_url": body.get("response_url"),
                "channel": body.get("channel_id"),
                "user": body.get("user_id"),
            }
            return Work(key, payload)
        if body.get("type") == "block_actions":
            return self._classify_action(body, base)
        return None

    async def _classify_event(
        self, body: dict[str, Any], context: Any, base: dict[str, Any]
    ) -> Work | None:
        event = body.get("event") or {}
        if not isinstance(event, dict):
            return None
        team_id = base["team_id"]
        event_id = str(body.get("event_id", ""))
        if event.get("type") == "assistant_thread_started":
            thread = event.get("assistant_thread") or {}
            payload = {
                **base,
                "kind": "assistant_started",
                "channel": thread.get("channel_id"),
                "thread_ts": thread.get("thread_ts"),
            }
            return Work(f"ev:{event_id}", payload)
        bot = convert.BotIdentity(context.get("bot_user_id"), context.get("bot_id"))
        deletion = convert.deletion_of(event) if event.get("type") == "message" else None
        if deletion is not None:
            return self._deletion_work(deletion, event, base, bot)
        message = convert.message_of(event) if event.get("type") == "message" else event
        if message is None or event.get("type") not in ("app_mention", "message"):
            return None
        joined = False
        if convert.thread_root(message) and not convert.is_from_bot(message, bot):
            key = convert.conversation_for(message, team_id=team_id)
            joined = await self.responder.follows(key, message.get("user"))
        msg = convert.event_to_incoming(
            event, team_id=team_id, bot=bot, thread_joined=joined,
            auto_answer=await self._auto_answers(message, team_id, bot),
        )  # fmt: skip
        if msg is None:
            return None
        conversation = msg.conversation
        payload = {
            **base,
            "kind": "message",
            "msg": message_to_record(msg, max_text=self.settings.max_question_chars),
            SESSION_KEY: conversation.session_id,
            "channel": conversation.channel_id,
            "thread_ts": conversation.thread_id,
            "user": msg.author.id,
            "assistant": msg.is_direct and conversation.thread_id is not None,
            "first_turn": not joined,
        }
        return Work(convert.dedupe_key(event, team_id=team_id, event_id=event_id), payload)

    def _deletion_work(
        self,
        deletion: convert.Deletion,
        event: dict[str, Any],
        base: dict[str, Any],
        bot: convert.BotIdentity,
    ) -> Work | None:
        """Someone deleted a message: work that forgets it if the bot answered it (bot.deletion).
        The bot's own messages (its answers, which it deletes itself) are nothing to forget.
        Keyed by the message, so a tombstone and the later ``message_deleted`` are one work."""
        if convert.is_from_bot(deletion.previous, bot):
            return None
        team_id = base["team_id"]
        conversation = deletion.conversation(
            team_id=team_id, channel_type=event.get("channel_type")
        )
        payload = deletion_payload(
            deletion.ts,
            [conversation.session_id],
            convert.message_key(team_id=team_id, channel=deletion.channel, ts=""),
            **base,
            channel=deletion.channel,
        )
        return Work(f"del:{team_id}:{deletion.channel}:{deletion.ts}", payload)

    def _classify_action(self, body: dict[str, Any], base: dict[str, Any]) -> Work | None:
        actions = body.get("actions") or []
        if not actions or not ACTION_PATTERN.match(str(actions[0].get("action_id", ""))):
            return None
        action = actions[0]
        container = body.get("container") or {}
        message = body.get("message") or {}
        payload = {
            **base,
            "kind": "action",
            "action_id": action.get("action_id"),
            "value": action.get("value"),
            "user": (body.get("user") or {}).get("id"),
            "channel": (body.get("channel") or {}).get("id") or container.get("channel_id"),
            "message_ts": message.get("ts") or container.get("message_ts"),
            "thread_ts": message.get("thread_ts"),
            "text": message.get("text", ""),
            "blocks": (message.get("blocks") or [])[:MAX_STORED_BLOCKS],
            # An ephemeral message (a private answer) cannot be edited with chat.update: the
            # click answers through its response_url, as for a slash command's answer.
            "ephemeral": bool(container.get("is_ephemeral")),
            "has_message": bool(message) and not container.get("is_ephemeral"),
            "response_url": body.get("response_url"),
        }
        trigger = body.get("trigger_id") or f"{payload['message_ts']}:{action.get('action_ts')}"
        return Work(f"act:{base['team_id']}:{trigger}", payload)

    # ---- errors ------------------------------------------------------------------------------

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        if isinstance(error, NotTakenNow):
            # Not acked (a 500, or no Socket Mode ack): Slack delivers the request again.
            log.warning("slack request not acked: %s", error)
            return
        if unreachable(error):
            # Not acked either (bolt answers 500): Slack retries once the database is back.
            log.warning(
                "slack request not acked: the database is unreachable (%s)", type(error).__name__
            )
            return
        log.error(
            "slack request failed (%s): %s",
            body.get("type") if isinstance(body, dict) else "?",
            type(error).__name__,
            exc_info=error,
        )

    # ---- doing the work --------------------------------------------------------------------

    async def _deliver(self, work: Work) -> None:
        """The inbox's callable for work taken from the ledger (recovered or queued)."""
        try:
            client = await self.client_for(
                work.payload.get("team_id"), work.payload.get("enterprise_id")
            )
        except StoreUnavailable as exc:
            raise TryLater(str(exc)) from exc  # a database blip: answer it a little later
        if client is None:
            raise Undeliverable("no bot token for this workspace")
        await self.process(work, client)

    async def _submit_notice(
        self, client: AsyncWebClient, key: str, payload: dict[str, Any]
    ) -> None:
        """The team's notice as inbox work of its own, first tried here with ``client``."""
        await core_escalation.submit_notice(
            self.inbox, key, payload, lambda work: self.process(work, client)
        )

    async def _tell(self, work: Work, text: str) -> None:
        """A short note to the asker, where the answer would have gone."""
        p = work.payload
        if work.kind == NOTICE_KIND:
            # The core decides whether the notice's asker needs telling (and frees the notice
            # for the next request); the note is theirs alone.
            told = await core_escalation.notice_given_up(self.db, work)
            client = await self.client_for(p.get("team_id"), p.get("enterprise_id"))
            if told is not None and client is not None:
                await self.escalations.tell_notice_failed(client, p, told)
            return
        client = await self.client_for(p.get("team_id"), p.get("enterprise_id"))
        if client is None or not p.get("channel"):
            log.warning("cannot tell the asker of %s (no token or channel)", work.key)
            return
        if work.kind in ("command", "action"):
            # A slash command's or a button click's note is for that person alone: a click
            # on an answer in a channel once apologised to the whole channel. It takes the
            # place of a slow answer's note.
            reply = Reply(text=text, kind=ReplyKind.ERROR)
            messages = render.render_reply(reply, buttons=False)
            await self._send_ephemeral(client, p, messages, replace_first=bool(p.get(NOTED_KEY)))
            return
        if await self._answered_privately(work):
            # The answer was to be the asker's alone: so is its failure, as the answer would
            # have been posted (AnswerWriter._post_privately).
            await client.chat_postEphemeral(
                channel=p["channel"], user=p["user"], thread_ts=p.get("thread_ts"), text=text
            )
            return
        await client.chat_postMessage(channel=p["channel"], thread_ts=p.get("thread_ts"), text=text)

    async def _answered_privately(self, work: Work) -> bool:
        """Whether the core makes the answer of this message work its asker's alone."""
        p = work.payload
        if work.kind != "message" or not p.get("msg") or not p.get("user"):
            return False
        return await self.responder.answers_privately(message_from_record(p["msg"]))

    async def _retract(self, work: Work) -> None:
        """The inbox's give-up hook: before the asker is told, remove what the failing attempt
        posted, as a next attempt would (best effort)."""
        p = work.payload
        if work.kind != "message" or not p.get("channel") or not p.get("msg"):
            return
        client = await self.client_for(p.get("team_id"), p.get("enterprise_id"))
        if client is not None:
            route = Route(p["channel"], p.get("thread_ts"), p.get("user"), p.get("team_id"))
            await self._remove_earlier_attempt(work, client, route)

    async def process(self, work: Work, client: AsyncWebClient) -> None:
        if work.kind in ("message", NOTICE_KIND, DELETION_KIND):
            try:
                if work.kind == NOTICE_KIND:
                    await self.escalations.post_notice(client, work, self.inbox.record)
                elif work.kind == DELETION_KIND:
                    await self._forget_deleted(work, client)
                elif asked_by_shortcut(work):
                    await self.shortcuts.answer(work, client, self._answer_message)
                else:
                    await self._answer_message(work, client)
            except CALL_FAILURES as exc:
                reason = transient_failure(exc)
                if reason is None:
                    raise
                # Slack kept failing past the client's own retries: the inbox answers again
                # a little later (removing what this attempt half-posted).
                raise TryLater(reason) from exc
            return
        handler = {
            "command": lambda _p, c: self._answer_command(work, c),
            "action": lambda p, c: self._handle_action(p, c, work),
            "assistant_started": self._greet_assistant_thread,
            SHORTCUT_NOTE: lambda p, c: self.shortcuts.send_note(work, c),
        }.get(work.kind)
        if handler is None:
            raise Undeliverable(f"unknown work kind {work.kind!r}")
        await handler(work.payload, client)

    async def _forget_deleted(self, work: Work, client: AsyncWebClient) -> None:
        """A deleted question is forgotten and the bot's answers to it are deleted: the
        messages each answer recorded posting (every part is recorded as it is posted)."""
        channel = str(work.payload["channel"])

        async def posted_by(answer: Work) -> set[str]:
            return posted_messages(answer.payload) if answer.kind == "message" else set()

        async def remove(ts: str) -> None:
            try:
                await client.chat_delete(channel=channel, ts=ts)
            except SlackApiError as exc:
                if slack_error(exc) != "message_not_found":
                    raise

        await run_deletion(work, self.inbox, self.responder, posted_by=posted_by, remove=remove)

    async def _auto_answers(
        self, message: dict[str, Any], team_id: str, bot: convert.BotIdentity
    ) -> bool:
        """A new, unaddressed top-level post in a channel whose settings say answer every post."""
        if convert.thread_root(message) or convert.is_direct(message):
            return False
        if convert.is_from_bot(message, bot) or message.get("edited"):
            return False
        key = convert.conversation_for(message, team_id=team_id)
        return (await self.responder.channels.policy(key)).auto_answer

    async def _answer_message(self, work: Work, client: AsyncWebClient) -> None:
        p = work.payload
        msg = await with_admin_flag(client, message_from_record(p["msg"]))
        route = Route(p["channel"], p.get("thread_ts"), p.get("user"), p.get("team_id"))
        if work.attempts > 1:
            await self._remove_earlier_attempt(work, client, route)

        posted: list[str] = []

        async def remember_post(ts: str) -> None:
            # Each part as soon as it exists: the next attempt removes them all.
            posted.append(ts)
            await self.inbox.record(work, {**p, PARTIAL_KEY: list(posted)})

        if p.get("assistant") and route.thread_ts:
            await _best_effort(
                client.assistant_threads_setStatus(
                    channel_id=route.channel,
                    thread_ts=route.thread_ts,
                    status=texts.SLACK_STATUS_THINKING,
                )
            )
            if p.get("first_turn") and msg.text:
                await _best_effort(
                    client.assistant_threads_setTitle(
                        channel_id=route.channel, thread_ts=route.thread_ts, title=msg.text[:100]
                    )
                )
        writer = AnswerWriter(
            client,
            route,
            self.throttle,
            streaming=self.streaming,
            extra_blocks=self._escalation_blocks,
            on_post=remember_post,
            private_notes=not msg.is_direct,
            private_answers=await self.responder.answers_privately(msg),
        )
        # Slack failing after the client's retries raises: the inbox logs it, marks the work
        # failed and tells the asker once.
        # An Assistant thread shows "thinking…" already; elsewhere a slow answer begins its
        # own message when the core says it is slow (bot/progress.py).
        progress = None if p.get("assistant") else self._progress_allowed
        final = await writer.write(
            self.responder.stream(msg, hand_back_storage_faults=True, progress=progress)
        )
        if final is not None and final.silent:
            if final.reaction:
                await _best_effort(
                    client.reactions_add(
                        channel=route.channel, timestamp=msg.id, name=final.reaction
                    )
                )
            if p.get("assistant") and route.thread_ts:  # no message will clear "thinking"
                await _best_effort(
                    client.assistant_threads_setStatus(
                        channel_id=route.channel, thread_ts=route.thread_ts, status=""
                    )
                )
        if final is not None:
            await self._announce_hand_off(work, client, msg, final)

    async def _announce_hand_off(
        self, work: Work, client: AsyncWebClient, msg: IncomingMessage, reply: Reply
    ) -> None:
        """Tell the team of the hand-off ``reply`` opened or found, if any. The answer is out:
        a failed hand-over of the notice (its own work, tried again through passing faults)
        must not turn it into a failed delivery."""
        if not reply.escalation_id:
            return
        try:
            await self.escalations.announce(
                client,
                work.payload,
                msg.conversation,
                msg.author.id,
                reply.escalation_id,
                request_id=msg.id,
            )
        except (*CALL_FAILURES, *DATABASE_FAILURES) as exc:
            log.error("escalation notice for %s failed: %s", work.key, type(exc).__name__)

    def _progress_allowed(self) -> bool:
        return not shed_progress(self.runtime.loop_lag, self.inbox.in_flight)

    async def _remove_earlier_attempt(
        self, work: Work, client: AsyncWebClient, route: Route
    ) -> None:
        """An earlier attempt died or met a passing fault while answering this: remove what it
        posted before answering again. Every message it recorded, and in a thread or a DM, our
        messages after the question (a crash right after a post, before the record, leaves
        one) that are not what the conversation's other work recorded posting: the answer to a
        later question in the same thread or DM stays."""
        stamps = posted_messages(work.payload)
        # Our replies after the question, or after it was asked about (an older message).
        question = str(
            work.payload.get(ANSWER_AFTER_KEY) or convert.asked_at(str(work.payload["msg"]["id"]))
        )
        direct = bool(work.payload["msg"].get("is_direct"))
        if route.thread_ts or direct:
            try:
                me = await client.auth_test()
                if route.thread_ts:
                    replies = await client.conversations_replies(
                        channel=route.channel, ts=route.thread_ts, oldest=question, limit=50
                    )
                else:  # a DM answered at its top level: the DM's own history
                    replies = await client.conversations_history(
                        channel=route.channel, oldest=question, limit=50
                    )
                others = await self._posted_by_other_work(work, question)
                stamps.update(
                    str(m["ts"])
                    for m in replies.get("messages") or []
                    if float(m["ts"]) > float(question)
                    and str(m["ts"]) not in others
                    and (m.get("bot_id") == me.get("bot_id") or m.get("user") == me.get("user_id"))
                )
            except Exception as exc:
                log.info("could not look for an earlier answer to %s: %s", work.key, exc)
        for ts in sorted(stamps):
            await _best_effort(client.chat_delete(channel=route.channel, ts=ts))

    async def _posted_by_other_work(self, work: Work, question: str) -> set[str]:
        """The messages the conversation's other work (answers to later questions in the
        thread) recorded posting since the question was asked."""
        asked = datetime.fromtimestamp(float(question), UTC) - CLOCK_SKEW
        payloads = await self.inbox.conversation_work(work, since=asked)
        return {ts for payload in payloads for ts in posted_messages(payload)}

    async def _escalation_blocks(self, reply: Reply) -> list[dict[str, Any]]:
        """The agent may hand off by itself: offer "Mark resolved" for that escalation."""
        if reply.kind is not ReplyKind.ESCALATED or reply.memory_id is None:
            return []
        memory = await memories.get_memory(self.db, memory_id=reply.memory_id)
        escalation_id = (memory.tool_metadata or {}).get("escalation_id") if memory else None
        return [render.resolve_block(int(escalation_id))] if escalation_id else []

    async def _answer_command(self, work: Work, client: AsyncWebClient) -> None:
        p = work.payload
        msg = await with_admin_flag(client, message_from_record(p["msg"]))
        url = p.get("response_url")
        # A slow answer (bot/progress.py) shows a private note first, which the answer then
        # replaces: the asker of /ask sees nothing at all otherwise until the model is done.
        # An earlier attempt (its process died) may have shown it already.
        progress = self._progress_allowed if url else None
        noted = bool(p.get(NOTED_KEY))
        reply = None
        async for item in self.responder.stream(msg, progress=progress):
            if isinstance(item, Slow) and url and not noted:
                noted = await respond(url, render.SlackMessage(texts.SLACK_ANSWER_COMING))
                if noted:
                    await self.inbox.record(work, {**p, NOTED_KEY: True})
            elif isinstance(item, Reply):
                reply = item
        if reply is None:  # never for a person's command: only bots' messages get none
            return
        shareable = reply.kind in (ReplyKind.ANSWER, ReplyKind.NO_ANSWER)
        messages = render.render_reply(reply, share=shareable, buttons=False)
        await self._send_ephemeral(client, p, messages, replace_first=noted)
        await self._announce_hand_off(work, client, msg, reply)

    async def _send_ephemeral(
        self,
        client: AsyncWebClient,
        p: dict[str, Any],
        messages: list[render.SlackMessage],
        *,
        replace_first: bool = False,
    ) -> None:
        """Through ``response_url`` (5 uses in 30 min), else chat.postEphemeral (only where the
        url surely did not deliver: after a 5xx it may have, and a second copy is worse).
        ``replace_first``: the first message takes the place of a note the url showed."""
        url = p.get("response_url")
        for index, message in enumerate(messages):
            replace = replace_first and index == 0
            if url and index < 4 and await respond(url, message, replace_original=replace):
                continue
            await client.chat_postEphemeral(
                channel=p["channel"], user=p["user"], text=message.text, blocks=message.blocks
            )

    async def _greet_assistant_thread(self, p: dict[str, Any], client: AsyncWebClient) -> None:
        if not p.get("channel") or not p.get("thread_ts"):
            return
        prompts = [{"title": q, "message": q} for q in texts.SLACK_ASSISTANT_PROMPTS]
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=p["channel"],
            thread_ts=p["thread_ts"],
            title=texts.SLACK_ASSISTANT_PROMPTS_TITLE,
            prompts=prompts,
        )

    # ---- buttons ---------------------------------------------------------------------------

    async def _handle_action(self, p: dict[str, Any], client: AsyncWebClient, work: Work) -> None:
        # What this click did so far, for an attempt after a crash (the payload is ``p``).
        record = escalation_recovery.recorder(self.inbox, work)
        value = render.parse_button_value(p.get("value"))
        action = p.get("action_id")
        user = str(p.get("user") or "")
        if action in (render.ACTION_HELPFUL, render.ACTION_NOT_HELPFUL) and "m" in value:
            reply = await self.responder.feedback(
                memory_id=int(value["m"]),
                session_id=str(value.get("s", "")),
                user_id=user,
                helpful=action == render.ACTION_HELPFUL,
            )
            await self._replace_block(client, p, render.FEEDBACK_BLOCK, reply)
        elif action == render.ACTION_HUMAN:
            note = await self.escalations.request(
                client, p, str(value.get("s", "")), user, request_id=work.key, record=record
            )
            if note is not None:
                await self._send_ephemeral(client, p, render.render_reply(note, buttons=False))
        elif action == render.ACTION_RESOLVE and "e" in value:
            done = await self.escalations.resolve(client, p, int(value["e"]), user, record)
            if done.reply.ephemeral:
                await self._send_ephemeral(
                    client, p, render.render_reply(done.reply, buttons=False)
                )
            elif not done.on_notice:
                await self._replace_block(client, p, render.RESOLVE_BLOCK, done.reply)
        elif action == render.ACTION_SHARE and "m" in value:
            await self._share(client, p, int(value["m"]), user)
        else:
            log.warning("unusable button %s with value %r", action, p.get("value"))

    async def _replace_block(
        self, client: AsyncWebClient, p: dict[str, Any], block_id: str, reply: Reply
    ) -> None:
        """Swap the clicked buttons for the reply's text (a thank-you, "resolved", ...)."""
        note = render.context_block(render.markdown_to_mrkdwn(reply.text))
        url = p.get("response_url")
        if p.get("ephemeral") and p.get("blocks") and url:
            # A private answer: its buttons are swapped in place through the response_url.
            blocks = render.replace_block(p["blocks"], block_id, note)
            shown = render.SlackMessage(p.get("text") or reply.text, blocks)
            if await respond(url, shown, replace_original=True):
                return
        if p.get("has_message") and p.get("message_ts"):
            blocks = render.replace_block(p.get("blocks") or [], block_id, note)
            await client.chat_update(
                channel=p["channel"],
                ts=p["message_ts"],
                text=p.get("text") or reply.text,
                blocks=blocks,
            )
        else:
            await self._send_ephemeral(client, p, render.render_reply(reply, buttons=False))

    async def _share(
        self, client: AsyncWebClient, p: dict[str, Any], memory_id: int, user: str
    ) -> None:
        memory = await memories.get_memory(self.db, memory_id=memory_id)
        if memory is None:
            await self._send_ephemeral(
                client, p, render.render_reply(Reply(texts.SLACK_ANSWER_GONE, ReplyKind.INFO))
            )
            return
        reply = Reply(text=memory.content, memory_id=memory.id, session_id=memory.session_id)
        heading = render.context_block(texts.slack_shared_by(user))
        messages = render.render_reply(reply)
        first = messages[0]
        messages[0] = render.SlackMessage(first.text, [heading, *first.blocks])
        await post_messages(client, Route(p["channel"], p.get("thread_ts")), messages)
        if p.get("response_url"):
            await _best_effort(
                AsyncWebhookClient(p["response_url"]).send_dict({"delete_original": True})
            )

    # ---- recovery ----------------------------------------------------------------------------

    async def work_loop(self, stop: asyncio.Event, *, poll_interval: float = 0.05) -> None:
        """A worker process: take queued or abandoned work from the ledger until ``stop``."""
        self.inbox.start(poll=poll_interval)
        await stop.wait()

    async def recover_expired(self) -> int:
        """One recovery pass now (tests): what a crashed process acked but never finished."""
        return await self.inbox.drain()

    async def client_for(
        self, team_id: str | None, enterprise_id: str | None
    ) -> AsyncWebClient | None:
        """A Web API client with the workspace's bot token (stored installation or the env one).
        Raises :class:`StoreUnavailable` when the installation store cannot be read now."""
        token = self.client.token
        if self.installation_store is not None:
            bot = await find_bot(
                self.installation_store, enterprise_id=enterprise_id, team_id=team_id
            )
            token = bot.bot_token if bot is not None else None
        if not token:
            return None
        client = make_web_client(self.settings, token)
        client.session = self._session
        return client


def posted_messages(payload: dict[str, Any]) -> set[str]:
    """The messages an earlier attempt recorded posting for this answer."""
    recorded = payload.get(PARTIAL_KEY)
    stamps = {str(ts) for ts in recorded} if isinstance(recorded, list) else set()
    if payload.get(LEGACY_PARTIAL_KEY):
        stamps.add(str(payload[LEGACY_PARTIAL_KEY]))
    return stamps


async def _best_effort(call: Coroutine[Any, Any, Any]) -> None:
    """Cosmetic calls (status, title, cleanup) must never cost the user their answer."""
    try:
        await call
    except Exception as exc:
        log.info("optional Slack call failed: %s", type(exc).__name__)
