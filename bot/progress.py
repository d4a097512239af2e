"""Is this answer slow? Decided once, here, for every adapter.

An answer that has shown nothing after ``Settings.progress_after`` seconds (2 by default) makes
its stream yield :data:`bot.messages.SLOW` once; adapters only render it (Slack begins the
answer's own message, so that message becomes the answer; Discord shows the typing indicator).
An answer with its first words, or its final Reply, before then never yields it, so a fast
answer costs no extra platform call. Nor does a slow one while the process is CPU-bound in a
burst (``allowed()`` says so, bot.looplag.shed_progress): then answers are late because they wait
for the CPU, and each progress call would make every answer later still.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from bot.messages import SLOW, Reply, Slow


def visible(item: object) -> bool:
    """An item the asker will see: text that is not only whitespace, or the final Reply."""
    return isinstance(item, Reply) or (isinstance(item, str) and bool(item.strip()))


async def mark_slow(
    items: AsyncGenerator[str | Reply, None], *, after: float, allowed: Callable[[], bool]
) -> AsyncGenerator[str | Reply | Slow, None]:
    """``items``, with :data:`SLOW` before them when nothing visible came within ``after``
    seconds (and ``allowed()`` then). The first items are awaited in a task of their own, so
    the timer runs while they are produced; once anything visible has come (or the answer was
    marked slow) the rest is passed on directly, at no cost per item."""
    deadline = asyncio.get_running_loop().time() + after
    decided = False
    pending: asyncio.Future[str | Reply] | None = None
    try:
        while not decided:
            pending = asyncio.ensure_future(anext(items))
            left = deadline - asyncio.get_running_loop().time()
            done, _ = await asyncio.wait({pending}, timeout=max(left, 0.0))
            if not done:
                decided = True
                if allowed():
                    yield SLOW
            try:
                item = await pending
            except StopAsyncIteration:
                return
            finally:
                pending = None
            decided = decided or visible(item)
            yield item
        async for item in items:
            yield item
    finally:
        if pending is not None:  # cancelled (or closed) while the next item was awaited
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await items.aclose()
