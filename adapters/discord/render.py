"""Neutral ``Reply`` -> Discord message payloads (pure: no discord.py, no I/O).

Discord speaks Markdown, so the text is kept; it is split at 2000 characters without breaking
code fences (a fence open at a cut is closed and re-opened in the next message) or words. Sources
go in an embed within Discord's limits; buttons carry stable custom ids so they still work after
a restart; ``allowed_mentions`` never pings anyone, even when a document quotes @everyone.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from bot import splitting, texts
from bot.messages import Reply, ReplyKind, Source
from bot.slash import SlashCommand
from bot.splitting import fences_balanced as fences_balanced
from storage.passages import breadcrumb

MESSAGE_LIMIT = 2000
EMBED_TOTAL_LIMIT = 6000
EMBED_FIELDS_LIMIT = 25
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
CUSTOM_ID_LIMIT = 100

# Nobody is ever pinged by an answer: no users, roles, @everyone/@here, nor the replied-to user.
NO_MENTIONS: dict[str, Any] = {"parse": [], "replied_user": False}

# Stable custom ids (the templates the client matches after a restart).
FEEDBACK_TEMPLATE = r"sb:fb:(?P<vote>up|down):(?P<memory_id>\d+)"
ESCALATE_TEMPLATE = r"sb:esc:(?P<memory_id>\d+)"
RESOLVE_TEMPLATE = r"sb:resolve:(?P<escalation_id>\d+)"

# Every persistent button of the bot; the client registers this one template at start-up.
BUTTON_TEMPLATE = r"sb:[a-z]+:[0-9a-z:]+"
COMMAND_DESCRIPTION_LIMIT = 100
EPHEMERAL_OPTION = "ephemeral"


class ButtonStyle(enum.IntEnum):
    """Discord's button styles (same numbers as the API)."""

    PRIMARY = 1
    SECONDARY = 2
    SUCCESS = 3
    DANGER = 4


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    label: str
    custom_id: str
    style: ButtonStyle = ButtonStyle.SECONDARY


@dataclass(frozen=True, slots=True)
class MessagePayload:
    content: str
    embeds: tuple[dict[str, Any], ...] = ()
    buttons: tuple[ButtonSpec, ...] = ()
    allowed_mentions: dict[str, Any] = field(default_factory=lambda: dict(NO_MENTIONS))


def feedback_custom_id(memory_id: int, *, helpful: bool) -> str:
    return f"sb:fb:{'up' if helpful else 'down'}:{memory_id}"


def escalate_custom_id(memory_id: int | None) -> str:
    return f"sb:esc:{memory_id or 0}"


def resolve_custom_id(escalation_id: int) -> str:
    return f"sb:resolve:{escalation_id}"


class ButtonAction(enum.StrEnum):
    HELPFUL = "helpful"
    UNHELPFUL = "unhelpful"
    ESCALATE = "escalate"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class ParsedButton:
    action: ButtonAction
    target_id: int  # memory id (feedback, escalate; 0 when unknown) or escalation id (resolve)


def parse_custom_id(custom_id: str) -> ParsedButton | None:
    """The action a button's custom id stands for; None for ids this bot never made."""
    if match := re.fullmatch(FEEDBACK_TEMPLATE, custom_id):
        action = ButtonAction.HELPFUL if match["vote"] == "up" else ButtonAction.UNHELPFUL
        return ParsedButton(action, int(match["memory_id"]))
    if match := re.fullmatch(ESCALATE_TEMPLATE, custom_id):
        return ParsedButton(ButtonAction.ESCALATE, int(match["memory_id"]))
    if match := re.fullmatch(RESOLVE_TEMPLATE, custom_id):
        return ParsedButton(ButtonAction.RESOLVE, int(match["escalation_id"]))
    return None


def application_commands(commands: tuple[SlashCommand, ...]) -> list[dict[str, Any]]:
    """The core's slash commands as Discord application commands (bulk-overwrite JSON)."""
    rendered = []
    for command in commands:
        options: list[dict[str, Any]] = [
            {
                "type": 3,  # STRING
                "name": option.name,
                "description": option.description[:COMMAND_DESCRIPTION_LIMIT],
                "required": option.required,
            }
            for option in command.options
        ]
        if options:  # commands that answer can answer privately
            options.append(
                {
                    "type": 5,  # BOOLEAN
                    "name": EPHEMERAL_OPTION,
                    "description": texts.DISCORD_EPHEMERAL_OPTION[:COMMAND_DESCRIPTION_LIMIT],
                    "required": False,
                }
            )
        rendered.append(
            {
                "type": 1,  # CHAT_INPUT
                "name": command.name,
                "description": command.description[:COMMAND_DESCRIPTION_LIMIT],
                "options": options,
                "contexts": [0, 1],  # guilds and the bot's DMs
                "integration_types": [0],  # installed to a guild
            }
        )
    return rendered


