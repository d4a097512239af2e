"""Who may change the bot's settings from Slack: workspace admins and owners (users.info)."""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.channel_admin import is_settings_request
from bot.messages import IncomingMessage

log = logging.getLogger(__name__)


async def with_admin_flag(client: AsyncWebClient, msg: IncomingMessage) -> IncomingMessage:
    """For `/ask settings`, mark the author an admin when Slack says so (one users.info call);
    other messages are returned unchanged. A failed lookup counts as not an admin."""
    if not is_settings_request(msg):
        return msg
    try:
        user = (await client.users_info(user=msg.author.id)).get("user") or {}
    except SlackApiError as exc:
        log.warning("users.info failed for a settings command: %s", exc.response.get("error"))
        return msg
    admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
    return replace(msg, author=replace(msg.author, is_admin=admin))
