"""The answer-or-refuse baselines of `bench/eval_sets.py` are what they say: the top-score
threshold "from dev" is chosen on the set's dev half even when the run scores only its held-out
half, a set without a dev half has none (it used to fall back to threshold 0, i.e. answering
every question, reported as a threshold from dev), and answering every question is a baseline
of its own."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType

from bot.commands.kb import SAMPLE_DOCS
from storage.knowledge import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "bench" / "eval"


def eval_sets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_sets", ROOT / "bench" / "eval_sets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_rows(split_of: dict[bool, str]) -> list[dict]:
    """The bundled questions, the answerable and the unanswerable each given ``split_of`` its
    kind (half of each kind to each split when the value is "half")."""
    rows = []
    for name, answerable in (("questions", True), ("unanswerable", False)):
        lines = (EVAL / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(filter(None, lines)):
            row = json.loads(line)
            split = split_of[answerable]
            row["split"] = ("dev", "heldout")[n % 2] if split == "half" else split
            rows.append(row)
    return rows


def test_the_threshold_baseline_comes_from_the_dev_half_or_is_absent(tmp_path: Path) -> None:
    module = eval_sets()
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([SAMPLE_DOCS])
    halves = tmp_path / "halves.jsonl"
    halves.write_text(
        "".join(json.dumps(r) + "\n" for r in sample_rows({True: "half", False: "half"}))
    )
    heldout = module.questions_of(halves, "heldout")
    decisions = asyncio.run(module.answer_all(kb, heldout))

    # Only the held-out half was answered in this run: the threshold is chosen on the dev half.
    threshold = asyncio.run(module.dev_threshold(kb, halves, {"heldout": decisions}))
    dev = asyncio.run(module.answer_all(kb, module.questions_of(halves, "dev")))
    assert threshold == module.best_threshold(dev) and threshold > 0.0
    answer_all = module.threshold_accuracy(decisions, 0.0)
    assert answer_all == sum(q.answerable for q in heldout) / len(heldout)
    assert module.threshold_accuracy(decisions, threshold) != answer_all

    only_heldout = tmp_path / "fresh.jsonl"
    only_heldout.write_text(
        "".join(json.dumps(r) + "\n" for r in sample_rows({True: "heldout", False: "heldout"}))
    )
    assert asyncio.run(module.dev_threshold(kb, only_heldout, {"heldout": decisions})) is None
    assert module.percent_or_none(None) == "none (no dev half)"