def render_reply(reply: Reply, *, limit: int = MESSAGE_LIMIT) -> list[MessagePayload]:
    """The messages to post for a reply; sources and buttons ride on the last one."""
    chunks = split_markdown(reply.text, limit=limit) or [_fallback_text(reply)]
    embed = sources_embed(reply.sources) or sources_embed(
        reply.related, heading=texts.RELATED_HEADING
    )
    buttons = reply_buttons(reply)
    payloads = [MessagePayload(content=chunk) for chunk in chunks]
    payloads[-1] = MessagePayload(
        content=chunks[-1], embeds=(embed,) if embed else (), buttons=buttons
    )
    return payloads


def render_progress(text: str, *, limit: int = MESSAGE_LIMIT) -> list[str]:
    """What a partially streamed answer looks like: balanced chunks, a cursor on the last one."""
    chunks = split_markdown(text + " ▌", limit=limit)
    return chunks or ["▌"]


def reply_buttons(reply: Reply) -> tuple[ButtonSpec, ...]:
    """Feedback on answers; a way to a human on answers and on "not in the docs"."""
    human = ButtonSpec(
        texts.DISCORD_BUTTON_HUMAN, escalate_custom_id(reply.memory_id), ButtonStyle.PRIMARY
    )
    if reply.kind is ReplyKind.ANSWER and reply.memory_id is not None:
        return (
            ButtonSpec(
                texts.DISCORD_BUTTON_HELPFUL,
                feedback_custom_id(reply.memory_id, helpful=True),
                ButtonStyle.SUCCESS,
            ),
            ButtonSpec(
                texts.DISCORD_BUTTON_UNHELPFUL,
                feedback_custom_id(reply.memory_id, helpful=False),
                ButtonStyle.SECONDARY,
            ),
            human,
        )
    if reply.kind is ReplyKind.NO_ANSWER:
        return (human,)
    return ()


def resolve_button(escalation_id: int) -> ButtonSpec:
    return ButtonSpec(
        texts.DISCORD_BUTTON_RESOLVE, resolve_custom_id(escalation_id), ButtonStyle.SUCCESS
    )


def sources_embed(
    sources: tuple[Source, ...] | list[Source], *, heading: str = texts.SOURCES_HEADING
) -> dict[str, Any] | None:
    """One embed listing the sources (or, under its own heading, the pages offered with a
    refusal), kept within every embed limit (None if there are none)."""
    if not sources:
        return None
    title = heading[:EMBED_TITLE_LIMIT]
    embed: dict[str, Any] = {"type": "rich", "title": title, "fields": []}
    total = len(title)
    for number, source in enumerate(sources, start=1):
        if len(embed["fields"]) >= EMBED_FIELDS_LIMIT:
            break
        name = _clip(f"{number}. {source.title or source.url_or_path}", EMBED_FIELD_NAME_LIMIT)
        value = _clip(_source_value(source), EMBED_FIELD_VALUE_LIMIT)
        if total + len(name) + len(value) > EMBED_TOTAL_LIMIT:
            break
        embed["fields"].append({"name": name, "value": value, "inline": False})
        total += len(name) + len(value)
    return embed


def embed_size(embed: dict[str, Any]) -> int:
    """Characters Discord counts toward the 6000 limit."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len((embed.get("footer") or {}).get("text", ""))
    size += len((embed.get("author") or {}).get("name", ""))
    for item in embed.get("fields", []):
        size += len(item.get("name", "")) + len(item.get("value", ""))
    return size


def split_markdown(text: str, *, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Discord-sized parts with balanced code fences (the core's one splitter)."""
    return splitting.split_markdown(text, limit=limit)


def _source_value(source: Source) -> str:
    where = source.url_or_path
    label = breadcrumb(source.title, source.heading)
    link = f"[{_escape_link_text(label or where)}]({where})" if _is_url(where) else f"`{where}`"
    snippet = " ".join(source.snippet.split())
    return f"{link}\n{snippet}" if snippet else link


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _escape_link_text(value: str) -> str:
    return value.replace("[", "(").replace("]", ")")


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _fallback_text(reply: Reply) -> str:
    return texts.ERROR_GENERIC if reply.kind is ReplyKind.ERROR else "…"
