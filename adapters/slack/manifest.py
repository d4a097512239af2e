"""The Slack app manifest: scopes, events, slash commands, the message shortcut and interactivity
for one public URL.

Every request kind (events, commands, interactivity) goes to ``URL/slack/events`` (bolt's single
endpoint); OAuth redirects to ``URL/slack/oauth_redirect``.
"""

from __future__ import annotations

import json
from typing import Any

from bot import slash, texts

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",  # conversations.members: who is on the support team
    "chat:write",
    "commands",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "usergroups:read",  # escalations to a user group: who may resolve them
)
# The "Ask supportbot" message shortcut's id (adapters/slack/shortcut.py).
ASK_SHORTCUT_ID = "ask_supportbot"
BOT_EVENTS = (
    "app_mention",
    "assistant_thread_started",
    "assistant_thread_context_changed",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
)


def ask_shortcut() -> dict[str, str]:
    """The ``features.shortcuts`` entry of the "Ask supportbot" message shortcut."""
    command = slash.ASK_MESSAGE
    return {
        "name": command.name,
        "type": "message",
        "callback_id": ASK_SHORTCUT_ID,
        "description": command.description,
    }


def build_manifest(url: str, *, socket_mode: bool = False) -> dict[str, Any]:
    base = url.rstrip("/")
    events_url = base + EVENTS_PATH
    commands = []
    for command in slash.COMMANDS:
        entry: dict[str, Any] = {
            "command": f"/{command.name}",
            "description": command.description,
            "should_escape": False,
        }
        if command.usage_hint:
            entry["usage_hint"] = command.usage_hint
        if not socket_mode:
            entry["url"] = events_url
        commands.append(entry)
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        events["request_url"] = events_url
        interactivity["request_url"] = events_url
    return {
        "display_information": {
            "name": texts.BOT_NAME,
            "description": "Answers questions from your team's docs, with sources.",
        },
        "features": {
            "app_home": {"messages_tab_enabled": True, "messages_tab_read_only_enabled": False},
            "assistant_view": {"assistant_description": "Ask me about the docs."},
            "bot_user": {"display_name": texts.BOT_NAME, "always_online": True},
            "slash_commands": commands,
            # "Ask supportbot" in every message's menu (message shortcuts need `commands`).
            "shortcuts": [ask_shortcut()],
        },
        "oauth_config": {
            "redirect_urls": [base + REDIRECT_PATH],
            "scopes": {"bot": list(BOT_SCOPES)},
        },
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def to_yaml(data: Any, indent: int = 0) -> str:
    """A small YAML writer for the manifest (JSON-compatible scalars are valid YAML)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {json.dumps(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1).split("\n")
                lines.append(f"{pad}- {body[0].strip()}")
                lines.extend(body[1:])
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    return "\n".join(lines)
