"""Typo tolerance for full-text search: correct query words the index has never seen.

BM25 gives nothing for a misspelt word ("gatway", "defragmantation"), and LanceDB's own fuzzy
match (``MatchQuery(fuzziness=...)``) expands *every* query term, including short and common
ones, which floods the ranking with noise. Here only words absent from the indexed text are
corrected, to the most frequent indexed word within Damerau-Levenshtein distance 1 (2 for
longer words), found through a symmetric-delete index (SymSpell's idea): a word and its typo
share a one-character deletion.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

WORD = re.compile(r"[a-z][a-z0-9]*")
MIN_LENGTH = 4  # shorter words have too many neighbours to guess from
LONG_WORD = 8  # from this length a typo may be two edits away
MAX_LENGTH = 24


class Vocabulary:
    """Document frequencies of the indexed words and a delete index over them."""

    def __init__(self, frequencies: Counter[str], documents: int = 0) -> None:
        self.frequencies = frequencies
        self.documents = documents
        self._deletes: dict[str, list[str]] = {}
        for word in frequencies:
            if MIN_LENGTH <= len(word) <= MAX_LENGTH:
                for variant in _deletions(word):
                    self._deletes.setdefault(variant, []).append(word)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        frequencies: Counter[str] = Counter()
        documents = 0
        for text in texts:
            documents += 1
            frequencies.update(set(WORD.findall(text.lower())))
        return cls(frequencies, documents)

    def __contains__(self, word: str) -> bool:
        return word in self.frequencies

    def __len__(self) -> int:
        return len(self.frequencies)

    def correct(self, word: str) -> str | None:
        """The indexed word this unknown word most likely misspells, or None."""
        if word in self.frequencies or not (MIN_LENGTH <= len(word) <= MAX_LENGTH):
            return None
        if not word.isalpha():
            return None  # codes and versions ("v3", "x509") are not typos
        limit = 2 if len(word) >= LONG_WORD else 1
        candidates: set[str] = set()
        for variant in _deletions(word):
            candidates.update(self._deletes.get(variant, ()))
        scored = [
            (distance, -self.frequencies[c], c)
            for c in candidates
            if (distance := damerau_levenshtein(word, c, limit)) <= limit
        ]
        return min(scored)[2] if scored else None

    def corrections(self, query: str) -> dict[str, str]:
        """Unknown query words mapped to their corrections."""
        found = {}
        for word in dict.fromkeys(WORD.findall(query.lower())):
            fixed = self.correct(word)
            if fixed is not None:
                found[word] = fixed
        return found


def _deletions(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


def damerau_levenshtein(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance, or ``limit + 1`` as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[len(b)]
