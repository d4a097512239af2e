"""Putting rendered replies on Discord: channel messages and interaction responses kept in
sync with the latest payloads (streaming = showing new payloads), the typing indicator, and the
one persistent button class."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import discord
import discord.webhook.async_
from discord.http import json_or_text

from adapters.discord import render

log = logging.getLogger(__name__)


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
        # The client is app.SupportClient; looked up by attribute to keep modules acyclic.
        adapter = getattr(interaction.client, "adapter", None)
        if adapter is not None:
            await adapter.on_button(interaction, self.custom_id)


class ReplySink:
    """Keeps the messages of one reply in sync with the latest rendered payloads."""

    async def show(
        self, payloads: Sequence[render.MessagePayload], *, final: bool = False
    ) -> list[Any]:
        """``final``: these are the reply's last payloads (nothing is shown after them)."""
        raise NotImplementedError


class ChannelSink(ReplySink):
    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        reference: discord.Message | discord.PartialMessage | None = None,
        on_post: Callable[[int], Awaitable[None]] | None = None,
        record_whole: bool = False,
    ) -> None:
        self.channel = channel
        self.reference = reference
        # Told each message's id as soon as it exists (the inbox records it, so that another
        # attempt, or a give-up, can remove a half-written answer, every piece of it).
        self.on_post = on_post
        # Told even of a reply posted whole in one message: one that the next attempt's look
        # through the question's channel would not find (a private answer in a DM).
        self.record_whole = record_whole
        self.sent: list[discord.Message] = []
        self.shown: list[render.MessagePayload] = []

    async def show(
        self, payloads: Sequence[render.MessagePayload], *, final: bool = False
    ) -> list[Any]:
        if final and not self.sent and len(payloads) == 1 and not self.record_whole:
            # The whole reply is one post and the inbox's "answered" comes next: a record of
            # its id would be one more write for a window of a write's length, where a crash
            # between the post and the record leaves an unrecorded post anyway (found by the
            # next attempt's look through the history, app._remove_earlier_attempt).
            self.on_post = None
        for index, payload in enumerate(payloads):
            if index < len(self.sent):
                if self.shown[index] != payload:
                    try:
                        await self.sent[index].edit(**edit_kwargs(payload))
                    except discord.NotFound:
                        # Someone (a moderator) deleted it while the answer was written: the
                        # asker gets the answer in a new message instead of an apology.
                        log.info("discord: a message of an answer was deleted; posting anew")
                        self.sent[index] = await self._post(index, payload)
                    self.shown[index] = payload
                continue
            self.sent.append(await self._post(index, payload))
            self.shown.append(payload)
        await _remove_beyond(self.sent, len(payloads))
        del self.shown[len(payloads) :]
        return self.sent

    async def _post(self, index: int, payload: render.MessagePayload) -> discord.Message:
        """Post the reply's ``index``-th message (the first replies to the question)."""
        # A question deleted while it was answered must not cost the answer: Discord then
        # posts it without the reply link instead of refusing it.
        reference = (
            self.reference.to_reference(fail_if_not_exists=False)
            if index == 0 and self.reference is not None
            else None
        )
        message = await self.channel.send(
            **send_kwargs(payload),
            reference=reference,
            mention_author=False if reference else None,
        )
        if self.on_post is not None:
            await self.on_post(message.id)
        return message


