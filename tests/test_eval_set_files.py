"""The external evaluation sets are well formed: every gold or ``also`` page exists in the set's
corpus (a typo there would silently score as a retrieval miss), unanswerable rows name no page,
and every row has a split, half and half per kind."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bot.kb_eval import load_questions

EVAL = Path(__file__).resolve().parent.parent / "bench" / "eval"
EXTERNAL = ["flask", "etcd", "pytest"]


def rows_of(name: str) -> list[dict]:
    text = (EVAL / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", EXTERNAL)
def test_pages_exist_and_splits_are_halves(name: str) -> None:
    corpus = EVAL / "corpora" / name / "docs"
    rows = rows_of(name)
    assert len(load_questions(EVAL / f"{name}.jsonl")) == len(rows)
    for row in rows:
        pages = [*row.get("gold", []), *row.get("also", [])]
        assert all((corpus / page).is_file() for page in pages), row["question"]
        if row["kind"] == "unanswerable":
            assert row["answerable"] is False and not pages, row["question"]
        elif row["kind"] == "two-page":
            assert len(row["gold"]) == 2 and "also" not in row, row["question"]
    halves = Counter((row["kind"], row["split"]) for row in rows)
    for kind in {row["kind"] for row in rows}:
        assert abs(halves[(kind, "dev")] - halves[(kind, "heldout")]) <= 1, kind


def test_corpora_record_source_and_licence() -> None:
    for name in EXTERNAL:
        folder = EVAL / "corpora" / name
        source = (folder / "SOURCE.md").read_text(encoding="utf-8")
        assert "Commit:" in source and "Licence:" in source
        assert any(folder.glob("LICENSE*"))
