"""The terminal adapter: the simplest example of an adapter.

A line typed by the user becomes an :class:`IncomingMessage`; the Responder's stream is printed
as it comes; the final :class:`Reply` adds its sources. ``/help``, ``/forget`` and ``/ask`` map
to the same commands as on Slack and Discord.
"""

from __future__ import annotations

import getpass
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from bot import texts
from bot.messages import (
    Author,
    ConversationKey,
    IncomingMessage,
    Platform,
    Reply,
    ReplyKind,
    Source,
)
from bot.slash import find_command
from storage.passages import breadcrumb

QUIT_COMMANDS = frozenset({"/quit", "/exit", "/q"})


def local_user() -> str:
    try:
        return getpass.getuser() or "you"
    except Exception:  # no user database entry (containers): any stable name will do
        return "you"


def console_conversation(session: str | None = None) -> ConversationKey:
    """A terminal conversation: ``console:local:<user>[:<session>]``."""
    return ConversationKey(Platform.CONSOLE, "local", local_user(), session or None)


def to_incoming(line: str, conversation: ConversationKey) -> IncomingMessage:
    """A typed line as a neutral message; ``/name rest`` becomes a command."""
    text = line.strip()
    command = None
    if text.startswith("/"):
        name, _, rest = text.partition(" ")
        found = find_command(name)
        if found is not None:
            command, text = found.name, rest.strip()
    return IncomingMessage(
        id=uuid.uuid4().hex,
        conversation=conversation,
        author=Author(id=conversation.channel_id, display_name=conversation.channel_id),
        text=text,
        is_direct=True,
        command=command,
    )


def render_sources(sources: tuple[Source, ...], heading: str = texts.SOURCES_HEADING) -> str:
    lines = [f"{heading}:"]
    for n, source in enumerate(sources, start=1):
        where = breadcrumb(source.title, source.heading)
        lines.append(f"  [{n}] {where} ({source.url_or_path})")
    return "\n".join(lines)


@dataclass
class Exchange:
    """One question and what came back (for callers that want figures or JSON)."""

    reply: Reply | None
    streamed: str = ""
    first_delta_s: float | None = None
    total_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class ConsoleAdapter:
    def __init__(
        self,
        responder: Any,
        *,
        out: TextIO | None = None,
        conversation: ConversationKey | None = None,
        show_prompt: bool = False,
    ) -> None:
        self.responder = responder
        self.out = out or sys.stdout
        self.conversation = conversation or console_conversation()
        self.show_prompt = show_prompt

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    async def send(self, line: str) -> Exchange:
        """Ask one line; stream the answer to ``out``; print sources under it."""
        msg = to_incoming(line, self.conversation)
        started = time.perf_counter()
        exchange = Exchange(reply=None)
        async for item in self.responder.stream(msg):
            if isinstance(item, Reply):
                exchange.reply = item
                continue
            if exchange.first_delta_s is None:
                exchange.first_delta_s = time.perf_counter() - started
            exchange.streamed += item
            self.write(item)
        exchange.total_s = time.perf_counter() - started
        reply = exchange.reply
        if reply is not None:
            if reply.silent and reply.reaction:
                self.write(f"(:{reply.reaction}:)")
            if reply.text != exchange.streamed:
                # Nothing was streamed (commands), or an error replaced a partial answer.
                self.write(("\n" if exchange.streamed else "") + reply.text)
            if reply.sources and reply.kind in (ReplyKind.ANSWER, ReplyKind.ESCALATED):
                self.write("\n\n" + render_sources(reply.sources))
            if reply.related:
                self.write("\n\n" + render_sources(reply.related, texts.RELATED_HEADING))
        self.write("\n\n")
        return exchange

    async def run(
        self, lines: AsyncIterator[str], *, on_exit: Callable[[], None] | None = None
    ) -> int:
        """Chat until the lines run out (EOF) or /quit; returns how many questions were sent."""
        sent = 0
        async for line in lines:
            text = line.strip()
            if not text:
                continue
            if text.lower() in QUIT_COMMANDS:
                break
            await self.send(text)
            sent += 1
        if on_exit is not None:
            on_exit()
        return sent
