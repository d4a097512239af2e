"""Acceptance 4: bad input gets a clear message and the existing knowledge base stays intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.knowledge import IngestInputError, KnowledgeBase, KnowledgeError
from tests.knowledge_helpers import HashEmbedder, write_blank_pdf, write_docs
from tests.test_knowledge_ingest import make_docs, run_cli

BIG_FILE_BYTES = 50 * 1024 * 1024


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    """A knowledge base that already holds the round-trip docs."""
    base = KnowledgeBase.open(str(tmp_path / "kb"), HashEmbedder())
    base.ingest([make_docs(tmp_path / "docs")])
    return base


def assert_intact(kb: KnowledgeBase, chunks: int | None = None) -> None:
    assert kb.search("quokka cache flushed", k=1)[0].source == "notes.txt"
    assert kb.search("orbit daemon port", k=1)[0].source == "guide/install.md"
    if chunks is not None:
        assert kb.stats().chunks == chunks


def test_empty_folder(tmp_path: Path, kb: KnowledgeBase) -> None:
    before = kb.stats()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestInputError, match=r"no documents found in .*empty.*not changed"):
        kb.ingest([empty], prune=True)
    assert kb.stats().version == before.version
    assert_intact(kb, before.chunks)


def test_missing_path(tmp_path: Path, kb: KnowledgeBase) -> None:
    before = kb.stats()
    with pytest.raises(IngestInputError, match=r"does-not-exist does not exist"):
        kb.ingest([tmp_path / "docs", tmp_path / "does-not-exist"], prune=True)
    assert kb.stats().version == before.version
    assert_intact(kb, before.chunks)


def test_fifty_megabyte_file_is_skipped(tmp_path: Path, kb: KnowledgeBase) -> None:
    docs = tmp_path / "docs"
    with (docs / "huge-export.md").open("wb") as handle:  # sparse: instant, no disk used
        handle.truncate(BIG_FILE_BYTES)
    report = kb.ingest([docs])
    assert [(s.path.name, s.reason) for s in report.skipped] == [
        ("huge-export.md", "larger than the 10 MB limit")
    ]
    assert report.files == 5 and report.chunks_added == 0
    assert_intact(kb)


def test_binary_file_with_text_suffix_is_skipped(tmp_path: Path, kb: KnowledgeBase) -> None:
    docs = tmp_path / "docs"
    (docs / "logo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    (docs / "photo.png").write_bytes(b"\x89PNG")
    report = kb.ingest([docs])
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert reasons == {
        "logo.txt": "looks binary, not text",
        "photo.png": "unsupported file type .png",
    }
    assert_intact(kb)


def test_invalid_utf8_is_read_with_replacement(tmp_path: Path, kb: KnowledgeBase) -> None:
    docs = tmp_path / "docs"
    (docs / "legacy.md").write_bytes(
        b"# Legacy page\n\nCaf\xe9 hours: the gazebo opens at 9.\n\xff\xfe\n"
    )
    report = kb.ingest([docs])
    assert any("legacy.md: invalid UTF-8" in w for w in report.warnings)
    hit = kb.search("when does the gazebo open", k=1)[0]
    assert hit.source == "legacy.md" and "\ufffd" in hit.text
    assert_intact(kb)


def test_html_scripts_and_styles_are_not_indexed(tmp_path: Path, kb: KnowledgeBase) -> None:
    # webhooks.html in the round-trip docs carries <script>var leaked = 'xylophone'</script>.
    assert kb.search("xylophone", k=5, mode="fts") == []
    assert kb.search("color red", k=5, mode="fts") == []
    assert kb.search("walrus secret", k=1, mode="fts")[0].source == "webhooks.html"


def test_pdf_without_text(tmp_path: Path, kb: KnowledgeBase) -> None:
    before = kb.stats()
    scans = tmp_path / "scans"
    scans.mkdir()
    write_blank_pdf(scans / "scanned.pdf")
    with pytest.raises(IngestInputError, match="no text found"):
        kb.ingest([scans])
    assert_intact(kb, before.chunks)

    write_blank_pdf(tmp_path / "docs" / "scanned.pdf")
    report = kb.ingest([tmp_path / "docs"])
    assert any("scanned.pdf: PDF has no extractable text" in w for w in report.warnings)
    assert_intact(kb, before.chunks)


def test_damaged_pdf_is_skipped(tmp_path: Path, kb: KnowledgeBase) -> None:
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    report = kb.ingest([tmp_path / "docs"])
    assert [s.path.name for s in report.skipped] == ["broken.pdf"]
    assert report.skipped[0].reason.startswith("not a readable PDF")
    assert_intact(kb)


def test_interrupted_ingest_keeps_previous_content(tmp_path: Path) -> None:
    docs = write_docs(
        tmp_path / "docs",
        {f"topic-{n:02d}.md": f"# Topic {n}\n\nThe old answer for topic {n} is amber{n}.\n"
         for n in range(12)},
    )  # fmt: skip
    uri = str(tmp_path / "kb")
    KnowledgeBase.open(uri, HashEmbedder()).ingest([docs])

    # Every file changes; the model dies after 2 batches of 2 chunks (4 of 12 written).
    for n in range(12):
        (docs / f"topic-{n:02d}.md").write_text(
            f"# Topic {n}\n\nThe new answer for topic {n} is cobalt{n}.\n", encoding="utf-8"
        )
    flaky = HashEmbedder(fail_after=2)
    interrupted = KnowledgeBase.open(uri, flaky, embed_batch=2, write_batch=2)
    with pytest.raises(KnowledgeError, match="embedding failed after 4 chunk"):
        interrupted.ingest([docs])

    reader = KnowledgeBase.open(uri, HashEmbedder())
    for n in range(12):  # nothing was deleted: every old answer is still found
        hits = reader.search(f"amber{n}", k=1, mode="fts")
        assert hits and hits[0].source == f"topic-{n:02d}.md"
    assert len(reader.search("cobalt0 cobalt1 cobalt2 cobalt3", k=12, mode="fts")) == 4

    finished = KnowledgeBase.open(uri, HashEmbedder()).ingest([docs])
    assert (finished.embedded, finished.chunks_unchanged, finished.chunks_removed) == (8, 4, 12)
    # A fresh reader (other processes notice new versions within a couple of seconds).
    reader = KnowledgeBase.open(uri, HashEmbedder())
    assert reader.search("amber5", k=1, mode="fts") == []
    assert reader.search("cobalt5", k=1, mode="fts")[0].source == "topic-05.md"


# ---------------------------------------------------------------- the same through the CLI


@pytest.fixture
def cli_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Path:
    monkeypatch.setenv("SUPPORTBOT_KB_URI", str(tmp_path / "cli-kb"))
    monkeypatch.setenv("SUPPORTBOT_EMBEDDER", "none")
    monkeypatch.chdir(tmp_path)
    docs = make_docs(tmp_path / "docs")
    assert run_cli(["ingest", str(docs)], capsys)[0] == 0
    return docs


def test_cli_bad_paths_are_one_line_errors(tmp_path: Path, cli_kb: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    for argv, message in [
        (["ingest", str(tmp_path / "missing")], "does not exist"),
        (["ingest", str(tmp_path / "empty")], "no documents found"),
        (["ingest"], "name at least one docs folder"),
    ]:
        code, out, err = run_cli(argv, capsys)
        assert code == 1 and out == ""
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    code, out, _ = run_cli(["kb", "search", "quokka", "--json"], capsys)
    assert '"notes.txt"' in out


def test_cli_warns_about_skipped_files(tmp_path: Path, cli_kb: Path, capsys) -> None:
    with (cli_kb / "dump.md").open("wb") as handle:
        handle.truncate(BIG_FILE_BYTES)
    code, out, err = run_cli(["ingest", str(cli_kb), "--max-file-mb", "20"], capsys)
    assert code == 0
    assert "warning: skipped" in err and "dump.md: larger than the 20 MB limit" in err
    assert "1 file(s) skipped" in out


def test_file_that_turns_unreadable_keeps_its_previous_chunks(
    tmp_path: Path, kb: KnowledgeBase
) -> None:
    notes = tmp_path / "docs" / "notes.txt"
    with notes.open("r+b") as handle:  # grows past the limit (sparse, instant)
        handle.truncate(BIG_FILE_BYTES)
    report = kb.ingest([tmp_path / "docs"], prune=True)
    assert [s.path.name for s in report.skipped] == ["notes.txt"]
    assert report.chunks_removed == 0
    assert_intact(kb)

    notes.write_text("", encoding="utf-8")  # readable again, but empty: its chunks go
    report = kb.ingest([tmp_path / "docs"])
    assert report.chunks_removed == 1
    assert all(hit.source != "notes.txt" for hit in kb.search("quokka cache", k=10))
