"""Sends Events API, slash-command and interactivity requests signed exactly as Slack signs them.

Slack signs ``v0:{timestamp}:{raw body}`` with HMAC-SHA256 and the signing secret, sends the hex
digest as ``X-Slack-Signature: v0=...`` and the timestamp as ``X-Slack-Request-Timestamp``.
Events are JSON; commands are form-encoded fields; interactivity is a form field ``payload``
holding JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

_ids = itertools.count(1)


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SentResponse:
    status: int
    text: str
    elapsed: float


def new_ts() -> str:
    """A fresh, unique Slack-style message timestamp."""
    return f"{time.time():.6f}"[:-6] + f"{next(_ids):06d}"


def app_mention(
    *,
    text: str,
    channel: str = "C0000001",
    user: str = "UHUMAN001",
    team: str = "T0000001",
    ts: str | None = None,
    thread_ts: str | None = None,
    event_id: str | None = None,
    event_type: str = "app_mention",
    channel_type: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``event_callback`` envelope around a user message event."""
    event: dict[str, Any] = {
        "type": event_type,
        "user": user,
        "text": text,
        "ts": ts or new_ts(),
        "channel": channel,
        "team": team,
        "event_ts": ts,
    }
    event["event_ts"] = event["ts"]
    if thread_ts:
        event["thread_ts"] = thread_ts
    if channel_type:
        event["channel_type"] = channel_type
    event.update(extra or {})
    return event_callback(event, team=team, event_id=event_id)


def thread_reply(
    *, text: str, thread_ts: str, user: str = "UHUMAN001", channel: str = "C0000001"
) -> dict[str, Any]:
    """A reply in a channel thread, as the bot receives one that does not mention it."""
    return app_mention(
        text=text, ts=new_ts(), thread_ts=thread_ts, user=user, channel=channel,
        event_type="message", channel_type="channel",
    )  # fmt: skip


def message_edited(
    *,
    channel: str,
    original: dict[str, Any],
    text: str,
    team: str = "T0000001",
    channel_type: str = "channel",
    edited_ts: str | None = None,
) -> dict[str, Any]:
    """What Slack sends when a message is edited: ``message`` with subtype
    ``message_changed``, the message as it is now (with its ``edited`` time) and as it was."""
    ts = new_ts()
    user = original.get("user", "UHUMAN001")
    event: dict[str, Any] = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": channel,
        "channel_type": channel_type,
        "ts": ts,
        "event_ts": ts,
        "message": {
            "type": "message",
            "user": user,
            "text": text,
            "ts": original["ts"],
            "edited": {"user": user, "ts": edited_ts or new_ts()},
        },
        "previous_message": {
            "type": "message",
            "user": user,
            "text": original.get("text", ""),
            "ts": original["ts"],
        },
    }
    return event_callback(event, team=team)


def message_deleted(
    *,
    channel: str,
    deleted: dict[str, Any] | None,
    deleted_ts: str | None = None,
    team: str = "T0000001",
    channel_type: str = "channel",
    event_id: str | None = None,
) -> dict[str, Any]:
    """What Slack sends when a message is deleted: ``message`` with subtype
    ``message_deleted``, the deleted message's ts and (usually) the message as it was."""
    ts = new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "deleted_ts": deleted_ts or (deleted or {})["ts"],
        "channel_type": channel_type,
    }
    if deleted is not None:
        event["previous_message"] = {"type": "message", **deleted}
    return event_callback(event, team=team, event_id=event_id)


def thread_parent_deleted(
    *, channel: str, deleted: dict[str, Any], team: str = "T0000001", event_id: str | None = None
) -> dict[str, Any]:
    """What Slack sends when a thread parent that has replies is deleted: ``message_changed``
    whose new version is a tombstone (the replies stay under "This message was deleted.")."""
    ts = new_ts()
    tombstone = {
        "type": "message",
        "subtype": "tombstone",
        "text": "This message was deleted.",
        "user": "USLACKBOT",
        "hidden": True,
        "ts": deleted["ts"],
        "thread_ts": deleted["ts"],
        "parent_user_id": "USLACKBOT",
        "reply_count": 1,
    }
    event = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "message": tombstone,
        "previous_message": {"type": "message", "thread_ts": deleted["ts"], **deleted},
        "channel_type": "channel",
    }
    return event_callback(event, team=team, event_id=event_id)


