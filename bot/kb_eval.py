"""Retrieval evaluation: recall@5 and MRR@10 over distinct sources, and query latency.

Questions are JSON lines ``{"question": ..., "gold": [source, ...]}``; ``gold`` lists the
source paths (as the knowledge base stores them) that answer the question.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

RECALL_AT = 5
MRR_AT = 10


class Searcher(Protocol):
    def search(self, query: str, *, k: int = 5, mode: str = "hybrid") -> list: ...


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    gold: tuple[str, ...]


@dataclass(frozen=True)
class EvalResult:
    mode: str
    questions: int
    recall_at_5: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    misses: tuple[str, ...]  # questions whose gold was not in the top 5

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["misses"] = list(self.misses)
        return data


def load_questions(path: Path) -> list[EvalQuestion]:
    """Parse the JSON-lines file; a bad line is a ValueError naming its line number."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            gold = row["gold"]
            gold = (gold,) if isinstance(gold, str) else tuple(gold)
            questions.append(EvalQuestion(str(row["question"]), gold))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a question line ({exc})") from None
    if not questions:
        raise ValueError(f"{path} has no questions")
    return questions


def evaluate(kb: Searcher, questions: list[EvalQuestion], *, mode: str) -> EvalResult:
    recalls: list[float] = []
    reciprocal_ranks: list[float] = []
    latencies: list[float] = []
    misses: list[str] = []
    kb.search(questions[0].question, k=MRR_AT, mode=mode)  # warm caches before timing
    for item in questions:
        started = time.perf_counter()
        hits = kb.search(item.question, k=MRR_AT, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = list(dict.fromkeys(hit.source for hit in hits))  # distinct, best first
        gold = set(item.gold)
        found = gold & set(ranked[:RECALL_AT])
        recalls.append(len(found) / len(gold))
        if len(found) < len(gold):
            misses.append(item.question)
        rank = next((i for i, source in enumerate(ranked[:MRR_AT], 1) if source in gold), None)
        reciprocal_ranks.append(1.0 / rank if rank else 0.0)
    return EvalResult(
        mode=mode,
        questions=len(questions),
        recall_at_5=statistics.fmean(recalls),
        mrr_at_10=statistics.fmean(reciprocal_ranks),
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        misses=tuple(misses),
    )


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
