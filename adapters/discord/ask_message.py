"""The "Ask supportbot" message command: Discord's wire format around bot/ask_message.py.

A message command (application command type 3, MESSAGE) appears in every message's Apps menu
once synced (``supportbot discord sync-commands``, or ``run discord --sync-commands``). Its
interaction names the message (``data.target_id``) and carries it (``data.resolved.messages``).
The interaction is deferred privately within Discord's 3 s, then the message is claimed as the
same inbox work a mention of it would be (kind ``message``, keyed by the message id): answered
in a thread started on it, or in the thread (or forum post) it is in, under its author's name.
The invoker alone is told what happened in the deferred response. When the message was
claimed, the work itself tells them ("answering in its thread") before it answers, through the
interaction's stored webhook token: a crash between the claim and that note leaves the next
attempt to fill it in, so the response is never left "thinking..." while its token is valid.
In a channel whose answers are private it is routed as a mention there (no thread, a DM to the
author and one line), unless the invoker is the author: then the deferred ephemeral response
itself is the answer.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord import convert
from adapters.discord.convert import ChannelContext, ChannelKind
from adapters.discord.delivery import (
    TOKEN_KEY,
    defer,
    describe,
    interaction_webhook,
    token_valid,
)
from adapters.discord.shapes import RoleNames, interaction_payload
from bot import ask_message, slash, texts
from bot.inbox import SESSION_KEY
from bot.messages import message_to_record

if TYPE_CHECKING:
    from adapters.discord.app import DiscordAdapter

log = logging.getLogger(__name__)

MESSAGE_COMMAND = 3  # Discord's application command type for a message's menu
# The payload key of message work whose answer is for its asker alone (the channel's ephemeral
# setting): a mention's (DiscordAdapter.on_message) or this command's.
PRIVATE_KEY = "private"
# The payload key saying that private answer goes in the command's own ephemeral response:
# the invoker asked about their own message.
IN_RESPONSE_KEY = "answer_in_response"


def application_command() -> dict[str, Any]:
    """The bulk-overwrite JSON of the message command (message commands have no description)."""
    return {
        "type": MESSAGE_COMMAND,
        "name": slash.ASK_MESSAGE.name,
        "contexts": [0],  # guild channels, threads and forum posts
        "integration_types": [0],  # installed to a guild
    }


def is_ask(interaction: discord.Interaction) -> bool:
    data = interaction.data or {}
    return (
        interaction.type is discord.InteractionType.application_command
        and data.get("type") == MESSAGE_COMMAND
        and data.get("name") == slash.ASK_MESSAGE.name
    )


class DiscordAskMessage:
    """Handles the message command for one :class:`~adapters.discord.app.DiscordAdapter`."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter

    async def handle(self, interaction: discord.Interaction) -> None:
        # Ack first: Discord gives 3 s; only the invoker sees what follows.
        if not await defer(interaction, ephemeral=True):
            return
        try:
            note = await self._take(interaction)
        except Exception as exc:  # the database, a malformed payload: the invoker is told
            log.error("discord: asking about a message failed (%s)", describe(exc), exc_info=exc)
            note = texts.ASK_MESSAGE_FAILED
        if note is None:
            return  # claimed: the work tells the invoker (DiscordAdapter._confirm_ask)
        try:
            await interaction.edit_original_response(
                content=note, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.HTTPException as exc:
            log.warning("discord: could not answer interaction %s (%s)", interaction.id, exc)

    async def _take(self, interaction: discord.Interaction) -> str | None:
        """Claim the target message as a question; what to tell the invoker now (None: the
        claimed work tells them itself)."""
        data = interaction.data or {}
        target_id = str(data.get("target_id") or "")
        resolved = ((data.get("resolved") or {}).get("messages") or {}).get(target_id)
        me = self.adapter.client.user
        if not isinstance(resolved, dict) or me is None:
            return texts.ASK_MESSAGE_UNREADABLE
        author = resolved.get("author") or {}
        context = _context(interaction)
        refused = ask_message.refusal(
            from_bot=bool(author.get("bot") or resolved.get("webhook_id"))
            or str(author.get("id")) == str(me.id),
            text=convert.plain_text(
                str(resolved.get("content") or ""),
                bot_user_id=str(me.id),
                mentions=resolved.get("mentions") or [],
                names=context.names,
            ),
            attachments=len(resolved.get("attachments") or []),
        )
        if refused is not None:
            return refused
        if not _may_answer_in(interaction, context):
            return texts.DISCORD_ASK_MESSAGE_NO_THREADS
        payload = {**resolved, "channel_id": str(interaction.channel_id)}
        if interaction.guild_id:
            payload["guild_id"] = str(interaction.guild_id)
        incoming = convert.message_to_incoming(payload, bot_user_id=str(me.id), context=context)
        if incoming is None:  # a system message (a pin, a join), not something a person asked
            return texts.ASK_MESSAGE_UNREADABLE
        incoming = ask_message.as_question(incoming)
        new_thread = context.kind is ChannelKind.CHANNEL
        if new_thread:
            # A thread started from a message takes its id; the channel's settings apply to it.
            key = convert.thread_conversation(
                guild_id=incoming.conversation.workspace_id, thread_id=target_id
            )
            incoming = replace(
                incoming, conversation=key, parent_channel_id=str(interaction.channel_id)
            )
        # Answers there may be the asker's alone: then as for a mention (no thread; a DM and
        # one line), unless the asker is the invoker, whose own response is private already.
        incoming, private = await self.adapter.private_in_place(
            incoming, new_thread=new_thread, channel_id=str(interaction.channel_id)
        )
        new_thread = new_thread and not private
        in_response = private and str(interaction.user.id) == incoming.author.id
        settings = self.adapter.runtime.settings
        record = {
            "kind": "message",
            "msg": message_to_record(incoming, max_text=settings.max_question_chars),
            SESSION_KEY: incoming.conversation.session_id,
            "message_id": target_id,
            "question_channel": str(interaction.channel_id),
            "new_thread": new_thread,
            PRIVATE_KEY: private,
            IN_RESPONSE_KEY: in_response,
            ask_message.ANSWER_AFTER_KEY: str(interaction.id),
            # The work fills in the invoker's deferred response (any attempt of it).
            **interaction_webhook(interaction),
        }
        told = await ask_message.claim(
            self.adapter.inbox,
            ask_message.claim_key(target_id),
            record,
            request=str(interaction.id),
        )
        return told


def answers_in_response(payload: dict[str, Any]) -> bool:
    """Whether claimed work answers in its command's ephemeral response: the invoker's own
    message in a channel whose answers are private, while the token still works (past it, the
    answer goes to their DM as for a mention)."""
    asked = payload.get(ask_message.ANSWER_AFTER_KEY)
    return bool(payload.get(IN_RESPONSE_KEY)) and TOKEN_KEY in payload and token_valid(str(asked))


def _context(interaction: discord.Interaction) -> ChannelContext:
    """Where the message is, from the interaction's own channel payload (cached or not)."""
    channel = interaction_payload(interaction)["channel"]
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    kind = convert.kind_from_channel_type(channel.get("type"), guild_id=guild_id)
    parent = channel.get("parent_id") if kind is ChannelKind.THREAD else None
    names = RoleNames(interaction.guild) if interaction.guild is not None else {}
    return ChannelContext(kind, parent_id=parent, names=names)


def _may_answer_in(interaction: discord.Interaction, context: ChannelContext) -> bool:
    """Whether the bot's own permissions there (as the interaction says) let it answer: start
    a thread in a channel and post in it, or post in the thread the message is in."""
    allowed = interaction.app_permissions
    if context.kind is ChannelKind.CHANNEL:
        return allowed.create_public_threads and allowed.send_messages_in_threads
    if context.kind is ChannelKind.THREAD:
        return allowed.send_messages_in_threads
    return True
