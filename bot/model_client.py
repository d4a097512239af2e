"""The OpenAI client the agent uses: the SDK's own retries, bounded by what a chat user waits.

Imported only when an OpenAI agent is built (the offline answerer never loads the SDK). The
bound itself is shared with the OpenAI embedder (``storage/openai_retries.py``).
"""

from __future__ import annotations

import openai

from storage.openai_retries import MAX_RETRY_WAIT, BoundedRetry

__all__ = ["MAX_RETRY_WAIT", "BoundedRetryOpenAI"]


class BoundedRetryOpenAI(BoundedRetry, openai.AsyncOpenAI):
    """``AsyncOpenAI`` that does not wait out a ``Retry-After`` longer than ``max_retry_wait``:
    the apology (the model is busy) comes at once instead of after minutes."""