class InteractionSink(ReplySink):
    """The deferred response is the first message; further chunks are follow-ups."""

    def __init__(
        self,
        interaction: discord.Interaction | StoredInteraction,
        *,
        ephemeral: bool,
        on_followup: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        # Told each follow-up's id as soon as it exists (the inbox records it, so that another
        # attempt at this answer removes it instead of leaving it above its own).
        self.on_followup = on_followup
        self.followups: list[discord.WebhookMessage] = []
        # The follow-up that took the original response's place when that was deleted.
        self.first: discord.WebhookMessage | None = None
        # The original response, once an edit returned it: its channel and id.
        self.original: tuple[int, int] | None = None
        # The original response was deleted on purpose (withdraw_original): the answer is all
        # follow-ups.
        self.withdrawn = False
        self.shown: list[render.MessagePayload] = []

    async def withdraw_original(self) -> None:
        """Delete the deferred "thinking" response so that the answer is all follow-ups, as
        ``ephemeral`` says: Discord cannot change whether a message is ephemeral, so a public
        deferral whose answer turned out to be the clicker's alone is answered this way. The
        deletion comes first: a follow-up to a response still "thinking" fills that one in
        (public), whatever its own flags. Gone already (an earlier attempt) is fine."""
        with contextlib.suppress(discord.NotFound):
            await self.interaction.delete_original_response()
        self.withdrawn = True

    async def show(
        self, payloads: Sequence[render.MessagePayload], *, final: bool = False
    ) -> list[Any]:
        for index, payload in enumerate(payloads):
            if index < len(self.shown) and self.shown[index] == payload:
                continue
            if index == 0:
                await self._edit_first(payload)
            elif index - 1 < len(self.followups):
                try:
                    await self.followups[index - 1].edit(**edit_kwargs(payload))
                except discord.NotFound:  # deleted mid-answer (a moderator): posted anew
                    self.followups[index - 1] = await self._send(payload)
            else:
                self.followups.append(await self._send(payload))
            if index < len(self.shown):
                self.shown[index] = payload
            else:
                self.shown.append(payload)
        await _remove_beyond(self.followups, len(payloads) - 1)
        del self.shown[len(payloads) :]
        return self.followups

    async def _edit_first(self, payload: render.MessagePayload) -> None:
        """The deferred response; a follow-up in its place once someone (a moderator) deleted
        it while the answer was written, so the asker still gets the answer."""
        if self.first is None and self.withdrawn:
            self.first = await self._send(payload)
            return
        try:
            if self.first is None:
                edited = await self.interaction.edit_original_response(**edit_kwargs(payload))
                self.original = _location(edited)
            else:
                await self.first.edit(**edit_kwargs(payload))
        except discord.NotFound:
            log.info("discord: an interaction's answer was deleted; posting it anew")
            self.first = await self._send(payload)

    def posted(self) -> list[tuple[int, int]]:
        """(channel, message) of each message this answer has shown: the original response
        (once known) and the follow-ups."""
        messages = [self.first, *self.followups]
        located = [_location(m) for m in messages if m is not None]
        return [where for where in (self.original, *located) if where is not None]

    async def _send(self, payload: render.MessagePayload) -> discord.WebhookMessage:
        """A new follow-up, recorded at once (``on_followup``)."""
        with posting_once():
            message = await self.interaction.followup.send(
                **send_kwargs(payload), ephemeral=self.ephemeral, wait=True
            )
        if self.on_followup is not None:
            await self.on_followup(message.id)
        return message


# Discord's answers to a webhook call with an interaction token past its 15 minutes.
TOKEN_GONE_CODES = frozenset({50027, 10015})  # Invalid Webhook Token, Unknown Webhook


def token_gone(exc: BaseException) -> bool:
    return isinstance(exc, discord.HTTPException) and exc.code in TOKEN_GONE_CODES


def _location(message: Any) -> tuple[int, int] | None:
    """(channel, message) ids of a message an interaction's webhook returned, if it says."""
    channel = getattr(message, "channel", None)
    if channel is None or not getattr(message, "id", None):
        return None
    return int(channel.id), int(message.id)


# Deletes messages by (channel, message) with the bot's own token (an interaction's token may
# have expired); best effort.
Retract = Callable[[list[tuple[int, int]]], Awaitable[None]]


class OutlivedTokenSink(ReplySink):
    """An interaction's response while its token works (15 minutes), then ``fallback``: a
    very slow answer is not lost with the token, it is posted where the asker can see it
    (the command's channel, or their DM for a private one). What the response had shown by
    then (a half-written answer, follow-ups) is removed first with ``retract``, so the
    channel holds the answer once instead of its beginning above it."""

    def __init__(
        self,
        primary: InteractionSink,
        fallback: Callable[[], Awaitable[ReplySink]],
        retract: Retract | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retract = retract
        self.current: ReplySink = primary

    async def show(
        self, payloads: Sequence[render.MessagePayload], *, final: bool = False
    ) -> list[Any]:
        if self.current is self.primary:
            try:
                return await self.primary.show(payloads, final=final)
            except discord.HTTPException as exc:
                if not token_gone(exc):
                    raise
                log.info("discord: the interaction's token expired; answering without it")
                if self.retract is not None:
                    await self.retract(self.primary.posted())
                self.current = await self.fallback()
        return await self.current.show(payloads, final=final)


async def _remove_beyond(messages: list[Any], keep: int) -> None:
    """Delete the messages after the first ``keep`` (and forget them): a reply that now takes
    fewer messages than were shown (an answer streamed over several that ended in a short
    apology or refusal, say) must not leave the rest of its earlier text beneath it."""
    while len(messages) > max(0, keep):
        with contextlib.suppress(discord.NotFound):  # gone already (a moderator, a clean-up)
            await messages[-1].delete()
        messages.pop()


@contextlib.contextmanager
def posting_once() -> Iterator[None]:
    """Webhook calls in the block (this task's alone) are not sent again after a 5xx: the
    server error is raised. discord.py's webhook client posts again after one, and a follow-up
    has no nonce: one Discord made before failing late showed twice. Raised, the work is
    handed back (TryLater) and the next attempt removes what this one posted."""
    token = discord.webhook.async_.async_context.set(_POSTING_ONCE)
    try:
        yield
    finally:
        discord.webhook.async_.async_context.reset(token)


class _ServerErrorsRaised:
    """An aiohttp session whose requests raise DiscordServerError on a 5xx response."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    @contextlib.asynccontextmanager
    async def request(self, *args: Any, **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        async with self._session.request(*args, **kwargs) as response:
            if response.status >= 500:
                raise discord.DiscordServerError(response, await json_or_text(response))
            yield response


class _PostingOnceAdapter(discord.webhook.async_.AsyncWebhookAdapter):
    async def request(self, route: Any, session: Any, **kwargs: Any) -> Any:
        return await super().request(route, _ServerErrorsRaised(session), **kwargs)  # type: ignore[arg-type]


_POSTING_ONCE = _PostingOnceAdapter()


class StoredInteraction:
    """A deferred interaction as any process can finish it: its webhook (the application id and
    the interaction's token, valid for 15 minutes), kept in the inbox's payload. It offers what
    InteractionSink uses of a live interaction, so a process that takes the work over after a
    crash (or a passing fault) fills in the same "thinking..." response."""

    def __init__(self, client: discord.Client, application_id: int, token: str) -> None:
        self.followup = discord.Webhook.partial(application_id, token, client=client)
        # An interaction's webhook, as a live interaction's ``followup`` is: discord.py sends
        # ephemeral follow-ups (and waits for the message) only through such a webhook.
        self.followup.type = discord.WebhookType.application

    @classmethod
    def from_payload(cls, client: discord.Client, payload: dict[str, Any]) -> StoredInteraction:
        return cls(client, int(payload[APPLICATION_ID_KEY]), str(payload[TOKEN_KEY]))

    async def edit_original_response(self, **kwargs: Any) -> discord.WebhookMessage:
        return await self.followup.edit_message("@original", **kwargs)  # type: ignore[arg-type]

    async def delete_original_response(self) -> None:
        await self.followup.delete_message("@original")  # type: ignore[arg-type]


# Payload keys of interaction work: what StoredInteraction needs, and the follow-ups an
# attempt at the answer posted (ids, as text).
APPLICATION_ID_KEY = "application_id"
FOLLOWUPS_KEY = "followup_ids"
# A secret (storage.events.SECRET_KEYS): the ledger drops it as soon as the row is finished.
TOKEN_KEY = "token"


# How long Discord accepts an interaction's token (its deferred response can be filled in).
TOKEN_LIFETIME = timedelta(minutes=15)
TOKEN_MARGIN = timedelta(seconds=30)  # our clock and Discord's may differ a little


def token_valid(interaction_id: str | int) -> bool:
    """Whether the token of the interaction ``interaction_id`` (a snowflake, which carries its
    creation time) still works."""
    created = discord.utils.snowflake_time(int(interaction_id))
    return datetime.now(UTC) - created < TOKEN_LIFETIME - TOKEN_MARGIN


def interaction_webhook(interaction: discord.Interaction) -> dict[str, str]:
    """The payload fields that let another process finish ``interaction``."""
    return {APPLICATION_ID_KEY: str(interaction.application_id), TOKEN_KEY: interaction.token}


class Typing:
    """The typing indicator of a slow answer (the core decides it is slow, bot/progress.py).
    It runs beside the answer (never delays it) until stopped; a failure only costs the
    indicator."""

    def __init__(self, channel: discord.abc.Messageable | None) -> None:
        self._channel = channel
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._channel is not None and self._task is None:
            self._task = asyncio.create_task(self._run(self._channel))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # no-op when done; gathered either way, so nothing is left unretrieved
            await asyncio.gather(task, return_exceptions=True)

    @staticmethod
    async def _run(channel: discord.abc.Messageable) -> None:
        try:
            async with channel.typing():
                await asyncio.Event().wait()  # until stop() cancels
        except (discord.HTTPException, *TRANSIENT_ERRORS) as exc:
            log.debug("discord: typing indicator failed (%s)", describe(exc))


def send_kwargs(payload: render.MessagePayload) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "content": payload.content,
        "allowed_mentions": discord.AllowedMentions.none(),
    }
    if payload.embeds:
        kwargs["embeds"] = [discord.Embed.from_dict(e) for e in payload.embeds]
    if payload.buttons:
        kwargs["view"] = button_view(payload.buttons)
    return kwargs


def edit_kwargs(payload: render.MessagePayload) -> dict[str, Any]:
    return {
        "content": payload.content,
        "embeds": [discord.Embed.from_dict(e) for e in payload.embeds],
        "view": button_view(payload.buttons) if payload.buttons else None,
        "allowed_mentions": discord.AllowedMentions.none(),
    }


def button_view(buttons: Sequence[render.ButtonSpec]) -> discord.ui.View:
    # Fully dynamic: discord.py keeps no per-message state for it, so memory stays flat.
    view = discord.ui.View(timeout=None)
    for spec in buttons:
        view.add_item(PersistentButton(spec))
    return view


# Discord's answer to a second acknowledgement of one interaction.
ALREADY_ACKNOWLEDGED = 40060
DEFER_TRIES = 3


async def defer(interaction: discord.Interaction, *, ephemeral: bool) -> bool:
    """Acknowledge an interaction ("thinking..."), trying again through a dropped connection:
    Discord gives 3 s, and the answer follows through the token. A retry that Discord answers
    "already acknowledged" means the earlier try got through. False: not acknowledged (logged;
    the asker cannot be told anything without an acknowledgement)."""
    for attempt in range(1, DEFER_TRIES + 1):
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
            return True
        except Exception as exc:
            if isinstance(exc, discord.HTTPException) and exc.code == ALREADY_ACKNOWLEDGED:
                return True
            if not is_transient(exc) or attempt == DEFER_TRIES:
                log.warning(
                    "discord: could not defer interaction %s (%s)", interaction.id, describe(exc)
                )
                return False
            log.info("discord: deferring interaction %s failed (%s); again", interaction.id, exc)
    return False


async def respond_ephemeral(interaction: discord.Interaction, text: str) -> None:
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
        log.warning("discord: could not answer interaction %s (%s)", interaction.id, describe(exc))


# What a later attempt may well get through: the connection dropped (discord.py retries a reset
# only on macOS and Windows errno values), a timeout, Discord's servers failing after discord.py's
# own retries, or a 429 discord.py would not wait out (no ``Via`` header, or too long a wait).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    ConnectionError,
    TimeoutError,
    discord.DiscordServerError,
    discord.RateLimited,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a passing fault of the connection to Discord, worth another try."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, discord.HTTPException) and exc.status == 429


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__
