"""discord.py wiring: gateway events and interactions in, rendered replies out.

Thin on purpose: ``convert`` turns payloads into ``IncomingMessage``s (``shapes`` gives it the
payloads of discord.py objects), the core's ``Responder`` answers, ``render`` shapes the reply and
``delivery`` puts it on Discord; this module only decides *whether* to answer and *where* (a new
thread, the thread, the DM, in place), hands that to the core's inbox (which claims it, keeps it
exactly-once and recovers it after a crash) and streams the answer there. ``process`` runs it.

discord.py facts this relies on (docs/architecture.md, "Platform facts"): ``Route.BASE`` is the
REST base URL; the gateway URL is whatever ``GET /gateway/bot`` returns (a client with a fixed
shard count dials ``DiscordWebSocket.DEFAULT_GATEWAY``, so it is set from that answer);
interactions are deferred before any slow work; persistent buttons are one ``DynamicItem`` whose
custom ids carry ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl

from adapters.discord import catch_up, convert, render
from adapters.discord.ask_message import (
    PRIVATE_KEY,
    DiscordAskMessage,
    answers_in_response,
    is_ask,
)
from adapters.discord.client import (
    SupportClient,
    guard_frames,
    guard_parsers,
    sync_application_commands,
    use_api_url,
)
from adapters.discord.convert import ChannelContext, ChannelKind
from adapters.discord.delivery import (
    APPLICATION_ID_KEY,
    FOLLOWUPS_KEY,
    TOKEN_KEY,
    TRANSIENT_ERRORS,
    ChannelSink,
    InteractionSink,
    OutlivedTokenSink,
    PersistentButton,
    ReplySink,
    StoredInteraction,
    Typing,
    defer,
    describe,
    interaction_webhook,
    is_transient,
    respond_ephemeral,
    token_valid,
)
from adapters.discord.escalation import DiscordEscalations, NoticeRequest, thread_link
from adapters.discord.forum import ForumWorkflow
from adapters.discord.shapes import (
    channel_context,
    guild_id_of,
    interaction_conversation,
    interaction_parent_id,
    interaction_payload,
    message_payload,
)
from adapters.discord.thread_history import thread_reader
from adapters.discord.thread_parents import ThreadParents
from bot import escalation, escalation_recovery, slash, text_commands, texts
from bot.ask_message import ANSWER_AFTER_KEY
from bot.deletion import deletion_payload, run_deletion
from bot.escalation import NOTICE_KIND
from bot.inbox import DELETION_KIND, SESSION_KEY, Deliver, Inbox, TryLater, Undeliverable, Work
from bot.looplag import shed_progress
from bot.messages import (
    ConversationKey,
    IncomingMessage,
    Reply,
    Slow,
    edited_id,
    message_from_record,
    message_to_record,
)
from bot.runtime import Runtime
from storage import memories
from storage.db import unreachable
from storage.models import Escalation

log = logging.getLogger(__name__)
# Seconds between tries of a catch-up that found the database unreachable (about 15 minutes).
CATCH_UP_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0) + (15.0,) * 60

PLATFORM = "discord"
STREAM_EDIT_INTERVAL = 1.0  # seconds between edits of a streamed answer (Discord: ~5 edits/5 s)
# An answer complete within this long is posted once, whole: no partial post, no edit, no
# typing call. Slower answers show typing, then text that grows with edits.
FIRST_POST_DELAY = 0.5
MAX_CONCURRENT_ANSWERS = 64  # beyond this, messages wait their turn instead of piling on the DB
THREAD_NAME_LIMIT = 100
SHUTDOWN_GRACE = 5.0  # seconds answers in flight get at close (the process must stop within 10)
# The payload keys recording the messages of an answer being posted: the first, and the later
# 2000-character pieces (see _post_recorder).
PARTIAL_KEY = "posted_id"
MORE_POSTS_KEY = "posted_more_ids"
# The messages a private answer sent to its asker's DM, as ``channel/message`` ids (see
# _send_privately): the channel's history, searched for unrecorded posts, does not hold them.
PRIVATE_POSTS_KEY = "posted_private"
# Discord's error code when a thread already exists for a message (a crash after creating it).
THREAD_ALREADY_CREATED = 160004
# Discord's error code for a DM the user does not accept (privacy settings, the bot blocked).
CANNOT_MESSAGE_USER = 50007
# What a hand-off click records besides the core's record (bot.escalation_recovery), for a
# later attempt that cannot read the click again: the server a "Mark resolved" was clicked in
# (the thread's link), and the channel of the thread a "Talk to a human" was clicked in.
GUILD_KEY = "guild_id"
PARENT_KEY = "parent_channel_id"
# The one line an operator sees when Discord refuses the intent (gateway close 4014).
MESSAGE_CONTENT_REFUSED = (
    "discord: Discord refused the Message Content intent (close code 4014), so the bot now runs "
    "without it: it answers mentions, DMs and slash commands, but not thread follow-ups or "
    "forum posts that do not mention it. To fix: Discord Developer Portal -> your application "
    "-> Bot -> Privileged Gateway Intents -> turn on MESSAGE CONTENT INTENT, then restart "
    "(or set SUPPORTBOT_DISCORD_MESSAGE_CONTENT=false to silence this)."
)


def intents_for(message_content: bool) -> discord.Intents:
    """Only what the bot needs. Mentions, DMs and slash commands work without message content."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


