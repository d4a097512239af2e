"""The OpenAI embedder's wire format: base64 float32 asked for and decoded exactly."""

from __future__ import annotations

import time

import numpy as np
import openai
import pytest

from storage.embeddings import OpenAIEmbedder
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, fake_embedding


def test_vectors_come_as_base64_and_decode_to_the_servers_floats() -> None:
    texts = ["rotate the SDK key", "", "webhooks retry five times"]
    with FakeOpenAI().in_thread() as fake:
        embedder = OpenAIEmbedder(api_key=FAKE_API_KEY, base_url=fake.base_url, batch_size=2)
        vectors = embedder.embed(texts)
        assert [r["encoding_format"] for r in fake.embedding_requests] == ["base64", "base64"]
    expected = np.array([fake_embedding(t or " ", 1536) for t in texts], dtype=np.float32)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 1536)
    assert np.array_equal(vectors, expected)
    assert embedder.embed([]).shape == (0, 1536)


def test_a_rate_limit_asking_for_a_long_wait_fails_the_embedding_at_once() -> None:
    """The embedder's client waited out any Retry-After of up to a minute on each retry, so a
    search's query embedding during a rate limit hung for minutes; it now has the chat client's
    bound (SUPPORTBOT_OPENAI_MAX_RETRY_WAIT): a longer wait fails at once, a short one is
    still waited out and retried."""
    with FakeOpenAI().in_thread() as fake:
        # The default bound (20 s), as the chat client's.
        embedder = OpenAIEmbedder(api_key=FAKE_API_KEY, base_url=fake.base_url, max_retries=1)
        fake.fail_next(429, retry_after_ms=30_000, embeddings=True)
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            embedder.embed(["how do I rotate the SDK key?"])
        assert time.monotonic() - started < 5
        assert len(fake.embedding_requests) == 1  # not retried after 30 s
        fake.fail_next(429, retry_after_ms=100, embeddings=True)
        assert embedder.embed(["how do I rotate the SDK key?"]).shape == (1, 1536)
        assert len(fake.embedding_requests) == 3
