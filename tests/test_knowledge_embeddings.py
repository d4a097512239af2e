"""Embedders: OpenAI through the real client against the loopback fake, make_embedder choices."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from storage.embeddings import LocalEmbedder, OpenAIEmbedder, make_embedder
from storage.knowledge import KnowledgeBase, KnowledgeError
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI
from tests.test_knowledge_ingest import make_docs


@pytest.fixture
def fake():
    with FakeOpenAI().in_thread() as server:
        yield server


def test_openai_embedder_batches_and_keeps_order(fake: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(
        api_key=FAKE_API_KEY, base_url=fake.base_url, model="text-embedding-3-small", batch_size=3
    )
    texts = [f"passage number {i} about topic {i % 2}" for i in range(7)] + [""]
    vectors = embedder.embed(texts)
    assert vectors.shape == (8, 1536) and embedder.dimension == 1536
    assert [len(r["input"]) for r in fake.embedding_requests] == [3, 3, 2]
    assert fake.embedding_requests[-1]["input"][-1] == " "  # the API refuses empty strings
    again = embedder.embed([texts[4]])
    assert np.allclose(again[0], vectors[4], atol=1e-6)


def test_openai_embedder_probes_unknown_model_dimension(fake: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(api_key=FAKE_API_KEY, base_url=fake.base_url, model="house-model")
    assert embedder.name == "openai:house-model"
    assert embedder.dimension == 64
    assert len(fake.embedding_requests) == 1


def test_openai_embedder_ingest_and_search(tmp_path: Path, fake: FakeOpenAI) -> None:
    embedder = make_embedder("auto", openai_api_key=FAKE_API_KEY, openai_base_url=fake.base_url)
    assert isinstance(embedder, OpenAIEmbedder)
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    report = kb.ingest([make_docs(tmp_path / "docs")])
    assert report.embedded == report.chunks_added > 0
    assert kb.search("quokka cache flushed", k=1, mode="vector")[0].source == "notes.txt"
    assert kb.stats().embedder == "openai:text-embedding-3-small"


def test_openai_unreachable_during_ingest_keeps_kb(tmp_path: Path, fake: FakeOpenAI) -> None:
    uri, docs = str(tmp_path / "kb"), make_docs(tmp_path / "docs")
    KnowledgeBase.open(uri, OpenAIEmbedder(api_key=FAKE_API_KEY, base_url=fake.base_url)).ingest(
        [docs]
    )
    (docs / "notes.txt").write_text("Maintenance notes\n\nThe ferret cache is new.\n")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    down = OpenAIEmbedder(api_key=FAKE_API_KEY, base_url=dead_url, max_retries=0, timeout=2)
    kb = KnowledgeBase.open(uri, down)
    with pytest.raises(KnowledgeError, match=r"embedding failed after 0 chunk.*previous content"):
        kb.ingest([docs])
    assert kb.search("quokka cache", k=1, mode="fts")[0].source == "notes.txt"


def test_make_embedder_choices() -> None:
    assert make_embedder("none") is None
    assert isinstance(make_embedder("auto"), LocalEmbedder)  # no key, local model installed
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_embedder("openai")
    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder("bert")
