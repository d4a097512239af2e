"""A small per-key rate limiter (token buckets) with bounded memory.

Used where an anonymous client can make the bot do durable work, such as the Slack install page
(each visit stores an OAuth state). In memory and per process: it bounds one process's work;
with several replicas each allows its own share.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        *,
        burst: int,
        per_seconds: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = burst / per_seconds  # tokens regained per second
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key: (tokens, at)

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_keys:  # forget the least recently seen keys
            self._buckets.popitem(last=False)
        return allowed
