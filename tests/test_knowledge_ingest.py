"""Acceptance 1: ingest -> search round trips per format, incremental re-ingest, --prune;
plus the embedder record, BM25-only mode and the CLI surface (ingest, kb search --json, stats)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from bot.cli import main
from storage.embeddings import Embedder
from storage.knowledge import EmbedderMismatchError, KnowledgeBase
from tests.knowledge_helpers import (
    HashEmbedder,
    load_local_embedder,
    write_docs,
    write_text_pdf,
)


@pytest.fixture(scope="session")
def local_embedder() -> Embedder:
    return load_local_embedder()


DOCS = {
    "guide/install.md": (
        "# Installing Orbit\n\nOrbit needs two CPUs.\n\n## Ports\n\n"
        "The orbit daemon listens on port 6612 by default.\n\n## Upgrades\n\n"
        "Upgrade one minor version at a time.\n"
    ),
    "billing.rst": (
        "Billing\n=======\n\nPlans\n-----\n\nThe Nebula plan costs 17 euros per seat and month.\n\n"
        "Refunds\n-------\n\nAnnual plans are refundable within 21 days.\n"
    ),
    "notes.txt": "Maintenance notes\n\nThe quokka cache is flushed every 45 minutes.\n",
    "webhooks.html": (
        "<html><head><title>Webhooks</title><script>var leaked = 'xylophone';</script>"
        "<style>.a{color:red}</style></head><body><h1>Webhooks</h1>"
        "<p>Deliveries are retried 9 times.</p><h2>Signatures</h2>"
        "<p>Each delivery is signed with the walrus secret.</p></body></html>"
    ),
}


def make_docs(root: Path) -> Path:
    write_docs(root, DOCS)
    write_text_pdf(root / "manual.pdf", ["Operator manual", "The pelican relay restarts at 03:00."])
    return root


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return make_docs(tmp_path / "docs")


@pytest.mark.parametrize(
    ("question", "source", "heading"),
    [
        # "Ports" is one line: too small to stand alone, it is merged into the passage before
        # it (tests/test_knowledge_chunking.py), whose heading is the page's top.
        ("which port does the orbit daemon listen on", "guide/install.md", ""),
        ("price of the Nebula plan per seat", "billing.rst", "Plans"),
        ("how often is the quokka cache flushed", "notes.txt", ""),
        ("how many times are deliveries retried", "webhooks.html", ""),
        ("when does the pelican relay restart", "manual.pdf", "Page 1"),
    ],
)
def test_round_trip_each_format(
    tmp_path: Path, docs: Path, local_embedder, question: str, source: str, heading: str
) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "kb"), local_embedder)
    report = kb.ingest([docs])
    assert report.files == 5 and report.skipped_count == 0
    for mode in ("hybrid", "fts", "vector"):
        hits = kb.search(question, k=3, mode=mode)
        assert hits[0].source == source, (mode, hits)
        assert hits[0].heading == heading
        assert hits[0].score > 0 or mode == "vector"
    assert len({hit.source for hit in kb.search("the", k=10)}) == len(kb.search("the", k=10))


def test_titles_and_heading_paths(tmp_path: Path, docs: Path) -> None:
    # Sections of one line are merged into the passage before them; grow them so that each
    # stands alone and keeps its own heading path.
    filler = " It is documented here at length so that the section stands alone." * 4
    for name, needle in (
        ("guide/install.md", "by default."),
        ("billing.rst", "21 days."),
        ("webhooks.html", "walrus secret."),
    ):
        path = docs / name
        path.write_text(path.read_text().replace(needle, needle + filler))
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([docs])
    hit = kb.search("orbit daemon port", k=1)[0]
    assert (hit.title, hit.heading) == ("Installing Orbit", "Ports")
    hit = kb.search("Annual plans refundable", k=1)[0]
    assert (hit.source, hit.title, hit.heading) == ("billing.rst", "Billing", "Refunds")
    hit = kb.search("walrus secret", k=1)[0]
    assert (hit.title, hit.heading) == ("Webhooks", "Signatures")


def test_incremental_ingest_embeds_only_changes(tmp_path: Path, docs: Path) -> None:
    embedder = HashEmbedder()
    kb = KnowledgeBase.open(str(tmp_path / "kb"), embedder)
    first = kb.ingest([docs])
    total = first.chunks_added
    assert first.embedded == total > 0

    again = kb.ingest([docs])
    assert (again.embedded, again.chunks_added, again.chunks_removed) == (0, 0, 0)
    assert again.chunks_unchanged == total

    install = docs / "guide/install.md"
    install.write_text(install.read_text().replace("6612", "7734"), encoding="utf-8")
    changed = kb.ingest([docs])
    assert (changed.embedded, changed.chunks_added, changed.chunks_removed) == (1, 1, 1)
    assert changed.chunks_unchanged == total - 1
    assert kb.stats().chunks == total
    assert "7734" in kb.search("orbit daemon port", k=1, mode="fts")[0].text
    assert kb.search("6612", k=5, mode="fts") == []


def test_prune_removes_deleted_files(tmp_path: Path, docs: Path) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "kb"), HashEmbedder())
    kb.ingest([docs])
    (docs / "notes.txt").unlink()

    kept = kb.ingest([docs])  # without --prune the deleted file's chunks stay
    assert kept.chunks_removed == 0
    assert kb.search("quokka cache", k=1)[0].source == "notes.txt"

    pruned = kb.ingest([docs], prune=True)
    assert pruned.chunks_removed == 1 and pruned.embedded == 0
    assert all(hit.source != "notes.txt" for hit in kb.search("quokka cache", k=10))
    assert kb.stats().files == 4


def test_empty_or_missing_kb_searches_as_empty(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "nothing-here"), HashEmbedder())
    assert kb.search("anything") == []
    assert kb.ping() is True
    stats = kb.stats()
    assert (stats.files, stats.chunks) == (0, 0)


def test_bm25_only_without_embedder(tmp_path: Path, docs: Path) -> None:
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    report = kb.ingest([docs])
    assert report.embedded == 0
    assert kb.search("quokka", k=1)[0].source == "notes.txt"
    assert kb.stats().embedder is None


def test_embedder_mismatch_is_a_clear_error(tmp_path: Path, docs: Path) -> None:
    uri = str(tmp_path / "kb")
    KnowledgeBase.open(uri, HashEmbedder(dimension=64)).ingest([docs])

    other = KnowledgeBase.open(uri, HashEmbedder(dimension=32))
    with pytest.raises(EmbedderMismatchError, match="re-ingest"):
        other.search("quokka")
    with pytest.raises(EmbedderMismatchError, match="test:hash"):
        other.ingest([docs])
    with pytest.raises(EmbedderMismatchError):
        KnowledgeBase.open(uri, None).ingest([docs])
    # Without an embedder the same table still answers by BM25.
    assert KnowledgeBase.open(uri, None).search("quokka", k=1)[0].source == "notes.txt"

    rebuilt = other.ingest([docs], recreate=True)
    assert rebuilt.embedded == rebuilt.chunks_added > 0
    assert other.stats().dimension == 32
    assert other.search("quokka", k=1)[0].source == "notes.txt"


@pytest.mark.parametrize(("ann_index", "index_type"), [("IVF_SQ", "IvfSq"), ("IVF_PQ", "IvfPq")])
def test_ann_index_built_past_threshold(
    tmp_path: Path, docs: Path, ann_index: str, index_type: str
) -> None:
    kb = KnowledgeBase.open(
        str(tmp_path / "kb"), HashEmbedder(), ann_threshold=5, ann_index=ann_index
    )
    report = kb.ingest([docs])
    assert f"ann created ({ann_index})" in report.indexes
    stats = kb.stats()
    assert stats.vector_index == index_type and stats.fts_index
    assert kb.search("pelican relay restart", k=1, mode="vector")[0].source == "manual.pdf"
    exact = kb.search("pelican relay restart", k=3, mode="vector", exact=True)
    assert [h.chunk_id for h in exact] == [
        h.chunk_id for h in kb.search("pelican relay restart", k=3, mode="vector")
    ]


# ---------------------------------------------------------------- CLI


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ingest_search_json_and_stats(
    cli_env: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["ingest", str(docs)], capsys)
    assert code == 0
    assert out.strip().startswith("Ingested 5 file(s):") and out.count("\n") == 1

    code, out, _ = run_cli(["kb", "search", "quokka cache", "--json", "-k", "2"], capsys)
    assert code == 0
    hits = json.loads(out)
    assert hits[0] == {
        "source": "notes.txt",
        "title": "Maintenance notes",
        "heading": "",
        "snippet": "The quokka cache is flushed every 45 minutes.",
        "score": hits[0]["score"],
    }
    assert isinstance(hits[0]["score"], float) and len(hits) <= 2

    code, out, _ = run_cli(["kb", "stats", "--json"], capsys)
    stats = json.loads(out)
    assert (stats["files"], stats["embedder"], stats["fts_index"]) == (5, None, True)

    code, out, _ = run_cli(["ingest", str(docs)], capsys)
    assert "0 chunk(s) added" in out and "0 embedded" in out


def test_cli_sample_docs_ingest(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ingest", "--sample"], capsys)
    assert code == 0 and "skipped" in out
    code, out, _ = run_cli(["kb", "search", "webhook signature header", "--json"], capsys)
    assert json.loads(out)[0]["source"] == "webhooks.html"


def test_a_write_by_another_process_is_searched_after_the_refresh_interval(
    tmp_path: Path, docs: Path
) -> None:
    """Searches read through their own handle; what another writer adds shows up within
    TABLE_REFRESH_SECONDS, the delay LanceDB's read consistency allows."""
    import time

    from storage.knowledge import TABLE_REFRESH_SECONDS

    uri = str(tmp_path / "kb")
    reader = KnowledgeBase.open(uri, None)
    reader.ingest([docs])
    assert all(hit.source != "ibis.md" for hit in reader.search("ibis relay", mode="fts"))
    writer = KnowledgeBase.open(uri, None)
    writer.ingest([write_docs(tmp_path / "more", {"ibis.md": "# Ibis\n\nThe ibis relay naps.\n"})])
    time.sleep(TABLE_REFRESH_SECONDS + 0.5)
    assert reader.search("ibis relay", k=1, mode="fts")[0].source == "ibis.md"


