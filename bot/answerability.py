"""Do these passages answer this question? The answer-or-refuse decision over a knowledge base.

One place that assembles what :func:`bot.grounding.decide` needs from the knowledge base: the
words' rarities (document frequencies, rebuilt after an ingest) and, with the local embedder,
the question's similarity to each passage's windows (bot.semantic). The offline answerer
decides with it; a model's answer to an auto-answer post is checked with it, so that a channel
where nobody asked the bot hears only answers the docs support, whichever agent wrote them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bot import offload
from bot.grounding import (
    ANSWER_PROBABILITY,
    MIN_COVERAGE,
    MIN_WEIGHTED_COVERAGE,
    Decision,
    Weight,
    decide,
    idf_weight,
)
from bot.semantic import PassageMatcher


class Answerability:
    def __init__(
        self,
        knowledge: Any,
        *,
        min_coverage: float = MIN_COVERAGE,
        min_weighted_coverage: float = MIN_WEIGHTED_COVERAGE,
        min_probability: float | None = ANSWER_PROBABILITY,
        semantic: bool = True,
    ) -> None:
        self.knowledge = knowledge
        self.min_coverage = min_coverage
        self.min_weighted_coverage = min_weighted_coverage
        # The learned rule needs the knowledge base's word rarities; None: the coverage rule.
        self.min_probability = min_probability
        self._weights: tuple[int, Weight] | None = None  # (id of the frequencies, weight)
        # Paraphrases: the question against windows of the passages (local embedder only).
        self._matcher = PassageMatcher.for_knowledge(knowledge) if semantic else None

    def _weight(self) -> Weight | None:
        """Word weights from the knowledge base's document frequencies (rebuilt when they
        change, e.g. after an ingest)."""
        frequencies = self.knowledge.document_frequencies()
        if frequencies is None:
            return None
        key = id(frequencies[0])
        if self._weights is None or self._weights[0] != key:
            self._weights = (key, idf_weight(*frequencies))
        return self._weights[1]

    async def decide(self, question: str, hits: Sequence[Any]) -> Decision:
        weight = await asyncio.to_thread(self._weight)
        matches = None
        if self._matcher is not None and weight is not None and hits:
            matches = await offload.run_kb(self._matcher.matches, question, hits)
        if weight is None:  # no word frequencies (empty or huge knowledge base)
            return decide(question, list(hits), self.min_coverage)
        decision = decide(
            question,
            list(hits),
            self.min_weighted_coverage,
            weight,
            min_probability=self.min_probability,
            semantic=matches,
        )
        if matches is not None:  # what to quote: each passage's window closest to the question
            closest = zip(hits, matches, strict=True)
            decision.windows = {hit.chunk_id: match.window for hit, match in closest}
        return decision
