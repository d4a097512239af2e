"""``/ask settings ...``: channel settings from chat, for workspace or guild admins only.

The platforms say who is an admin (``Author.is_admin``, set by the adapters); the words after
``settings`` are ``name value`` pairs validated like the CLI's options (bot.channels.validate).
"""

from __future__ import annotations

import shlex
from typing import Any

from bot import slash, texts
from bot.channels import ChannelSettings, validate
from bot.messages import IncomingMessage, Reply, ReplyKind
from storage import channel_settings

KEYWORD = "settings"
NAMES = {
    "auto-answer": "auto_answer",
    "ephemeral": "ephemeral",
    "escalation-target": "escalation_target",
    "knowledge-filter": "knowledge_filter",
    "refusal-language": "refusal_language",
    "reaction": "unanswered_reaction",
    "archive-on-resolve": "archive_on_resolve",
}
TAGS = {"tag-answered": "answered", "tag-needs-human": "needs_human", "tag-solved": "solved"}


def is_settings_request(msg: IncomingMessage) -> bool:
    words = msg.text.split(maxsplit=1)
    return msg.command == slash.ASK.name and bool(words) and words[0].lower() == KEYWORD


def parse_changes(arguments: str) -> dict[str, Any]:
    """``auto-answer on tag-solved "Solved ✅"`` -> column values; ValueError says what is wrong."""
    try:
        words = shlex.split(arguments)
    except ValueError as exc:
        raise ValueError(f"unbalanced quotes ({exc})") from None
    if len(words) % 2:
        raise ValueError(f"'{words[-1]}' needs a value")
    values: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for name, value in zip(words[::2], words[1::2], strict=True):
        key = name.lower()
        if key in NAMES:
            values[NAMES[key]] = value
        elif key in TAGS:
            tags[TAGS[key]] = value
        else:
            raise ValueError(f"unknown setting '{name}'")
    if tags:
        values["forum_tags"] = tags
    return validate(values)


async def handle(msg: IncomingMessage, channels: ChannelSettings, session_id: str) -> Reply:
    """Show or change the settings of the channel the command was used in (its parent forum
    for a forum post). Admins only; the answer is visible to the admin alone."""
    if not msg.author.is_admin:
        return _private(texts.SETTINGS_ADMIN_ONLY, session_id)
    arguments = msg.text.split(maxsplit=1)[1] if len(msg.text.split(maxsplit=1)) > 1 else ""
    key = msg.conversation
    channel_id = msg.parent_channel_id or key.channel_id
    where = {
        "platform": key.platform.value,
        "workspace_id": key.workspace_id,
        "channel_id": channel_id,
    }
    if not arguments.strip():
        policy = await channels.policy(key, parent_channel_id=msg.parent_channel_id)
        return _private(texts.settings_summary(policy.as_dict(), saved=False), session_id)
    try:
        changes = parse_changes(arguments)
    except ValueError as exc:
        return _private(texts.settings_invalid(str(exc)), session_id)
    if "forum_tags" in changes:
        current = await channel_settings.get_setting(channels.db, **where)
        changes["forum_tags"] = {
            **((current.forum_tags or {}) if current else {}),
            **changes["forum_tags"],
        }
    await channel_settings.upsert_setting(channels.db, **where, **changes)
    channels.invalidate()
    policy = await channels.policy(key, parent_channel_id=msg.parent_channel_id)
    return _private(texts.settings_summary(policy.as_dict(), saved=True), session_id)


def _private(text: str, session_id: str) -> Reply:
    return Reply(text=text, kind=ReplyKind.INFO, ephemeral=True, session_id=session_id)
