"""The Slack bot: one slack_bolt ``AsyncApp`` wired to the Responder, for HTTP and Socket Mode.

Flow of a request (DESIGN.md section 2): bolt verifies the signature and authorizes; our ledger
middleware decides whether the request is work for us, claims it in ``processed_events`` and
only then acks (it returns the HTTP 200 / Socket Mode ack itself and starts the answer in the
background). So a retry, the ``app_mention``/``message`` twin of one mention, a second replica or
a restart cannot answer twice, and an acked question is never lost: the ledger row keeps what is
needed to answer, and :meth:`SlackBot.recover_expired` finishes work whose process died. A claim
that fails (database down) is a 500, so Slack retries instead of the question being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
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
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import convert, render
from adapters.slack.admins import with_admin_flag
from adapters.slack.delivery import AnswerWriter, ChannelThrottle, Route, post_messages
from adapters.slack.manifest import BOT_SCOPES, INSTALL_PATH, REDIRECT_PATH
from adapters.slack.thread_history import thread_reader
from bot import metrics, texts
from bot.config import Settings
from bot.messages import Reply, ReplyKind
from bot.runtime import Runtime
from storage import escalations, events, memories

log = logging.getLogger(__name__)

PLATFORM = "slack"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
ACTION_PATTERN = re.compile(r"^sb_")
# Ledger payloads keep at most this much of a message's blocks (buttons need only their ids).
MAX_STORED_BLOCKS = 60


@dataclass(frozen=True, slots=True)
class Work:
    """One unit of work claimed in the ledger: ``payload`` is all that is needed to do it."""

    key: str
    payload: dict[str, Any]
    attempts: int = 1  # the ledger's attempt count this worker owns (ownership check)

    @property
    def kind(self) -> str:
        return str(self.payload.get("kind", ""))


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


def oauth_enabled(settings: Settings) -> bool:
    return bool(settings.slack_client_id and settings.slack_client_secret)


class SlackBot:
    """Owns the bolt app, its Web API client, the answer tasks in flight and the recovery loop."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        socket_mode: bool = False,
        lease: timedelta = events.DEFAULT_LEASE,
        recover_every: float = 30.0,
        update_interval: float = 1.0,
        streaming: bool = True,
        max_concurrent_answers: int = 32,
        answer_inline: bool = True,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.db = runtime.db
        self.responder = runtime.responder
        self.lease = lease
        self.recover_every = recover_every
        self.streaming = streaming
        self.throttle = ChannelThrottle(update_interval)
        self.client = make_web_client(self.settings)
        self.installation_store: AsyncSQLAlchemyInstallationStore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Bounded work keeps acks fast under bursts: queued work waits here, and its lease is
        # renewed only when it starts, so a long queue cannot make the recovery loop duplicate it.
        self.max_concurrent_answers = max_concurrent_answers
        self._slots = asyncio.Semaphore(max_concurrent_answers)
        # False: this process only acks and queues (ledger rows with an expired lease); worker
        # processes (`supportbot run slack --worker`) answer them. Keeps acks fast under load.
        self.answer_inline = answer_inline
        self._recovery: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.app = self._build_app(socket_mode)
        self._register()

    # ---- construction ----------------------------------------------------------------------

    def _build_app(self, socket_mode: bool) -> AsyncApp:
        settings = self.settings
        common: dict[str, Any] = {
            "name": "supportbot",
            "logger": logging.getLogger("adapters.slack.bolt"),
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
                state_store=AsyncSQLAlchemyOAuthStateStore(
                    expiration_seconds=600, engine=self.db.engine
                ),
            )
            self.client.token = None
            return AsyncApp(client=self.client, oauth_settings=oauth, **common)
        self.client.token = settings.secret("slack_bot_token")
        return AsyncApp(client=self.client, **common)

    def _register(self) -> None:
        # Our work (mentions, messages, the Assistant panel, /ask /forget /help, our buttons) is
        # acked by the ledger middleware itself right after the claim; requests it does not
        # recognise continue to bolt's listeners (none: bolt answers them as unhandled).
        self.app.use(self._ledger_middleware)
        self.app.error(self._on_error)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> None:
        """Share one HTTP connection pool and start finishing work that crashed processes left."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self.client.session = self._session
        if recover and self.answer_inline and self._recovery is None:
            self._recovery = asyncio.create_task(self._recovery_loop(), name="slack-recovery")

    async def aclose(self, timeout: float = 8.0) -> None:
        """Stop taking work, give answers in flight ``timeout`` seconds, then abandon them (their
        ledger rows stay "answering" and another process finishes them after the lease)."""
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "abandoned %d answers at shutdown; another process will retry", len(late)
                )
                await asyncio.gather(*late, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for the answers in flight (tests and benchmarks)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("answers still in flight")
            await asyncio.wait(list(self._tasks), timeout=remaining)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- the ledger ------------------------------------------------------------------------

    async def _ledger_middleware(self, body: dict[str, Any], context: Any, next: Any) -> Any:
        work = await self._classify(body, context)
        if work is None:
            if body.get("type") == "event_callback":
                # Not for us (another bot's message, an unjoined thread, an unknown event):
                # ack it so Slack does not retry, and do nothing.
                event_type = (body.get("event") or {}).get("type")
                log.debug("ignoring %s event %s", event_type, body.get("event_id"))
                return BoltResponse(status=200, body="")
            return await next()
        # Queued for workers: an already expired lease makes the row theirs to take.
        lease = self.lease if self.answer_inline else timedelta(0)
        claimed = await events.claim_event(
            self.db, platform=PLATFORM, event_id=work.key, payload=work.payload, lease=lease
        )
        if not metrics.event_claimed(PLATFORM, claimed):
            log.info("duplicate delivery of %s absorbed by the ledger", work.key)
            return BoltResponse(status=200, body="")
        if self.answer_inline:
            self._spawn(self._run(work, context["client"]))
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
                "msg": convert.incoming_to_payload(msg, max_text=self.settings.max_question_chars),
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
        message = convert.message_of(event) if event.get("type") == "message" else event
        if message is None or event.get("type") not in ("app_mention", "message"):
            return None
        joined = False
        if convert.thread_root(message) and not convert.is_from_bot(message, bot):
            key = convert.conversation_for(message, team_id=team_id)
            joined = await memories.count_memories(self.db, session_id=key.session_id) > 0
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
            "msg": convert.incoming_to_payload(msg, max_text=self.settings.max_question_chars),
            "channel": conversation.channel_id,
            "thread_ts": conversation.thread_id,
            "user": msg.author.id,
            "assistant": msg.is_direct and conversation.thread_id is not None,
            "first_turn": not joined,
        }
        return Work(convert.dedupe_key(event, team_id=team_id, event_id=event_id), payload)

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
            "has_message": bool(message),
            "response_url": body.get("response_url"),
        }
        trigger = body.get("trigger_id") or f"{payload['message_ts']}:{action.get('action_ts')}"
        return Work(f"act:{base['team_id']}:{trigger}", payload)

    # ---- errors ------------------------------------------------------------------------------

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error(
            "slack request failed (%s): %s",
            body.get("type") if isinstance(body, dict) else "?",
            type(error).__name__,
            exc_info=error,
        )

    # ---- doing the work --------------------------------------------------------------------

    async def _run(self, work: Work, client: AsyncWebClient) -> None:
        """Do one claimed unit of work and record the outcome in the ledger. Cancellation (a
        shutdown) hands the row back (lease ended) so that the next process finishes it."""
        try:
            async with self._slots:
                owned = await events.renew_lease(
                    self.db,
                    platform=PLATFORM,
                    event_id=work.key,
                    attempts=work.attempts,
                    lease=self.lease,
                )
                if not owned:
                    log.info("%s was taken over by another process; skipping", work.key)
                    return
                await self.process(work, client)
        except asyncio.CancelledError:
            await self._release(work)
            raise
        except Exception:
            log.error("slack %s %s failed", work.kind, work.key, exc_info=True)
            await self._finish(work, events.FAILED)
        else:
            await self._finish(work, events.ANSWERED)

    async def _release(self, work: Work) -> None:
        """Shutdown abandoned this work: hand it back to the ledger for the next process."""
        try:
            await events.release_lease(
                self.db, platform=PLATFORM, event_id=work.key, attempts=work.attempts
            )
        except Exception as exc:
            log.warning("could not release %s: %s", work.key, type(exc).__name__)

    async def _finish(self, work: Work, status: str) -> None:
        try:
            await events.finish_event(self.db, platform=PLATFORM, event_id=work.key, status=status)
        except Exception:
            log.error("could not record %s as %s", work.key, status, exc_info=True)

    async def process(self, work: Work, client: AsyncWebClient) -> None:
        handler = {
            "message": self._answer_message,
            "command": self._answer_command,
            "action": self._handle_action,
            "assistant_started": self._greet_assistant_thread,
        }.get(work.kind)
        if handler is None:
            log.warning("unknown work kind %r in %s", work.kind, work.key)
            return
        await handler(work.payload, client)

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

    async def _answer_message(self, p: dict[str, Any], client: AsyncWebClient) -> None:
        msg = convert.incoming_from_payload(p["msg"])
        route = Route(p["channel"], p.get("thread_ts"), p.get("user"), p.get("team_id"))
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
        )
        try:
            final = await writer.write(self.responder.stream(msg))
            if final is not None and final.silent and final.reaction:
                await _best_effort(
                    client.reactions_add(
                        channel=route.channel, timestamp=msg.id, name=final.reaction
                    )
                )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # Slack kept failing after the client's retries: one apology, if Slack lets us.
            log.error("posting the answer to %s failed: %s", route.channel, type(exc).__name__)
            await self._apologise(client, route)

    async def _apologise(self, client: AsyncWebClient, route: Route) -> None:
        try:
            await client.chat_postMessage(
                channel=route.channel, thread_ts=route.thread_ts, text=texts.ERROR_GENERIC
            )
        except Exception as exc:
            log.error("the apology to %s failed too: %s", route.channel, type(exc).__name__)

    async def _escalation_blocks(self, reply: Reply) -> list[dict[str, Any]]:
        """The agent may hand off by itself: offer "Mark resolved" for that escalation."""
        if reply.kind is not ReplyKind.ESCALATED or reply.memory_id is None:
            return []
        memory = await memories.get_memory(self.db, memory_id=reply.memory_id)
        escalation_id = (memory.tool_metadata or {}).get("escalation_id") if memory else None
        return [render.resolve_block(int(escalation_id))] if escalation_id else []

    async def _answer_command(self, p: dict[str, Any], client: AsyncWebClient) -> None:
        msg = await with_admin_flag(client, convert.incoming_from_payload(p["msg"]))
        reply = await self.responder.handle(msg)
        if reply is None:
            return
        shareable = reply.kind in (ReplyKind.ANSWER, ReplyKind.NO_ANSWER)
        messages = render.render_reply(reply, share=shareable, buttons=False)
        await self._send_ephemeral(client, p, messages)

    async def _send_ephemeral(
        self, client: AsyncWebClient, p: dict[str, Any], messages: list[render.SlackMessage]
    ) -> None:
        """Through ``response_url`` (5 uses in 30 min), else chat.postEphemeral."""
        url = p.get("response_url")
        for index, message in enumerate(messages):
            if url and index < 4:
                try:
                    webhook = AsyncWebhookClient(url, retry_handlers=retry_handlers())
                    response = await webhook.send(
                        text=message.text, blocks=message.blocks, response_type="ephemeral"
                    )
                    if response.status_code == 200:
                        continue
                    log.warning("response_url answered %s", response.status_code)
                except aiohttp.ClientError as exc:
                    log.warning("response_url failed: %s", type(exc).__name__)
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

    async def _handle_action(self, p: dict[str, Any], client: AsyncWebClient) -> None:
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
            await self._escalate(client, p, str(value.get("s", "")), user)
        elif action == render.ACTION_RESOLVE and "e" in value:
            reply = await self.responder.resolve_escalation(
                escalation_id=int(value["e"]), resolved_by=user, read_thread=thread_reader(client)
            )
            await self._replace_block(client, p, render.RESOLVE_BLOCK, reply)
        elif action == render.ACTION_SHARE and "m" in value:
            await self._share(client, p, int(value["m"]), user)
        else:
            log.warning("unusable button %s with value %r", action, p.get("value"))

    async def _replace_block(
        self, client: AsyncWebClient, p: dict[str, Any], block_id: str, reply: Reply
    ) -> None:
        """Swap the clicked buttons for the reply's text (a thank-you, "resolved", ...)."""
        note = render.context_block(render.markdown_to_mrkdwn(reply.text))
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

    async def _escalate(
        self, client: AsyncWebClient, p: dict[str, Any], session_id: str, user: str
    ) -> None:
        conversation = convert.conversation_from_session_id(session_id)
        if conversation is None:
            log.warning("escalation button with a bad session id %r", session_id)
            return
        reply, escalation_id = await self.responder.escalate(
            conversation=conversation, requested_by=user
        )
        text = reply.text
        target = self.settings.slack_escalation_target or ""
        if target.startswith("S") and reply.text == texts.ESCALATION_OPENED:
            text += "\n\n" + texts.slack_escalation_group_ping(f"<!subteam^{target}>")
        extra = [render.resolve_block(escalation_id)] if escalation_id else []
        route = Route(conversation.channel_id, conversation.thread_id)
        shown = Reply(text=text, kind=reply.kind, session_id=reply.session_id)
        await post_messages(client, route, render.render_reply(shown, extra_blocks=extra))
        if p.get("has_message") and p.get("message_ts"):
            note = render.context_block(render.escape(texts.SLACK_ESCALATION_REQUESTED))
            blocks = render.replace_block(p.get("blocks") or [], render.HUMAN_BLOCK, note)
            await client.chat_update(
                channel=p["channel"],
                ts=p["message_ts"],
                text=p.get("text") or text,
                blocks=blocks,
            )
        if (
            target
            and not target.startswith("S")
            and escalation_id
            and (reply.text == texts.ESCALATION_OPENED)
        ):
            notice = texts.escalation_notice(session_id, f"<@{user}>", None)
            posted = await post_messages(
                client,
                Route(target, None),
                render.render_reply(Reply(text=notice, kind=ReplyKind.INFO), extra_blocks=extra),
            )
            await escalations.set_notice_ref(
                self.db, escalation_id=escalation_id, notice_ref=f"{target}:{posted[0]}"
            )

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

    # ---- recovery --------------------------------------------------------------------------

    async def _recovery_loop(self) -> None:
        while True:
            try:
                await self.recover_expired()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("recovering unfinished Slack work failed", exc_info=True)
            await asyncio.sleep(self.recover_every)

    async def work_loop(self, stop: asyncio.Event, *, poll_interval: float = 0.05) -> None:
        """A worker process: take queued or abandoned work from the ledger until ``stop``."""
        while not stop.is_set():
            free = self.max_concurrent_answers - len(self._tasks)
            taken = 0
            if free > 0:
                try:
                    taken = await self.recover_expired(limit=free)
                except Exception:
                    log.error("taking Slack work from the ledger failed", exc_info=True)
            if not taken:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_interval)

    async def recover_expired(self, *, limit: int = 20) -> int:
        """Answer what a crashed process acked but never finished (lease expired), or, for
        workers, what an HTTP process queued."""
        rows = await events.take_expired(self.db, platform=PLATFORM, limit=limit, lease=self.lease)
        for row in rows:
            work = Work(row.event_id, dict(row.payload or {}), attempts=row.attempts + 1)
            client = await self.client_for(
                work.payload.get("team_id"), work.payload.get("enterprise_id")
            )
            if client is None or not work.kind:
                log.warning("cannot resume %s (no payload or no token); giving up", row.event_id)
                await self._finish(work, events.FAILED)
                continue
            log.debug("taking %s %s from the ledger", work.kind, work.key)
            self._spawn(self._run(work, client))
        return len(rows)

    async def client_for(
        self, team_id: str | None, enterprise_id: str | None
    ) -> AsyncWebClient | None:
        """A Web API client with the workspace's bot token (stored installation or the env one)."""
        token = self.client.token
        if self.installation_store is not None:
            bot = await self.installation_store.async_find_bot(
                enterprise_id=enterprise_id, team_id=team_id
            )
            token = bot.bot_token if bot is not None else None
        if not token:
            return None
        client = make_web_client(self.settings, token)
        client.session = self._session
        return client


async def _best_effort(call: Coroutine[Any, Any, Any]) -> None:
    """Cosmetic calls (status, title, cleanup) must never cost the user their answer."""
    try:
        await call
    except Exception as exc:
        log.info("optional Slack call failed: %s", type(exc).__name__)
