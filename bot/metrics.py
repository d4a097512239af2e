"""Prometheus metrics: every metric object of the process, defined once, here.

Code increments them where things happen with one-line calls (``metrics.ANSWERS.labels(...)``).
Values that are cheaper to read at scrape time than to track (an inbox's depth, the age of its
oldest item) come from collectors registered with :func:`register_collector`; the ``/metrics``
handler awaits them before rendering. Served by ``supportbot serve`` at ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS_RECEIVED = Counter(
    "supportbot_events_received",
    "Platform events received (before deduplication).",
    ["platform"],
    registry=REGISTRY,
)
EVENTS_DEDUPLICATED = Counter(
    "supportbot_events_deduplicated",
    "Events dropped as retries or duplicates by the exactly-once ledger.",
    ["platform"],
    registry=REGISTRY,
)
ANSWERS = Counter(
    "supportbot_answers",
    "Final replies by kind (answer, no_answer, unanswered, escalated, error, info).",
    ["kind"],
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "supportbot_model_latency_seconds",
    "Time the agent took for one answer (model calls and tool rounds).",
    ["agent"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
FIRST_TOKEN = Histogram(
    "supportbot_first_token_seconds",
    "Time from taking a question to the first text of its answer.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
RETRIEVAL_LATENCY = Histogram(
    "supportbot_retrieval_latency_seconds",
    "One knowledge-base search.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
INBOX_DEPTH = Gauge(
    "supportbot_inbox_queue_depth",
    "Questions acknowledged and not yet answered.",
    registry=REGISTRY,
)
INBOX_OLDEST_AGE = Gauge(
    "supportbot_inbox_oldest_age_seconds",
    "Age of the oldest unanswered question in the inbox.",
    registry=REGISTRY,
)
LOOP_LAG = Gauge(
    "supportbot_event_loop_lag_seconds",
    "How late the asyncio event loop ran a timer, last measurement.",
    registry=REGISTRY,
)

Collector = Callable[[], Awaitable[None]]
_collectors: list[Collector] = []


def register_collector(collect: Collector) -> None:
    """Run ``collect`` before every scrape (it sets gauges, e.g. INBOX_DEPTH from the inbox)."""
    if collect not in _collectors:
        _collectors.append(collect)


def unregister_collector(collect: Collector) -> None:
    if collect in _collectors:
        _collectors.remove(collect)


def event_claimed(platform: str, claimed: bool) -> bool:
    """Count one delivered event, and a duplicate when the ledger refused it; returns
    ``claimed`` so a claim site stays one line: ``if not event_claimed(P, await claim(...))``."""
    EVENTS_RECEIVED.labels(platform=platform).inc()
    if not claimed:
        EVENTS_DEDUPLICATED.labels(platform=platform).inc()
    return claimed


def observe_inbox(depth: int, oldest_age_seconds: float) -> None:
    INBOX_DEPTH.set(depth)
    INBOX_OLDEST_AGE.set(oldest_age_seconds)


def observe_answer(kind: str) -> None:
    """One final reply to a message."""
    ANSWERS.labels(kind=kind).inc()


def observe_latency(tool_metadata: dict[str, Any], first_token_ms: float | None) -> None:
    """The agent's latency (from its tool_metadata) and the time to the first text."""
    latency = tool_metadata.get("latency_ms")
    if isinstance(latency, int | float):
        agent = str(tool_metadata.get("agent") or "unknown")
        MODEL_LATENCY.labels(agent=agent).observe(latency / 1000)
    first = tool_metadata.get("first_token_ms") or first_token_ms
    if isinstance(first, int | float):
        FIRST_TOKEN.observe(first / 1000)


async def render() -> tuple[bytes, str]:
    """The exposition text and its content type, after running the collectors."""
    for collect in list(_collectors):
        try:
            await collect()
        except Exception:  # one broken collector must not hide every other metric
            log.warning("metrics collector %r failed", collect, exc_info=True)
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
