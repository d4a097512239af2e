"""A thread's messages for the core's learning step (bot.learning), via conversations.replies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.convert import plain_text
from bot.learning import ThreadMessage, ThreadReader
from storage.models import Escalation

PAGE_SIZE = 200
MAX_PAGES = 10  # 2000 replies is far more than any support thread


def thread_reader(client: AsyncWebClient) -> ThreadReader:
    async def read(escalation: Escalation) -> list[ThreadMessage]:
        if not escalation.thread_id:
            return []
        messages: list[ThreadMessage] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            response = await client.conversations_replies(
                channel=escalation.channel_id, ts=escalation.thread_id, limit=PAGE_SIZE,
                cursor=cursor,
            )  # fmt: skip
            messages += [to_thread_message(m) for m in response.get("messages") or []]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return messages

    return read


def to_thread_message(message: dict[str, Any]) -> ThreadMessage:
    is_bot = bool(message.get("bot_id")) or message.get("subtype") == "bot_message"
    return ThreadMessage(
        author_id=str(message.get("user") or message.get("bot_id") or ""),
        text=plain_text(str(message.get("text") or "")),
        sent_at=datetime.fromtimestamp(float(message.get("ts") or 0), UTC),
        is_bot=is_bot,
    )
