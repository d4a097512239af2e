"""A small table's passages held in memory (storage.knowledge._Passages): queries then return row
ids and scores only. The hits must be exactly those of the path that reads the passages with
each query (chunks, scores, order, texts, window vectors), and follow the table's versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import storage.knowledge as knowledge
from storage.embeddings import Embedder
from storage.knowledge import KnowledgeBase, SearchHit
from tests.knowledge_helpers import load_local_embedder, write_docs

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "bot" / "sample_docs"
QUESTIONS = [
    json.loads(line)["question"]
    for name in ("questions.jsonl", "unanswerable.jsonl")
    for line in (ROOT / "bench" / "eval" / name).read_text().splitlines()
] + [
    "How do I rotate an SDK key, and what are the rate limits?",  # two parts: fused rankings
    "webhok signatre heder",  # typo correction
]
OPTIONS: list[dict[str, Any]] = [
    {"k": 5},
    {"k": 5, "per_source": 2},
    {"k": 3, "source_prefix": "billing/"},
    {"k": 8, "per_source": 3, "decompose": False},
]


@pytest.fixture(scope="module")
def local_embedder() -> Embedder:
    return load_local_embedder()


def _held(kb: KnowledgeBase) -> bool:
    return kb._passages is not None and kb._passages.rows is not None


def _same(a: list[SearchHit], b: list[SearchHit]) -> bool:
    def windows(hit: SearchHit) -> bytes | None:
        return None if hit.window_vectors is None else np.asarray(hit.window_vectors).tobytes()

    return [(h, h.score, windows(h)) for h in a] == [(h, h.score, windows(h)) for h in b]


@pytest.mark.parametrize("embedder_kind", ["none", "local"])
def test_held_passages_give_the_hits_of_reading_them_with_each_query(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    embedder_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    embedder = request.getfixturevalue("local_embedder") if embedder_kind == "local" else None
    uri = str(tmp_path / "kb")
    held = KnowledgeBase.open(uri, embedder)
    held.ingest([SAMPLE_DOCS])
    read = KnowledgeBase.open(uri, embedder)
    modes = ["fts"] if embedder is None else ["fts", "hybrid", "vector"]
    searches = 0
    for mode in modes:
        for options in OPTIONS:
            for question in QUESTIONS:
                expected = _search_reading_passages(read, monkeypatch, question, mode, options)
                got = held.search(question, mode=mode, **options)
                assert _held(held) and not _held(read)
                assert _same(got, expected), (mode, options, question)
                searches += bool(got)
    assert searches > len(modes) * len(OPTIONS) * len(QUESTIONS) // 2  # not all empty


def _search_reading_passages(
    kb: KnowledgeBase,
    monkeypatch: pytest.MonkeyPatch,
    question: str,
    mode: str,
    options: dict[str, Any],
) -> list[SearchHit]:
    with monkeypatch.context() as patch:
        patch.setattr(knowledge, "PASSAGES_MAX_ROWS", 0)
        return kb.search(question, mode=mode, **options)


def test_a_table_over_the_byte_limit_is_searched_without_held_passages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knowledge, "PASSAGES_MAX_BYTES", 1000)
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([SAMPLE_DOCS])
    hits = kb.search("webhook signature header", mode="fts")
    assert hits[0].source == "webhooks.html" and not _held(kb)


def test_hits_carry_their_own_passages_across_another_writers_compaction(
    tmp_path: Path,
) -> None:
    """Row ids move when a writer compacts the table: the held passages and the queries that
    return row ids read the same version, whenever LanceDB itself looks for a newer one."""
    import time

    docs = {f"page{i}.md": f"# Page {i}\n\nThe heron relay {i} naps at noon.\n" for i in range(6)}
    uri = str(tmp_path / "kb")
    reader = KnowledgeBase.open(uri, None)
    reader.ingest([write_docs(tmp_path / "docs", docs)])
    texts = _texts_by_id(reader)
    assert len(reader.search("heron relay naps", k=6, mode="fts")) == 6 and _held(reader)
    writer = KnowledgeBase.open(uri, None)
    changed = {name: text.replace("naps at noon", "sleeps at dusk") for name, text in docs.items()}
    writer.ingest([write_docs(tmp_path / "docs", changed)])
    texts |= _texts_by_id(writer)
    time.sleep(knowledge.TABLE_REFRESH_SECONDS + 0.5)  # LanceDB now sees the new version
    # ... but this process read the table's facts just before the writer committed:
    reader._facts_checked = time.monotonic()
    hits = reader.search("heron relay naps sleeps", k=6, mode="fts")
    assert [hit.text for hit in hits] == [texts[hit.chunk_id] for hit in hits]
    assert len(hits) == 6 and all("noon" in hit.text for hit in hits)  # the version held
    reader._facts_checked = 0.0  # the next refresh
    hits = reader.search("heron relay naps sleeps", k=6, mode="fts")
    assert [hit.text for hit in hits] == [texts[hit.chunk_id] for hit in hits]
    assert len(hits) == 6 and all("dusk" in hit.text for hit in hits)


def _texts_by_id(kb: KnowledgeBase) -> dict[str, str]:
    data = kb._table().search().select(["chunk_id", "text"]).limit(None).to_arrow()
    return dict(
        zip(data.column("chunk_id").to_pylist(), data.column("text").to_pylist(), strict=True)
    )
