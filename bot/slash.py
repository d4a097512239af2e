"""The one definition of the bot's slash commands; each platform adapter renders these.

Slack registers them in the app manifest, Discord as application commands. The Responder
handles ``IncomingMessage.command`` by these names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlashOption:
    name: str
    description: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str
    description: str
    options: tuple[SlashOption, ...] = ()
    usage_hint: str = ""  # shown after the command name (Slack manifest "usage_hint")

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.usage_hint}".rstrip()


ASK = SlashCommand(
    name="ask",
    description="Ask a question about the docs",
    options=(SlashOption(name="question", description="What do you want to know?"),),
    usage_hint="[question]",
)
FORGET = SlashCommand(
    name="forget",
    description="Forget this conversation (delete what the bot remembers of it)",
)
HELP = SlashCommand(name="help", description="Show what the bot can do")

COMMANDS: tuple[SlashCommand, ...] = (ASK, FORGET, HELP)


@dataclass(frozen=True, slots=True)
class MessageCommand:
    """A command in a message's own menu, run on a message someone already wrote (Slack: a
    message shortcut; Discord: a message command). See bot/ask_message.py."""

    name: str
    description: str


ASK_MESSAGE = MessageCommand(
    name="Ask supportbot", description="Answer this message's question in its thread"
)


def find_command(name: str | None) -> SlashCommand | None:
    """The command by name, with or without its leading slash (case-insensitive)."""
    if not name:
        return None
    wanted = name.strip().lstrip("/").lower()
    return next((c for c in COMMANDS if c.name == wanted), None)
