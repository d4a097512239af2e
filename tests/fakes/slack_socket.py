"""A loopback Socket Mode server: the websocket that ``apps.connections.open`` hands out.

It greets each connection with ``hello``, pushes envelopes (``events_api``, ``slash_commands``,
``interactive``) each with an ``envelope_id``, and records the client's acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

_ids = itertools.count(1)


class FakeSocketMode:
    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.ack_times: dict[str, float] = {}
        self.sent_times: dict[str, float] = {}
        self._connections: list[ServerConnection] = []
        self._connected = asyncio.Event()
        self._acked = asyncio.Event()
        self._server: Server | None = None
        self.port = 0

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=fake"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def disconnect(self, reason: str = "refresh_requested", *, close: bool = True) -> None:
        """End every connection as Slack does (a ``disconnect`` message, then the close); the
        client is expected to open a new one through ``apps.connections.open``. ``close``
        False: only the message, the warning Slack sends a while before it closes."""
        self._connected.clear()
        for connection in list(self._connections):
            with contextlib.suppress(websockets.ConnectionClosed):
                await connection.send(json.dumps({"type": "disconnect", "reason": reason}))
            if close:
                await connection.close()

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def send(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Push one envelope to the newest connection; returns its envelope id."""
        await self.wait_connected()
        envelope_id = f"env-{next(_ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        self.sent_times[envelope_id] = time.monotonic()
        for _ in range(50):  # a connection closing under a reconnect: the client's next one
            try:
                await self._connections[-1].send(json.dumps(envelope))
                return envelope_id
            except (websockets.ConnectionClosed, IndexError):
                await asyncio.sleep(0.1)
        raise TimeoutError("no open Socket Mode connection to send on")

    async def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while envelope_id not in self.acks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no ack for {envelope_id}")
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), min(remaining, 0.2))
        return self.acks[envelope_id]

    async def _handle(self, connection: ServerConnection) -> None:
        self._connections.append(connection)
        hello = {
            "type": "hello",
            "num_connections": len(self._connections),
            "debug_info": {"host": "fake", "approximate_connection_time": 3600},
            "connection_info": {"app_id": "A0000001"},
        }
        await connection.send(json.dumps(hello))
        self._connected.set()
        try:
            async for raw in connection:
                message = json.loads(raw)
                envelope_id = message.get("envelope_id")
                if envelope_id:
                    self.acks[envelope_id] = message
                    self.ack_times[envelope_id] = time.monotonic()
                    self._acked.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._connections.remove(connection)
