"""Does a passage say what the question asks, in other words? A semantic signal for refusals.

The lexical signals of :mod:`bot.grounding` cannot tell a paraphrase ("kick off a long job" for
"run a background task") from a question the docs do not answer: both miss the question's
words. The local embedder can: the question is compared with short windows of the best
passages (two sentences under the passage's heading, :func:`storage.passages.windows_of`), and
the best cosine similarity becomes one more signal. A whole passage is too coarse for this (an
unanswerable question is usually *about* the page's topic); a window is about as long as an
answer.

The knowledge base embeds every passage's windows at ingest, so a question costs one embedding
here. Passages of a knowledge base built before that are embedded on first use and cached.
Only the local all-MiniLM-L6-v2 embedder is used: the learned rule's weights are fitted on its
similarity scale (another model's cosines are not comparable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.lru import Lru
from storage.passages import WINDOW_EMBEDDER_PREFIX, heading_of, windows_of

if TYPE_CHECKING:
    import numpy as np

CACHED_PASSAGES = 2048
# Pages compared for PassageMatcher.standout: the nearest ones by passage vector (the nearest and
# 20 others). Chosen on the external dev halves: 11, 21 and 31 separated answerable from
# unanswerable questions about equally well (AUC 0.890, 0.913, 0.912), 21 as well as comparing
# against every window of the corpus (0.916).
STANDOUT_SOURCES = 21


@dataclass(frozen=True)
class Match:
    """How close one passage comes to a question, in meaning."""

    similarity: float  # the best window's cosine similarity to the question
    window: int  # that window's index in storage.passages.window_texts(passage.text)
    heading: float  # cosine similarity of the passage's title › heading to the question
    scores: tuple[float, ...] = ()  # every window's similarity, in window order


class PassageMatcher:
    """The question against windows and headings of passages, with the local embedder."""

    def __init__(
        self, embedder: Any, query_vectors: Callable[[list[str]], np.ndarray] | None = None
    ) -> None:
        self.embedder = embedder
        # The knowledge base's cached query embeddings: retrieval embedded the question already.
        self._query_vectors = query_vectors
        self._windows = Lru(CACHED_PASSAGES)  # for passages ingested before windows existed
        self._headings = Lru(CACHED_PASSAGES)  # a section's heading is shared by its passages

    @classmethod
    def for_knowledge(cls, knowledge: Any) -> PassageMatcher | None:
        """A matcher over the knowledge base's embedder, or None when it has no local one."""
        embedder = getattr(knowledge, "embedder", None)
        name = getattr(embedder, "name", "")
        if not name.startswith(WINDOW_EMBEDDER_PREFIX):
            return None
        return cls(embedder, getattr(knowledge, "query_vectors", None))

    def similarity(self, question: str, hits: Sequence[Any]) -> float:
        """The question's best window similarity over the passages."""
        return max((match.similarity for match in self.matches(question, hits)), default=0.0)

    def standout(self, question: str, hits: Sequence[Any]) -> float:
        """How much closer in meaning the question's nearest page is than the other pages of
        ``hits`` (the passages nearest to it by vector): the best window similarity of the best
        page minus the mean of the other pages' best. 0.0 with fewer than two pages."""
        best: dict[str, float] = {}
        matches = self.matches(question, hits, with_headings=False)
        for hit, match in zip(hits, matches, strict=True):
            best[hit.source] = max(best.get(hit.source, -1.0), match.similarity)
        ranked = sorted(best.values(), reverse=True)
        if len(ranked) < 2:
            return 0.0
        return ranked[0] - sum(ranked[1:]) / (len(ranked) - 1)

    def matches(
        self, question: str, hits: Sequence[Any], *, with_headings: bool = True
    ) -> list[Match]:
        """One :class:`Match` per passage, in their order (heading similarity 0.0 without
        ``with_headings``). One call to the embedder: the question, plus whatever the knowledge
        base and the caches do not hold yet."""
        chosen = list(hits)
        if not chosen:
            return []
        windows = {_key(h): self._stored_windows(h) for h in chosen}
        headings = (
            {heading_of(h): self._headings.get(heading_of(h)) for h in chosen}
            if with_headings
            else {}
        )
        texts = [question]
        new_windows: list[tuple[tuple[str, int], int, int]] = []
        for key, hit in {_key(h): h for h in chosen if windows[_key(h)] is None}.items():
            parts = windows_of(hit)
            new_windows.append((key, len(texts), len(texts) + len(parts)))
            texts += parts
        new_headings = {text: len(texts) + i for i, text in enumerate(
            t for t, vector in headings.items() if vector is None and t
        )}  # fmt: skip
        texts += list(new_headings)
        vectors = self._embed(texts)
        for key, start, end in new_windows:
            windows[key] = self._windows.put(key, vectors[start:end])
        for text, row in new_headings.items():
            headings[text] = self._headings.put(text, vectors[row])
        query = vectors[0]
        return [_match(windows[_key(h)], headings.get(heading_of(h)), query) for h in chosen]

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``texts`` (the question first) as vectors; the question from the knowledge base's
        query cache when it has one (retrieval embedded it a moment ago)."""
        import numpy as np  # here: importing the bot (``supportbot --help``) stays light

        if self._query_vectors is None:
            return np.asarray(self.embedder.embed(texts), dtype=np.float32)
        question = self._query_vectors(texts[:1])
        if len(texts) == 1:
            return question
        rest = np.asarray(self.embedder.embed(texts[1:]), dtype=np.float32)
        return np.vstack([question, rest])

    def _stored_windows(self, hit: Any) -> np.ndarray | None:
        """The windows' vectors: from the knowledge base when it embedded them, else cached."""
        precomputed = getattr(hit, "window_vectors", None)
        return precomputed if precomputed is not None else self._windows.get(_key(hit))


def _match(windows: np.ndarray | None, heading: np.ndarray | None, query: np.ndarray) -> Match:
    heading_similarity = float(heading @ query) if heading is not None else 0.0
    if windows is None or not len(windows):
        return Match(0.0, 0, heading_similarity)
    scores = windows @ query
    best = int(scores.argmax())
    return Match(float(scores[best]), best, heading_similarity, tuple(scores.tolist()))


def _key(hit: Any) -> tuple[str, int]:
    """A passage re-ingested with new text keeps its id: the text's hash tells them apart."""
    return hit.chunk_id, hash(hit.text)
