"""discord.py wiring: gateway events and interactions in, rendered replies out.

Thin on purpose: ``convert`` turns payloads into ``IncomingMessage``s, the core's ``Responder``
answers, ``render`` shapes the reply; this module only decides *whether* to answer, *where*
(a new thread, the thread, the DM, in place) and streams the answer there.

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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl

from adapters.discord import convert, render
from adapters.discord.convert import ChannelContext, ChannelKind
from bot import slash, texts
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


class PersistentButton(discord.ui.DynamicItem[discord.ui.Button], template=render.BUTTON_TEMPLATE):
    """Every button the bot sends. Registered once at start-up, so buttons on messages sent by
    an earlier process (or another replica) still work: the custom id carries what is needed."""

    def __init__(self, spec: render.ButtonSpec) -> None:
        super().__init__(
            discord.ui.Button(
                label=spec.label, custom_id=spec.custom_id, style=discord.ButtonStyle(spec.style)
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> PersistentButton:
        style = render.ButtonStyle(item.style.value)
        return cls(render.ButtonSpec(item.label or "", item.custom_id or "", style))

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        if isinstance(client, SupportClient):
            await client.adapter.on_button(interaction, self.custom_id)


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
        context = _channel_context(message.channel, message.guild)
        incoming = convert.message_to_incoming(
            _message_payload(message), bot_user_id=str(bot_user.id), context=context
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
        if not await events.claim_event(
            self.db,
            platform=PLATFORM,
            event_id=str(message.id),
            payload=_ledger_payload(incoming),
        ):
            log.info("discord: message %s already taken (retry or replica); skipping", message.id)
            return
        try:
            channel, incoming = await self._answer_channel(message, incoming, target)
            sink = ChannelSink(channel, reference=message if channel is message.channel else None)
            await self._deliver(incoming, sink, typing_channel=channel)
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
                _describe(exc),
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
        typing = _Typing(typing_channel, delay=self.first_post_delay)
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
        if final is not None:
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
                await _respond_ephemeral(interaction, texts.DISCORD_INVALID_BUTTON)

    async def _on_command(self, interaction: discord.Interaction) -> None:
        payload = _interaction_payload(interaction)
        incoming = convert.interaction_to_incoming(payload)
        command = slash.find_command(incoming.command if incoming else None)
        if incoming is None or command is None:
            log.warning("discord: unknown or malformed command interaction %s", interaction.id)
            await _respond_ephemeral(interaction, texts.DISCORD_UNKNOWN_COMMAND)
            return
        options = convert.command_options(payload.get("data") or {})
        ephemeral = bool(options.get(render.EPHEMERAL_OPTION)) or command is not slash.ASK
        # Ack first: Discord gives 3 s; the answer follows within 15 min.
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        except discord.HTTPException as exc:
            log.warning(
                "discord: could not defer interaction %s (%s)", interaction.id, _describe(exc)
            )
            return
        if not await events.claim_event(
            self.db, platform=PLATFORM, event_id=str(interaction.id), payload=None
        ):
            return
        sink = InteractionSink(interaction, ephemeral=ephemeral)
        await self._deliver(incoming, sink)
        await events.finish_event(self.db, platform=PLATFORM, event_id=str(interaction.id))

    async def on_button(self, interaction: discord.Interaction, custom_id: str) -> None:
        parsed = render.parse_custom_id(custom_id)
        if parsed is None:
            await _respond_ephemeral(interaction, texts.DISCORD_INVALID_BUTTON)
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
        if not await events.claim_event(
            self.db, platform=PLATFORM, event_id=str(interaction.id), payload=None
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
            conversation = _interaction_conversation(interaction)
            reply, escalation_id = await self.responder.escalate(
                conversation=conversation, requested_by=user_id
            )
            if escalation_id:
                extra = (render.resolve_button(escalation_id),)
                await self._notify_team(conversation, user_id, escalation_id)
        else:
            reply = await self.responder.resolve_escalation(
                escalation_id=parsed.target_id, resolved_by=user_id
            )
        payloads = render.render_reply(reply)
        if extra:
            last = payloads[-1]
            payloads[-1] = render.MessagePayload(last.content, last.embeds, last.buttons + extra)
        await InteractionSink(interaction, ephemeral=private).show(payloads)
        await events.finish_event(self.db, platform=PLATFORM, event_id=str(interaction.id))

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
                await _respond_ephemeral(target, texts.ERROR_GENERIC)
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
            incoming = _incoming_from_ledger(row.payload)
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


# --- delivery targets -------------------------------------------------------------------------


class ReplySink:
    """Keeps the messages of one reply in sync with the latest rendered payloads."""

    async def show(self, payloads: Sequence[render.MessagePayload]) -> list[Any]:
        raise NotImplementedError


class ChannelSink(ReplySink):
    def __init__(
        self, channel: discord.abc.Messageable, *, reference: discord.Message | None = None
    ) -> None:
        self.channel = channel
        self.reference = reference
        self.sent: list[discord.Message] = []
        self.shown: list[render.MessagePayload] = []

    async def show(self, payloads: Sequence[render.MessagePayload]) -> list[Any]:
        for index, payload in enumerate(payloads):
            if index < len(self.sent):
                if self.shown[index] != payload:
                    await self.sent[index].edit(**_edit_kwargs(payload))
                    self.shown[index] = payload
                continue
            reference = self.reference if index == 0 else None
            message = await self.channel.send(
                **_send_kwargs(payload),
                reference=reference,
                mention_author=False if reference else None,
            )
            self.sent.append(message)
            self.shown.append(payload)
        return self.sent


class InteractionSink(ReplySink):
    """The deferred response is the first message; further chunks are follow-ups."""

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.followups: list[discord.WebhookMessage] = []
        self.shown: list[render.MessagePayload] = []

    async def show(self, payloads: Sequence[render.MessagePayload]) -> list[Any]:
        for index, payload in enumerate(payloads):
            if index < len(self.shown) and self.shown[index] == payload:
                continue
            if index == 0:
                await self.interaction.edit_original_response(**_edit_kwargs(payload))
            elif index - 1 < len(self.followups):
                await self.followups[index - 1].edit(**_edit_kwargs(payload))
            else:
                message = await self.interaction.followup.send(
                    **_send_kwargs(payload), ephemeral=self.ephemeral, wait=True
                )
                self.followups.append(message)
            if index < len(self.shown):
                self.shown[index] = payload
            else:
                self.shown.append(payload)
        return self.followups


class _Typing:
    """The typing indicator while the core retrieves. It runs beside the answer (never delays
    it), starts only if the answer takes longer than ``delay``, and a failure only costs the
    indicator."""

    def __init__(self, channel: discord.abc.Messageable | None, *, delay: float = 0.0) -> None:
        self._channel = channel
        self._delay = delay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._channel is not None:
            self._task = asyncio.create_task(self._run(self._channel, self._delay))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @staticmethod
    async def _run(channel: discord.abc.Messageable, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            async with channel.typing():
                await asyncio.Event().wait()  # until stop() cancels
        except discord.HTTPException as exc:
            log.debug("discord: typing indicator failed (%s)", _describe(exc))


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
                log.warning("discord: dropped a malformed %s event (%s)", name, _describe(exc))

        return run

    for name, parse in list(parsers.items()):
        parsers[name] = guarded(name, parse)


def _send_kwargs(payload: render.MessagePayload) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "content": payload.content,
        "allowed_mentions": discord.AllowedMentions.none(),
    }
    if payload.embeds:
        kwargs["embeds"] = [discord.Embed.from_dict(e) for e in payload.embeds]
    if payload.buttons:
        kwargs["view"] = _view(payload.buttons)
    return kwargs


def _edit_kwargs(payload: render.MessagePayload) -> dict[str, Any]:
    return {
        "content": payload.content,
        "embeds": [discord.Embed.from_dict(e) for e in payload.embeds],
        "view": _view(payload.buttons) if payload.buttons else None,
        "allowed_mentions": discord.AllowedMentions.none(),
    }


def _view(buttons: Sequence[render.ButtonSpec]) -> discord.ui.View:
    # Fully dynamic: discord.py keeps no per-message state for it, so memory stays flat.
    view = discord.ui.View(timeout=None)
    for spec in buttons:
        view.add_item(PersistentButton(spec))
    return view


async def _respond_ephemeral(interaction: discord.Interaction, text: str) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
    except discord.HTTPException as exc:
        log.warning("discord: could not answer interaction %s (%s)", interaction.id, _describe(exc))


def _channel_context(channel: Any, guild: discord.Guild | None) -> ChannelContext:
    names: dict[str, str] = {}
    if guild is not None:
        names = {str(r.id): r.name for r in guild.roles}
    if isinstance(channel, discord.DMChannel | discord.GroupChannel) or guild is None:
        return ChannelContext(ChannelKind.DM, names=names)
    if isinstance(channel, discord.Thread):
        parent = str(channel.parent_id) if channel.parent_id else None
        return ChannelContext(ChannelKind.THREAD, parent_id=parent, names=names)
    return ChannelContext(ChannelKind.CHANNEL, names=names)


def _message_payload(message: discord.Message) -> dict[str, Any]:
    """The MESSAGE_CREATE-shaped view of a message that ``convert`` reads."""
    author = message.author
    payload: dict[str, Any] = {
        "id": str(message.id),
        "channel_id": str(message.channel.id),
        "author": {
            "id": str(author.id),
            "username": author.name,
            "global_name": author.global_name,
            "bot": author.bot,
            "member": {"nick": getattr(author, "nick", None)},
        },
        "content": message.content,
        "type": message.type.value,
        "webhook_id": str(message.webhook_id) if message.webhook_id else None,
        "mentions": [
            {"id": str(u.id), "username": u.name, "global_name": u.global_name}
            for u in message.mentions
        ],
        "attachments": [
            {
                "filename": a.filename,
                "url": a.url,
                "content_type": a.content_type or "",
                "size": a.size,
            }
            for a in message.attachments
        ],
        "timestamp": message.created_at.isoformat(),
    }
    if message.guild is not None:
        payload["guild_id"] = str(message.guild.id)
    return payload


def _interaction_payload(interaction: discord.Interaction) -> dict[str, Any]:
    """The INTERACTION_CREATE-shaped view of an interaction that ``convert`` reads."""
    channel = interaction.channel
    channel_type = getattr(getattr(channel, "type", None), "value", None)
    user = interaction.user
    author = {
        "id": str(user.id),
        "username": user.name,
        "global_name": user.global_name,
        "bot": user.bot,
    }
    payload: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type.value,
        "data": dict(interaction.data or {}),
        "channel_id": str(interaction.channel_id) if interaction.channel_id else None,
        "channel": {"id": str(interaction.channel_id), "type": channel_type},
    }
    if interaction.guild_id:
        payload["guild_id"] = str(interaction.guild_id)
        payload["member"] = {"user": author}
    else:
        payload["user"] = author
    return payload


def _interaction_conversation(interaction: discord.Interaction) -> ConversationKey:
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    channel_type = getattr(getattr(interaction.channel, "type", None), "value", None)
    kind = convert.kind_from_channel_type(channel_type, guild_id=guild_id)
    return convert.conversation_for(
        guild_id=guild_id, channel_id=str(interaction.channel_id), kind=kind
    )


def _ledger_payload(incoming: IncomingMessage) -> dict[str, Any]:
    """What a later process needs to answer this message if this one dies first."""
    key = incoming.conversation
    return {
        "id": incoming.id,
        "text": incoming.text,
        "author_id": incoming.author.id,
        "author_name": incoming.author.display_name,
        "workspace_id": key.workspace_id,
        "channel_id": key.channel_id,
        "thread_id": key.thread_id,
        "is_direct": incoming.is_direct,
    }


def _incoming_from_ledger(payload: dict[str, Any] | None) -> IncomingMessage | None:
    if not payload or not payload.get("channel_id") or not payload.get("id"):
        return None
    from bot.messages import Author, Platform

    return IncomingMessage(
        id=str(payload["id"]),
        conversation=ConversationKey(
            Platform.DISCORD,
            str(payload.get("workspace_id") or ""),
            str(payload["channel_id"]),
            payload.get("thread_id"),
        ),
        author=Author(str(payload.get("author_id") or ""), str(payload.get("author_name") or "")),
        text=str(payload.get("text") or ""),
        is_direct=bool(payload.get("is_direct")),
        mentions_bot=True,
    )


def _thread_name(text: str) -> str:
    name = " ".join(text.split()) or texts.DISCORD_THREAD_NAME_FALLBACK
    return name if len(name) <= THREAD_NAME_LIMIT else name[: THREAD_NAME_LIMIT - 1] + "…"


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


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


# --- processes --------------------------------------------------------------------------------

SHUTDOWN_GRACE = 8.0  # seconds in-flight answers get after SIGTERM (the contract allows 10)


async def run_bot(
    settings: Any, *, sync_commands: bool = False, guild_id: int | None = None
) -> None:
    """`supportbot run discord`: serve until SIGTERM/SIGINT, then stop cleanly within 10 s."""
    import signal

    from bot.runtime import build_runtime, ensure_schema

    token = settings.secret("discord_token")
    runtime = await build_runtime(settings)
    try:
        await ensure_schema(runtime.db)
        adapter = DiscordAdapter(runtime, sync_commands=sync_commands, sync_guild_id=guild_id)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runner = asyncio.create_task(adapter.start(token))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("discord: stopping (signal received)")
        stopper.cancel()
        # Unanswered messages keep their ledger lease; the next process answers them.
        try:
            await asyncio.wait_for(adapter.close(), SHUTDOWN_GRACE)
        except TimeoutError:
            log.warning("discord: close timed out; exiting anyway")
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    finally:
        await runtime.aclose()


async def logged_in_client(settings: Any) -> discord.Client:
    """A REST-only client (no gateway) for one-off commands; the caller closes it."""
    use_api_url(settings.discord_api_url)
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(settings.secret("discord_token"))
    except BaseException:
        await client.close()
        raise
    return client


async def application_id_of(settings: Any) -> int:
    """The application id: DISCORD_APPLICATION_ID if set, else asked of the API."""
    import os

    for name in ("DISCORD_APPLICATION_ID", "SUPPORTBOT_DISCORD_APPLICATION_ID"):
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit():
                from bot.errors import ConfigError

                raise ConfigError(f"{name} must be a number (the application id)")
            return int(value)
    client = await logged_in_client(settings)
    try:
        return int(client.application_id or (await client.application_info()).id)
    finally:
        await client.close()


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot with just the permissions it uses."""
    permissions = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        create_public_threads=True,
        embed_links=True,
        read_message_history=True,
    )
    return discord.utils.oauth_url(
        application_id, permissions=permissions, scopes=("bot", "applications.commands")
    )


async def sync_commands_once(settings: Any, *, guild_id: int | None = None) -> int:
    """`supportbot discord sync-commands`: overwrite the commands, return how many."""
    client = await logged_in_client(settings)
    try:
        return len(await sync_application_commands(client, guild_id=guild_id))
    finally:
        await client.close()
