"""Do these passages answer this question? The answer-or-refuse decision over a knowledge base.

One place that assembles what :func:`bot.grounding.decide` needs from the knowledge base: the
words' rarities (document frequencies, rebuilt after an ingest) and, with the local embedder,
the question's similarity to each passage's windows (bot.semantic). The offline answerer
decides with it; a model's answer to an auto-answer post is checked with it, so that a channel
where nobody asked the bot hears only answers the docs support, whichever agent wrote them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bot import offload
from bot.grounding import (
    ANSWER_PROBABILITY,
    MIN_COVERAGE,
    MIN_WEIGHTED_COVERAGE,
    Decision,
    Weight,
    content_words,
    decide,
    found_in,
    idf_weight,
    semantic_model_uses,
)
from bot.semantic import STANDOUT_SOURCES, Match, PassageMatcher
from storage.lru import Lru
from storage.passages import window_texts

log = logging.getLogger(__name__)

# Questions whose standout is kept: a follow-up, the unknown-name retry and the auto-answer
# gate decide the same question again, and its standout costs one more vector search.
CACHED_STANDOUTS = 1024


class Answerability:
    def __init__(
        self,
        knowledge: Any,
        *,
        min_coverage: float = MIN_COVERAGE,
        min_weighted_coverage: float = MIN_WEIGHTED_COVERAGE,
        min_probability: float | None = ANSWER_PROBABILITY,
        semantic: bool = True,
        standout: bool | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.min_coverage = min_coverage
        self.min_weighted_coverage = min_weighted_coverage
        # The learned rule needs the knowledge base's word rarities; None: the coverage rule.
        self.min_probability = min_probability
        self._weights: tuple[int, Weight] | None = None  # (id of the frequencies, weight)
        # Paraphrases: the question against windows of the passages (local embedder only).
        self._matcher = PassageMatcher.for_knowledge(knowledge) if semantic else None
        # The standout signal costs a second, vector-only search: only for a model that weighs
        # it, or when asked (bench/eval/fit_refusal.py records every signal for refits).
        self.standout = semantic_model_uses("standout") if standout is None else standout
        # (question, id of the word frequencies) -> standout: a new table version rebuilds the
        # frequencies, so an ingest invalidates every entry.
        self._standouts = Lru(CACHED_STANDOUTS)

    def _weight(self) -> tuple[int, Weight] | None:
        """(id of the frequencies, word weights) from the knowledge base's document
        frequencies (rebuilt when they change, e.g. after an ingest)."""
        frequencies = self.knowledge.document_frequencies()
        if frequencies is None:
            return None
        key = id(frequencies[0])
        if self._weights is None or self._weights[0] != key:
            self._weights = (key, idf_weight(*frequencies))
        return self._weights

    async def decide(self, question: str, hits: Sequence[Any]) -> Decision:
        weights = await asyncio.to_thread(self._weight)
        if weights is None:  # no word frequencies (empty or huge knowledge base)
            return decide(question, list(hits), self.min_coverage)
        version, weight = weights
        matches = standout = None
        if self._matcher is not None and hits:
            matches, standout = await offload.run_kb(
                self._semantic, question, hits, (question, version)
            )
        decision = decide(
            question,
            list(hits),
            self.min_weighted_coverage,
            weight,
            min_probability=self.min_probability,
            semantic=matches,
            standout=standout,
        )
        if matches is not None:
            chosen = {hit.chunk_id for hit in decision.chosen}
            decision.windows = {
                hit.chunk_id: quote_window(decision.question_words, hit, match)
                for hit, match in zip(hits, matches, strict=True)
                if hit.chunk_id in chosen
            }
        return decision

    def _semantic(
        self, question: str, hits: Sequence[Any], key: tuple[str, int]
    ) -> tuple[list[Match], float | None]:
        """The question against the retrieved passages' windows and, when the standout signal is
        wanted, how far its nearest page stands out from the pages nearest to it by vector (one
        more, vector-only search, once per question and table version; None when not wanted or
        when that search fails: the decision then leans to refusing, it does not fail)."""
        assert self._matcher is not None
        matches = self._matcher.matches(question, hits)
        if not self.standout:
            return matches, None
        known = self._standouts.get(key)
        if known is not None:
            return matches, known
        try:
            nearest = self.knowledge.search(
                question, k=STANDOUT_SOURCES, mode="vector", per_source=2, decompose=False
            )
        except Exception as exc:  # the answer already has its passages; this is one signal
            log.warning("standout search failed (%s); deciding without it", type(exc).__name__)
            return matches, None
        return matches, self._standouts.put(key, self._matcher.standout(question, nearest))


def quote_window(question_words: set[str], hit: Any, match: Match) -> int:
    """The window to quote: closest in meaning *and* holding the question's words (its
    similarity x the share of the question's words in it), as the passage was chosen. Meaning
    alone picks a window about the same topic ("webhook deliveries ... arrive in order") over
    the one that answers ("retried up to 8 times")."""
    windows = window_texts(hit.text)
    if len(windows) != len(match.scores) or not question_words:
        return match.window
    shares = []
    for text in windows:
        words = content_words(text)
        shares.append(sum(found_in(w, words) for w in question_words) / len(question_words))
    return max(range(len(windows)), key=lambda i: (match.scores[i] * shares[i], match.scores[i]))
