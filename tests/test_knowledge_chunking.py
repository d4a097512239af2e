"""Chunking v2 (issue 13): code blocks whole, tiny sections merged, overlap in long sections,
more than one passage per source, typo tolerance in BM25, and an old knowledge base rebuilt."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pyarrow as pa
import pytest

from storage.documents import (
    CHUNK_CHARS,
    CHUNKER_VERSION,
    chunk_document,
    parse_markdown,
)
from storage.knowledge import META_CHUNKER, KnowledgeBase
from storage.vocabulary import Vocabulary, damerau_levenshtein
from tests.knowledge_helpers import HashEmbedder, write_docs

SENTENCE = "The heron scheduler rotates the {n} ledger before the nightly compaction runs. "


def chunks_of(markdown: str) -> list:
    return chunk_document(parse_markdown(markdown, fallback_title="Doc"), source="doc.md")


def test_a_code_block_is_never_cut() -> None:
    code = "```python\n" + "\n".join(f"value_{i} = compute({i})  # step {i}" for i in range(40))
    code += "\n```"
    assert CHUNK_CHARS < len(code) < 1600
    chunks = chunks_of(f"# Doc\n\n## Example\n\nIntro sentence here.\n\n{code}\n\nAfter it.\n")
    holding = [c for c in chunks if "value_0 =" in c.text]
    assert len(holding) == 1 and code in holding[0].text


def test_a_huge_code_block_is_cut_between_lines_into_fenced_parts() -> None:
    code = "```sh\n" + "\n".join(f"echo line number {i} of the script" for i in range(120))
    chunks = chunks_of(f"# Doc\n\n{code}\n```\n")
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.startswith("```sh\n") and chunk.text.endswith("\n```")
        assert all(line.startswith(("```", "echo line")) for line in chunk.text.splitlines())


def test_tiny_sections_join_the_passage_before_them_with_their_heading() -> None:
    chunks = chunks_of(
        "# Guide\n\n## Install\n\n" + SENTENCE.format(n="first") * 3 + "\n\n"
        "## Ports\n\nPort 6612.\n\n## Empty heading\n\n## Big\n\n" + SENTENCE.format(n="big") * 6
    )
    assert [c.heading for c in chunks] == ["Install", "Big"]
    assert "Ports\n\nPort 6612." in chunks[0].text
    assert "Empty heading" in chunks[0].text
    assert "Ports" in chunks[0].search_text


def test_a_long_section_overlaps_by_one_sentence() -> None:
    text = "".join(SENTENCE.format(n=f"n{i}") for i in range(30))
    chunks = chunks_of(f"# Guide\n\n## Long\n\n{text}\n")
    assert len(chunks) >= 3
    for before, after in itertools.pairwise(chunks):
        last_sentence = before.text.rsplit(". ", 1)[-1].strip()
        assert after.text.startswith(last_sentence), (before.text[-80:], after.text[:80])
    assert all(len(c.text) <= CHUNK_CHARS + 200 for c in chunks)


def test_per_source_returns_several_passages_of_a_source(tmp_path: Path) -> None:
    docs = write_docs(
        tmp_path / "docs",
        {
            "ops.md": "# Ops\n\n## Backup\n\n"
            + "The marmot backup copies the vault. " * 12
            + "\n\n## Restore\n\n"
            + "The marmot restore reads the vault copy. " * 12,
            "other.md": "# Other\n\n" + "Unrelated words about the garden. " * 10,
        },
    )
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([docs])
    one = kb.search("marmot vault", k=2)
    assert [h.source for h in one].count("ops.md") == 1
    two = kb.search("marmot vault", k=2, per_source=2)
    assert [h.heading for h in two if h.source == "ops.md"] in (
        ["Backup", "Restore"],
        ["Restore", "Backup"],
    )
    assert two[0].source == "ops.md" and two[1].source == "ops.md"  # grouped, best source first


def test_typos_in_words_the_index_never_saw_are_corrected(tmp_path: Path) -> None:
    docs = write_docs(
        tmp_path / "docs",
        {
            "gateway.md": "# Gateway\n\nThe gateway forwards requests to members.\n",
            "defrag.md": "# Defragmentation\n\nDefragmentation reclaims disk space.\n",
            "misc.md": "# Misc\n\nThe members list is shown by the status command.\n",
        },
    )
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([docs])
    assert kb.search("when to use the gatway", k=1)[0].source == "gateway.md"
    assert kb.search("defragmantation of memebers", k=1)[0].source == "defrag.md"
    assert kb.search("zzqxw", k=3) == []  # nothing close: no correction, no hits


def test_vocabulary_corrects_only_unknown_words() -> None:
    vocabulary = Vocabulary.from_texts(["gateway members heartbeat", "member election auth"])
    assert vocabulary.corrections("gatway memebers hearbeat electon") == {
        "gatway": "gateway",
        "memebers": "members",
        "hearbeat": "heartbeat",
        "electon": "election",
    }
    assert vocabulary.corrections("members gateway v3 x509 lok") == {}
    assert damerau_levenshtein("dokcer", "docker", 2) == 1
    assert damerau_levenshtein("abcdef", "uvwxyz", 2) == 3


def test_a_knowledge_base_from_the_old_chunker_is_flagged_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = write_docs(tmp_path / "docs", {"a.md": "# A\n\nThe ibis relay restarts hourly.\n"})
    kb = KnowledgeBase.open(str(tmp_path / "kb"), HashEmbedder())
    kb.ingest([docs])
    table = kb._table()
    old_schema = table.schema.with_metadata(
        {k: v for k, v in table.schema.metadata.items() if k != META_CHUNKER}
    )
    data = table.to_arrow()
    kb._db.create_table("chunks", data=pa.Table.from_batches(data.to_batches(), old_schema),
                        mode="overwrite")  # fmt: skip
    old = KnowledgeBase.open(str(tmp_path / "kb"), HashEmbedder())
    with caplog.at_level(logging.WARNING):
        assert old.search("ibis relay", k=1)[0].source == "a.md"  # still serves
    assert any("older version" in r.getMessage() for r in caplog.records)

    other = write_docs(tmp_path / "other", {"b.md": "# B\n\nThe stork gateway rests.\n"})
    partial = old.ingest([other])  # a.md is not given: nothing is dropped, the fix is named
    assert any("--prune" in w for w in partial.warnings)
    assert old.search("ibis relay", k=1)[0].source == "a.md"

    report = old.ingest([docs, other])
    assert any("older version" in w and "rebuilt" in w for w in report.warnings)
    assert report.chunks_added == 2 and report.embedded == 2
    fresh = KnowledgeBase.open(str(tmp_path / "kb"), HashEmbedder())
    meta = fresh._table().schema.metadata
    assert meta[META_CHUNKER] == CHUNKER_VERSION.encode()
    assert fresh.search("ibis relay", k=1)[0].source == "a.md"
    assert fresh.search("stork gateway", k=1)[0].source == "b.md"


def test_front_matter_description_opens_the_page_and_shortcodes_are_dropped() -> None:
    chunks = chunks_of(
        "---\ntitle: Maintenance\nweight: 4\ndescription: Periodic cluster upkeep guide\n---\n\n"
        '## Overview\n\n{{% alert title="Note" %}}\nCompaction frees the keyspace history '
        "that the store keeps for every key.\n{{% /alert %}}\n\n```\n{{< kept-in-code >}}\n```\n"
    )
    assert chunks[0].title == "Maintenance"
    assert chunks[0].text.startswith("Periodic cluster upkeep guide")
    text = "\n".join(c.text for c in chunks)
    assert "{{% alert" not in text and "{{% /alert" not in text
    assert "Compaction frees the keyspace history" in text and "{{< kept-in-code >}}" in text


def test_a_long_list_keeps_each_item_on_its_own_line() -> None:
    """A list written without blank lines is one long paragraph, cut at sentence ends: the
    cut used to rejoin the sentences with spaces, so "...is raised. * The **read** timeout"
    became one sentence of the quote."""
    items = "".join(
        f"* The **{kind}** timeout specifies the longest wait for the {kind} step of a\n"
        f"request to finish. If it takes longer, a `{kind.title()}Timeout` is raised.\n"
        for kind in ("connect", "read", "write", "pool", "resolve", "handshake", "drain")
    )
    assert len(items) > CHUNK_CHARS
    chunks = chunks_of(f"# Timeouts\n\n## Kinds\n\n{items}")
    for chunk in chunks:
        assert ". * The" not in chunk.text
    text = "\n".join(chunk.text for chunk in chunks)
    assert "is raised.\n* The **read** timeout" in text
