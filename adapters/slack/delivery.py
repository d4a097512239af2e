"""Posting one answer to Slack while the core produces it.

In a thread the answer is streamed with ``chat.startStream`` / ``appendStream`` / ``stopStream``;
where streaming is unavailable (not in a thread, or the workspace refuses the method) a message
is posted and edited with ``chat.update``. Intermediate sends are throttled per channel (Slack
allows about one message per second per channel); the final message is always sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.render import (
    SlackMessage,
    footer_blocks,
    preview_text,
    render_reply,
)
from bot.messages import Reply

log = logging.getLogger(__name__)

STREAM_CHUNK = 3500  # characters per chat.appendStream call


class ChannelThrottle:
    """Allows one intermediate send per channel per ``interval`` seconds (shared by answers)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def ready(self, channel: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(channel, -1e9) < self.interval:
            return False
        self._last[channel] = now
        if len(self._last) > 10_000:  # forget quiet channels
            cutoff = now - self.interval
            self._last = {k: v for k, v in self._last.items() if v >= cutoff}
        return True


@dataclass(frozen=True, slots=True)
class Route:
    """Where an answer goes. ``thread_ts`` None means top level (DMs)."""

    channel: str
    thread_ts: str | None
    user_id: str | None = None
    team_id: str | None = None


ExtraBlocks = Callable[[Reply], Awaitable[list[dict[str, Any]]]]


async def post_messages(
    client: AsyncWebClient, route: Route, messages: list[SlackMessage]
) -> list[str]:
    """Post each message in order; returns their timestamps."""
    stamps: list[str] = []
    for message in messages:
        response = await client.chat_postMessage(
            channel=route.channel,
            thread_ts=route.thread_ts,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
        )
        stamps.append(str(response["ts"]))
    return stamps


class AnswerWriter:
    """Turns the Responder's stream (text deltas, then one Reply) into Slack messages."""

    def __init__(
        self,
        client: AsyncWebClient,
        route: Route,
        throttle: ChannelThrottle,
        *,
        streaming: bool = True,
        extra_blocks: ExtraBlocks | None = None,
        on_first_post: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.route = route
        self.throttle = throttle
        self.mode = "stream" if streaming and route.thread_ts else "update"
        self.extra_blocks = extra_blocks
        self.shown = ""  # text the user already sees (streamed or in the updated message)
        self.pending = ""  # text received but not sent yet
        self.ts: str | None = None  # the streamed or updated message
        # Told the first message's ts as soon as it exists (the inbox records it, so that a
        # process that takes over after a crash can remove a half-written answer).
        self.on_first_post = on_first_post

    async def _posted(self, ts: str) -> None:
        if self.on_first_post is not None:
            callback, self.on_first_post = self.on_first_post, None
            await callback(ts)

    async def write(self, items: AsyncIterator[str | Reply]) -> Reply | None:
        final: Reply | None = None
        async with aclosing(items) as stream:
            async for item in stream:
                if isinstance(item, Reply):
                    final = item
                    continue
                self.pending += item
                if self.pending.strip() and self.throttle.ready(self.route.channel):
                    await self._send_progress()
        await self._finish(final)
        return final

    async def _send_progress(self) -> None:
        if self.mode == "stream":
            try:
                await self._stream_pending()
                return
            except SlackApiError as exc:
                if self.ts is not None:
                    raise
                # Streaming is not available here (older workspace, not a thread, ...).
                log.info("chat.startStream unavailable (%s); using chat.update", _error(exc))
                self.mode = "update"
        text = self.shown + self.pending
        preview = preview_text(text)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": preview}}]
        if self.ts is None:
            response = await self.client.chat_postMessage(
                channel=self.route.channel,
                thread_ts=self.route.thread_ts,
                text=preview,
                blocks=blocks,
                unfurl_links=False,
            )
            self.ts = str(response["ts"])
            await self._posted(self.ts)
        else:
            await self.client.chat_update(
                channel=self.route.channel, ts=self.ts, text=preview, blocks=blocks
            )
        self.shown, self.pending = text, ""

    async def _stream_pending(self) -> None:
        while self.pending:
            piece, rest = self.pending[:STREAM_CHUNK], self.pending[STREAM_CHUNK:]
            if self.ts is None:
                response = await self.client.chat_startStream(
                    channel=self.route.channel,
                    thread_ts=str(self.route.thread_ts),
                    markdown_text=piece,
                    recipient_team_id=self.route.team_id,
                    recipient_user_id=self.route.user_id,
                )
                self.ts = str(response["ts"])
                await self._posted(self.ts)
            else:
                await self.client.chat_appendStream(
                    channel=self.route.channel, ts=self.ts, markdown_text=piece
                )
            self.shown += piece
            self.pending = rest

    async def _finish(self, final: Reply | None) -> None:
        extra = await self.extra_blocks(final) if final and self.extra_blocks else []
        if self.mode == "stream" and self.ts is not None:
            await self._finish_stream(final, extra)
            return
        if final is None or final.silent:  # an auto-answer post the bot is not sure about
            return
        messages = render_reply(final, extra_blocks=extra)
        if self.ts is not None:
            first = messages[0]
            await self.client.chat_update(
                channel=self.route.channel, ts=self.ts, text=first.text, blocks=first.blocks
            )
            messages = messages[1:]
        stamps = await post_messages(self.client, self.route, messages)
        if stamps:
            await self._posted(stamps[0])

    async def _finish_stream(self, final: Reply | None, extra: list[dict[str, Any]]) -> None:
        assert self.ts is not None
        # The final text is the streamed one stripped: whitespace already streamed around it
        # must not make it look different (that posted the whole answer a second time).
        seen = self.shown.strip()
        if final is None or not final.text.startswith(seen):
            # The final word differs from what was streamed (an apology after the model failed
            # mid-answer, for instance): close the stream and put the final reply in its place,
            # as the update mode does, so the asker never keeps half an answer next to it.
            await self.client.chat_stopStream(channel=self.route.channel, ts=self.ts)
            if final is not None and not final.silent:
                first, *rest = render_reply(final, extra_blocks=extra)
                await self.client.chat_update(
                    channel=self.route.channel, ts=self.ts, text=first.text, blocks=first.blocks
                )
                await post_messages(self.client, self.route, rest)
            return
        rest = final.text[len(seen) :]
        trailing = self.shown[len(self.shown.rstrip()) :]
        self.pending = rest.removeprefix(trailing) if trailing else rest
        await self._stream_pending()
        blocks = footer_blocks(final) + extra
        await self.client.chat_stopStream(
            channel=self.route.channel, ts=self.ts, blocks=blocks or None
        )


def _error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error"))
    except Exception:
        return type(exc).__name__