class DiscordAdapter:
    """Decides whether and where to answer, and delivers the Responder's replies."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        sync_commands: bool = False,
        sync_guild_id: int | None = None,
        client_options: dict[str, Any] | None = None,
        stream_interval: float = STREAM_EDIT_INTERVAL,
        first_post_delay: float = FIRST_POST_DELAY,
        max_concurrent_answers: int = MAX_CONCURRENT_ANSWERS,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.responder = runtime.responder
        self.db = runtime.db
        self.sync_commands = sync_commands
        self.sync_guild_id = sync_guild_id
        self.stream_interval = stream_interval
        self.first_post_delay = first_post_delay
        self.inbox = Inbox.from_settings(
            self.db,
            settings,
            PLATFORM,
            self._deliver_work,
            tell=self._tell,
            retract=self._retract,
            max_concurrent=max_concurrent_answers,
        )
        self.message_content = settings.discord_message_content
        self.forum_channels = {
            part.strip() for part in settings.discord_forum_channels.split(",") if part.strip()
        }
        self.escalations = DiscordEscalations.from_settings(
            runtime.db, settings, runtime.responder.channels
        )
        self.catch_up_window = timedelta(minutes=settings.discord_catch_up_minutes)
        self._catch_up: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        use_api_url(settings.discord_api_url)
        self._client_options: dict[str, Any] = {
            "allowed_mentions": discord.AllowedMentions.none(),
            "max_messages": None,  # the bot never needs its message cache
            "member_cache_flags": discord.MemberCacheFlags.none(),
            "chunk_guilds_at_startup": False,
            "shard_count": settings.discord_shard_count,  # None: as many as Discord says
        }
        self._client_options.update(client_options or {})
        self._intent_refused = False
        self.client = self._make_client()
        self.forum = ForumWorkflow(self.client, runtime.responder.channels)
        self.thread_parents = ThreadParents()
        self.ask_message = DiscordAskMessage(self)

    def _make_client(self) -> SupportClient:
        options = {"intents": intents_for(self.message_content), **self._client_options}
        return SupportClient(self, **options)

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self, client: SupportClient) -> None:
        """Start-up work (runs once, before the gateway connects; never in on_ready)."""
        _shards, url, _limits = await client.http.get_bot_gateway()
        # A fixed shard count (and a plain Client) dials DEFAULT_GATEWAY, not this answer.
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        client.add_dynamic_items(PersistentButton)
        guard_parsers(client)
        guard_frames()
        if not self.message_content and not self._intent_refused:
            log.info(
                "discord: message content intent is off; the bot answers mentions, DMs and slash "
                "commands, but cannot read forum posts or thread follow-ups that do not mention "
                "it. Set SUPPORTBOT_DISCORD_MESSAGE_CONTENT=true (and enable the intent in the "
                "developer portal) to answer those too."
            )
        if self.sync_commands:
            await sync_application_commands(client, guild_id=self.sync_guild_id)

    async def start(self, token: str) -> None:
        try:
            await self.client.start(token)
        except discord.PrivilegedIntentsRequired:
            if not self.message_content or self._closing.is_set():
                raise
            # Discord closed with 4014: the application may not read message content. Run
            # without it (mentions, DMs and slash commands still work) rather than not at all.
            log.warning(MESSAGE_CONTENT_REFUSED)
            self.message_content = False
            self._intent_refused = True
            self.client = self._make_client()
            self.forum.client = self.client
            await self.client.start(token)

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Answers in flight get ``grace`` seconds; the rest go back to the ledger at once."""
        self._closing.set()
        if self._catch_up is not None:
            self._catch_up.cancel()
        await self.inbox.aclose(grace)
        await self.client.close()

    def start_recovery(self) -> None:
        """Once connected (after every READY): answer what a crashed process acked but never
        answered, and what was posted while no process was connected."""
        self.inbox.start()
        if self.catch_up_window and (self._catch_up is None or self._catch_up.done()):
            self._catch_up = asyncio.create_task(self.read_missed())

    async def read_missed(self) -> int:
        """Messages of the catch-up window through the live path; how many were read.

        A database that cannot be reached (the READY came during an outage) is waited for,
        with the window kept from this READY on, while it still covers the gap: otherwise
        what was posted while no process was connected would never be answered."""
        started = datetime.now(UTC)
        since = started - self.catch_up_window
        for delay in CATCH_UP_RETRY_DELAYS:
            try:
                channels = await catch_up.channels_to_read(self.client, self.db, since)
                read = await catch_up.catch_up(self.client, channels, since, self.on_message)
            except Exception as exc:  # the live gateway keeps working without it
                if not unreachable(exc) or datetime.now(UTC) - started > self.catch_up_window:
                    log.warning("discord: reading back missed messages failed", exc_info=True)
                    return 0
                log.warning(
                    "discord: reading back missed messages waits for the database (%s)",
                    type(exc).__name__,
                )
                await asyncio.sleep(delay)
                continue
            log.info("discord: read back %d message(s) from %d channel(s)", read, len(channels))
            return read
        log.error("discord: reading back missed messages gave up; the database stayed down")
        return 0

    # --- messages -----------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        await self._take_message(message)

    async def on_message_edited(self, message: discord.Message) -> None:
        """A message was edited (MESSAGE_UPDATE, as it is now): an edited question is a
        question of its own under the edit's id and key (``<id>:edit:<edited ms>``), routed
        like a new message; the core stops an answer to the old text still being written.
        Updates that are no edit (an unfurl of a message never edited) are left alone; an
        unfurl after an edit repeats its edit time, hence its key, and is absorbed."""
        if message.edited_at is None:
            return
        await self._take_message(message, edit=str(int(message.edited_at.timestamp() * 1000)))

    async def _take_message(self, message: discord.Message, *, edit: str | None = None) -> None:
        bot_user = self.client.user
        if bot_user is None or message.author.bot or message.author.id == bot_user.id:
            return  # the cheap check first: most traffic in a server is not for us
        context = channel_context(message.channel, message.guild)
        payload = message_payload(message)
        if edit is not None:
            payload["id"] = edited_id(payload["id"], edit)
        incoming = convert.message_to_incoming(
            payload, bot_user_id=str(bot_user.id), context=context
        )
        if incoming is None:
            if message.content == "" and not message.attachments and message.guild is not None:
                log.debug("discord: message %s has no readable content (intent off?)", message.id)
            return
        known = True
        if context.kind is ChannelKind.CHANNEL and isinstance(
            message.channel, discord.PartialMessageable
        ):
            # discord.py has not cached this channel: it may be a thread (started while the bot
            # was offline, say), which must be answered as any thread, under its parent's
            # settings. Discord says which, once per channel.
            facts = await self.thread_parents.look_up(self.client, message.channel.id)
            known = facts is not None
            if facts is not None and facts.is_thread:
                context = replace(context, kind=ChannelKind.THREAD, parent_id=facts.parent_id)
                # Read again as a thread's message: the thread's conversation and parent.
                incoming = (
                    convert.message_to_incoming(
                        payload, bot_user_id=str(bot_user.id), context=context
                    )
                    or incoming  # not reached: whether to ignore it does not depend on the kind
                )
        target = await self._route(incoming, context, known=known)
        if target is None:
            return
        if target == "thread-by-memory":
            key = convert.thread_conversation(
                guild_id=incoming.conversation.workspace_id, thread_id=str(message.channel.id)
            )
            # Discord would not say which channel the thread is in: the defaults apply.
            incoming = replace(incoming, conversation=key)
        elif target == "new-thread":
            # A thread started from a message takes the message's id, so the answer's
            # conversation is known before the thread exists: claimed with it, opening the
            # thread needs no second write (see _open_thread).
            key = convert.thread_conversation(
                guild_id=incoming.conversation.workspace_id, thread_id=str(message.id)
            )
            # The thread belongs to the channel: its settings (knowledge filter, refusal
            # language, escalation target, ...) apply to the answer, as to later replies.
            incoming = replace(
                incoming, conversation=key, parent_channel_id=str(message.channel.id)
            )
        private = False
        if target != "dm":  # a DM is private already
            incoming, private = await self.private_in_place(
                incoming, new_thread=target == "new-thread", channel_id=str(message.channel.id)
            )
            if private and target == "new-thread":
                target = "channel"
        record = {
            "kind": "message",
            "msg": message_to_record(incoming, max_text=self.runtime.settings.max_question_chars),
            SESSION_KEY: incoming.conversation.session_id,
            "message_id": str(message.id),
            "question_channel": str(message.channel.id),
            "new_thread": target == "new-thread",
            PRIVATE_KEY: private,
        }
        # No redelivery on the gateway: a claim the database cannot take now is held.
        if await self.inbox.submit_or_hold(incoming.id, record) is False:
            log.info("discord: message %s already taken (retry or replica); skipping", message.id)

    async def private_in_place(
        self, incoming: IncomingMessage, *, new_thread: bool, channel_id: str
    ) -> tuple[IncomingMessage, bool]:
        """Whether the core makes the answer to ``incoming`` its asker's alone, and the message
        to answer then. Such an answer becomes a DM and one line where it was asked
        (_send_privately), so no thread is started for it (it would show nothing but that
        line): the question is answered in place, in the channel's conversation. For a mention
        and for "Ask supportbot" alike (adapters/discord/ask_message.py)."""
        if not await self.responder.answers_privately(incoming):
            return incoming, False
        if new_thread:
            incoming = replace(
                incoming,
                conversation=convert.conversation_for(
                    guild_id=incoming.conversation.workspace_id,
                    channel_id=channel_id,
                    kind=ChannelKind.CHANNEL,
                ),
                parent_channel_id=None,
            )
        return incoming, True

    async def on_messages_deleted(
        self, message_ids: Iterable[int], channel_id: int, guild_id: int | None
    ) -> None:
        """Messages were deleted (one, or a moderator's bulk delete): each becomes deletion work
        that forgets it if the bot answered it (bot.deletion), claimed like any message."""
        guild = str(guild_id) if guild_id else None
        for message_id in message_ids:
            candidates = convert.conversations_of_message(
                guild_id=guild, channel_id=str(channel_id), message_id=str(message_id)
            )
            payload = deletion_payload(
                str(message_id),
                [key.session_id for key in candidates],
                "",  # a message's answer is claimed under the message's own id
                channel_id=str(channel_id),
                guild_id=guild,
            )
            if await self.inbox.submit_or_hold(f"del:{message_id}", payload) is False:
                log.info("discord: deletion of %s already taken; skipping", message_id)

    async def _route(
        self, incoming: IncomingMessage, context: ChannelContext, *, known: bool
    ) -> str | None:
        """Where to answer: "dm", "thread" (in the thread), "thread-by-memory" (a channel Discord
        would not describe, known as a thread only by stored memories), "new-thread" (a mention
        in a channel), "channel" (in place), or None: not for us. ``known`` is False for such
        an undescribed channel."""
        if context.kind is ChannelKind.DM:
            return "dm"
        if context.kind is ChannelKind.THREAD:
            if incoming.mentions_bot:
                return "thread"
            open_ = (
                context.parent_id in self.forum_channels
                or (await self.responder.channels.policy(
                    incoming.conversation, parent_channel_id=context.parent_id
                )).auto_answer
            )  # fmt: skip
            # Unmentioned, the bot answers the people who asked it here (any first post of a
            # forum or auto-answer thread), and nobody while a hand-off is open.
            followed = await self.responder.follows(
                incoming.conversation, incoming.author.id, open_=open_
            )
            return "thread" if followed else None
        if not known:
            # A thread the bot has answered in has memories under the thread's session id.
            thread_key = convert.thread_conversation(
                guild_id=incoming.conversation.workspace_id,
                thread_id=incoming.conversation.channel_id,
            )
            if await self.responder.follows(thread_key, incoming.author.id):
                return "thread-by-memory"
        if not incoming.mentions_bot:
            return None
        if text_commands.forget_request(incoming):
            # "forget" said in a channel opens no thread of its own: answered in place.
            return "channel"
        # A mention in a thread Discord would not describe goes this way too: starting a thread
        # there fails, and it is answered in place (see _open_thread).
        return "new-thread"

    # --- delivering claimed work (live or recovered: one path) -------------------------------

    async def _deliver_work(self, work: Work) -> None:
        """The inbox's callable: answer one claimed message where its record says. A dropped
        connection or a Discord server error is not the asker's fault: the inbox tries again
        (the next attempt removes what this one posted) instead of apologising."""
        try:
            await self._answer_work(work)
        except Exception as exc:
            _raise_try_later_if_transient(exc)
            raise

    async def _answer_work(self, work: Work) -> None:
        if work.kind == NOTICE_KIND:
            await self.escalations.post_notice(self.client, work.payload)
            return
        if work.kind == DELETION_KIND:
            await self._forget_deleted(work)
            return
        if work.kind == "interaction" and "msg" in work.payload and TOKEN_KEY in work.payload:
            # A command another attempt did not finish: answered through the stored token.
            incoming = message_from_record(work.payload["msg"])
            await self._answer_through_token(
                work, incoming, ephemeral=bool(work.payload.get("ephemeral"))
            )
            return
        if work.kind == "interaction" and await self._resume_hand_off_click(work):
            return
        if work.kind != "message":
            # A button click is not done twice: its asker is told to try again (_tell).
            raise Undeliverable(f"{work.kind or 'unknown'} work cannot be resumed")
        if answers_in_response(work.payload):
            # The asker asked about their own message in a channel whose answers are private:
            # the command's own ephemeral response is the private reply (no DM needed).
            p = work.payload
            final = await self._answer_through_token(
                work, message_from_record(p["msg"]), ephemeral=True
            )
            await self._after_reply(p, final)
            return
        private = bool(work.payload.get(PRIVATE_KEY))
        await self._confirm_ask(
            work,
            texts.ASK_MESSAGE_ANSWERING_PRIVATELY
            if private
            else texts.ASK_MESSAGE_ANSWERING_IN_THREAD,
        )
        if work.payload.get("new_thread"):
            work = await self._open_thread(work)
        p = work.payload
        incoming = message_from_record(p["msg"])
        channel = self._channel(incoming.conversation)
        if work.attempts > 1:
            await self._remove_earlier_attempt(work, channel)
        reference = None
        if incoming.conversation.channel_id == p.get("question_channel"):
            reference = channel.get_partial_message(int(p["message_id"]))

        posts = PostRecorder(self.inbox, work)
        sink = ChannelSink(channel, reference=reference, on_post=posts.channel_post)
        final = await self._deliver(
            incoming,
            sink,
            typing_channel=None if private else channel,
            private=posts if private else None,
        )
        await self._after_reply(p, final)

    async def _after_reply(self, p: dict[str, Any], final: Reply | None) -> None:
        """The forum post's tags after its question was answered (ForumWorkflow)."""
        if final is None:
            return
        incoming = message_from_record(p["msg"])
        question = self.client.get_partial_messageable(int(p["question_channel"]))
        await self.forum.after_reply(
            question.get_partial_message(int(p["message_id"])),
            final,
            parent_id=incoming.parent_channel_id,
        )

    async def _answer_through_token(
        self, work: Work, incoming: IncomingMessage, *, ephemeral: bool
    ) -> Reply | None:
        """Answer in the interaction's deferred response (its token kept in the payload), after
        removing the follow-ups an earlier attempt posted."""
        original = StoredInteraction.from_payload(self.client, work.payload)
        await self._remove_earlier_followups(work, original)
        sink = self._command_sink(original, work, incoming, ephemeral=ephemeral)
        return await self._deliver(incoming, sink, tell_via=interaction_fields(work.payload))

    def _command_sink(
        self,
        interaction: discord.Interaction | StoredInteraction,
        work: Work,
        incoming: IncomingMessage,
        *,
        ephemeral: bool,
    ) -> ReplySink:
        """A command's answer: in its deferred response while the token works, then (a very
        slow model outlived its 15 minutes) where the response would have been seen: the
        command's channel, or the asker's DM for a private one."""

        async def without_token() -> ReplySink:
            if ephemeral:
                return ChannelSink(await self._dm(incoming.author.id))
            return ChannelSink(self._channel(incoming.conversation))

        primary = InteractionSink(
            interaction, ephemeral=ephemeral, on_followup=self._followup_recorder(work)
        )
        # Ephemeral messages are not the channel's: only the token could delete them.
        retract = None if ephemeral else self._delete_own_messages
        return OutlivedTokenSink(primary, without_token, retract)

    async def _delete_own_messages(self, messages: list[tuple[int, int]]) -> None:
        """Delete the bot's own messages by (channel, message) with the bot's token (best
        effort: one already gone, or that Discord refuses, is logged and left)."""
        for channel_id, message_id in messages:
            try:
                await self.client.http.delete_message(channel_id, message_id)
            except (discord.HTTPException, OSError, TimeoutError) as exc:
                log.info("discord: could not delete message %s (%s)", message_id, describe(exc))

    async def _confirm_ask(self, work: Work, text: str) -> None:
        """Fill in the deferred private response of the "Ask supportbot" command that claimed
        this work (adapters/discord/ask_message.py), on every attempt: the one that claimed it
        may have died before it did. Not past the token's 15 minutes; best effort."""
        p = work.payload
        asked = p.get(ANSWER_AFTER_KEY)
        if TOKEN_KEY not in p or not asked or not token_valid(str(asked)):
            return
        original = StoredInteraction.from_payload(self.client, p)
        await _best_effort(
            original.edit_original_response(
                content=text, allowed_mentions=discord.AllowedMentions.none()
            )
        )

    def _followup_recorder(self, work: Work) -> Callable[[int], Awaitable[None]]:
        """Records each follow-up of an interaction's answer in the work's payload as soon as
        it is posted (one write per 2000 characters beyond the first)."""
        current = replace(
            work, payload={k: v for k, v in work.payload.items() if k != FOLLOWUPS_KEY}
        )

        async def record(message_id: int) -> None:
            nonlocal current
            ids = [*current.payload.get(FOLLOWUPS_KEY, []), str(message_id)]
            current = await self.inbox.record(current, {**current.payload, FOLLOWUPS_KEY: ids})

        return record

    async def _remove_earlier_followups(
        self, work: Work, original: StoredInteraction | None = None
    ) -> None:
        """Delete the follow-ups an earlier attempt at this interaction's answer posted: the
        answer is posted again whole (best effort; the original response is edited anyway).
        The recorded ones, and those it never learned the id of (Discord made the message but
        the response was lost: a follow-up has no nonce), found in the channel."""
        if TOKEN_KEY not in work.payload:
            return
        ids = {int(i) for i in work.payload.get(FOLLOWUPS_KEY) or []}
        ids |= await self._unrecorded_followups(work)
        webhook = (original or StoredInteraction.from_payload(self.client, work.payload)).followup
        for message_id in sorted(ids):
            await _best_effort(webhook.delete_message(message_id))

    async def _unrecorded_followups(self, work: Work) -> set[int]:
        """The follow-ups of this command's interaction in its channel (the bot's messages
        after it whose interaction metadata names it and its original response). Ephemeral
        ones are not in the channel's history: those cannot be found."""
        p = work.payload
        if work.kind != "interaction" or p.get("ephemeral") or "msg" not in p:
            return set()
        if not work.key.isdigit():
            return set()
        interaction_id = int(work.key)
        bot = self.client.user
        channel = self._channel(message_from_record(p["msg"]).conversation)
        found: set[int] = set()
        try:
            async for message in channel.history(after=discord.Object(interaction_id), limit=50):
                made_by = message.interaction_metadata
                if (
                    bot is not None
                    and message.author.id == bot.id
                    and made_by is not None
                    and made_by.id == interaction_id
                    and made_by.original_response_message_id is not None
                ):
                    found.add(message.id)
        except (discord.HTTPException, OSError, TimeoutError) as exc:
            log.info("discord: could not look for follow-ups of %s: %s", work.key, exc)
        return found

    async def _retract(self, work: Work) -> None:
        """The inbox's give-up hook: before the asker is told this will not be answered,
        remove what the failing attempt posted, as a next attempt would (best effort)."""
        if work.kind == "interaction":
            await self._remove_earlier_followups(work)
            return
        if work.kind != "message" or not work.payload.get("msg"):
            return
        incoming = message_from_record(work.payload["msg"])
        await self._remove_earlier_attempt(work, self._channel(incoming.conversation))

    async def _forget_deleted(self, work: Work) -> None:
        """A deleted question is forgotten and the bot's answers to it are deleted: what each
        answer recorded posting and what the channel shows it posted (a one-piece answer is
        not recorded), as ``channel/message`` ids."""

        async def posted_by(answer: Work) -> list[str]:
            if answer.kind != "message" or not answer.payload.get("msg"):
                return []
            channel = self._channel(message_from_record(answer.payload["msg"]).conversation)
            private = [str(where) for where in answer.payload.get(PRIVATE_POSTS_KEY) or []]
            return [f"{channel.id}/{m}" for m in await self._posts_of(answer, channel)] + private

        async def remove(where: str) -> None:
            with contextlib.suppress(discord.NotFound):  # gone already (a moderator, a retry)
                await self._message_at(where).delete()

        await run_deletion(work, self.inbox, self.responder, posted_by=posted_by, remove=remove)

    async def _remove_earlier_attempt(
        self, work: Work, channel: discord.PartialMessageable
    ) -> None:
        """A process died while answering this: remove what it posted before answering again."""
        for message_id in sorted(await self._posts_of(work, channel)):
            await _best_effort(channel.get_partial_message(message_id).delete())
        for where in work.payload.get(PRIVATE_POSTS_KEY) or []:
            await _best_effort(self._message_at(where).delete())

    def _message_at(self, where: str) -> discord.PartialMessage:
        """The message of a ``channel/message`` id."""
        channel_id, message_id = (int(part) for part in where.split("/"))
        return self.client.get_partial_messageable(channel_id).get_partial_message(message_id)

    async def _posts_of(self, work: Work, channel: discord.PartialMessageable) -> set[int]:
        """What an answer's work posted: the messages it recorded, and our messages after the
        question that reply to it (or sit unreplied in the thread it started), which a crash
        between a post and its record, or a one-piece answer, leaves unrecorded."""
        question = int(work.payload["message_id"])
        # Ours after the question, or after it was asked about (an older message's thread).
        after = int(work.payload.get(ANSWER_AFTER_KEY) or question)
        stale = {int(work.payload[PARTIAL_KEY])} if work.payload.get(PARTIAL_KEY) else set()
        stale.update(int(i) for i in work.payload.get(MORE_POSTS_KEY) or [])
        me = self.client.user.id if self.client.user else None
        try:
            async for message in channel.history(after=discord.Object(after), limit=50):
                replied_to = message.reference.message_id if message.reference else None
                own_thread = channel.id == question and replied_to is None
                if message.author.id == me and (replied_to == question or own_thread):
                    stale.add(message.id)
        except Exception as exc:  # best effort: answering matters more than the cleanup
            log.info("discord: could not look for an earlier answer (%s)", describe(exc))
        return stale

    def _channel(self, conversation: ConversationKey) -> discord.PartialMessageable:
        guild_id = int(conversation.workspace_id or 0) or None
        return self.client.get_partial_messageable(int(conversation.channel_id), guild_id=guild_id)

    async def _open_thread(self, work: Work) -> Work:
        """Start the thread a channel mention is answered in. The claim recorded the thread's
        conversation (its id is the question's), so a process that recovers this work answers
        in the thread, under the thread's session; the payload is written again only when the
        answer goes elsewhere: in place when no thread can be started, or a thread with another
        id (and for rows claimed before the conversation was recorded with the claim)."""
        payload = work.payload
        incoming = message_from_record(payload["msg"])
        guild_id = incoming.conversation.workspace_id
        channel_id = str(payload["question_channel"])
        try:
            # The route itself, not PartialMessage.create_thread: that one refuses a message of
            # a guild discord.py has not cached, and only the new thread's id is needed.
            thread = await self.client.http.start_thread_with_message(
                channel_id,
                payload["message_id"],
                name=_thread_name(incoming.text),
                auto_archive_duration=1440,
            )
            key = convert.thread_conversation(guild_id=guild_id, thread_id=str(thread["id"]))
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_CREATED:  # an earlier attempt made it; same id
                key = convert.thread_conversation(
                    guild_id=guild_id, thread_id=str(payload["message_id"])
                )
            else:
                # No permission, a channel type without threads, ...: answer in place instead.
                log.info(
                    "discord: cannot start a thread in %s (%s); answering in place",
                    channel_id,
                    describe(exc),
                )
                key = convert.conversation_for(
                    guild_id=guild_id, channel_id=channel_id, kind=ChannelKind.CHANNEL
                )
        if key == incoming.conversation:
            return replace(work, payload={**payload, "new_thread": False})
        # In a thread the channel's settings apply through its parent; answered in place, the
        # conversation is the channel itself.
        parent = channel_id if key.channel_id != channel_id else None
        incoming = replace(incoming, conversation=key, parent_channel_id=parent)
        changed = {
            **payload,
            "msg": message_to_record(incoming),
            SESSION_KEY: key.session_id,
            "new_thread": False,
        }
        return await self.inbox.record(work, changed)

    async def _tell(self, work: Work, text: str) -> None:
        """A short note to the asker where the answer would have gone."""
        if work.kind == NOTICE_KIND:
            if await escalation.notice_given_up(self.db, work):
                await self._tell_notice_failed(work.payload)
            return
        if work.kind == "interaction" and TOKEN_KEY in work.payload:
            original = StoredInteraction.from_payload(self.client, work.payload)
            await original.edit_original_response(
                content=text, embeds=[], view=None, allowed_mentions=discord.AllowedMentions.none()
            )
            return
        record = work.payload.get("msg")
        if work.kind != "message" or not record:
            log.warning("discord: cannot tell the asker of %s (%s work)", work.key, work.kind)
            return
        await self._confirm_ask(work, text)  # an invoker waiting on "thinking..." is told too
        incoming = message_from_record(record)
        if work.payload.get(PRIVATE_KEY):
            # The answer was to be the asker's alone: so is its failure (their DM), never the
            # channel's. The command's own private response was told above already.
            if not answers_in_response(work.payload):
                await self._tell_by_dm(incoming.author.id, text)
            return
        conversation = incoming.conversation
        try:
            await self._channel(conversation).send(
                text, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.NotFound:
            question_channel = str(work.payload.get("question_channel") or "")
            if not question_channel or question_channel == conversation.channel_id:
                raise
            # The thread the answer was to open was never made: say it under the question.
            question = self.client.get_partial_messageable(
                int(question_channel), guild_id=int(conversation.workspace_id or 0) or None
            ).get_partial_message(int(work.payload["message_id"]))
            await question.channel.send(
                text,
                reference=question.to_reference(fail_if_not_exists=False),
                mention_author=False,
                allowed_mentions=discord.AllowedMentions.none(),
            )

    async def _dm(self, user_id: str) -> discord.DMChannel:
        """The DM channel with ``user_id`` (opened, or the cached one)."""
        return await self.client.create_dm(discord.Object(int(user_id)))

    async def _tell_by_dm(self, user_id: str, text: str) -> None:
        """A note to ``user_id`` alone; when they take no DMs (50007), nobody is told."""
        try:
            dm = await self._dm(user_id)
            await dm.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden as exc:
            if exc.code != CANNOT_MESSAGE_USER:
                raise
            log.info("discord: %s takes no DMs; a private note was not sent", user_id)

    async def _tell_notice_failed(self, payload: dict[str, Any]) -> None:
        """The team's notice could not be posted: the asker must not wait for a human in vain.
        Privately through the asking interaction when there was one, else where they asked."""
        text = texts.ESCALATION_NOTICE_FAILED
        none = discord.AllowedMentions.none()
        if TOKEN_KEY in payload:
            webhook = StoredInteraction.from_payload(self.client, payload).followup
            await webhook.send(text, ephemeral=True, allowed_mentions=none)
            return
        guild_id = int(payload.get("guild_id") or 0) or None
        channel = self.client.get_partial_messageable(int(payload["asked_in"]), guild_id=guild_id)
        await channel.send(text, allowed_mentions=none)

    async def _announce(self, request: NoticeRequest) -> None:
        """Hand the team's notice to the inbox (once per escalation, tried again through a
        passing fault) and wait for its first try, so the notice goes out before the reply."""
        found = await self.escalations.notice_work(request)
        if found is not None:
            await escalation.submit_notice(self.inbox, *found, self._deliver_work)

    async def _deliver(
        self,
        incoming: IncomingMessage,
        sink: ReplySink,
        *,
        typing_channel: discord.abc.Messageable | None = None,
        tell_via: dict[str, str] | None = None,
        private: PostRecorder | None = None,
    ) -> Reply | None:
        """Stream the answer into ``sink``: typing while retrieving, edits at most ~1/s.
        ``tell_via``: the interaction's webhook fields when answering one. ``private`` (what
        records the answer's posts): a channel message whose answer is the asker's alone:
        nothing is shown before the final reply, which goes to their DM when the core made it
        ephemeral (_send_privately).

        During a burst that makes the process CPU-bound (bot.looplag.shed_progress), only the
        answer is posted: no typing call, no partial post, no edits."""
        busy = self._cpu_bound
        # Typing is how a slow answer shows progress here: the core decides when an answer is
        # slow (bot/progress.py, SUPPORTBOT_PROGRESS_AFTER) and yields SLOW then.
        typing = Typing(typing_channel)
        text = ""
        final: Reply | None = None
        # The first partial post waits first_post_delay; later edits come every stream_interval.
        next_push = time.monotonic() + self.first_post_delay
        progress = (lambda: not busy()) if typing_channel is not None else None
        answer = self.responder.stream(incoming, hand_back_storage_faults=True, progress=progress)
        try:
            # Closed at once when showing it fails (the work lost its row, say): what the
            # answer stores when cut short is stored before the inbox takes back what it did.
            async with contextlib.aclosing(answer):
                async for item in answer:
                    if isinstance(item, Reply):
                        final = item
                        continue
                    if isinstance(item, Slow):
                        await typing.start()
                        continue
                    text += item
                    if private is not None:
                        continue  # shown whole, where the final reply goes
                    if text.strip() and time.monotonic() >= next_push and not busy():
                        await typing.stop()
                        await sink.show(
                            [render.MessagePayload(c) for c in render.render_progress(text)]
                        )
                        next_push = time.monotonic() + self.stream_interval
        finally:
            await typing.stop()
        if final is not None and not final.silent:
            if private is not None and final.ephemeral:
                await self._send_privately(incoming, final, sink, private)
            else:
                await sink.show(render.render_reply(final), final=True)
            if final.escalation_id:  # the agent handed off by itself: tell the team too
                await self._announce(
                    NoticeRequest(
                        incoming.conversation,
                        incoming.author.id,
                        final.escalation_id,
                        request_id=incoming.id,
                        parent_channel_id=incoming.parent_channel_id,
                        tell_via=tell_via,
                    )
                )
        return final

    async def _send_privately(
        self, incoming: IncomingMessage, final: Reply, sink: ReplySink, posts: PostRecorder
    ) -> None:
        """Discord has no private reply to a channel message: the answer (with its buttons)
        goes to the asker's DM and the channel gets one line saying so. When Discord refuses
        the DM (50007: the asker's privacy settings), the line points to ``/ask`` instead;
        the answer is never shown in the channel. Each DM message is recorded as it is sent:
        an attempt that fails after it (on the line, say) is followed by one that removes it
        before sending the answer again."""
        note = texts.DISCORD_ANSWER_SENT_PRIVATELY
        try:
            dm = await self._dm(incoming.author.id)
            answer = ChannelSink(dm, on_post=posts.private_post(dm.id), record_whole=True)
            await answer.show(render.render_reply(final), final=True)
        except discord.Forbidden as exc:
            if exc.code != CANNOT_MESSAGE_USER:
                raise
            log.info("discord: %s takes no DMs; pointed to /ask instead", incoming.author.id)
            note = texts.DISCORD_PRIVATE_ANSWER_NEEDS_ASK
        await sink.show([render.MessagePayload(note)], final=True)

    def _cpu_bound(self) -> bool:
        return shed_progress(self.runtime.loop_lag, self.inbox.in_flight)

    # --- interactions -------------------------------------------------------------------------

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if is_ask(interaction):  # "Ask supportbot" in a message's menu (ask_message.py)
            await self.ask_message.handle(interaction)
        elif interaction.type is discord.InteractionType.application_command:
            await self._on_command(interaction)
        elif interaction.type is discord.InteractionType.component:
            custom_id = str((interaction.data or {}).get("custom_id", ""))
            if render.parse_custom_id(custom_id) is None:
                # Not one of ours (or from an older version): say so instead of "failed".
                log.warning("discord: unknown component custom_id %r", custom_id[:100])
                await respond_ephemeral(interaction, texts.DISCORD_INVALID_BUTTON)

    async def _on_command(self, interaction: discord.Interaction) -> None:
        payload = interaction_payload(interaction)
        incoming = convert.interaction_to_incoming(payload)
        command = slash.find_command(incoming.command if incoming else None)
        if incoming is None or command is None:
            log.warning("discord: unknown or malformed command interaction %s", interaction.id)
            await respond_ephemeral(interaction, texts.DISCORD_UNKNOWN_COMMAND)
            return
        options = convert.command_options(payload.get("data") or {})
        ephemeral = (
            bool(options.get(render.EPHEMERAL_OPTION))
            or command is not slash.ASK
            or self.responder.replies_with_a_note(incoming)  # usage, settings, ...
            or await self.responder.answers_privately(incoming)  # the channel's setting
        )
        # Ack first: Discord gives 3 s; the answer follows within 15 min.
        if not await defer(interaction, ephemeral=ephemeral):
            return

        async def answer(work: Work) -> None:
            sink = self._command_sink(interaction, work, incoming, ephemeral=ephemeral)
            await self._deliver(incoming, sink, tell_via=interaction_webhook(interaction))

        command_record = {
            "msg": message_to_record(incoming, max_text=self.runtime.settings.max_question_chars),
            SESSION_KEY: incoming.conversation.session_id,
            "ephemeral": ephemeral,
        }
        await self._submit_interaction(interaction, answer, command_record)

    async def _submit_interaction(
        self,
        interaction: discord.Interaction,
        answer: Deliver,
        command_record: dict[str, Any] | None = None,
    ) -> None:
        """Claim a deferred interaction and answer it here through the live interaction. The
        claim keeps its webhook token (valid 15 minutes), so if this process dies or a passing
        fault stops the answer, another attempt fills in the same "thinking..." response: a
        command (``command_record``: the question) is answered again, a button click is told
        to try again (what it did may be half done). Failures are told by the inbox (_tell)."""
        payload = {
            "kind": "interaction",
            **interaction_webhook(interaction),
            **(command_record or {}),
        }

        async def run(work: Work) -> None:
            try:
                await answer(work)
            except Exception as exc:
                if command_record is not None:
                    _raise_try_later_if_transient(exc)
                raise

        await self.inbox.submit(str(interaction.id), payload, run=run)

    async def on_button(self, interaction: discord.Interaction, custom_id: str) -> None:
        parsed = render.parse_custom_id(custom_id)
        if parsed is None:
            await respond_ephemeral(interaction, texts.DISCORD_INVALID_BUTTON)
            return
        try:
            await self._on_button(interaction, parsed)
        except Exception as exc:  # the button callback path has no other handler
            await self.on_error("button", interaction, exc=exc)

    async def _on_button(
        self, interaction: discord.Interaction, parsed: render.ParsedButton
    ) -> None:
        private = parsed.action is not render.ButtonAction.ESCALATE
        if not await defer(interaction, ephemeral=private):
            return

        async def answer(work: Work) -> None:
            await self._answer_button(interaction, parsed, private, work)

        await self._submit_interaction(interaction, answer)

    async def _answer_button(
        self,
        interaction: discord.Interaction,
        parsed: render.ParsedButton,
        private: bool,
        work: Work,
    ) -> None:
        user_id = str(interaction.user.id)
        if parsed.action in (render.ButtonAction.HELPFUL, render.ButtonAction.UNHELPFUL):
            memory = await memories.get_memory(self.db, memory_id=parsed.target_id)
            if memory is None:
                reply = Reply(texts.FEEDBACK_UNKNOWN_ANSWER, ephemeral=True)
            else:
                reply = await self.responder.feedback(
                    memory_id=parsed.target_id,
                    session_id=memory.session_id,
                    user_id=user_id,
                    helpful=parsed.action is render.ButtonAction.HELPFUL,
                )
        elif parsed.action is render.ButtonAction.ESCALATE:
            record = escalation_recovery.recorder(self.inbox, work)
            reply, extra = await self._request_human(
                work,
                record,
                interaction_conversation(interaction),
                user_id,
                parent_id=interaction_parent_id(interaction),
                tell_via=interaction_webhook(interaction),
            )
            await self._show_hand_off_reply(interaction, record, reply, extra)
            return
        else:
            reply = await self._resolve(
                work,
                parsed.target_id,
                user_id,
                is_team_member=lambda _row: self.escalations.in_team(interaction),
                guild_id=interaction.guild_id,
            )
        await InteractionSink(interaction, ephemeral=private).show(_with_buttons(reply))

    async def _request_human(
        self,
        work: Work,
        record: escalation_recovery.Record,
        conversation: ConversationKey,
        user_id: str,
        *,
        parent_id: str | None,
        tell_via: dict[str, str] | None,
    ) -> tuple[Reply, tuple[render.ButtonSpec, ...]]:
        """Open the hand-off for a "Talk to a human" click (the core records it in the click's
        work with ``record``), have the team told and the forum post tagged. Returns the reply
        and the buttons it carries ("Mark resolved"). The reply is ephemeral unless this click
        opened the hand-off (now, or in an attempt a crash cut short): "already open" (another
        click, a double click, the agent) and errors are the clicker's alone, as on Slack."""
        request = await escalation_recovery.request_human(
            self.responder,
            work.payload,
            conversation,
            user_id,
            record,
            in_place=not convert.is_private_conversation(conversation),
            **{PARENT_KEY: parent_id},
        )
        escalation_id = request.escalation_id
        reply = request.reply if request.opened else replace(request.reply, ephemeral=True)
        if not escalation_id:
            return reply, ()
        await self._announce(
            NoticeRequest(
                conversation,
                user_id,
                escalation_id,
                request_id=work.key,
                parent_channel_id=parent_id,
                tell_via=tell_via,
            )
        )
        # A forum post is a thread; it is tagged once, by the click that opened its hand-off
        # (a moderator may have changed the tags since).
        if conversation.thread_id and request.opened:
            await self.forum.mark(conversation.thread_id, "needs_human", parent_id=parent_id)
        return reply, (render.resolve_button(escalation_id),)

    async def _show_hand_off_reply(
        self,
        interaction: discord.Interaction | StoredInteraction,
        record: escalation_recovery.Record,
        reply: Reply,
        extra: tuple[render.ButtonSpec, ...],
        *,
        resumed: Work | None = None,
    ) -> None:
        """A "Talk to a human" click's reply, in its public deferred response when the click
        opened the hand-off. Otherwise it is the clicker's alone: the public "thinking" response
        is deleted and the reply sent as an ephemeral follow-up, recorded in the click's work so
        that a later attempt (``resumed``) deletes it before sending its own."""
        payloads = _with_buttons(reply, extra)
        if not reply.ephemeral:
            await InteractionSink(interaction, ephemeral=False).show(payloads)
            return
        if resumed is not None:
            original = interaction if isinstance(interaction, StoredInteraction) else None
            await self._remove_earlier_followups(resumed, original)
        sink = InteractionSink(interaction, ephemeral=True, on_followup=_followups_in(record))
        await sink.withdraw_original()
        await sink.show(payloads)

    async def _resolve(
        self,
        work: Work,
        escalation_id: int,
        user_id: str,
        *,
        is_team_member: Callable[[Escalation], Awaitable[bool]],
        guild_id: int | None,
    ) -> Reply:
        """A "Mark resolved" click: the core checks, records it in the click's work, closes the
        hand-off and learns the team's answer; the notice and the forum post are updated when
        the click closed it (one on a closed hand-off only tells its clicker, as on Slack)."""

        async def link(row: Escalation) -> str | None:
            return thread_link(guild_id, row)

        outcome = await escalation_recovery.resolve(
            self.responder,
            self.escalations.policy,
            work.payload,
            escalation_id,
            user_id,
            record=escalation_recovery.recorder(self.inbox, work),
            is_team_member=is_team_member,
            read_thread=thread_reader(self.client),
            thread_link=link,
            **{GUILD_KEY: guild_id},
        )
        if outcome.closed:
            await self.escalations.mark_notice_resolved(self.client, escalation_id)
            await self._mark_solved(escalation_id)
        return outcome.reply

    async def _resume_hand_off_click(self, work: Work) -> bool:
        """A hand-off click a crash cut short (its lease ran out) after it changed the hand-off:
        finished and answered through the stored token, instead of telling the clicker to try
        again (a second click would find the hand-off already open, or not open: the
        conversation never offered "Mark resolved", or no draft was learned). False when the
        work recorded no such click."""
        p = work.payload
        answerable = TOKEN_KEY in p and token_valid(work.key)
        original = StoredInteraction.from_payload(self.client, p) if answerable else None
        if (resolving := escalation_recovery.recorded_resolve(p)) is not None:
            reply = await self._resolve(
                work,
                resolving.escalation_id,
                resolving.resolved_by or "",
                is_team_member=_checked_already,
                guild_id=int(p.get(GUILD_KEY) or 0) or None,
            )
            if original is not None:
                await InteractionSink(original, ephemeral=True).show(_with_buttons(reply))
            return True
        if (request := escalation_recovery.recorded_request(p)) is not None:
            record = escalation_recovery.recorder(self.inbox, work)
            reply, extra = await self._request_human(
                work,
                record,
                request.conversation,
                request.requested_by,
                parent_id=p.get(PARENT_KEY),
                tell_via=interaction_fields(p) if TOKEN_KEY in p else None,
            )
            if original is not None:
                await self._show_hand_off_reply(original, record, reply, extra, resumed=work)
            return True
        return False

    async def _mark_solved(self, escalation_id: int) -> None:
        row = await escalation.get(self.db, escalation_id)
        # A forum post is a thread; its channel is not recorded, so an uncached one is fetched.
        if row is not None and row.status == "resolved" and row.thread_id:
            await self.forum.mark(row.thread_id, "solved", resolving=True)

    # --- errors -------------------------------------------------------------------------------

    async def on_error(self, where: str, *args: Any, exc: BaseException | None = None) -> None:
        """The one error handler: log for the operator, a short apology for the user."""
        log.error("discord: error in %s", where, exc_info=exc or True)
        target = args[0] if args else None
        try:
            if isinstance(target, discord.Message) and self._addressed(target):
                if await self._answered_privately(target):
                    await self._tell_by_dm(str(target.author.id), texts.ERROR_GENERIC)
                else:
                    await target.channel.send(
                        texts.ERROR_GENERIC, allowed_mentions=discord.AllowedMentions.none()
                    )
            elif isinstance(target, discord.Interaction):
                await respond_ephemeral(target, texts.ERROR_GENERIC)
        except Exception:  # the apology itself failed (network, permissions): logged only
            log.warning("discord: could not send the apology for %s", where, exc_info=True)

    async def _answered_privately(self, message: discord.Message) -> bool:
        """Whether the core makes answers to ``message`` its author's alone (the channel's
        setting): then an apology for it is theirs alone too."""
        bot_user = self.client.user
        if bot_user is None or guild_id_of(message) is None:
            return False  # a DM is private already
        incoming = convert.message_to_incoming(
            message_payload(message),
            bot_user_id=str(bot_user.id),
            context=channel_context(message.channel, message.guild),
        )
        return incoming is not None and await self.responder.answers_privately(incoming)

    def _addressed(self, message: discord.Message) -> bool:
        """Said to the bot (a DM or a mention): only then is an apology for it not noise in
        other people's conversation."""
        me = self.client.user
        if message.author.bot or me is None:
            return False
        direct = guild_id_of(message) is None
        return direct or any(user.id == me.id for user in message.mentions)

    # --- recovery of acked-but-unanswered messages --------------------------------------------

    async def recover_unanswered(self) -> int:
        """One recovery pass now (tests): messages a crashed process claimed but never answered."""
        return await self.inbox.drain()


# --- helpers ----------------------------------------------------------------------------------


def _with_buttons(
    reply: Reply, extra: tuple[render.ButtonSpec, ...] = ()
) -> list[render.MessagePayload]:
    """The reply's messages, ``extra`` buttons on the last one."""
    payloads = render.render_reply(reply)
    if extra:
        last = payloads[-1]
        payloads[-1] = render.MessagePayload(last.content, last.embeds, last.buttons + extra)
    return payloads


def _followups_in(record: escalation_recovery.Record) -> Callable[[int], Awaitable[None]]:
    """Records each follow-up of a click's reply (``FOLLOWUPS_KEY``) through the click's own
    ``record``, which also holds what the click found (a second writer would overwrite it)."""
    ids: list[str] = []

    async def on_followup(message_id: int) -> None:
        ids.append(str(message_id))
        await record({FOLLOWUPS_KEY: list(ids)})

    return on_followup


async def _checked_already(_row: Escalation) -> bool:
    """Never asked: a later attempt of a resolve recorded it only after its checks passed."""
    return False


class PostRecorder:
    """Records each message of a channel answer in its work's payload as soon as it is posted
    (one write per piece; an answer posted whole in one piece records nothing), and each
    message of a private answer sent to the asker's DM; one payload for both."""

    def __init__(self, inbox: Inbox, work: Work) -> None:
        self.inbox = inbox
        earlier = (PARTIAL_KEY, MORE_POSTS_KEY, PRIVATE_POSTS_KEY)  # _remove_earlier_attempt
        self.current = replace(
            work, payload={k: v for k, v in work.payload.items() if k not in earlier}
        )

    async def channel_post(self, message_id: int) -> None:
        p = self.current.payload
        if PARTIAL_KEY not in p:
            await self._save({**p, PARTIAL_KEY: str(message_id)})
        else:
            await self._save({**p, MORE_POSTS_KEY: [*p.get(MORE_POSTS_KEY, []), str(message_id)]})

    def private_post(self, channel_id: int) -> Callable[[int], Awaitable[None]]:
        async def record(message_id: int) -> None:
            p = self.current.payload
            posted = [*p.get(PRIVATE_POSTS_KEY, []), f"{channel_id}/{message_id}"]
            await self._save({**p, PRIVATE_POSTS_KEY: posted})

        return record

    async def _save(self, payload: dict[str, Any]) -> None:
        self.current = await self.inbox.record(self.current, payload)


def _raise_try_later_if_transient(exc: BaseException) -> None:
    """A passing fault of the connection to Discord is not the asker's: the inbox tries the
    work again later instead of apologising."""
    if is_transient(exc):
        raise TryLater(f"{describe(exc)}: {exc}") from exc


def interaction_fields(payload: dict[str, Any]) -> dict[str, str]:
    """The webhook fields of stored interaction work (see delivery.interaction_webhook)."""
    return {
        APPLICATION_ID_KEY: str(payload[APPLICATION_ID_KEY]),
        TOKEN_KEY: str(payload[TOKEN_KEY]),
    }


async def _best_effort(call: Any) -> None:
    """Cleanup calls must never cost the user their answer."""
    try:
        await call
    except (discord.HTTPException, *TRANSIENT_ERRORS) as exc:
        log.info("discord: optional call failed (%s)", describe(exc))


def _thread_name(text: str) -> str:
    name = " ".join(text.split()) or texts.DISCORD_THREAD_NAME_FALLBACK
    return name if len(name) <= THREAD_NAME_LIMIT else name[: THREAD_NAME_LIMIT - 1] + "…"
