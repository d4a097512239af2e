"""Neutral message types shared by every adapter and the core (docs/architecture.md, "Types").

Frozen dataclasses with no platform objects inside, except an opaque ``raw`` kept for debugging.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# How an edited message's id is written: "<message id>:edit:<edit>". An edit is answered as a
# question of its own under that id; a deleted message takes every version with it.
EDIT_MARK = ":edit:"


def edited_id(message_id: str, edit: str) -> str:
    return f"{message_id}{EDIT_MARK}{edit}"


class HumanRoute(enum.StrEnum):
    """How a refusal tells its asker to bring in a human: with what the reply has."""

    BUTTON = "button"  # the reply's own "Talk to a human" button
    TYPED = "typed"  # no buttons at all (a terminal): a "yes", or the phrase, typed
    # A slash command's reply without that button (Slack's /ask: a private response with only
    # "Share in channel"): ask again by mentioning the bot, where the reply has the button.
    MENTION = "mention"


class Platform(enum.StrEnum):
    SLACK = "slack"
    DISCORD = "discord"
    CONSOLE = "console"

    @property
    def has_buttons(self) -> bool:
        """Whether replies carry buttons ("Talk to a human", feedback): not in a terminal."""
        return self is not Platform.CONSOLE

    @property
    def answers_commands_privately(self) -> bool:
        """Whether a slash command's answer is for its asker alone, with nowhere for the team to
        reply (Slack's /ask: an ephemeral response); Discord's /ask answer is a channel message."""
        return self is Platform.SLACK

    def human_route(self, *, command: bool) -> HumanRoute:
        """How a refusal to a message (``command``: to a slash command) offers a human. Slack
        answers /ask privately without the button; Discord's /ask answer carries it."""
        if not self.has_buttons:
            return HumanRoute.TYPED
        if command and self.answers_commands_privately:
            return HumanRoute.MENTION
        return HumanRoute.BUTTON

    def team_replies_in_place(self, *, command: bool, direct: bool) -> bool:
        """Whether someone from the team can answer a hand-off where it was asked for: not in a
        terminal, nor in a DM with the bot, nor under a private slash-command answer (there
        they message the asker directly)."""
        private_command = command and self.answers_commands_privately
        return self.delivers_replies and not direct and not private_command

    @property
    def delivers_replies(self) -> bool:
        """Whether a person from the team can reply where the question was asked (a chat
        thread); a terminal session ends with its process."""
        return self is not Platform.CONSOLE


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives: per thread root; per channel for DMs without threads."""

    platform: Platform
    workspace_id: str
    channel_id: str
    thread_id: str | None = None

    @property
    def session_id(self) -> str:
        parts = [self.platform.value, self.workspace_id or "-", self.channel_id]
        if self.thread_id:
            parts.append(self.thread_id)
        return ":".join(parts)

    @classmethod
    def from_session_id(cls, session_id: str) -> ConversationKey | None:
        """Inverse of :attr:`session_id`; None for anything that is not one."""
        parts = session_id.split(":")
        if len(parts) not in (3, 4) or parts[0] not in {p.value for p in Platform}:
            return None
        workspace = "" if parts[1] == "-" else parts[1]
        thread = parts[3] if len(parts) == 4 else None
        return cls(Platform(parts[0]), workspace, parts[2], thread)


@dataclass(frozen=True, slots=True)
class Author:
    id: str
    display_name: str = ""
    is_bot: bool = False
    # A workspace / guild administrator, as the platform says (set by adapters where it matters).
    is_admin: bool = False
    # May moderate the channel this message came from, as the platform says (Discord: Manage
    # Threads or Manage Messages there); set by adapters where it matters.
    moderates: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    url: str = ""
    content_type: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One user turn, whatever platform it came from.

    ``text`` has the bot mention stripped and platform markup turned into plain text.
    ``command`` is the slash command name without the slash (``"ask"``, ``"forget"``), else None.
    """

    id: str
    conversation: ConversationKey
    author: Author
    text: str
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    is_direct: bool = False
    mentions_bot: bool = False
    command: str | None = None
    attachments: tuple[Attachment, ...] = ()
    raw: Any = field(default=None, compare=False, repr=False)
    # The channel a thread belongs to (a Discord forum, say): its per-channel settings apply.
    parent_channel_id: str | None = None
    # A command private to its caller inside a shared thread (``conversation`` is the caller's
    # own there): the thread's conversation, which ``/forget`` may clear for its asker.
    shared_thread: ConversationKey | None = None


class ReplyKind(enum.StrEnum):
    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    ESCALATED = "escalated"
    ERROR = "error"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    url_or_path: str
    snippet: str = ""
    score: float = 0.0
    heading: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the core answers. ``text`` is Markdown; adapters render it natively.

    ``memory_id`` is the stored assistant memory this reply became (feedback buttons refer to it).
    """

    text: str
    kind: ReplyKind = ReplyKind.ANSWER
    sources: tuple[Source, ...] = ()
    ephemeral: bool = False
    suggested_questions: tuple[str, ...] = ()
    memory_id: int | None = None
    session_id: str | None = None
    # Set when this reply opened (or found) a hand-off, so adapters can notify the support team.
    escalation_id: int | None = None
    # An auto-answer post the bot is not sure about: post nothing (react with ``reaction`` when
    # set); the question is recorded as unanswered.
    silent: bool = False
    reaction: str | None = None
    # With "not in the docs": the pages nearest the question, shown apart from sources, as leads
    # the asker may read (the bot does not claim they answer it).
    related: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True)
class Slow:
    """A stream item (only where the caller asked for it, bot/progress.py): the answer has
    shown nothing yet after the core's progress delay. Adapters render it (Slack begins the
    answer's own message, Discord shows typing); it is never stored or shown as text."""


SLOW = Slow()


def message_to_record(msg: IncomingMessage, *, max_text: int | None = None) -> dict[str, Any]:
    """The one JSON-safe form of a message, kept in the inbox so another process can answer it.

    ``max_text`` bounds the stored text (the core reads only so much of a question; one
    character more keeps its "your message was truncated" note). ``raw`` is never stored."""
    key = msg.conversation
    return {
        "id": msg.id,
        "platform": key.platform.value,
        "workspace_id": key.workspace_id,
        "channel_id": key.channel_id,
        "thread_id": key.thread_id,
        "author_id": msg.author.id,
        "author_name": msg.author.display_name,
        "text": msg.text if max_text is None else msg.text[: max_text + 1],
        "sent_at": msg.sent_at.isoformat(),
        "is_direct": msg.is_direct,
        "mentions_bot": msg.mentions_bot,
        "command": msg.command,
        "parent_channel_id": msg.parent_channel_id,
        "attachments": [
            {"name": a.name, "url": a.url, "content_type": a.content_type, "size": a.size}
            for a in msg.attachments
        ],
    }


def message_from_record(data: dict[str, Any]) -> IncomingMessage:
    """The inverse of :func:`message_to_record`; raises KeyError/ValueError on a broken record."""
    sent_at = data.get("sent_at")
    return IncomingMessage(
        id=str(data["id"]),
        conversation=ConversationKey(
            Platform(data["platform"]),
            str(data.get("workspace_id") or ""),
            str(data["channel_id"]),
            data.get("thread_id"),
        ),
        author=Author(str(data.get("author_id") or ""), str(data.get("author_name") or "")),
        text=str(data.get("text") or ""),
        sent_at=datetime.fromisoformat(sent_at) if sent_at else datetime.now(UTC),
        is_direct=bool(data.get("is_direct")),
        mentions_bot=bool(data.get("mentions_bot")),
        command=data.get("command"),
        parent_channel_id=data.get("parent_channel_id"),
        attachments=tuple(
            Attachment(
                str(a.get("name", "")),
                str(a.get("url", "")),
                str(a.get("content_type", "")),
                int(a.get("size", 0) or 0),
            )
            for a in data.get("attachments") or ()
        ),
    )
