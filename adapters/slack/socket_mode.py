"""``supportbot run slack --socket-mode``: the same bolt app over a Socket Mode websocket.

The no-public-URL path (Socket Mode apps cannot be listed in the Slack Marketplace). The
websocket address comes from ``apps.connections.open`` on ``SLACK_API_URL``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import convert
from adapters.slack.app import SlackBot, make_web_client
from bot.config import Settings
from bot.errors import ConfigError
from bot.runtime import build_runtime, ensure_schema

log = logging.getLogger(__name__)

# apps.connections.open errors that no retry fixes: the app-level token itself is refused.
REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
     "not_allowed_token_type"}
)  # fmt: skip


class SteadySocketModeClient(SocketModeClient):
    """slack_sdk's client, reconnecting once when Slack sends ``disconnect`` and closes at once.

    slack_sdk reconnects on the close, then again, unconditionally, when its queue reaches the
    ``disconnect`` it read before the close: it abandons the connection it has just opened,
    and an envelope Slack pushed on that one meanwhile is dropped unacked (answered only when
    Slack retries it, if ever). A ``disconnect`` read before the latest reconnect asks for
    nothing more, so it is let go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections_opened = 0
        self._opened_before_disconnect = -1

    async def connect(self) -> None:
        await super().connect()
        self.connections_opened += 1

    async def enqueue_message(self, message: str) -> None:
        if _is_disconnect(message):
            self._opened_before_disconnect = self.connections_opened
        await super().enqueue_message(message)

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        if not force:  # a close, or a stale session: slack_sdk checks whether still connected
            await super().connect_to_new_endpoint()
            return
        async with self.connect_operation_lock:  # a reconnect on the close may be under way
            if self.connections_opened > self._opened_before_disconnect:
                log.info("Slack's disconnect came before the latest reconnect; not again")
                return
            self.wss_uri = await self.issue_new_wss_url()
            await self.connect()


def _is_disconnect(message: str) -> bool:
    if '"disconnect"' not in message:  # the cheap check first: most messages are envelopes
        return False
    try:
        return bool(json.loads(message).get("type") == "disconnect")
    except (ValueError, AttributeError):
        return False


class CheckedSocketModeHandler(AsyncSocketModeHandler):
    """Acks an envelope whose payload Slack could not have sent (see ``convert.malformed``):
    bolt would fail on it without acking, and Slack would redeliver it again and again. Its
    client is :class:`SteadySocketModeClient`."""

    def __init__(self, app: AsyncApp, *, app_token: str, web_client: AsyncWebClient) -> None:
        # AsyncSocketModeHandler.__init__, with the steady client (a client made there and
        # replaced would leave its message processor running).
        self.app = app
        self.app_token = app_token
        self.client = SteadySocketModeClient(
            app_token=app_token, logger=app.logger, web_client=web_client, ping_interval=10
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        problem = convert.malformed(req.payload)
        if problem is None:
            await super().handle(client, req)
            return
        log.warning("acked and dropped a malformed Socket Mode %s envelope: %s", req.type, problem)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


async def check_app_token(handler: AsyncSocketModeHandler) -> None:
    """Refuse to start, in one line naming the variable, when Slack refuses the app token;
    slack_sdk would otherwise retry the connection every few seconds for ever, a traceback
    each time. Any other failure is left to its reconnects (Slack may be down for a while)."""
    try:
        await handler.client.web_client.apps_connections_open(app_token=handler.app_token)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        if error in REFUSED_TOKEN_ERRORS:
            raise ConfigError(
                f"Slack refused SLACK_APP_TOKEN ({error}): use the app-level token (xapp-...) "
                "with the connections:write scope"
            ) from None


def make_socket_handler(bot: SlackBot) -> AsyncSocketModeHandler:
    # A token-less client on SLACK_API_URL: apps.connections.open is called with the app token.
    web_client = make_web_client(bot.settings)
    return CheckedSocketModeHandler(
        bot.app, app_token=bot.settings.secret("slack_app_token"), web_client=web_client
    )


async def run_socket_mode(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    runtime = await build_runtime(settings)
    try:
        await ensure_schema(runtime.db)
        bot = SlackBot(runtime, socket_mode=True)
        handler = make_socket_handler(bot)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await check_app_token(handler)
        await bot.start()
        await handler.connect_async()
        log.info("supportbot connected to Slack over Socket Mode")
        try:
            await stop.wait()
        finally:
            await handler.close_async()
            await bot.aclose()
    finally:
        await runtime.aclose()
