"""discord.py wiring: gateway events and interactions in, rendered replies out.

Thin on purpose: ``convert`` turns payloads into ``IncomingMessage``s (``shapes`` gives it the
payloads of discord.py objects), the core's ``Responder`` answers, ``render`` shapes the reply and
``delivery`` puts it on Discord; this module only decides *whether* to answer, *where* (a new
thread, the thread, the DM, in place) and streams the answer there. ``process`` runs it.

discord.py facts this relies on (DESIGN.md section 7): ``Route.BASE`` is the REST base URL; the
gateway URL is whatever ``GET /gateway/bot`` returns (a client with a fixed shard count dials
``DiscordWebSocket.DEFAULT_GATEWAY``, so it is set from that answer); interactions are deferred
before any slow work; persistent buttons are one ``DynamicItem`` whose custom ids carry ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import replace
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl

from adapters.discord import convert, render
from adapters.discord.convert import ChannelContext, ChannelKind
from adapters.discord.delivery import (
    ChannelSink,
    InteractionSink,
    PersistentButton,
    ReplySink,
    Typing,
    describe,
    respond_ephemeral,
)
from adapters.discord.forum import ForumWorkflow
from adapters.discord.shapes import (
    channel_context,
    incoming_from_ledger,
    interaction_conversation,
    interaction_payload,
    ledger_payload,
    message_payload,
)
from adapters.discord.thread_history import thread_reader
from bot import metrics, slash, texts
from bot.messages import ConversationKey, IncomingMessage, Reply
from bot.runtime import Runtime
from storage import escalations, events, memories

log = logging.getLogger(__name__)

PLATFORM = "discord"
STREAM_EDIT_INTERVAL = 1.0  # seconds between edits of a streamed answer (Discord: ~5 edits/5 s)
# An answer complete within this long is posted once, whole: no partial post, no edit, no
# typing call. Slower answers show typing, then text that grows with edits.
FIRST_POST_DELAY = 0.5
MAX_CONCURRENT_ANSWERS = 64  # beyond this, messages wait their turn instead of piling on the DB
THREAD_NAME_LIMIT = 100
RECOVERY_INTERVAL = 60.0  # how often to look for answers a crashed process left unfinished


def use_api_url(api_url: str | None) -> None:
    """Point every REST call (client and webhooks) at ``api_url`` (``DISCORD_API_URL``)."""
    if api_url:
        discord.http.Route.BASE = api_url.rstrip("/")


def intents_for(message_content: bool) -> discord.Intents:
    """Only what the bot needs. Mentions, DMs and slash commands work without message content."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


