"""A loopback fake of Discord's REST API (v10) that the real discord.py client believes.

It records every request, keeps the messages and threads the bot creates, answers with the JSON
shapes discord.py parses, and can answer 429 on demand. What discord.py needs to be convinced
(docs/architecture.md, "Platform facts"): ``Content-Type`` exactly ``application/json``; 429s
carry a JSON ``retry_after`` and a ``Via`` header; successes carry ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.loopback import serve_on_loopback

API_PREFIX = "/api/v10"
# Discord checks an enforced nonce for uniqueness "in the past few minutes" (create message).
NONCE_WINDOW = 300.0
EPHEMERAL_FLAG = 1 << 6  # a message flag: shown to one user only


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any
    status: int = 200
    at: float = field(default_factory=time.monotonic)  # when it arrived (loop clock)


@dataclass
class _FailRule:
    method: str
    pattern: re.Pattern[str]
    times: int
    retry_after: float
    status: int = 429
    via: bool = True  # Discord's 429s carry ``Via``; discord.py treats one without as a ban
    handled: bool = False  # the request takes effect first; only its answer is the error


@dataclass
class _ResetRule:
    method: str
    pattern: re.Pattern[str]
    times: int
    after: bool  # handle the request first: the change is made, the response is lost
    skip: int = 0  # matching requests let through before the first reset


Handler = Callable[[web.Request, re.Match[str], Any], Awaitable[tuple[int, Any]]]


@dataclass
class FakeDiscordAPI:
    """State and handlers of the fake; ``start()`` binds it to 127.0.0.1 on a free port."""

    bot_id: str = field(default_factory=p.snowflake)
    application_id: str = field(default_factory=p.snowflake)
    bot_name: str = "supportbot"
    gateway_url: str = "ws://127.0.0.1:1/"
    shards: int = 1
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # guild channels by id
    deleted: list[dict[str, Any]] = field(default_factory=list)  # messages the bot deleted
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forbid_threads_in: set[str] = field(default_factory=set)
    channel_guild: dict[str, str] = field(default_factory=dict)  # channel id -> guild id
    interaction_channels: dict[str, str] = field(default_factory=dict)  # token -> channel id
    # token -> the interaction (its id, type and user go in its messages' interaction_metadata)
    interactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_messages: list[dict[str, Any]] = field(default_factory=list)  # what people wrote
    user_deleted: set[str] = field(default_factory=set)  # ids of what people wrote, then deleted
    channel_edits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reactions: list[tuple[str, str, str]] = field(default_factory=list)  # channel, message, emoji
    acknowledged: set[str] = field(default_factory=set)  # interaction tokens responded to
    dm_channels: dict[str, str] = field(default_factory=dict)  # user id -> DM channel id
    # Users whose DMs refuse the bot (server privacy settings, the bot blocked): Discord
    # answers a message there with 403, code 50007 "Cannot send messages to this user".
    closed_dms: set[str] = field(default_factory=set)
    # Called with a thread payload after a thread is created (the harness forwards it to the
    # gateway as THREAD_CREATE, as Discord does).
    on_thread_created: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    # Called with a MESSAGE_DELETE payload after a message is deleted through the API (the
    # harness forwards it to the gateway, as Discord tells every bot that can see the channel).
    on_message_deleted: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    # Interaction tokens past Discord's 15 minutes (expire_token): every webhook call with
    # one is refused with 401, code 50027 "Invalid Webhook Token", as Discord does.
    expired_tokens: set[str] = field(default_factory=set)
    _fail_rules: list[_FailRule] = field(default_factory=list)
    _reset_rules: list[_ResetRule] = field(default_factory=list)
    _stalls: list[tuple[str, re.Pattern[str], asyncio.Event]] = field(default_factory=list)
    _nonces: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> str:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._dispatch)
        self._runner, self.port = await serve_on_loopback(app)
        return self.base_url

    async def stop(self) -> None:
        self.unstall()  # a stalled request would hold up the shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def bot_user(self) -> dict[str, Any]:
        return p.user(self.bot_id, self.bot_name, bot=True)

    # ----------------------------------------------------------------- test controls
    def delete_user_message(self, message_id: str) -> None:
        """Someone deletes what they wrote: a reply to it is refused unless it asks not to
        fail (``fail_if_not_exists: false``), then posted without the reference."""
        self.user_deleted.add(message_id)

    def expire_token(self, token: str) -> None:
        """The interaction's token is older than 15 minutes from now on."""
        self.expired_tokens.add(token)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` matching requests with 429 (rate limited); ``via=False``
        leaves out the ``Via`` header (a proxy's 429, which discord.py does not retry)."""
        self._fail_rules.append(
            _FailRule(method, re.compile(path_regex), times, retry_after, via=via)
        )

    def fail_with(
        self, status: int, method: str, path_regex: str, *, times: int = 1, handled: bool = False
    ) -> None:
        """Answer the next ``times`` matching requests with an error ``status`` (e.g. 404);
        ``handled``: the request takes effect first (a 5xx from a gateway failing late)."""
        rule = _FailRule(method, re.compile(path_regex), times, 0.0, status, handled=handled)
        self._fail_rules.append(rule)

    def reset_next(
        self,
        method: str,
        path_regex: str,
        *,
        times: int = 1,
        after: bool = False,
        skip: int = 0,
    ) -> None:
        """Reset the connection (TCP RST) on the next ``times`` matching requests (after
        letting ``skip`` through), before handling them or, with ``after``, once handled (the
        message exists, its response is lost). Recorded with status 0."""
        self._reset_rules.append(_ResetRule(method, re.compile(path_regex), times, after, skip))

    def stall(self, method: str, path_regex: str) -> None:
        """Matching requests hang (Discord stopped answering) and never take effect; once
        :meth:`unstall` is called, the ones still waiting get their connection reset."""
        self._stalls.append((method, re.compile(path_regex), asyncio.Event()))

    def unstall(self) -> None:
        for _method, _pattern, released in self._stalls:
            released.set()
        self._stalls.clear()

    def find(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Messages the bot posted in a channel (current content, after edits), oldest first."""
        return [
            m
            for key, m in self.messages.items()
            if m["channel_id"] == channel_id
            and not key.startswith("original:")
            and "interaction_token" not in m
        ]

    def visible_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """What everyone sees in a channel from the bot: its messages and its interactions'
        responses and follow-ups, except ephemeral ones (only their user sees those)."""
        return [
            m
            for key, m in self.messages.items()
            if m["channel_id"] == channel_id
            and not key.startswith("original:")  # each is kept under its id too
            and not int(m.get("flags") or 0) & EPHEMERAL_FLAG
        ]

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
    ) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every request); fail on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 0.2))

    # ----------------------------------------------------------------- plumbing
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        raw = await request.read()
        body: Any = None
        if raw:
            if request.content_type == "application/json":
                body = json.loads(raw)
            elif request.content_type.startswith("multipart/"):
                body = _payload_json_from_multipart(raw)
            else:
                body = raw.decode(errors="replace")
        record = RecordedRequest(request.method, path, dict(request.query), body)
        self.requests.append(record)
        try:
            for method, pattern, released in list(self._stalls):
                if method == request.method and pattern.fullmatch(path):
                    self.changed.set()
                    await released.wait()
                    record.status = 0
                    _reset_connection(request)
                    raise ConnectionResetError("connection reset by the fake (test control)")
            reset = self._matching_reset_rule(request.method, path)
            if reset is not None:
                if reset.after:
                    await self._route(request, path, body)
                record.status = 0
                _reset_connection(request)
                raise ConnectionResetError("connection reset by the fake (test control)")
            webhook = re.match(r"/webhooks/\d+/([^/]+)", path)
            if webhook is not None and webhook.group(1) in self.expired_tokens:
                record.status = 401
                return _json(401, {"message": "Invalid Webhook Token", "code": 50027})
            rule = self._matching_fail_rule(request.method, path)
            if rule is not None and rule.status != 429:
                if rule.handled:
                    await self._route(request, path, body)
                record.status = rule.status
                return _json(rule.status, {"message": "Injected failure", "code": 0})
            if rule is not None:
                record.status = 429
                return _json(
                    429,
                    {
                        "message": "You are being rate limited.",
                        "retry_after": rule.retry_after,
                        "global": False,
                    },
                    extra={
                        **({"Via": "1.1 google"} if rule.via else {}),
                        "Retry-After": str(rule.retry_after),
                        "X-RateLimit-Scope": "user",
                    },
                )
            record.status, payload = await self._route(request, path, body)
            return _json(record.status, payload)
        finally:
            self.changed.set()

    async def _route(self, request: web.Request, path: str, body: Any) -> tuple[int, Any]:
        for method, pattern, handler in self._routes():
            if method == request.method:
                match = pattern.fullmatch(path)
                if match is not None:
                    return await handler(request, match, body)
        return 404, {"message": "Unknown route", "code": 0}

    def _matching_reset_rule(self, method: str, path: str) -> _ResetRule | None:
        for rule in self._reset_rules:
            if rule.times > 0 and rule.method == method and rule.pattern.fullmatch(path):
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.times -= 1
                return rule
        return None

    def _matching_fail_rule(self, method: str, path: str) -> _FailRule | None:
        for rule in self._fail_rules:
            if rule.times > 0 and rule.method == method and rule.pattern.fullmatch(path):
                rule.times -= 1
                return rule
        return None

    def _routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        r = re.compile
        return [
            ("GET", r(r"/users/@me"), self._get_me),
            ("GET", r(r"/oauth2/applications/@me"), self._get_application),
            ("GET", r(r"/gateway(/bot)?"), self._get_gateway),
            ("POST", r(r"/users/@me/channels"), self._open_dm),
            ("POST", r(r"/channels/(?P<c>\d+)/messages"), self._create_message),
            ("PATCH", r(r"/channels/(?P<c>\d+)/messages/(?P<m>\d+)"), self._edit_message),
            ("DELETE", r(r"/channels/(?P<c>\d+)/messages/(?P<m>\d+)"), self._delete_message),
            ("GET", r(r"/channels/(?P<c>\d+)/messages"), self._history),
            ("POST", r(r"/channels/(?P<c>\d+)/messages/(?P<m>\d+)/threads"), self._thread),
            ("POST", r(r"/channels/(?P<c>\d+)/typing"), self._typing),
            ("PATCH", r(r"/channels/(?P<c>\d+)"), self._edit_channel),
            ("GET", r(r"/channels/(?P<c>\d+)"), self._get_channel),
            ("GET", r(r"/guilds/(?P<g>\d+)/threads/active"), self._active_threads),
            (
                "PUT",
                r(r"/channels/(?P<c>\d+)/messages/(?P<m>\d+)/reactions/(?P<e>[^/]+)/@me"),
                self._react,
            ),
            ("POST", r(r"/interactions/(?P<i>\d+)/(?P<t>[^/]+)/callback"), self._callback),
            ("POST", r(r"/webhooks/(?P<a>\d+)/(?P<t>[^/]+)"), self._followup),
            (
                "PATCH",
                r(r"/webhooks/(?P<a>\d+)/(?P<t>[^/]+)/messages/(?P<m>@original|\d+)"),
                self._edit_webhook_message,
            ),
            (
                "GET",
                r(r"/webhooks/(?P<a>\d+)/(?P<t>[^/]+)/messages/(?P<m>@original|\d+)"),
                self._get_webhook_message,
            ),
            (
                "DELETE",
                r(r"/webhooks/(?P<a>\d+)/(?P<t>[^/]+)/messages/(?P<m>@original|\d+)"),
                self._delete_webhook_message,
            ),
            ("PUT", r(r"/applications/(?P<a>\d+)/commands"), self._put_commands),
            ("PUT", r(r"/applications/(?P<a>\d+)/guilds/(?P<g>\d+)/commands"), self._put_commands),
            ("GET", r(r"/applications/(?P<a>\d+)/commands"), self._get_commands),
        ]

    # ----------------------------------------------------------------- handlers
    async def _get_me(self, _req: web.Request, _m: re.Match[str], _b: Any) -> tuple[int, Any]:
        return 200, self.bot_user

    async def _get_application(
        self, _r: web.Request, _m: re.Match[str], _b: Any
    ) -> tuple[int, Any]:
        return 200, {
            "id": self.application_id,
            "name": self.bot_name,
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": p.user(p.snowflake(), "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
            "bot": self.bot_user,
        }

    async def _get_gateway(self, _r: web.Request, _m: re.Match[str], _b: Any) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": self.shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 0,
                "max_concurrency": 1,
            },
        }

    def _store_message(self, channel_id: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        message = p.message(
            message_id=p.snowflake(),
            channel_id=channel_id,
            author=self.bot_user,
            content=body.get("content") or "",
            embeds=body.get("embeds") or [],
            components=body.get("components") or [],
            flags=int(body.get("flags") or 0),
            message_reference=body.get("message_reference"),
        )
        message["allowed_mentions"] = body.get("allowed_mentions")
        message.update(extra)
        self.messages[message["id"]] = message
        return message

    async def _open_dm(self, _r: web.Request, _m: re.Match[str], body: Any) -> tuple[int, Any]:
        """``POST /users/@me/channels``: the DM channel with a user (the same one each time)."""
        user_id = str((body or {}).get("recipient_id"))
        channel_id = self.dm_channels.setdefault(user_id, p.snowflake())
        return 200, {
            "id": channel_id,
            "type": 1,
            "last_message_id": None,
            "recipients": [p.user(user_id, "asker")],
        }

    def dm_messages(self, user_id: str) -> list[dict[str, Any]]:
        """What the bot sent to ``user_id``'s DM, in order."""
        channel_id = self.dm_channels.get(user_id)
        return [m for m in self.messages.values() if m["channel_id"] == channel_id]

    async def _create_message(
        self, _r: web.Request, m: re.Match[str], body: Any
    ) -> tuple[int, Any]:
        closed = {c for u, c in self.dm_channels.items() if u in self.closed_dms}
        if m["c"] in closed:
            return 403, {"message": "Cannot send messages to this user", "code": 50007}
        if m["c"] not in self.threads and any(u["id"] == m["c"] for u in self.user_messages):
            # The thread a message would have started, never created: no such channel.
            return 404, {"message": "Unknown Channel", "code": 10003}
        body = body or {}
        reference = body.get("message_reference") or {}
        if reference.get("message_id") and not self._exists(str(reference["message_id"])):
            # Discord: a reply to a deleted message is refused unless asked not to fail.
            if reference.get("fail_if_not_exists", True):
                return 400, {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {
                        "message_reference": {
                            "_errors": [
                                {"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown"}
                            ]
                        }
                    },
                }
            body = {**body, "message_reference": None}
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord: with enforce_nonce, a nonce this author used in the past few minutes
            # returns the message created then, and no new message is created.
            earlier = self._nonces.get((m["c"], str(nonce)))
            if earlier is not None and time.monotonic() - earlier[1] < NONCE_WINDOW:
                message = self.messages.get(earlier[0])
                if message is not None:
                    return 200, message
        message = self._store_message(m["c"], body)
        if nonce is not None:
            message["nonce"] = nonce
            if body.get("enforce_nonce"):
                self._nonces[(m["c"], str(nonce))] = (message["id"], time.monotonic())
        return 200, message

    def _exists(self, message_id: str) -> bool:
        """False for a message deleted here; the fake does not see every message people write
        (the gateway's), so any other id is taken to exist."""
        return message_id not in self.user_deleted and all(
            d["id"] != message_id for d in self.deleted
        )

    async def _edit_message(self, _r: web.Request, m: re.Match[str], body: Any) -> tuple[int, Any]:
        message = self.messages.get(m["m"])
        if message is None or message["channel_id"] != m["c"]:
            return 404, {"message": "Unknown Message", "code": 10008}
        _apply_edit(message, body or {})
        return 200, message

    async def _delete_message(self, _r: web.Request, m: re.Match[str], _b: Any) -> tuple[int, Any]:
        message = self.messages.get(m["m"])
        if message is None or message["channel_id"] != m["c"]:
            return 404, {"message": "Unknown Message", "code": 10008}
        self.deleted.append(self.messages.pop(m["m"]))
        # An interaction's original response is also kept under its token: gone with it.
        for key in [k for k, v in self.messages.items() if k.startswith("original:")]:
            if self.messages[key]["id"] == m["m"]:
                del self.messages[key]
        if self.on_message_deleted is not None:
            await self.on_message_deleted(self.delete_event(m["m"], m["c"]))
        return 204, None

    def delete_event(self, message_id: str, channel_id: str) -> dict[str, Any]:
        """The gateway's MESSAGE_DELETE: ids only (no author, no content)."""
        event = {"id": message_id, "channel_id": channel_id}
        if self.channel_guild.get(channel_id):
            event["guild_id"] = self.channel_guild[channel_id]
        return event

    async def _thread(self, _r: web.Request, m: re.Match[str], body: Any) -> tuple[int, Any]:
        if m["c"] in self.forbid_threads_in:
            return 403, {"message": "Missing Permissions", "code": 50013}
        if m["c"] in self.threads:  # Discord: no thread from a message that is in a thread
            return 400, {"message": "Cannot execute action on this channel type", "code": 50024}
        if m["m"] in self.threads:  # Discord: one thread per message
            return 400, {"message": "A thread has already been created", "code": 160004}
        guild_id = self.channel_guild.get(m["c"], "")
        thread = p.thread_channel(
            m["m"], guild_id, m["c"], (body or {}).get("name", "thread"), self.bot_id
        )
        self.threads[thread["id"]] = thread
        self.channel_guild[thread["id"]] = guild_id
        if self.on_thread_created is not None:
            await self.on_thread_created(thread)
        return 201, thread

    async def _history(self, req: web.Request, m: re.Match[str], _b: Any) -> tuple[int, Any]:
        """A channel's messages (people's and the bot's), newest first, like Discord: the
        newest ``limit``, or with ``after`` the ``limit`` oldest after that id."""
        after = int(req.query.get("after") or 0)
        limit = int(req.query.get("limit", "50"))
        found = [
            x
            for x in [*self.user_messages, *self.messages.values()]
            if x["channel_id"] == m["c"]
            and int(x["id"]) > after
            and not int(x.get("flags") or 0) & EPHEMERAL_FLAG  # only its user ever sees one
        ]
        found.sort(key=lambda x: int(x["id"]), reverse=not after)
        return 200, sorted(found[:limit], key=lambda x: -int(x["id"]))

    async def _get_channel(self, _r: web.Request, m: re.Match[str], _b: Any) -> tuple[int, Any]:
        """A thread or guild channel the fake knows, as Discord answers ``GET /channels/{id}``."""
        channel = self.threads.get(m["c"]) or self.channels.get(m["c"])
        if channel is None:
            return 404, {"message": "Unknown Channel", "code": 10003}
        return 200, channel

    async def _active_threads(self, _r: web.Request, m: re.Match[str], _b: Any) -> tuple[int, Any]:
        """The guild's threads that are not archived (forum posts and the bot's threads)."""
        threads = [
            t
            for t in self.threads.values()
            if t["guild_id"] == m["g"] and not t.get("thread_metadata", {}).get("archived")
        ]
        return 200, {"threads": threads, "members": []}

    async def _edit_channel(self, _r: web.Request, m: re.Match[str], body: Any) -> tuple[int, Any]:
        """Edits of a thread (forum tags, archiving); unknown channels are 404."""
        thread = self.threads.get(m["c"])
        if thread is None:
            return 404, {"message": "Unknown Channel", "code": 10003}
        body = body or {}
        self.channel_edits.append((m["c"], body))
        if "applied_tags" in body:
            thread["applied_tags"] = [str(t) for t in body["applied_tags"]]
        if "archived" in body:
            thread["thread_metadata"]["archived"] = bool(body["archived"])
        return 200, thread

    async def _react(self, _r: web.Request, m: re.Match[str], _b: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        self.reactions.append((m["c"], m["m"], unquote(m["e"])))
        return 204, None

    async def _typing(self, _r: web.Request, _m: re.Match[str], _b: Any) -> tuple[int, Any]:
        return 204, None

    async def _callback(self, req: web.Request, m: re.Match[str], body: Any) -> tuple[int, Any]:
        kind = int((body or {}).get("type", 0))
        data = (body or {}).get("data") or {}
        if m["t"] in self.acknowledged:  # Discord: one response per interaction
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}
        self.acknowledged.add(m["t"])
        if kind in (4, 5):  # a message now (4) or a "thinking" one filled in later (5)
            channel_id = self.interaction_channels.get(m["t"], f"interaction:{m['i']}")
            message = self._store_message(
                channel_id, data, interaction_token=m["t"], **self._made_by(m["t"])
            )
            self.messages[f"original:{m['t']}"] = message
            if kind == 5:
                message["loading"] = True
        if req.query.get("with_response") in ("1", "true"):
            original = self.messages.get(f"original:{m['t']}")
            resource: dict[str, Any] = {"type": kind}
            if original is not None and kind == 4:
                resource["message"] = original
            return 200, {
                "interaction": {
                    "id": m["i"],
                    "type": 2,
                    "response_message_id": original["id"] if original else None,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
                },
                "resource": resource,
            }
        return 204, None

    async def _followup(self, _r: web.Request, m: re.Match[str], body: Any) -> tuple[int, Any]:
        original = self.messages.get(f"original:{m['t']}")
        if original is not None and original.get("loading"):
            # Discord: a follow-up to a deferred response still "thinking" fills that one in
            # (no new message), keeping whether it is ephemeral whatever the follow-up's flags.
            _apply_edit(original, {k: v for k, v in (body or {}).items() if k != "flags"})
            return 200, original
        channel_id = self.interaction_channels.get(m["t"], f"followup:{m['t']}")
        message = self._store_message(
            channel_id,
            body or {},
            webhook_id=m["a"],
            interaction_token=m["t"],
            followup=True,
            **self._made_by(m["t"], original["id"] if original else None),
        )
        return 200, message

    def _made_by(self, token: str, original_id: str | None = None) -> dict[str, Any]:
        """Discord's ``interaction_metadata`` of a message an interaction's response or
        follow-up made (a follow-up also names the original response)."""
        interaction = self.interactions.get(token)
        if interaction is None:
            return {}
        user = interaction.get("user") or (interaction.get("member") or {}).get("user")
        made = {"id": interaction["id"], "type": interaction["type"], "user": user}
        if original_id is not None:
            made["original_response_message_id"] = original_id
        return {"interaction_metadata": made}

    async def _edit_webhook_message(
        self, _r: web.Request, m: re.Match[str], body: Any
    ) -> tuple[int, Any]:
        key = f"original:{m['t']}" if m["m"] == "@original" else m["m"]
        message = self.messages.get(key)
        if message is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        _apply_edit(message, body or {})
        return 200, message

    async def _get_webhook_message(
        self, _r: web.Request, m: re.Match[str], _b: Any
    ) -> tuple[int, Any]:
        key = f"original:{m['t']}" if m["m"] == "@original" else m["m"]
        message = self.messages.get(key)
        return (200, message) if message else (404, {"message": "Unknown Message", "code": 10008})

    async def _delete_webhook_message(
        self, _r: web.Request, m: re.Match[str], _b: Any
    ) -> tuple[int, Any]:
        """Discord: the original response or a follow-up of the interaction whose token it
        is (ephemeral ones too) is deleted, 204; any other id is Unknown Message."""
        key = f"original:{m['t']}" if m["m"] == "@original" else m["m"]
        message = self.messages.get(key)
        if message is None or message.get("interaction_token") != m["t"]:
            return 404, {"message": "Unknown Message", "code": 10008}
        # Kept under its id, and an original response under its token too: gone under both.
        for other in [k for k, v in self.messages.items() if v is message]:
            del self.messages[other]
        self.deleted.append(message)
        return 204, None

    async def _put_commands(self, _r: web.Request, m: re.Match[str], body: Any) -> tuple[int, Any]:
        scope = m.groupdict().get("g") or "global"
        stored = [
            {
                **cmd,
                "id": p.snowflake(),
                "application_id": m["a"],
                "version": p.snowflake(),
                "type": cmd.get("type", 1),
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
            }
            for cmd in body or []
        ]
        if scope != "global":
            for cmd in stored:
                cmd["guild_id"] = scope
        self.commands[scope] = stored
        return 200, stored

    async def _get_commands(self, _r: web.Request, _m: re.Match[str], _b: Any) -> tuple[int, Any]:
        return 200, self.commands.get("global", [])

    # ----------------------------------------------------------------- views for tests
    def interaction_messages(self, token: str) -> list[dict[str, Any]]:
        """The original response (after edits) and follow-ups of one interaction, in order."""
        found: list[dict[str, Any]] = []
        original = self.messages.get(f"original:{token}")
        if original is not None:
            found.append(original)
        found += [
            m
            for key, m in self.messages.items()
            if not key.startswith("original:")
            and m.get("followup")
            and m.get("interaction_token") == token
        ]
        return found


def _reset_connection(request: web.Request) -> None:
    """Drop the client's connection with a TCP RST (SO_LINGER 0), as a flaky network does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _apply_edit(message: dict[str, Any], body: dict[str, Any]) -> None:
    for key in ("content", "embeds", "components", "allowed_mentions", "flags"):
        if key in body:
            message[key] = body[key]
    message.pop("loading", None)  # a deferred response filled in
    message["edited_timestamp"] = p.timestamp()
    message["edits"] = message.get("edits", 0) + 1


def _payload_json_from_multipart(raw: bytes) -> Any:
    """discord.py sends ``payload_json`` as a multipart field when files are attached."""
    match = re.search(rb'name="payload_json"\r\n(?:[^\r\n]*\r\n)*\r\n(.*?)\r\n--', raw, re.S)
    return json.loads(match.group(1)) if match else None


def _json(status: int, payload: Any, *, extra: dict[str, str] | None = None) -> web.Response:
    headers = {
        # Without these discord.py serialises every request of a route bucket.
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "49",
        "X-RateLimit-Reset-After": "1.0",
    }
    headers.update(extra or {})
    if status == 204 or payload is None:
        return web.Response(status=204, headers=headers)
    # Exactly "application/json": with a charset parameter discord.py reads text and login fails.
    headers["Content-Type"] = "application/json"
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)