def event_callback(
    event: dict[str, Any], *, team: str = "T0000001", event_id: str | None = None
) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": team,
        "api_app_id": "A0000001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):010d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team, "user_id": "UBOT00001", "is_bot": True}],
    }


class SlackSender:
    """Posts signed requests to a bolt endpoint (``url`` is the full ``.../slack/events`` URL)."""

    def __init__(self, url: str, signing_secret: str, *, deadline: float = 30.0) -> None:
        """``deadline``: seconds to wait for an answer (Slack's own is 3, then it retries)."""
        self.url = url
        self.secret = signing_secret
        self.deadline = deadline
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackSender:
        timeout = aiohttp.ClientTimeout(total=self.deadline)
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post_raw(
        self,
        body: str,
        *,
        content_type: str,
        timestamp: int | None = None,
        secret: str | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> SentResponse:
        assert self._session is not None, "use `async with SlackSender(...)`"
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent_headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts}
        if signed:
            sent_headers["X-Slack-Signature"] = signature(secret or self.secret, ts, body)
        sent_headers.update(headers or {})
        started = time.perf_counter()
        async with self._session.post(self.url, data=body.encode(), headers=sent_headers) as resp:
            text = await resp.text()
            return SentResponse(resp.status, text, time.perf_counter() - started)

    async def event(self, body: dict[str, Any], *, retry_num: int | None = None) -> SentResponse:
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post_raw(
            json.dumps(body), content_type="application/json", headers=headers
        )

    async def command(
        self,
        command: str,
        text: str,
        *,
        response_url: str,
        channel: str = "C0000001",
        user: str = "UHUMAN001",
        team: str = "T0000001",
        trigger_id: str | None = None,
    ) -> SentResponse:
        fields = {
            "token": "legacy-verification-token",
            "team_id": team,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "general" if channel.startswith("C") else "directmessage",
            "user_id": user,
            "user_name": "human",
            "command": command,
            "text": text,
            "api_app_id": "A0000001",
            "response_url": response_url,
            "trigger_id": trigger_id or f"trig.{next(_ids)}",
        }
        return await self.post_raw(
            urlencode(fields), content_type="application/x-www-form-urlencoded"
        )

    async def interaction(self, payload: dict[str, Any]) -> SentResponse:
        return await self.post_raw(
            urlencode({"payload": json.dumps(payload)}),
            content_type="application/x-www-form-urlencoded",
        )


def block_action(
    *,
    action_id: str,
    value: str,
    message: dict[str, Any] | None,
    channel: str = "C0000001",
    user: str = "UHUMAN001",
    team: str = "T0000001",
    response_url: str | None = None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click on ``message`` (None for ephemerals)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": team, "domain": "test"},
        "user": {"id": user, "username": "human", "team_id": team},
        "api_app_id": "A0000001",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "channel_id": channel,
            "is_ephemeral": ephemeral,
            "message_ts": (message or {}).get("ts", "0"),
        },
        "trigger_id": f"trig.{next(_ids)}",
        "channel": {"id": channel, "name": "general"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b",
                "type": "button",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if message is not None:
        payload["message"] = message
    if response_url:
        payload["response_url"] = response_url
    return payload


def message_shortcut(
    message: dict[str, Any],
    *,
    channel: str = "C0000001",
    user: str = "UHELPER01",
    team: str = "T0000001",
    response_url: str | None = None,
    callback_id: str = "ask_supportbot",
) -> dict[str, Any]:
    """A ``message_action`` payload: ``user`` picked a message shortcut on ``message`` (the
    message as Slack shows it: ``type``, ``user`` or ``bot_id``, ``text``, ``ts``, ...)."""
    payload: dict[str, Any] = {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": team, "domain": "test"},
        "user": {"id": user, "name": "helper", "team_id": team},
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "callback_id": callback_id,
        "trigger_id": f"trig.{next(_ids)}",
        "message_ts": message.get("ts"),
        "message": {"type": "message", **message},
    }
    if response_url:
        payload["response_url"] = response_url
    return payload
