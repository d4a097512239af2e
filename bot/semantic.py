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

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from storage.passages import WINDOW_EMBEDDER_PREFIX, windows_of

if TYPE_CHECKING:
    import numpy as np

CACHED_PASSAGES = 2048


class PassageMatcher:
    """Best cosine similarity between a question and windows of the top passages."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # searches run on a small thread pool

    @classmethod
    def for_knowledge(cls, knowledge: Any) -> PassageMatcher | None:
        """A matcher over the knowledge base's embedder, or None when it has no local one."""
        embedder = getattr(knowledge, "embedder", None)
        name = getattr(embedder, "name", "")
        return cls(embedder) if name.startswith(WINDOW_EMBEDDER_PREFIX) else None

    def similarity(self, question: str, hits: Sequence[Any]) -> float:
        return max(self.similarities(question, hits), default=0.0)

    def similarities(self, question: str, hits: Sequence[Any]) -> list[float]:
        """The question's best window similarity for each passage, in their order."""
        return [similarity for similarity, _ in self.matches(question, hits)]

    def matches(self, question: str, hits: Sequence[Any]) -> list[tuple[float, int]]:
        """For each passage, in their order: the question's best window similarity and that
        window's index (in :func:`storage.passages.window_texts` of the passage's text)."""
        chosen = list(hits)
        if not chosen:
            return []
        windows = {_key(h): self._stored(h) for h in chosen}
        missing = [h for h in chosen if windows[_key(h)] is None]
        texts = [question]
        spans: list[tuple[Any, int, int]] = []
        for hit in missing:
            parts = windows_of(hit)
            spans.append((hit, len(texts), len(texts) + len(parts)))
            texts += parts
        import numpy as np  # here: importing the bot (``supportbot --help``) stays light

        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        for hit, start, end in spans:
            windows[_key(hit)] = self._remember(_key(hit), vectors[start:end])
        query = vectors[0]
        return [_best(windows[_key(h)], query) for h in chosen]

    def _stored(self, hit: Any) -> np.ndarray | None:
        """The windows' vectors: from the knowledge base when it embedded them, else cached."""
        precomputed = getattr(hit, "window_vectors", None)
        if precomputed is not None:
            return precomputed
        with self._lock:
            vectors = self._cache.get(_key(hit))
            if vectors is not None:
                self._cache.move_to_end(_key(hit))
            return vectors

    def _remember(self, key: tuple[str, int], vectors: np.ndarray) -> np.ndarray:
        with self._lock:
            self._cache[key] = vectors
            while len(self._cache) > CACHED_PASSAGES:
                self._cache.popitem(last=False)
        return vectors


def _best(windows: np.ndarray | None, query: np.ndarray) -> tuple[float, int]:
    if windows is None or not len(windows):
        return 0.0, 0
    scores = windows @ query
    best = int(scores.argmax())
    return float(scores[best]), best


def _key(hit: Any) -> tuple[str, int]:
    """A passage re-ingested with new text keeps its id: the text's hash tells them apart."""
    return hit.chunk_id, hash(hit.text)
