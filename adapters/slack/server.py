"""HTTP serving for ``supportbot serve``: an aiohttp app around the bolt app.

``POST /slack/events`` takes events, slash commands and interactivity (bolt's single endpoint);
``GET /slack/install`` and ``GET /slack/oauth_redirect`` run the OAuth flow when configured;
``GET /healthz`` is 200 when the database and the knowledge base answer, else 503. SIGTERM and
SIGINT stop the server cleanly well within 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_sdk.signature import SignatureVerifier

from adapters.slack.app import SlackBot
from adapters.slack.manifest import EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH
from adapters.web.admin import mount_admin
from adapters.web.metrics import mount_metrics
from bot.config import Settings
from bot.runtime import build_runtime, ensure_schema

log = logging.getLogger(__name__)

# Slack's own payloads are small; this bounds what a hostile client can make us read.
MAX_BODY_BYTES = 2 * 1024 * 1024
SHUTDOWN_GRACE_SECONDS = 7.0

BOT_KEY: web.AppKey[SlackBot] = web.AppKey("slack_bot", SlackBot)


def build_web_app(bot: SlackBot) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[BOT_KEY] = bot
    app.router.add_post(EVENTS_PATH, _slack_events)
    app.router.add_get(INSTALL_PATH, _oauth)
    app.router.add_get(REDIRECT_PATH, _oauth)
    app.router.add_get("/healthz", _healthz)
    mount_admin(app, bot.runtime)
    mount_metrics(app)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_startup(app: web.Application) -> None:
    await app[BOT_KEY].start()


async def _on_shutdown(app: web.Application) -> None:
    await app[BOT_KEY].aclose(timeout=SHUTDOWN_GRACE_SECONDS)


async def _slack_events(request: web.Request) -> web.Response:
    bot = request.app[BOT_KEY]
    try:
        bolt_request = await to_bolt_request(request)
    except (ValueError, AttributeError, TypeError) as exc:
        # bolt parses the body before verifying it; malformed JSON or a JSON array raises.
        body = await request.text()
        verifier = SignatureVerifier(bot.settings.secret("slack_signing_secret"))
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401, text="invalid request")
        log.warning("rejected a malformed Slack request body: %s", type(exc).__name__)
        return web.Response(status=400, text="malformed request body")
    bolt_response = await bot.app.async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)


async def _oauth(request: web.Request) -> web.Response:
    flow = request.app[BOT_KEY].app.oauth_flow
    if flow is None:
        return web.Response(status=404, text="OAuth is not configured (SLACK_CLIENT_ID).")
    bolt_request = await to_bolt_request(request)
    if request.path == flow.install_path:
        return await to_aiohttp_response(await flow.handle_installation(bolt_request))
    return await to_aiohttp_response(await flow.handle_callback(bolt_request))


async def _healthz(request: web.Request) -> web.Response:
    runtime = request.app[BOT_KEY].runtime
    db_ok = await runtime.db.ping()
    try:
        kb_ok = bool(await asyncio.wait_for(asyncio.to_thread(runtime.knowledge.ping), 5))
    except Exception as exc:
        log.warning("knowledge base ping failed: %s", type(exc).__name__)
        kb_ok = False
    ok = db_ok and kb_ok
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "database": db_ok, "knowledge_base": kb_ok},
        status=200 if ok else 503,
    )


async def serve(settings: Settings, *, workers: int = 0) -> None:
    """Run until SIGTERM/SIGINT; in-flight answers get a few seconds, then are left to the
    ledger (another process finishes them). With ``workers`` > 0 this process only acks and
    queues, and that many ``supportbot run slack --worker`` processes answer."""
    runtime = await build_runtime(settings)
    children: list[asyncio.subprocess.Process] = []
    try:
        await ensure_schema(runtime.db)
        bot = SlackBot(runtime, answer_inline=workers == 0)
        for _ in range(workers):
            children.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "run", "slack", "--worker"
                )
            )
        runner = web.AppRunner(
            build_web_app(bot), access_log=None, shutdown_timeout=1.0, handle_signals=False
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("supportbot serving Slack on %s:%s", settings.host, settings.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        await runner.cleanup()
    finally:
        await _stop_children(children)
        await runtime.aclose()


async def _stop_children(children: list[asyncio.subprocess.Process]) -> None:
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            await asyncio.wait_for(child.wait(), SHUTDOWN_GRACE_SECONDS + 1)
        except TimeoutError:
            child.kill()
            await child.wait()
