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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.passages import WINDOW_EMBEDDER_PREFIX, heading_of, windows_of

if TYPE_CHECKING:
    import numpy as np

CACHED_PASSAGES = 2048


@dataclass(frozen=True)
class Match:
    """How close one passage comes to a question, in meaning."""

    similarity: float  # the best window's cosine similarity to the question
    window: int  # that window's index in storage.passages.window_texts(passage.text)
    heading: float  # cosine similarity of the passage's title › heading to the question
    scores: tuple[float, ...] = ()  # every window's similarity, in window order


class PassageMatcher:
    """The question against windows and headings of passages, with the local embedder."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._windows = _Lru(CACHED_PASSAGES)  # for passages ingested before windows existed
        self._headings = _Lru(CACHED_PASSAGES)  # a section's heading is shared by its passages

    @classmethod
    def for_knowledge(cls, knowledge: Any) -> PassageMatcher | None:
        """A matcher over the knowledge base's embedder, or None when it has no local one."""
        embedder = getattr(knowledge, "embedder", None)
        name = getattr(embedder, "name", "")
        return cls(embedder) if name.startswith(WINDOW_EMBEDDER_PREFIX) else None

    def similarity(self, question: str, hits: Sequence[Any]) -> float:
        """The question's best window similarity over the passages."""
        return max((match.similarity for match in self.matches(question, hits)), default=0.0)

    def matches(self, question: str, hits: Sequence[Any]) -> list[Match]:
        """One :class:`Match` per passage, in their order. One call to the embedder: the
        question, plus whatever the knowledge base and the caches do not hold yet."""
        chosen = list(hits)
        if not chosen:
            return []
        windows = {_key(h): self._stored_windows(h) for h in chosen}
        headings = {heading_of(h): self._headings.get(heading_of(h)) for h in chosen}
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
        import numpy as np  # here: importing the bot (``supportbot --help``) stays light

        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        for key, start, end in new_windows:
            windows[key] = self._windows.put(key, vectors[start:end])
        for text, row in new_headings.items():
            headings[text] = self._headings.put(text, vectors[row])
        query = vectors[0]
        return [_match(windows[_key(h)], headings.get(heading_of(h)), query) for h in chosen]

    def _stored_windows(self, hit: Any) -> np.ndarray | None:
        """The windows' vectors: from the knowledge base when it embedded them, else cached."""
        precomputed = getattr(hit, "window_vectors", None)
        return precomputed if precomputed is not None else self._windows.get(_key(hit))


class _Lru:
    """A small thread-safe least-recently-used map (searches run on a thread pool)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


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
