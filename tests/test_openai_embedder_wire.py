"""The OpenAI embedder's wire format: base64 float32 asked for and decoded exactly."""

from __future__ import annotations

import numpy as np

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
