"""Who may change the bot's settings or clear anyone's thread from Slack: workspace admins and
owners (users.info). Slack has no thread moderators; its admins stand in for them."""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.failures import slack_error
from bot.channel_admin import is_settings_request
from bot.messages import IncomingMessage
from bot.text_commands import forget_request

log = logging.getLogger(__name__)


async def with_admin_flag(client: AsyncWebClient, msg: IncomingMessage) -> IncomingMessage:
    """For `/ask settings`, mark the author an admin when Slack says so; for "forget" said in a
    channel's thread, a moderator (who may clear a thread someone else asked in). One users.info
    call, for those messages only; others are returned unchanged. A failed lookup counts as no."""
    settings, forget = is_settings_request(msg), forget_request(msg) and not msg.is_direct
    if not (settings or forget):
        return msg
    try:
        user = (await client.users_info(user=msg.author.id)).get("user") or {}
    except SlackApiError as exc:
        log.warning("users.info failed for %s: %s", msg.author.id, slack_error(exc))
        return msg
    admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
    author = replace(msg.author, is_admin=admin and settings, moderates=admin and forget)
    return replace(msg, author=author)
