"""Bounded waits for a rate-limited OpenAI server, shared by every client the project builds
(the agent's chat client, ``bot/model_client.py``, and the OpenAI embedder).

The SDK honours a server's Retry-After of up to a minute on each of its retries, so a 429 that
asks for 60 s would hold a question (or a search's query embedding) for minutes. Past
``max_retry_wait`` the request fails at once instead; shorter waits, and the SDK's own backoff,
are retried as before. A mixin over the SDK's client classes, so this module imports no SDK.
"""

from __future__ import annotations

import functools
import math
from typing import Any, TypeVar

# Seconds a request may wait for a rate-limited server (SUPPORTBOT_OPENAI_MAX_RETRY_WAIT).
MAX_RETRY_WAIT = 20.0

_Client = TypeVar("_Client")


class BoundedRetry:
    """Put before ``openai.OpenAI`` or ``openai.AsyncOpenAI`` in a class's bases."""

    def __init__(self, *, max_retry_wait: float = MAX_RETRY_WAIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retry_wait = max_retry_wait

    def retry_after(self, response: Any) -> float | None:
        """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``)."""
        parsed: float | None = self._parse_retry_after_header(response.headers)  # type: ignore[attr-defined]
        return parsed

    def waits_too_long(self, response: Any) -> bool:
        wait = self.retry_after(response)
        return wait is not None and (not math.isfinite(wait) or wait > self.max_retry_wait)

    def _should_retry(self, response: Any) -> bool:
        if self.waits_too_long(response):
            return False
        should: bool = super()._should_retry(response)  # type: ignore[misc]
        return should


@functools.cache
def bounded(client_class: type[_Client]) -> type[_Client]:
    """``client_class`` (an SDK client class) with :class:`BoundedRetry`'s waits; it then takes
    ``max_retry_wait`` besides its own arguments."""
    return type(f"BoundedRetry{client_class.__name__}", (BoundedRetry, client_class), {})
