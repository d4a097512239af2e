"""The OpenAI client the agent uses: the SDK's own retries, bounded by what a chat user waits.

Imported only when an OpenAI agent is built (the offline answerer never loads the SDK).
"""

from __future__ import annotations

import math
from typing import Any

import httpx2
import openai

MAX_RETRY_WAIT = 20.0  # seconds a question may wait for a rate-limited model before the apology


class BoundedRetryOpenAI(openai.AsyncOpenAI):
    """``AsyncOpenAI`` that does not wait out a ``Retry-After`` longer than ``max_retry_wait``.

    The SDK honours a server's Retry-After of up to two minutes on every retry, so a 429 that
    asks for 60 s would keep an asker waiting about three minutes (three retries) before the
    apology. Past ``max_retry_wait`` the request fails at once instead (the agent then says the
    model is busy); shorter waits, and the SDK's own backoff, are retried as before.
    """

    def __init__(self, *, max_retry_wait: float = MAX_RETRY_WAIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retry_wait = max_retry_wait

    def retry_after(self, response: httpx2.Response) -> float | None:
        """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``)."""
        return self._parse_retry_after_header(response.headers)

    def waits_too_long(self, response: httpx2.Response) -> bool:
        wait = self.retry_after(response)
        return wait is not None and (not math.isfinite(wait) or wait > self.max_retry_wait)

    def _should_retry(self, response: httpx2.Response) -> bool:
        if self.waits_too_long(response):
            return False
        return super()._should_retry(response)