def test_cli_ingest_names_each_skipped_file_once(tmp_path: Path) -> None:
    """`supportbot ingest` lists what it skipped and why; the same lines also reached the
    terminal a second time, unformatted, through Python's last-resort log handler (only a
    process of its own has no log handler installed by pytest)."""
    from tests.test_report import supportbot

    docs = tmp_path / "docs"
    (docs / "overrides").mkdir(parents=True)
    (docs / "guide.md").write_text("# Guide\n\nThe heron relay restarts hourly.\n")
    (docs / "blob.md").write_bytes(b"\x00\x01binary")
    (docs / "overrides" / "main.html").write_text("{% extends 'base.html' %}\n<p>x</p>\n")
    url = f"sqlite:///{tmp_path / 'sb.db'}"
    done = supportbot("ingest", str(docs), url=url, kb=tmp_path / "kb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if "blob.md" in line] == [
        f"warning: skipped {docs / 'blob.md'}: looks binary, not text"
    ]
    assert len([line for line in lines if "main.html" in line]) == 1


def test_cli_ingest_sums_up_files_skipped_for_their_type(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A docs folder's images were one warning line each: a screenful for a real site."""
    docs = cli_env / "docs"
    (docs / "img").mkdir(parents=True)
    (docs / "guide.md").write_text("# Guide\n\nThe heron relay restarts hourly.\n")
    for name in ("a.png", "b.png", "c.png"):
        (docs / "img" / name).write_bytes(b"\x89PNG")
    (docs / "site.css").write_text("body { color: red }\n")
    code, _out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0
    assert err.splitlines() == [
        f"warning: skipped 3 files: unsupported file type .png (e.g. {docs / 'img' / 'a.png'})",
        f"warning: skipped {docs / 'site.css'}: unsupported file type .css",
    ]


def test_a_second_ingest_while_one_is_writing_stops_with_one_line(
    cli_env: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ingests on one knowledge base (a cron run outlasting its interval, a release-phase
    ingest beside `ingest --every`) would each delete what the other wrote as stale."""
    from storage.ingest_lock import ingest_lock

    kb_uri = str(cli_env / "cli-kb")
    assert run_cli(["ingest", str(docs)], capsys)[0] == 0
    holding, release = threading.Event(), threading.Event()

    def other_ingest() -> None:
        with ingest_lock(kb_uri):
            holding.set()
            release.wait(30)

    other = threading.Thread(target=other_ingest)
    other.start()
    try:
        assert holding.wait(30)
        code, out, err = run_cli(["ingest", str(docs), "--prune"], capsys)
        assert code == 1 and out == ""
        assert f"another ingest (process {os.getpid()}) is writing to the knowledge base" in err
        assert "run this one when it has finished" in err and "Traceback" not in err
    finally:
        release.set()
        other.join()
    code, out, _ = run_cli(["ingest", str(docs), "--prune"], capsys)
    assert code == 0 and "0 removed" in out


def test_ingest_without_prune_names_how_many_stored_pages_are_gone(
    cli_env: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files removed from the folder stay searchable until --prune; the operator is told so,
    in one line, and nothing is deleted."""
    assert run_cli(["ingest", str(docs)], capsys)[0] == 0
    (docs / "notes.txt").unlink()
    code, out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0 and "0 removed" in out
    note = f"note: 1 stored page is no longer in {docs}; run with --prune to remove them"
    assert [line for line in err.splitlines() if "no longer in" in line] == [note]
    code, out, _ = run_cli(["kb", "search", "quokka cache", "--json", "-k", "1"], capsys)
    assert json.loads(out)[0]["source"] == "notes.txt"  # kept
    code, out, err = run_cli(["ingest", str(docs), "--prune"], capsys)
    assert code == 0 and "1 removed" in out and "no longer in" not in err
    code, out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0 and "no longer in" not in err


def test_ingest_reads_the_settings_once_and_keeps_the_learned_answers(
    cli_env: Path, docs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The knowledge base and the approved learned answers (SUPPORTBOT_LEARNED_DIR) come from
    # one reading of the settings: `ingest` read them a second time for the learned answers.
    from bot import config
    from bot.learning import LEARNED_FOLDER

    learned_root = cli_env / "learned_docs"
    (learned_root / LEARNED_FOLDER).mkdir(parents=True)
    (learned_root / LEARNED_FOLDER / "1-paypal.md").write_text(
        "# Can I pay with PayPal?\n\nYes: PayPal is accepted on annual plans.\n"
    )
    monkeypatch.setenv("SUPPORTBOT_LEARNED_DIR", str(learned_root))
    readings: list[dict[str, object]] = []
    read = config.load_settings

    def counted(**overrides: object) -> config.Settings:
        readings.append(overrides)
        return read(**overrides)

    monkeypatch.setattr(config, "load_settings", counted)
    code, _out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0, err
    assert len(readings) == 1
    sources = KnowledgeBase.open(str(cli_env / "cli-kb"), None).sources()
    assert any(source.startswith(f"{LEARNED_FOLDER}/") for source in sources)
