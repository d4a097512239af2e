"""A loopback fake of Discord's gateway websocket that the real discord.py client believes.

HELLO -> IDENTIFY -> READY (session_id, resume_gateway_url) -> GUILD_CREATE; heartbeats ACKed;
events dispatched on demand with increasing sequence numbers; a forced close with code 4000 makes
the client RESUME, after which the events it missed are replayed and RESUMED is sent. With
``refuse_privileged`` set, an IDENTIFY asking for a privileged intent the application has not
enabled is closed with 4014 ("disallowed intents"), as Discord does. Frames are
plain JSON text (discord.py asks for zlib-stream but accepts text).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import discord_payloads as p
from tests.fakes.loopback import serve_on_loopback

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0,
    1,
    2,
    6,
    7,
    9,
    10,
    11,
)
# Privileged intents: GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT.
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
DISALLOWED_INTENTS = 4014


@dataclass
class _Session:
    session_id: str
    shard: tuple[int, int]
    events: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, with "s"
    ws: web.WebSocketResponse | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeDiscordGateway:
    bot_user: dict[str, Any]
    application_id: str
    guilds: list[dict[str, Any]] = field(default_factory=list)
    heartbeat_interval_ms: int = 41250
    identifies: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, _Session] = field(default_factory=dict)
    refuse_privileged: bool = False  # the developer portal has no privileged intent enabled
    refused: int = 0  # IDENTIFYs closed with 4014
    port: int = 0
    _runner: web.AppRunner | None = None
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner, self.port = await serve_on_loopback(app)
        return self.url

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    # ----------------------------------------------------------------- test controls
    async def wait_ready(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``count`` sessions have been identified and sent READY."""

        async def _all() -> None:
            while sum(1 for s in self.sessions.values() if s.ready.is_set()) < count:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(_all(), timeout)

    def session_for_guild(self, guild_id: str | None) -> _Session:
        """The session whose shard owns ``guild_id`` (DMs go to shard 0): the newest connected
        one, else the newest disconnected one (its events are replayed when it resumes)."""
        live = [s for s in self.sessions.values() if s.ready.is_set()]
        if not live:
            raise AssertionError("no identified gateway session")
        shard_count = live[-1].shard[1]
        shard_id = (int(guild_id) >> 22) % shard_count if guild_id else 0
        owners = [s for s in live if s.shard == (shard_id, shard_count)]
        if not owners:
            raise AssertionError(f"no session for shard {shard_id}")
        connected = [s for s in owners if s.ws is not None]
        return (connected or owners)[-1]

    async def dispatch(
        self, event: str, data: dict[str, Any], *, guild_id: str | None = None
    ) -> int:
        """Send an event to the owning session; if it is disconnected, it is replayed on RESUME."""
        session = self.session_for_guild(guild_id if guild_id is not None else data.get("guild_id"))
        seq = len(session.events) + 1
        frame = {"op": DISPATCH, "t": event, "s": seq, "d": data}
        session.events.append(frame)
        if session.ws is not None and not session.ws.closed:
            try:
                await session.ws.send_str(json.dumps(frame))
            except ConnectionError:
                log.info("gateway: client gone; event %s kept for replay", seq)
        return seq

    async def send_raw(self, text: str, *, guild_id: str | None = None) -> None:
        """Send an arbitrary (possibly malformed) frame to a live session."""
        session = self.session_for_guild(guild_id)
        assert session.ws is not None
        await session.ws.send_str(text)

    async def force_disconnect(self, code: int = 4000, *, guild_id: str | None = None) -> None:
        """Close the session's socket with ``code`` (4000: "unknown error", resumable)."""
        session = self.session_for_guild(guild_id)
        ws, session.ws = session.ws, None
        if ws is not None:
            await ws.close(code=code, message=b"forced by test")

    # ----------------------------------------------------------------- protocol
    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: _Session | None = None
        try:
            await ws.send_json(
                {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                op = message.get("op")
                if op == HEARTBEAT:
                    await ws.send_json({"op": HEARTBEAT_ACK})
                elif op == IDENTIFY:
                    intents = int(message["d"].get("intents") or 0)
                    if self.refuse_privileged and intents & PRIVILEGED_INTENTS:
                        self.identifies.append(message["d"])
                        self.refused += 1
                        await ws.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
                        break
                    session = await self._identify(ws, message["d"])
                elif op == RESUME:
                    session = await self._resume(ws, message["d"])
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session:
        self.identifies.append(data)
        shard_id, shard_count = data.get("shard") or [0, 1]
        session = _Session(session_id=f"session-{p.snowflake()}", shard=(shard_id, shard_count))
        session.ws = ws
        self.sessions[session.session_id] = session
        own_guilds = [g for g in self.guilds if (int(g["id"]) >> 22) % shard_count == shard_id]
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": g["id"], "unavailable": True} for g in own_guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.url,
            "shard": [shard_id, shard_count],
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await self._send_dispatch(session, "READY", ready)
        for guild_payload in own_guilds:
            await self._send_dispatch(session, "GUILD_CREATE", guild_payload)
        session.ready.set()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        self.resumes.append(data)
        session = self.sessions.get(data.get("session_id", ""))
        if session is None:
            await ws.send_json({"op": INVALID_SESSION, "d": False})
            return None
        session.ws = ws
        last_seen = int(data.get("seq") or 0)
        for frame in session.events[last_seen:]:
            await ws.send_str(json.dumps(frame))
        await self._send_dispatch(session, "RESUMED", {})
        return session

    async def _send_dispatch(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        seq = len(session.events) + 1
        frame = {"op": DISPATCH, "t": event, "s": seq, "d": data}
        session.events.append(frame)
        assert session.ws is not None
        await session.ws.send_str(json.dumps(frame))
