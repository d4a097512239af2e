"""HTTP serving for ``supportbot serve``: an aiohttp app around the bolt app.

``POST /slack/events`` takes events, slash commands and interactivity (bolt's single endpoint);
``GET /slack/install`` and ``GET /slack/oauth_redirect`` run the OAuth flow when configured;
``GET /healthz`` is 200 when the database and the knowledge base answer (and, with worker
processes, when at least one worker sent a heartbeat recently), else 503. SIGTERM and SIGINT
stop the server cleanly well within 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_sdk.signature import SignatureVerifier

from adapters.slack import convert
from adapters.slack.app import SlackBot
from adapters.slack.manifest import EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH
from adapters.web.admin import mount_admin
from adapters.web.metrics import mount_metrics
from bot import texts
from bot.config import Settings
from bot.ratelimit import RateLimiter
from bot.runtime import build_runtime, ensure_schema
from bot.supervisor import WorkerPool

log = logging.getLogger(__name__)

# Slack's own payloads are small; this bounds what a hostile client can make us read.
MAX_BODY_BYTES = 2 * 1024 * 1024
SHUTDOWN_GRACE_SECONDS = 7.0
WORKER_COMMAND = (sys.executable, "-m", "bot", "run", "slack", "--worker")

BOT_KEY: web.AppKey[SlackBot] = web.AppKey("slack_bot", SlackBot)
POOL_KEY: web.AppKey[Any] = web.AppKey("worker_pool", object)
# Each install page stores an OAuth state: an anonymous client gets a few per minute.
INSTALL_LIMIT_KEY: web.AppKey[RateLimiter] = web.AppKey("install_limit", RateLimiter)
INSTALLS_PER_MINUTE = 10


def build_web_app(bot: SlackBot, pool: WorkerPool | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[BOT_KEY] = bot
    app[POOL_KEY] = pool
    app[INSTALL_LIMIT_KEY] = RateLimiter(burst=INSTALLS_PER_MINUTE, per_seconds=60)
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
        problem = convert.malformed(bolt_request.body)
    except (ValueError, AttributeError, TypeError) as exc:
        # bolt parses the body before verifying it; malformed JSON or a JSON array raises.
        problem = type(exc).__name__
    if problem is not None:
        # Refused with a 400 (not a 500 from deep inside bolt or our middleware), once the
        # signature shows it really came from Slack.
        verifier = SignatureVerifier(bot.settings.secret("slack_signing_secret"))
        if not verifier.is_valid_request(await request.text(), dict(request.headers)):
            return web.Response(status=401, text="invalid request")
        log.warning("rejected a malformed Slack request body: %s", problem)
        return web.Response(status=400, text="malformed request body")
    bolt_response = await bot.app.async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)


async def _oauth(request: web.Request) -> web.Response:
    flow = request.app[BOT_KEY].app.oauth_flow
    if flow is None:
        return web.Response(status=404, text="OAuth is not configured (SLACK_CLIENT_ID).")
    if request.path == flow.install_path and not request.app[INSTALL_LIMIT_KEY].allow(
        request.remote or "unknown"
    ):
        log.info("install page rate-limited for %s", request.remote)
        return web.Response(status=429, text=texts.SLACK_INSTALL_RATE_LIMITED)
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
    body: dict[str, Any] = {"database": db_ok, "knowledge_base": kb_ok}
    ok = db_ok and kb_ok
    if runtime.loop_lag is not None:
        body["loop_lag"] = runtime.loop_lag.snapshot()
    pool: WorkerPool | None = request.app[POOL_KEY]
    if pool is not None:
        # Acked questions wait for a worker: none alive means none would be answered.
        body["workers"] = pool.alive
        ok = ok and pool.alive > 0
    return web.json_response(
        {"status": "ok" if ok else "unavailable", **body}, status=200 if ok else 503
    )


async def serve(settings: Settings, *, workers: int = 0) -> None:
    """Run until SIGTERM/SIGINT; in-flight answers get a few seconds, then are handed back to
    the ledger (another process finishes them). With ``workers`` > 0 this process only acks and
    queues, and that many supervised ``supportbot run slack --worker`` processes answer."""
    # With workers this process only acks: a local model would be memory it never uses.
    runtime = await build_runtime(settings, load_model=not workers)
    pool = WorkerPool(WORKER_COMMAND, workers, grace=SHUTDOWN_GRACE_SECONDS) if workers else None
    try:
        await ensure_schema(runtime.db)
        bot = SlackBot(runtime, answer_inline=pool is None)
        if pool is not None:
            pool.start()
        runner = web.AppRunner(
            build_web_app(bot, pool), access_log=None, shutdown_timeout=1.0, handle_signals=False
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info(
            "supportbot serving Slack on %s:%s (%s)",
            settings.host,
            settings.port,
            f"{workers} worker process(es) answer" if workers else "answering in this process",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        stopping = [runner.cleanup()] + ([pool.aclose()] if pool is not None else [])
        await asyncio.gather(*stopping)
    finally:
        if pool is not None:
            await pool.aclose()
        await runtime.aclose()
