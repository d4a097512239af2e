"""``supportbot run slack --socket-mode``: the same bolt app over a Socket Mode websocket.

The no-public-URL path (Socket Mode apps cannot be listed in the Slack Marketplace). The
websocket address comes from ``apps.connections.open`` on ``SLACK_API_URL``.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

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


class CheckedSocketModeHandler(AsyncSocketModeHandler):
    """Acks an envelope whose payload Slack could not have sent (see ``convert.malformed``):
    bolt would fail on it without acking, and Slack would redeliver it again and again."""

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