class SupportClient(discord.AutoShardedClient):
    """The discord.py client; every event is handed to the adapter."""

    def __init__(
        self, adapter: DiscordAdapter, *, identify_spacing: float = 5.0, **options: Any
    ) -> None:
        super().__init__(**options)
        self.adapter = adapter
        # Discord allows one IDENTIFY per 5 s per bucket (max_concurrency 1); loopback fakes don't.
        self.identify_spacing = identify_spacing

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(self.identify_spacing)

    async def setup_hook(self) -> None:
        await self.adapter.setup(self)

    async def on_ready(self) -> None:
        log.info("discord: ready as %s in %d guild(s)", self.user, len(self.guilds))
        self.adapter.start_recovery()

    async def on_resumed(self) -> None:
        log.info("discord: gateway session resumed")

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self.adapter.on_interaction(interaction)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        await self.adapter.on_error(event_method, *args)


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
        self._answer_slots = asyncio.Semaphore(max_concurrent_answers)
        self.message_content = settings.discord_message_content
        self.forum_channels = {
            part.strip() for part in settings.discord_forum_channels.split(",") if part.strip()
        }
        self.escalation_channel = settings.discord_escalation_channel
        self._recovery: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        use_api_url(settings.discord_api_url)
        options: dict[str, Any] = {
            "intents": intents_for(self.message_content),
            "allowed_mentions": discord.AllowedMentions.none(),
            "max_messages": None,  # the bot never needs its message cache
            "member_cache_flags": discord.MemberCacheFlags.none(),
            "chunk_guilds_at_startup": False,
            "shard_count": settings.discord_shard_count,  # None: as many as Discord says
        }
        options.update(client_options or {})
        self.client = SupportClient(self, **options)
        self.forum = ForumWorkflow(self.client, runtime.responder.channels)

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self, client: SupportClient) -> None:
        """Start-up work (runs once, before the gateway connects; never in on_ready)."""
        _shards, url, _limits = await client.http.get_bot_gateway()
        # A fixed shard count (and a plain Client) dials DEFAULT_GATEWAY, not this answer.
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        client.add_dynamic_items(PersistentButton)
        _guard_parsers(client)
        if not self.message_content:
            log.info(
                "discord: message content intent is off; the bot answers mentions, DMs and slash "
                "commands, but cannot read forum posts or thread follow-ups that do not mention "
                "it. Set SUPPORTBOT_DISCORD_MESSAGE_CONTENT=true (and enable the intent in the "
                "developer portal) to answer those too."
            )
        if self.sync_commands:
            await sync_application_commands(client, guild_id=self.sync_guild_id)

    async def start(self, token: str) -> None:
        await self.client.start(token)

    async def close(self) -> None:
        self._closing.set()
        if self._recovery is not None:
            # Let a recovery pass finish its database work rather than cancel it mid-query.
            try:
                await asyncio.wait_for(asyncio.shield(self._recovery), 5)
            except (TimeoutError, asyncio.CancelledError):
                self._recovery.cancel()
        await self.client.close()

    def start_recovery(self) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover_loop())

    # --- messages -----------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        bot_user = self.client.user
        if bot_user is None or message.author.bot or message.author.id == bot_user.id:
            return  # the cheap check first: most traffic in a server is not for us
        context = channel_context(message.channel, message.guild)
        incoming = convert.message_to_incoming(
            message_payload(message), bot_user_id=str(bot_user.id), context=context
        )
        if incoming is None:
            if message.content == "" and not message.attachments and message.guild is not None:
                log.debug("discord: message %s has no readable content (intent off?)", message.id)
            return
        target = await self._route(message, incoming, context)
        if target is None:
            return
        async with self._answer_slots:
            await self._answer_message(message, incoming, target)

    async def _answer_message(
        self, message: discord.Message, incoming: IncomingMessage, target: str
    ) -> None:
        if not metrics.event_claimed(
            PLATFORM,
            await events.claim_event(
                self.db,
                platform=PLATFORM,
                event_id=str(message.id),
                payload=ledger_payload(incoming),
            ),
        ):
            log.info("discord: message %s already taken (retry or replica); skipping", message.id)
            return
        try:
            channel, incoming = await self._answer_channel(message, incoming, target)
            sink = ChannelSink(channel, reference=message if channel is message.channel else None)
            final = await self._deliver(incoming, sink, typing_channel=channel)
            if final is not None:
                await self.forum.after_reply(message, final)
        except Exception:
            await self._give_up(str(message.id))
            raise  # to on_error: logged, and the user gets a short apology
        await events.finish_event(self.db, platform=PLATFORM, event_id=str(message.id))

    async def _give_up(self, event_id: str) -> None:
        """Delivery failed: mark the event failed so no later process answers it a second time.
        While shutting down, leave it to its lease instead: the next process answers it."""
        if self._closing.is_set():
            return
        try:
            await events.finish_event(
                self.db, platform=PLATFORM, event_id=event_id, status=events.FAILED
            )
        except Exception:
            log.warning("discord: could not mark event %s failed", event_id, exc_info=True)

    async def _route(
        self, message: discord.Message, incoming: IncomingMessage, context: ChannelContext
    ) -> str | None:
        """Where to answer: "dm", "thread" (known thread), "thread-by-memory" (a thread known
        only from stored memories), "new-thread" (a mention in a channel), or None: not for us."""
        if context.kind is ChannelKind.DM:
            return "dm"
        if context.kind is ChannelKind.THREAD:
            if incoming.mentions_bot or context.parent_id in self.forum_channels:
                return "thread"
            if (await self.responder.channels.policy(
                incoming.conversation, parent_channel_id=context.parent_id
            )).auto_answer:  # fmt: skip
                return "thread"
            if await self._in_thread(incoming.conversation):
                return "thread"
            return None
        # A channel discord.py has not cached may be a thread created since start-up: a thread
        # the bot has answered in has memories under the thread's session id.
        if isinstance(message.channel, discord.PartialMessageable):
            thread_key = convert.thread_conversation(
                guild_id=incoming.conversation.workspace_id, thread_id=str(message.channel.id)
            )
            if await self._in_thread(thread_key):
                return "thread-by-memory"
        return "new-thread" if incoming.mentions_bot else None

    async def _in_thread(self, conversation: ConversationKey) -> bool:
        return await memories.count_memories(self.db, session_id=conversation.session_id) > 0

    async def _answer_channel(
        self, message: discord.Message, incoming: IncomingMessage, target: str
    ) -> tuple[discord.abc.Messageable, IncomingMessage]:
        """The channel to answer in; starts a thread for a mention in a channel when allowed."""
        guild_id = incoming.conversation.workspace_id
        if target == "thread-by-memory":
            key = convert.thread_conversation(guild_id=guild_id, thread_id=str(message.channel.id))
            return message.channel, replace(incoming, conversation=key)
        if target != "new-thread":
            return message.channel, incoming
        try:
            thread = await message.create_thread(
                name=_thread_name(incoming.text), auto_archive_duration=1440
            )
        except (discord.HTTPException, ValueError, TypeError) as exc:
            # No permission, a channel type without threads, ...: answer in place instead.
            log.info(
                "discord: cannot start a thread in %s (%s); answering in place",
                message.channel.id,
                describe(exc),
            )
            return message.channel, incoming
        key = convert.thread_conversation(guild_id=guild_id, thread_id=str(thread.id))
        return thread, replace(incoming, conversation=key)

    async def _deliver(
        self,
        incoming: IncomingMessage,
        sink: ReplySink,
        *,
        typing_channel: discord.abc.Messageable | None = None,
    ) -> Reply | None:
        """Stream the answer into ``sink``: typing while retrieving, edits at most ~1/s."""
        typing = Typing(typing_channel, delay=self.first_post_delay)
        await typing.start()
        text = ""
        final: Reply | None = None
        # The first partial post waits first_post_delay; later edits come every stream_interval.
        next_push = time.monotonic() + self.first_post_delay
        try:
            async for item in self.responder.stream(incoming):
                if isinstance(item, Reply):
                    final = item
                    continue
                text += item
                if text.strip() and time.monotonic() >= next_push:
                    await typing.stop()
                    await sink.show(
                        [render.MessagePayload(c) for c in render.render_progress(text)]
                    )
                    next_push = time.monotonic() + self.stream_interval
        finally:
            await typing.stop()
        if final is not None and not final.silent:
            await sink.show(render.render_reply(final))
        return final

    # --- interactions -------------------------------------------------------------------------

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.application_command:
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
        ephemeral = bool(options.get(render.EPHEMERAL_OPTION)) or command is not slash.ASK
        # Ack first: Discord gives 3 s; the answer follows within 15 min.
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        except discord.HTTPException as exc:
            log.warning(
                "discord: could not defer interaction %s (%s)", interaction.id, describe(exc)
            )
            return
        if not metrics.event_claimed(
            PLATFORM,
            await events.claim_event(
                self.db, platform=PLATFORM, event_id=str(interaction.id), payload=None
            ),
        ):
            return
        sink = InteractionSink(interaction, ephemeral=ephemeral)
        await self._deliver(incoming, sink)
        await events.finish_event(self.db, platform=PLATFORM, event_id=str(interaction.id))

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
        await interaction.response.defer(ephemeral=private, thinking=True)
        if not metrics.event_claimed(
            PLATFORM,
            await events.claim_event(
                self.db, platform=PLATFORM, event_id=str(interaction.id), payload=None
            ),
        ):
            return
        user_id = str(interaction.user.id)
        extra: tuple[render.ButtonSpec, ...] = ()
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
            conversation = interaction_conversation(interaction)
            reply, escalation_id = await self.responder.escalate(
                conversation=conversation, requested_by=user_id
            )
            if escalation_id:
                extra = (render.resolve_button(escalation_id),)
                await self._notify_team(conversation, user_id, escalation_id)
                await self.forum.mark(conversation.channel_id, "needs_human")
        else:
            reply = await self.responder.resolve_escalation(
                escalation_id=parsed.target_id,
                resolved_by=user_id,
                read_thread=thread_reader(self.client),
            )
            await self._mark_solved(parsed.target_id)
        payloads = render.render_reply(reply)
        if extra:
            last = payloads[-1]
            payloads[-1] = render.MessagePayload(last.content, last.embeds, last.buttons + extra)
        await InteractionSink(interaction, ephemeral=private).show(payloads)
        await events.finish_event(self.db, platform=PLATFORM, event_id=str(interaction.id))

    async def _mark_solved(self, escalation_id: int) -> None:
        escalation = await escalations.get_escalation(self.db, escalation_id=escalation_id)
        if escalation is not None and escalation.status == "resolved":
            await self.forum.mark(
                escalation.thread_id or escalation.channel_id, "solved", resolving=True
            )

    async def _notify_team(
        self, conversation: ConversationKey, requested_by: str, escalation_id: int
    ) -> None:
        """Tell the support team in their channel (when configured), with a resolve button."""
        if not self.escalation_channel:
            return
        channel = self.client.get_partial_messageable(int(self.escalation_channel))
        text = texts.escalation_notice(conversation.session_id, f"<@{requested_by}>", None)
        payload = render.MessagePayload(text, buttons=(render.resolve_button(escalation_id),))
        sent = await ChannelSink(channel).show([payload])
        if sent:
            await escalations.set_notice_ref(
                self.db, escalation_id=escalation_id, notice_ref=f"{channel.id}:{sent[0].id}"
            )

    # --- errors -------------------------------------------------------------------------------

    async def on_error(self, where: str, *args: Any, exc: BaseException | None = None) -> None:
        """The one error handler: log for the operator, a short apology for the user."""
        log.error("discord: error in %s", where, exc_info=exc or True)
        target = args[0] if args else None
        try:
            if isinstance(target, discord.Message) and not target.author.bot:
                await target.channel.send(
                    texts.ERROR_GENERIC, allowed_mentions=discord.AllowedMentions.none()
                )
            elif isinstance(target, discord.Interaction):
                await respond_ephemeral(target, texts.ERROR_GENERIC)
        except Exception:  # the apology itself failed (network, permissions): logged only
            log.warning("discord: could not send the apology for %s", where, exc_info=True)

    # --- recovery of acked-but-unanswered messages --------------------------------------------

    async def _recover_loop(self) -> None:
        while not self._closing.is_set():
            try:
                await self.recover_unanswered()
            except Exception:
                log.warning("discord: recovery pass failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), RECOVERY_INTERVAL)

    async def recover_unanswered(self) -> int:
        """Answer messages a crashed process claimed but never answered (lease expired)."""
        count = 0
        for row in await events.take_expired(self.db, platform=PLATFORM):
            incoming = incoming_from_ledger(row.payload)
            if incoming is None:
                await events.finish_event(
                    self.db, platform=PLATFORM, event_id=row.event_id, status=events.IGNORED
                )
                continue
            channel = self.client.get_partial_messageable(
                int(incoming.conversation.channel_id),
                guild_id=int(incoming.conversation.workspace_id or 0) or None,
            )
            await self._deliver(incoming, ChannelSink(channel))
            await events.finish_event(self.db, platform=PLATFORM, event_id=row.event_id)
            count += 1
        return count


# --- helpers ----------------------------------------------------------------------------------


def _guard_parsers(client: discord.Client) -> None:
    """Drop (and log) a gateway event discord.py cannot parse instead of losing the connection.

    discord.py parses events inside its websocket read loop; a malformed payload raising there
    would end the shard's connection. The websocket reads this same dict, so wrapping in place
    is enough.
    """
    parsers = client._connection.parsers

    def guarded(name: str, parse: Any) -> Any:
        @functools.wraps(parse)
        def run(data: Any) -> None:
            try:
                parse(data)
            except Exception as exc:
                log.warning("discord: dropped a malformed %s event (%s)", name, describe(exc))

        return run

    for name, parse in list(parsers.items()):
        parsers[name] = guarded(name, parse)


def _thread_name(text: str) -> str:
    name = " ".join(text.split()) or texts.DISCORD_THREAD_NAME_FALLBACK
    return name if len(name) <= THREAD_NAME_LIMIT else name[: THREAD_NAME_LIMIT - 1] + "…"


async def sync_application_commands(
    client: discord.Client, *, guild_id: int | None = None
) -> list[dict[str, Any]]:
    """Overwrite the application's commands (globally, or in one guild: instant, for testing)."""
    application_id = client.application_id
    if application_id is None:
        application_id = (await client.application_info()).id
    payload = render.application_commands(slash.COMMANDS)
    if guild_id is not None:
        result = await client.http.bulk_upsert_guild_commands(application_id, guild_id, payload)
    else:
        result = await client.http.bulk_upsert_global_commands(application_id, payload)
    log.info(
        "discord: synced %d application command(s) %s",
        len(result),
        f"to guild {guild_id}" if guild_id else "globally",
    )
    return list(result)
