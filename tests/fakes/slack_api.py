"""A loopback fake of the Slack Web API (and of ``response_url``), driven by the real slack_sdk.

It records every call, keeps the messages it was asked to post so tests can read the final text a
user would see (including streamed messages), and fails on demand (HTTP 500, 429 with
``Retry-After``, or ``{"ok": false}`` errors) so retry and fallback paths run for real.

It refuses what Slack refuses for size: message text over 40,000 characters (``msg_too_long``),
more than 50 blocks or a section text over 3,000 characters (``invalid_blocks``), and streamed
Markdown over 12,000 characters, in one call or in one streamed message, whose Markdown is one
markdown block (``msg_too_long``); and, as Slack does, it refuses to append to or stop a stream
that was stopped already (``message_not_in_streaming_state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.loopback import serve_on_loopback

DEFAULT_TEAM = "T0000001"
DEFAULT_BOT_USER = "UBOT00001"
DEFAULT_BOT_ID = "BBOT00001"
# Slack's documented limits (docs.slack.dev: chat.postMessage, Block Kit, chat.*Stream).
TEXT_LIMIT = 40_000
SECTION_LIMIT = 3_000
MAX_BLOCKS = 50
MARKDOWN_LIMIT = 12_000
# The name ``fail`` takes for POSTs to a ``response_url``.
RESPONSE_URL = "response_url"
# Slack's answer to appending to, or stopping, a streamed message that is no longer streaming.
NOT_STREAMING = "message_not_in_streaming_state"


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Identity:
    team_id: str = DEFAULT_TEAM
    user_id: str = DEFAULT_BOT_USER
    bot_id: str = DEFAULT_BOT_ID
    team: str = "Test Team"


@dataclass
class FakeMessage:
    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    token: str | None = None
    streamed: bool = False
    streaming: bool = False
    updates: int = 0
    deleted: bool = False
    user: str | None = None  # set for messages people wrote (add_user_message)


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: int = 1
    error: str | None = None
    after: int = 0  # calls that succeed before this failure starts
    handled: bool = False  # the call took effect before the failure (a 5xx after the work)
    channel: str | None = None  # only calls about this channel fail (None: every call)


class FakeSlackAPI:
    """``await api.start()`` then give slack_sdk ``api.base_url``; ``await api.close()`` after."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[str, str], FakeMessage] = {}
        self.ephemerals: list[ApiCall] = []
        self.reactions: list[tuple[str, str, str]] = []  # (channel, timestamp, emoji name)
        self.admins: set[str] = set()  # user ids users.info reports as workspace admins
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.identities: dict[str, Identity] = {}
        self.default_identity = Identity()
        self.oauth_grants: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, list[str]] = {}  # conversations.members
        self.usergroup_members: dict[str, list[str]] = {}  # usergroups.users.list
        # Conversations the bot is not a member of: posting there is refused, as Slack does
        # (public channels: not_in_channel; others the bot cannot even see: channel_not_found).
        self.outside: set[str] = set()
        self.socket_url: str | None = None
        self.unsupported: set[str] = set()
        self.latency = 0.0
        self._failures: dict[str, list[_Failure]] = {}
        self._stalls: dict[str, asyncio.Event] = {}
        self._stall_rules: dict[str, tuple[bool, str | None]] = {}
        self._last_micros = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_get("/api/{method}", self._handle_api)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/_fake/stats", self._handle_stats)
        self._runner, self.port = await serve_on_loopback(app)
        return self.base_url

    async def close(self) -> None:
        for method in list(self._stalls):  # a stalled call would hold up the shutdown
            self.unstall(method)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.port}/response/{key}"

    # ---- scripting -------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        times: int = 1,
        retry_after: int = 1,
        after: int = 0,
        handled: bool = False,
        channel: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (after ``after`` that succeed) fail with HTTP
        ``status`` (429: Retry-After). ``handled``: Slack did the call's work first (a message
        is posted) and only its answer is a server error, as when a gateway fails late.
        ``channel``: only calls about that channel fail (an outage of one channel's shard)."""
        failure = _Failure(status, times, retry_after, after=after, handled=handled)
        failure.channel = channel
        self._failures.setdefault(method, []).append(failure)

    def stall(self, method: str, *, handled: bool = False, channel: str | None = None) -> None:
        """Calls of ``method`` hang (a platform that stopped answering) and never take effect
        (``handled``: they do take effect first, only the answer never comes); once
        :meth:`unstall` is called, the ones still waiting get an HTTP 500. ``channel``: only
        calls about that channel hang."""
        self._stalls[method] = asyncio.Event()
        self._stall_rules[method] = (handled, channel)

    def unstall(self, method: str) -> None:
        stalled = self._stalls.pop(method, None)
        if stalled is not None:
            stalled.set()

    def error(self, method: str, error: str, *, times: int = 1, after: int = 0) -> None:
        """The next ``times`` calls (after ``after`` that succeed) answer HTTP 200
        ``{"ok": false, "error": error}``."""
        self._failures.setdefault(method, []).append(_Failure(200, times, error=error, after=after))

    def expire_streams(self) -> int:
        """End every streamed message still streaming, as Slack does about five minutes after
        it began: what was streamed stays, and appending or stopping is refused from then on
        (``message_not_in_streaming_state``). Returns how many were ended."""
        live = [m for m in self.messages.values() if m.streaming and not m.deleted]
        for message in live:
            message.streaming = False
        self._notify()
        return len(live)

    def delete_by_someone(self, channel: str, ts: str) -> None:
        """Someone else (a moderator, the workspace owner) deletes a message: from then on
        editing, streaming into or stopping it is ``message_not_found``, as Slack answers."""
        self.messages[(channel, ts)].deleted = True
        self._notify()

    def add_identity(self, token: str, identity: Identity) -> None:
        self.identities[token] = identity

    def grant_oauth(self, code: str, *, team_id: str, token: str, bot_user_id: str) -> None:
        """Make ``oauth.v2.access`` with ``code`` install the app in ``team_id`` with ``token``."""
        self.oauth_grants[code] = {"team_id": team_id, "token": token, "bot_user_id": bot_user_id}
        self.add_identity(
            token, Identity(team_id=team_id, user_id=bot_user_id, bot_id="B" + team_id)
        )

    # ---- reading ---------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def posted(self, channel: str | None = None) -> list[FakeMessage]:
        """Messages posted (or streamed) and not deleted, in posting order."""
        found = [m for m in self.messages.values() if not m.deleted]
        if channel is not None:
            found = [m for m in found if m.channel == channel]
        return sorted(found, key=lambda m: float(m.ts))

    def add_user_message(
        self, channel: str, text: str, *, user: str, thread_ts: str | None = None
    ) -> FakeMessage:
        """A message a person wrote (as Slack would deliver it), stamped with the real time."""
        message = FakeMessage(
            channel=channel, ts=f"{time.time():.6f}", text=text, thread_ts=thread_ts, user=user
        )
        self.messages[(channel, message.ts)] = message
        return message

    def all_responses(self) -> list[dict[str, Any]]:
        return [r for rs in self.responses.values() for r in rs]

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every call received)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("fake Slack API: condition not met in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.2))

    def stats(self) -> dict[str, Any]:
        """Counts for benchmarks run in another process: answers per thread and API calls."""
        per_thread: dict[str, int] = {}
        for message in self.messages.values():
            key = f"{message.channel}:{message.thread_ts or message.ts}"
            per_thread[key] = per_thread.get(key, 0) + 1
        methods: dict[str, int] = {}
        for call in self.calls:
            methods[call.method] = methods.get(call.method, 0) + 1
        return {
            "messages": len(self.messages),
            "threads_answered": len(per_thread),
            "threads_answered_twice": sum(1 for n in per_thread.values() if n > 1),
            "still_streaming": sum(1 for m in self.messages.values() if m.streaming),
            "calls": methods,
        }

    # ---- HTTP handlers ---------------------------------------------------------------------
    async def _handle_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """Fails as ``fail(RESPONSE_URL, ...)`` says (``handled``: after delivering)."""
        body = await request.json()
        failure = self._take_failure(RESPONSE_URL)
        if failure is None or failure.handled:
            self.responses.setdefault(request.match_info["key"], []).append(body)
        self._notify()
        if failure is not None:
            return web.Response(status=failure.status, text=failure.error or "server error")
        return web.Response(text="ok")

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        token = _bearer(request) or params.get("token")
        self.calls.append(ApiCall(method, params, token))
        self._notify()
        if self.latency:
            await asyncio.sleep(self.latency)
        stalled = self._stalls.get(method)
        handled, only = self._stall_rules.get(method, (False, None))
        if stalled is not None and only not in (None, params.get("channel")):
            stalled = None
        if stalled is not None:
            if handled:
                getattr(self, "_m_" + method.replace(".", "_"))(params, token)
                self._notify()
            await stalled.wait()
            return web.Response(status=500, text="server error")
        failure = self._take_failure(method, params.get("channel"))
        if failure is not None and failure.handled:
            handler = getattr(self, "_m_" + method.replace(".", "_"))
            handler(params, token)
            self._notify()
        if failure is not None:
            if failure.status == 429:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(failure.retry_after)},
                )
            if failure.status != 200:
                return web.Response(status=failure.status, text="server error")
            return web.json_response({"ok": False, "error": failure.error})
        if method in self.unsupported:
            return web.json_response({"ok": False, "error": "unknown_method"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result = handler(params, token)
        self._notify()
        return web.json_response({"ok": True, **result})

    def _take_failure(self, method: str, channel: Any = None) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        if failure.channel is not None and failure.channel != channel:
            return None
        if failure.after > 0:
            failure.after -= 1
            return None
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _notify(self) -> None:
        self._changed.set()

    def _next_ts(self) -> str:
        """Slack's ts: the posting time in microseconds, unique and increasing (so a bot
        message posted after a question has the later ts, as in Slack)."""
        micros = max(self._last_micros + 1, int(time.time() * 1_000_000))
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _identity(self, token: str | None) -> Identity:
        return self.identities.get(token or "", self.default_identity)

    # ---- methods ---------------------------------------------------------------------------
    def _workspace_url(self, _token: str | None) -> str:
        return "https://test.slack.com/"

    def _m_auth_test(self, _params: dict[str, Any], token: str | None) -> dict[str, Any]:
        ident = self._identity(token)
        return {
            "url": self._workspace_url(token),
            "team": ident.team,
            "team_id": ident.team_id,
            "user": "supportbot",
            "user_id": ident.user_id,
            "bot_id": ident.bot_id,
            "is_enterprise_install": False,
        }

    def _not_a_member(self, channel: Any) -> str | None:
        """Slack's error for posting in a conversation the bot is not in (None: it is)."""
        if channel not in self.outside:
            return None
        return "not_in_channel" if str(channel).startswith("C") else "channel_not_found"

    def _m_conversations_info(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if self._not_a_member(channel) == "channel_not_found":
            return {"ok": False, "error": "channel_not_found"}
        return {"channel": {"id": channel, "is_member": channel not in self.outside}}

    def _m_chat_postMessage(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        refused = self._not_a_member(params.get("channel")) or _refused(params)
        if refused:
            return {"ok": False, "error": refused}
        message = FakeMessage(
            channel=params["channel"],
            ts=self._next_ts(),
            text=params.get("text") or "",
            blocks=_blocks(params.get("blocks")),
            thread_ts=params.get("thread_ts"),
            token=token,
        )
        self.messages[(message.channel, message.ts)] = message
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _m_chat_getPermalink(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = params["channel"], params["message_ts"]
        return {
            "channel": channel,
            "permalink": f"{self._workspace_url(token)}archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_chat_update(self, params: dict[str, Any], _token: str | None) -> dict[str, Any]:
        message = self.messages.get((params["channel"], params["ts"]))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        refused = _refused(params)
        if refused:
            return {"ok": False, "error": refused}
        message.text = params.get("text") or message.text
        if "blocks" in params:
            message.blocks = _blocks(params.get("blocks"))
        message.updates += 1
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_delete(self, params: dict[str, Any], _token: str | None) -> dict[str, Any]:
        """As Slack: a message that does not exist (or is deleted already) is
        ``message_not_found``; a bot token may delete only the bot's own messages."""
        message = self.messages.get((params["channel"], params["ts"]))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        if message.user is not None:
            return {"ok": False, "error": "cant_delete_message"}
        message.deleted = True
        return {"channel": params["channel"], "ts": params["ts"]}

    def _m_chat_postEphemeral(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if self._not_a_member(params.get("channel")):
            return {"ok": False, "error": self._not_a_member(params.get("channel"))}
        self.ephemerals.append(ApiCall("chat.postEphemeral", params, token))
        return {"message_ts": self._next_ts()}

    def _m_chat_startStream(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if self._not_a_member(params.get("channel")):
            return {"ok": False, "error": self._not_a_member(params.get("channel"))}
        if len(params.get("markdown_text") or "") > MARKDOWN_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        message = FakeMessage(
            channel=params["channel"],
            ts=self._next_ts(),
            text=params.get("markdown_text") or "",
            thread_ts=params.get("thread_ts"),
            token=token,
            streamed=True,
            streaming=True,
        )
        self.messages[(message.channel, message.ts)] = message
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_appendStream(self, params: dict[str, Any], _token: str | None) -> dict[str, Any]:
        message = self.messages[(params["channel"], params["ts"])]
        if message.deleted:
            return {"ok": False, "error": "message_not_found"}
        if not message.streaming:
            return {"ok": False, "error": NOT_STREAMING}
        more = params.get("markdown_text") or ""
        if len(more) > MARKDOWN_LIMIT or len(message.text) + len(more) > MARKDOWN_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        message.text += more
        message.updates += 1
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_stopStream(self, params: dict[str, Any], _token: str | None) -> dict[str, Any]:
        message = self.messages[(params["channel"], params["ts"])]
        if message.deleted:
            return {"ok": False, "error": "message_not_found"}
        if not message.streaming:
            return {"ok": False, "error": NOT_STREAMING}
        more = params.get("markdown_text") or ""
        if len(message.text) + len(more) > MARKDOWN_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        message.text += more
        message.blocks = _blocks(params.get("blocks"))
        message.streaming = False
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _m_assistant_threads_setStatus(self, _p: dict[str, Any], _t: str | None) -> dict[str, Any]:
        return {}

    def _m_assistant_threads_setSuggestedPrompts(
        self, _p: dict[str, Any], _t: str | None
    ) -> dict[str, Any]:
        return {}

    def _m_assistant_threads_setTitle(self, _p: dict[str, Any], _t: str | None) -> dict[str, Any]:
        return {}

    def _m_conversations_replies(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        root = params.get("ts")
        found = [
            {
                "ts": m.ts,
                "text": m.text,
                "blocks": m.blocks,
                "thread_ts": m.thread_ts,
                **self._author(m),
            }
            for m in self.posted(params.get("channel"))
            if (m.thread_ts == root or m.ts == root)
            and float(m.ts) > float(params.get("oldest") or 0)
        ]
        return {"messages": found, "has_more": False}

    def _m_conversations_history(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        """A channel's messages (not thread replies), newest first, after ``oldest``."""
        oldest = float(params.get("oldest") or 0)
        found = [
            {"type": "message", "ts": m.ts, "text": m.text, "blocks": m.blocks, **self._author(m)}
            for m in reversed(self.posted(params.get("channel")))
            if (m.thread_ts is None or m.thread_ts == m.ts) and float(m.ts) > oldest
        ]
        limit = int(params.get("limit") or 100)
        return {"messages": found[:limit], "has_more": len(found) > limit}

    def _m_conversations_members(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        members = self.channel_members.get(str(params.get("channel")))
        if members is None:
            return {"ok": False, "error": "channel_not_found"}
        # Two members per page, so callers must follow the cursor as with real Slack.
        start = int(params.get("cursor") or 0)
        page, rest = members[start : start + 2], members[start + 2 :]
        cursor = str(start + 2) if rest else ""
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _m_usergroups_users_list(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        users = self.usergroup_members.get(str(params.get("usergroup")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"users": users}

    def _author(self, message: FakeMessage) -> dict[str, str]:
        if message.user is not None:
            return {"user": message.user}
        ident = self._identity(message.token)
        return {"user": ident.user_id, "bot_id": ident.bot_id}

    def _m_users_info(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        user = str(params.get("user", ""))
        admin = user in self.admins
        return {"user": {"id": user, "is_admin": admin, "is_owner": False, "is_bot": False}}

    def _m_reactions_add(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        self.reactions.append((params["channel"], params["timestamp"], params["name"]))
        return {}

    def _m_apps_connections_open(self, _p: dict[str, Any], _t: str | None) -> dict[str, Any]:
        return {"url": self.socket_url or "ws://127.0.0.1:9/"}

    def _m_oauth_v2_access(self, params: dict[str, Any], _t: str | None) -> dict[str, Any]:
        grant = self.oauth_grants.get(params.get("code", ""))
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        return {
            "app_id": "A0000001",
            "authed_user": {"id": "UINSTALLER"},
            "scope": "app_mentions:read,chat:write",
            "token_type": "bot",
            "access_token": grant["token"],
            "bot_user_id": grant["bot_user_id"],
            "team": {"id": grant["team_id"], "name": "Installed Team"},
            "enterprise": None,
            "is_enterprise_install": False,
        }


async def _read_params(request: web.Request) -> dict[str, Any]:
    """slack_sdk sends JSON for some methods and form fields for others; accept both."""
    params: dict[str, Any] = dict(request.query)
    raw = await request.text()
    if not raw:
        return params
    if request.content_type == "application/json":
        params.update(json.loads(raw))
    else:
        params.update(dict(parse_qsl(raw, keep_blank_values=True)))
    if "code" in params and request.headers.get("Authorization", "").startswith("Basic "):
        params["_basic_auth"] = True
    return params


def _refused(params: dict[str, Any]) -> str | None:
    """Slack's error for a chat.postMessage/chat.update over its size limits (None: fits)."""
    if len(params.get("text") or "") > TEXT_LIMIT:
        return "msg_too_long"
    blocks = _blocks(params.get("blocks"))
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        text = block.get("text") if block.get("type") == "section" else None
        if isinstance(text, dict) and len(str(text.get("text") or "")) > SECTION_LIMIT:
            return "invalid_blocks"
    return None


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None


def _blocks(value: Any) -> list[dict[str, Any]]:
    if not value:
        return []
    if isinstance(value, str):
        return list(json.loads(value))
    return list(value)
