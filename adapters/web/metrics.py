"""``GET /metrics``: the Prometheus exposition of bot.metrics."""

from __future__ import annotations

from aiohttp import web

from bot import metrics

METRICS_PATH = "/metrics"


def mount_metrics(app: web.Application) -> None:
    app.router.add_get(METRICS_PATH, _metrics)


async def _metrics(_request: web.Request) -> web.Response:
    body, content_type = await metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
