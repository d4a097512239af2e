"""Posting one answer to Slack while the core produces it.

In a thread the answer is streamed with ``chat.startStream`` / ``appendStream`` / ``stopStream``;
where streaming is unavailable (not in a thread, or the workspace refuses the method) a message
is posted and edited with ``chat.update``. Intermediate sends are throttled per channel (Slack
allows about one message per second per channel); the final message is always sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.failures import CALL_FAILURES, slack_error, transient_failure
from adapters.slack.render import (
    CHUNK_LIMIT,
    SlackMessage,
    footer_blocks,
    preview_text,
    render_reply,
    resplit,
)
from bot import splitting, texts
from bot.messages import Reply, ReplyKind, Slow

log = logging.getLogger(__name__)

STREAM_CHUNK = 3500  # characters per chat.startStream/appendStream call (Slack: 12,000 at most)
# A streamed message's Markdown is one markdown block, 12,000 characters in all: Slack refuses
# more with msg_too_long. A longer answer goes on in a new streamed message under it (the room
# left is for the fence markers a cut adds).
STREAM_MESSAGE_LIMIT = 11_500
# Slack's answers to a message too long for it; the text is then cut smaller and sent again.
TOO_LONG_ERRORS = frozenset({"msg_too_long", "msg_blocks_too_long"})
# Slack's answer to stopping (or appending to) a streamed message that is not streaming.
NOT_STREAMING = "message_not_in_streaming_state"
# Below this many characters per call, a refusal is not about length: give up.
MIN_PIECE = splitting.MIN_LIMIT
# Seconds before a message is created again within one attempt (as slack_sdk would wait).
CREATE_RETRY_DELAYS = (0.5, 1.0)
# How far back a copy left by a failed create is looked for: our clock and Slack's may differ.
COPY_MARGIN = 60.0


# Slack's answers to editing (or streaming into) a message someone else deleted meanwhile (a
# moderator, the thread's owner): the answer is then posted whole, as new messages.
GONE = frozenset({"message_not_found", "cant_update_message"})


class StreamExpired(Exception):
    """The answer's message can no longer be written: Slack ended a streamed message before we
    did (it expires a stream after about five minutes: appending to it or stopping it is
    refused with ``message_not_in_streaming_state``), or someone deleted it (:data:`GONE`)."""


def no_longer_writable(exc: SlackApiError) -> bool:
    return slack_error(exc) == NOT_STREAMING or slack_error(exc) in GONE


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
OnPost = Callable[[str], Awaitable[None]]


def too_long(exc: BaseException) -> bool:
    """Slack refused the message for its length."""
    return isinstance(exc, SlackApiError) and slack_error(exc) in TOO_LONG_ERRORS


def posting_once(client: AsyncWebClient) -> AsyncWebClient:
    """The client without slack_sdk's own retries of 5xx and dropped connections: Slack may
    have posted before failing (it has no idempotency key), so a blind retry posts twice.
    A 429 posted nothing and is still waited out."""
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        session=client.session,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
    )


async def _tried_again(
    attempt: Callable[[int], Awaitable[AsyncSlackResponse | None]],
    retry_delays: tuple[float, ...],
) -> AsyncSlackResponse | None:
    """``attempt(retry)`` (``retry``: how many tries failed before it), tried again after each
    of ``retry_delays`` while it fails for a reason that may pass, as slack_sdk would."""
    for retry, delay in enumerate((0.0, *retry_delays)):
        if retry:
            await asyncio.sleep(delay)
        try:
            return await attempt(retry)
        except CALL_FAILURES as exc:
            if transient_failure(exc) is None or retry == len(retry_delays):
                raise
    raise AssertionError("unreachable")


async def respond(url: str, message: SlackMessage, *, replace_original: bool = False) -> bool:
    """Post ``message`` to a slash command's or click's ``response_url`` (ephemeral), once
    (``replace_original``: in place of the message that url showed last).
    True: it arrived, or may have (a 5xx, or a connection dropped or timed out once the request
    was out): Slack has no idempotency key, so posting it again, there or with
    chat.postEphemeral, may show it twice. False: it surely did not (a 4xx, as for an expired
    or used-up url, or no connection at all), and the caller posts it another way."""
    webhook = AsyncWebhookClient(
        url, timeout=15, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
    )
    try:
        response = await webhook.send(
            text=message.text,
            blocks=message.blocks or None,
            response_type="ephemeral",
            replace_original=replace_original or None,
        )
    except aiohttp.ClientConnectorError as exc:
        log.warning("response_url unreachable (%s); posting another way", type(exc).__name__)
        return False
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("response_url failed (%s); it may have arrived", type(exc).__name__)
        return True
    if response.status_code == 200:
        return True
    if response.status_code < 500:
        log.warning("response_url refused (HTTP %s); posting another way", response.status_code)
        return False
    log.warning("response_url answered HTTP %s; it may have arrived", response.status_code)
    return True


async def create_message(
    client: AsyncWebClient,
    route: Route,
    method: str,
    shown: str,
    *,
    retry_delays: tuple[float, ...] = CREATE_RETRY_DELAYS,
    **params: Any,
) -> AsyncSlackResponse:
    """``chat.postMessage`` or ``chat.startStream`` at ``route`` (``shown``: its text as
    Slack shows it), tried again through passing faults as slack_sdk would, but each retry
    first deletes the copy an earlier try may have posted before its answer was lost (ours,
    in the same place, with the same text, since just before the first try).
    ``retry_delays=()``: one try, for callers that look for an earlier copy themselves."""
    once = posting_once(client)
    since = f"{time.time() - COPY_MARGIN:.6f}"

    async def attempt(retry: int) -> AsyncSlackResponse:
        if retry:
            await _delete_copies(client, route, shown, since)
        return await getattr(once, method)(
            channel=route.channel, thread_ts=route.thread_ts, **params
        )

    response = await _tried_again(attempt, retry_delays)
    assert response is not None
    return response


async def stop_stream(
    client: AsyncWebClient,
    channel: str,
    ts: str,
    *,
    retry_delays: tuple[float, ...] = CREATE_RETRY_DELAYS,
    **params: Any,
) -> None:
    """``chat.stopStream``, done once whatever Slack's answers: tried again through passing
    faults, but a retry told the stream is stopped already is done, since a 5xx or a dropped
    connection may come after Slack stopped it. (slack_sdk's blind retry got that refusal as
    an error, and the finished answer was taken back for an apology.)"""
    once = posting_once(client)

    async def attempt(retry: int) -> None:
        try:
            await once.chat_stopStream(channel=channel, ts=ts, **params)
        except SlackApiError as exc:
            if slack_error(exc) in GONE:  # someone deleted it
                raise StreamExpired(ts) from exc
            if slack_error(exc) != NOT_STREAMING:
                raise
            if not retry:  # not by us: Slack ended it (it expires streams)
                raise StreamExpired(ts) from exc
            log.info("the stream %s was stopped by an earlier try", ts)

    await _tried_again(attempt, retry_delays)


async def _delete_copies(client: AsyncWebClient, route: Route, text: str, since: str) -> None:
    """Delete our messages with ``text`` posted at ``route`` after ``since``. A failure to
    look for a passing reason raises (the attempt is handed back, and the next one removes
    what this one left); a refusal (no access to the history) is logged: a copy is better
    than no answer."""
    try:
        found = await our_messages(client, route, since)
    except SlackApiError as exc:
        if transient_failure(exc) is not None:
            raise
        log.warning("cannot look for a copy a failed post left: %s", slack_error(exc))
        return
    for message in found:
        if message.get("text") == text and message.get("ts") != route.thread_ts:
            log.info("deleting the copy a failed post left in %s", route.channel)
            await client.chat_delete(channel=route.channel, ts=str(message["ts"]))


async def our_messages(
    client: AsyncWebClient, route: Route, since: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    """Our messages at ``route`` posted after ``since`` (a thread's replies, or a channel's
    own messages), for finding a post whose response was lost. Raises when Slack fails."""
    me = await client.auth_test()
    if route.thread_ts:
        found = await client.conversations_replies(
            channel=route.channel, ts=route.thread_ts, oldest=since, limit=limit
        )
    else:
        found = await client.conversations_history(channel=route.channel, oldest=since, limit=limit)
    return [
        message
        for message in found.get("messages") or []
        if message.get("bot_id") == me.get("bot_id") or message.get("user") == me.get("user_id")
    ]


async def post_messages(
    client: AsyncWebClient,
    route: Route,
    messages: list[SlackMessage],
    *,
    on_post: OnPost | None = None,
    retry_delays: tuple[float, ...] = CREATE_RETRY_DELAYS,
) -> list[str]:
    """Post each message in order (one Slack refuses as too long is cut smaller and posted);
    returns their timestamps, each also told to ``on_post`` as soon as it exists."""
    stamps: list[str] = []
    for message in messages:
        try:
            response = await create_message(
                client,
                route,
                "chat_postMessage",
                message.text,
                retry_delays=retry_delays,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            smaller = resplit(message) if too_long(exc) else None
            if smaller is None:
                raise
            _log_too_long(exc, len(message.text), len(smaller))
            stamps += await post_messages(
                client, route, smaller, on_post=on_post, retry_delays=retry_delays
            )
            continue
        stamps.append(str(response["ts"]))
        if on_post is not None:
            await on_post(stamps[-1])
    return stamps


def _log_too_long(exc: SlackApiError, size: int, parts: int) -> None:
    log.warning(
        "Slack refused %d characters as too long (%s); sending them in %d parts",
        size,
        slack_error(exc),
        parts,
    )


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
        on_post: OnPost | None = None,
        private_notes: bool = False,
        private_answers: bool = False,
    ) -> None:
        self.client = client
        self.route = route
        # The core's notes for the asker alone (ephemeral INFO: what /forget did, say) are
        # posted with chat.postEphemeral where others could see them (not in a DM).
        self.private_notes = private_notes and route.user_id is not None
        # The core says answers here are for the asker alone (a channel set to ephemeral):
        # nothing is streamed or begun where others see it; the final reply is posted whole
        # with chat.postEphemeral (a reply the core did not make ephemeral is posted as usual).
        self.private_answers = private_answers and route.user_id is not None
        self.throttle = throttle
        self.mode = "stream" if streaming and route.thread_ts else "update"
        self.extra_blocks = extra_blocks
        self.shown = ""  # text the user already sees (streamed or in the updated message)
        self.pending = ""  # text received but not sent yet
        self.ts: str | None = None  # the streamed or updated message
        # Told every message's ts as soon as it exists (the inbox records them, so that the
        # next attempt, after a crash or a passing fault, can remove a half-written answer).
        self.on_post = on_post
        self.preview_limit = CHUNK_LIMIT  # halved when Slack refuses a preview as too long
        self.stream_chunk = STREAM_CHUNK  # halved when Slack refuses a piece as too long
        self.streamed = ""  # what the current streamed message holds
        self.reopen = ""  # the code fence to reopen at the start of the next streamed message
        self.stamps: list[str] = []  # every message of this answer, in order
        # Slack expired a streamed message of this answer: it is posted whole, as messages.
        self.expired = False

    async def _posted(self, ts: str) -> None:
        self.stamps.append(ts)
        if self.on_post is not None:
            await self.on_post(ts)

    async def write(self, items: AsyncIterator[str | Reply]) -> Reply | None:
        final: Reply | None = None
        async with aclosing(items) as stream:
            async for item in stream:
                if isinstance(item, Reply):
                    final = item
                    continue
                if isinstance(item, Slow):  # the core says this answer is slow
                    await self._begin()
                    continue
                self.pending += item
                if self.expired or self.private_answers:
                    continue  # posted whole at the end
                if self.pending.strip() and self.throttle.ready(self.route.channel):
                    try:
                        await self._send_progress()
                    except StreamExpired:
                        self._expire()
        await self._finish(final)
        return final

    def _expire(self) -> None:
        log.warning(
            "the answer's message in %s can no longer be written (expired or deleted); "
            "posting the answer whole",
            self.route.channel,
        )
        self.expired = True

    async def _begin(self) -> None:
        """Show the asker that the answer is coming: begin the answer's own message (a
        stream with no text yet, or a short note that the first words replace), which
        becomes the answer. Recorded like every message of it (``on_post``), so a failed
        attempt's retraction or the next attempt removes it as it would half an answer."""
        if self.ts is not None or self.shown or self.private_answers:
            return
        if self.mode == "stream":
            try:
                response = await create_message(
                    self.client,
                    self.route,
                    "chat_startStream",
                    "",
                    # One try: an empty copy cannot be told from another answer's begun
                    # message; a passing failure hands the work back, and the next attempt
                    # removes what this one left in the thread.
                    retry_delays=(),
                    recipient_team_id=self.route.team_id,
                    recipient_user_id=self.route.user_id,
                )
            except SlackApiError as exc:
                if transient_failure(exc) is not None:
                    raise
                log.info("chat.startStream unavailable (%s); using chat.update", slack_error(exc))
                self.mode = "update"
            else:
                self.ts, self.streamed = str(response["ts"]), ""
                await self._posted(self.ts)
                return
        note = texts.SLACK_ANSWER_COMING
        response = await create_message(
            self.client,
            self.route,
            "chat_postMessage",
            note,
            text=note,
            blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}],
        )
        self.ts = str(response["ts"])
        await self._posted(self.ts)

    async def _drop_begun(self) -> None:
        """The message begun for a slow answer that has nothing to show there after all (the
        bot stays silent, or the reply is private): removed (best effort)."""
        ts, self.ts = self.ts, None
        if ts is None:
            return
        try:
            await self.client.chat_delete(channel=self.route.channel, ts=ts)
        except CALL_FAILURES as exc:
            log.warning("could not remove the message begun for an answer: %s", exc)

    async def _send_progress(self) -> None:
        if self.mode == "stream":
            try:
                await self._stream_pending()
                return
            except SlackApiError as exc:
                if self.ts is not None:
                    raise
                # Streaming is not available here (older workspace, not a thread, ...).
                log.info("chat.startStream unavailable (%s); using chat.update", slack_error(exc))
                self.mode = "update"
        text = self.shown + self.pending
        preview = preview_text(text, self.preview_limit)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": preview}}]
        try:
            if self.ts is None:
                response = await create_message(
                    self.client,
                    self.route,
                    "chat_postMessage",
                    preview,
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
        except SlackApiError as exc:
            if slack_error(exc) in GONE:
                raise StreamExpired(self.ts) from exc
            if not too_long(exc) or self.preview_limit // 2 < MIN_PIECE:
                raise
            # Only a preview: show less of it from now on; the final answer is split anyway.
            _log_too_long(exc, len(preview), 2)
            self.preview_limit //= 2
            return
        self.shown, self.pending = text, ""

    async def _stream_pending(self) -> None:
        while self.pending:
            size = min(self.stream_chunk, len(self.pending))
            if self.ts is not None and len(self.streamed) + size > STREAM_MESSAGE_LIMIT:
                size = _cut_at_line(self.pending, STREAM_MESSAGE_LIMIT - len(self.streamed))
                if size == 0:
                    await self._next_stream_message()
                    continue
            piece = self.pending[:size]
            try:
                await self._stream(piece)
            except SlackApiError as exc:
                if not too_long(exc):
                    raise
                await self._after_too_long(exc, piece)
                continue
            self.shown += piece
            self.pending = self.pending[size:]

    async def _stream(self, piece: str) -> None:
        """Send ``piece``: the start of a new streamed message, or more of the current one."""
        if self.ts is None:
            text = self.reopen + piece
            response = await create_message(
                self.client,
                self.route,
                "chat_startStream",
                text,
                markdown_text=text,
                recipient_team_id=self.route.team_id,
                recipient_user_id=self.route.user_id,
            )
            self.ts, self.streamed, self.reopen = str(response["ts"]), text, ""
            await self._posted(self.ts)
        else:
            # Not retried blindly either: an append Slack made before a 5xx, sent again,
            # shows its text twice. A passing failure hands the work back (TryLater): the
            # next attempt removes this streamed message and answers again.
            try:
                await posting_once(self.client).chat_appendStream(
                    channel=self.route.channel, ts=self.ts, markdown_text=piece
                )
            except SlackApiError as exc:
                if no_longer_writable(exc):
                    raise StreamExpired(self.ts) from exc
                raise
            self.streamed += piece

    async def _after_too_long(self, exc: SlackApiError, piece: str) -> None:
        """Slack counted more than we did: a streamed message it finds full goes on in a new
        one; a new message whose first piece it refused gets smaller pieces (until they are
        too small for length to be the reason)."""
        _log_too_long(exc, len(piece), 2)
        if self.ts is not None:
            await self._next_stream_message()
            return
        if len(piece) // 2 < MIN_PIECE:
            raise exc
        self.stream_chunk = len(piece) // 2

    async def _next_stream_message(self) -> None:
        """Close the current streamed message, and a code block open in it, so the answer
        goes on in a new message that reopens that code block."""
        assert self.ts is not None
        fence: str | None = None
        for line in self.streamed.split("\n"):
            fence = splitting.fence_after(fence, line)
        closing = None
        if fence is not None:
            closing = ("" if self.streamed.endswith("\n") else "\n") + _marker(fence)
            self.reopen = fence + "\n"
        await stop_stream(self.client, self.route.channel, self.ts, markdown_text=closing)
        self.ts, self.streamed = None, ""

    async def _finish(self, final: Reply | None) -> None:
        extra = await self.extra_blocks(final) if final and self.extra_blocks else []
        nothing_here = final is None or final.silent or self._private(final)
        if nothing_here and not self.shown.strip() and not self.expired:
            await self._drop_begun()  # begun for a slow answer, which shows nothing here
        if self.mode == "stream" and self.ts is not None and not self.expired:
            try:
                await self._finish_stream(final, extra)
                return
            except StreamExpired:
                self._expire()
        if self.expired:
            await self._post_whole(final, extra)
            return
        if final is None or final.silent:  # an auto-answer post the bot is not sure about
            return
        if self.ts is None and self._private(final):
            await self._post_privately(final, extra)
            return
        messages = render_reply(final, extra_blocks=extra)
        if self.ts is not None:
            try:
                messages = await self._update_first(messages)
            except StreamExpired:  # deleted by someone meanwhile
                self._expire()
                await self._post_whole(final, extra)
                return
        await post_messages(self.client, self.route, messages, on_post=self._posted)

    async def _post_whole(self, final: Reply | None, extra: list[dict[str, Any]]) -> None:
        """Slack expired the stream before the answer was done: the partial messages go, and
        the finished answer is posted as ordinary messages, so the asker still gets it whole."""
        await self._remove(self.stamps)
        self.ts, self.shown = None, ""
        if final is not None and not final.silent:
            messages = render_reply(final, extra_blocks=extra)
            await post_messages(self.client, self.route, messages, on_post=self._posted)

    async def _remove(self, stamps: list[str]) -> None:
        """Delete messages of this answer that its final reply does not use (best effort)."""
        for ts in stamps:
            try:
                await self.client.chat_delete(channel=self.route.channel, ts=ts)
            except SlackApiError as exc:
                if slack_error(exc) != "message_not_found":
                    log.warning("could not remove part of a streamed answer: %s", slack_error(exc))

    def _private(self, final: Reply) -> bool:
        if not final.ephemeral:
            return False
        return self.private_answers or (self.private_notes and final.kind is ReplyKind.INFO)

    async def _post_privately(self, final: Reply, extra: list[dict[str, Any]]) -> None:
        """Only the asker sees it, in the thread it answers (nothing to record: an ephemeral
        message cannot be deleted, and a second attempt's copy is as private). An answer keeps
        its buttons: their clicks come with a ``response_url``, which is how they answer."""
        note = final.kind is ReplyKind.INFO
        messages = render_reply(final, buttons=not note, extra_blocks=None if note else extra)
        for message in messages:
            await self.client.chat_postEphemeral(
                channel=self.route.channel,
                user=self.route.user_id,
                thread_ts=self.route.thread_ts,
                text=message.text,
                blocks=message.blocks,
            )

    async def _update_first(self, messages: list[SlackMessage]) -> list[SlackMessage]:
        """Put the first message into the one shown so far; returns what is left to post."""
        assert self.ts is not None
        while True:
            first = messages[0]
            try:
                await self.client.chat_update(
                    channel=self.route.channel, ts=self.ts, text=first.text, blocks=first.blocks
                )
                return messages[1:]
            except SlackApiError as exc:
                if slack_error(exc) in GONE:
                    raise StreamExpired(self.ts) from exc
                smaller = resplit(first) if too_long(exc) else None
                if smaller is None:
                    raise
                _log_too_long(exc, len(first.text), len(smaller))
                messages = smaller + messages[1:]

    async def _finish_stream(self, final: Reply | None, extra: list[dict[str, Any]]) -> None:
        assert self.ts is not None
        # The final text is the streamed one stripped: whitespace already streamed around it
        # must not make it look different (that posted the whole answer a second time).
        seen = self.shown.strip()
        if final is None or not final.text.startswith(seen):
            # The final word differs from what was streamed (an apology after the model failed
            # mid-answer, for instance): close the stream and put the final reply in its place,
            # as the update mode does, so the asker never keeps half an answer next to it.
            await stop_stream(self.client, self.route.channel, self.ts)
            # An answer longer than one streamed message left its start above this one.
            await self._remove([ts for ts in self.stamps if ts != self.ts])
            if final is not None and not final.silent:
                rest = await self._update_first(render_reply(final, extra_blocks=extra))
                await post_messages(self.client, self.route, rest, on_post=self._posted)
            return
        rest = final.text[len(seen) :]
        trailing = self.shown[len(self.shown.rstrip()) :]
        self.pending = rest.removeprefix(trailing) if trailing else rest
        await self._stream_pending()
        blocks = footer_blocks(final) + extra
        await stop_stream(self.client, self.route.channel, self.ts, blocks=blocks or None)


def _cut_at_line(text: str, room: int) -> int:
    """How much of ``text`` fits in ``room`` characters, ending at a line break (0: none)."""
    if room <= 0:
        return 0
    return text.rfind("\n", 0, room) + 1


def _marker(fence: str) -> str:
    stripped = fence.lstrip()
    char = stripped[:1]
    return stripped[: len(stripped) - len(stripped.lstrip(char))]
