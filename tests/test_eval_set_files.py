"""The external evaluation sets are well formed: every gold or ``also`` page exists in the set's
corpus (a typo there would silently score as a retrieval miss), unanswerable rows name no page,
and every row has a split: half and half per kind within each batch, except the batches written
as held-out only (every row of those must be held out)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.kb_eval import SPENT_BATCHES, UNSCORED_BATCHES, load_questions

EVAL = Path(__file__).resolve().parent.parent / "bench" / "eval"
EXTERNAL = [
    "flask",
    "etcd",
    "pytest",
    "fastapi",
    "prometheus",
    "scrapy",
    "traefik",
    "celery",
    "artemis",
]
# Batches 4 to 10 were each written as a fresh held-out check after the earlier held-out halves
# had been scored; they have no dev half by design (bench/eval/README.md).
HELDOUT_ONLY_BATCHES = {4, 5, 6, 7, 8, 9, 10}
# The sets holding each held-out-only batch (fastapi was written after batch 4, in one batch split
# half and half; batch 5 was written for the first four sets; batch 6 is the whole prometheus set,
# batch 7 the whole scrapy set, batch 8 the whole traefik set, batch 9 the whole celery set and
# batch 10 the whole artemis set, corpora no ranking or answering code of ours has run on).
SETS_WITH_BATCH = {
    4: ["flask", "etcd", "pytest"],
    5: ["flask", "etcd", "pytest", "fastapi"],
    6: ["prometheus"],
    7: ["scrapy"],
    8: ["traefik"],
    9: ["celery"],
    10: ["artemis"],
}
# Sets made of held-out-only rows alone, each with the one batch it holds: no default run has
# anything of them to score.
FRESH_ONLY_SETS = {"prometheus": 6, "scrapy": 7, "traefik": 8, "celery": 9, "artemis": 10}


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
    halves = Counter((row.get("batch", 1), row["kind"], row["split"]) for row in rows)
    for batch, kind in {(row.get("batch", 1), row["kind"]) for row in rows}:
        dev, heldout = halves[(batch, kind, "dev")], halves[(batch, kind, "heldout")]
        if batch in HELDOUT_ONLY_BATCHES:
            assert dev == 0 and heldout > 0, (batch, kind)
        else:
            assert abs(dev - heldout) <= 1, (batch, kind)


def load_split_script():
    spec = importlib.util.spec_from_file_location("split", EVAL / "split.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", EXTERNAL)
def test_split_script_keeps_committed_splits(name: str) -> None:
    """Re-running split.py, even with a new unsplit question appended, moves no committed row
    (in particular none of the held-out-only batch) into the other half."""
    split = load_split_script()
    rows = rows_of(name)
    extra = {"question": "a later question", "answerable": False, "kind": "unanswerable"}
    assigned = split.assign([*copy.deepcopy(rows), extra], name)
    assert [row["split"] for row in assigned[:-1]] == [row["split"] for row in rows]
    assert assigned[-1]["split"] in ("dev", "heldout")


def test_corpora_record_source_and_licence() -> None:
    for name in EXTERNAL:
        folder = EVAL / "corpora" / name
        source = (folder / "SOURCE.md").read_text(encoding="utf-8")
        assert "Commit:" in source and "Licence:" in source
        assert any(folder.glob("LICENSE*"))


def _bench_module(name: str, path: Path | None = None):  # type: ignore[no-untyped-def]
    path = path or EVAL.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("batch", "name"), [(batch, name) for batch, names in SETS_WITH_BATCH.items() for name in names]
)
def test_unscored_batches_stay_out_of_every_run_unless_asked_for(batch: int, name: str) -> None:
    """`make eval` and the auto-answer bench never score a held-out-only batch by accident: only an
    explicit --fresh-batch N reads batch N, and nothing else with it (loading questions here runs
    no ranking code)."""
    eval_sets, autoanswer = _bench_module("eval_sets"), _bench_module("autoanswer")
    assert UNSCORED_BATCHES >= HELDOUT_ONLY_BATCHES
    path = EVAL / f"{name}.jsonl"
    fresh = [r for r in rows_of(name) if r.get("batch") == batch]
    assert fresh, f"batch {batch} is where it should be"

    held_out = eval_sets.questions_of(path, "heldout")
    assert all(q.batch not in HELDOUT_ONLY_BATCHES for q in held_out)
    assert bool(held_out) is (name not in FRESH_ONLY_SETS)
    only_fresh = eval_sets.questions_of(path, "heldout", fresh_batch=batch)
    assert len(only_fresh) == len(fresh) and all(q.batch == batch for q in only_fresh)

    texts = {r["question"] for r in fresh}
    default = autoanswer.load_questions([path], "heldout")
    assert not texts & {q.text for q in default}
    assert bool(default) is (name not in FRESH_ONLY_SETS)
    assert {q.text for q in autoanswer.load_questions([path], "heldout", batch)} == texts


def test_held_out_only_batches_are_where_the_readme_says() -> None:
    """Batch 4 is in Flask, etcd and pytest only; batch 5 in those and FastAPI; batch 6 is the
    prometheus set, every row of it, batch 7 the scrapy set, batch 8 the traefik set, batch 9
    the celery set and batch 10 the artemis set."""
    for batch, names in SETS_WITH_BATCH.items():
        holding = [n for n in EXTERNAL if any(r.get("batch") == batch for r in rows_of(n))]
        assert holding == names, batch


@pytest.mark.parametrize(("name", "batch"), sorted(FRESH_ONLY_SETS.items()))
def test_the_fresh_only_sets_are_registered_but_out_of_every_default_run(
    name: str, batch: int
) -> None:
    """prometheus, scrapy, traefik, celery and artemis are in SETS (so each can be scored once, on
    purpose) but not in `make eval`'s default sets, not among the sets the answer-or-refuse model is
    fitted on until their batch is spent (prometheus's batch 6 is, since 2026-12-05), and every row
    is of the set's one batch (6 to 10): with no --fresh-batch, no split of it has a question to
    score. When scored, it is reported as the held-out split (whose per-question misses are
    dropped), not as "all"."""
    eval_sets = _bench_module("eval_sets")
    fit_refusal = (EVAL / "fit_refusal.py").read_text(encoding="utf-8")
    assert batch in UNSCORED_BATCHES
    path = EVAL / f"{name}.jsonl"
    assert eval_sets.SETS[name] == (path, EVAL / "corpora" / name / "docs")
    assert name not in eval_sets.DEFAULT_SETS.split(",")
    # The answer-or-refuse model is fitted on a fresh batch only once its one look is taken.
    assert (f'"{name}"' in fit_refusal) is (batch in SPENT_BATCHES)
    rows = rows_of(name)
    assert {row.get("batch") for row in rows} == {batch}
    assert {row["split"] for row in rows} == {"heldout"}
    assert eval_sets.splits_of(path) == ["heldout"]
    for split in ("heldout", "all"):  # there is no dev split to ask for
        assert eval_sets.questions_of(path, split) == []
    assert len(eval_sets.questions_of(path, "heldout", fresh_batch=batch)) == len(rows)


def test_supportbot_eval_leaves_the_unscored_batches_out_unless_asked_for(tmp_path: Path) -> None:
    """`supportbot eval FILE --split heldout` on one of these files must not spend a fresh batch
    either: it scores the other rows, and only `--fresh-batch N` scores batch N."""
    rows = [
        {"question": "How do I rotate an SDK key?", "gold": ["a.md"], "split": "heldout"},
        {"question": "Which port?", "gold": ["b.md"], "split": "heldout", "batch": 5},
        {"question": "Which region?", "gold": ["c.md"], "split": "heldout", "batch": 5},
    ]
    questions = tmp_path / "set.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SUPPORTBOT_"))}
    env.update(SUPPORTBOT_KB_URI=str(tmp_path / "kb"), SUPPORTBOT_EMBEDDER="none")

    def scored(*options: str) -> int:
        result = subprocess.run(
            [sys.executable, "-m", "bot", "eval", str(questions), "--json", *options],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]["questions"]

    assert scored("--split", "heldout") == 1
    assert scored("--split", "heldout", "--fresh-batch", "5") == 2


def test_the_model_is_fitted_on_spent_batches_only() -> None:
    """fit_refusal.py reads the spent fresh batches (4-8) of a set and never an unspent one (9,
    10), nor the original held-out halves (rows without a batch)."""
    assert SPENT_BATCHES < UNSCORED_BATCHES and not SPENT_BATCHES & {9, 10}
    fit_refusal = _bench_module("fit_refusal", EVAL / "fit_refusal.py")
    for name in (*fit_refusal.SEMANTIC_SETS, "celery", "artemis"):
        spent = fit_refusal.spent_questions(name)
        assert all(q.batch in SPENT_BATCHES for q in spent)
        expected = [r for r in rows_of(name) if r.get("batch") in SPENT_BATCHES]
        assert len(spent) == len(expected), name
    assert len(fit_refusal.spent_questions("scrapy")) == len(rows_of("scrapy"))
    assert len(fit_refusal.spent_questions("traefik")) == len(rows_of("traefik"))
    assert fit_refusal.spent_questions("celery") == []
    assert fit_refusal.spent_questions("artemis") == []
