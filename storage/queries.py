"""Query decomposition: a question that asks two things is also searched as its two parts.

"How do I take a snapshot and then restore it into a new cluster?" needs two pages; one search
for the whole question tends to find the page that matches most of its words and rank the other
low. Searching each part as well, and fusing the rankings, brings both pages up. Only clear
joints split a question (a conjunction followed by a question word or "then"/"also", or a
second sentence), so "blueprints and application factories" stays one query.
"""

from __future__ import annotations

import re

_QUESTION_WORDS = (
    "how|what|what's|which|where|when|why|who|can|could|do|does|did|is|are|should|would|will|"
    "then|also|afterwards|later"
)
_JOINT = re.compile(
    rf"(?:[,;]\s*|\s+)(?:and|but|or)\s+(?=(?:{_QUESTION_WORDS})\b)|(?<=[?;])\s+|\s+as well as\s+",
    re.IGNORECASE,
)
_LEAD = re.compile(r"^(?:then|also|afterwards|later)\s+", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-./]*")
_FILLER_WORDS = (
    "a an the and or but to of in on for with by at from is are be do does did how what which "
    "when where why who can could should would will then also it its i my me we our you your "
    "this that these those there here as afterwards later so"
)
_FILLER = frozenset(_FILLER_WORDS.split())
MIN_PART_WORDS = 2
MAX_PARTS = 3


def sub_queries(question: str) -> list[str]:
    """The parts of a two-part question ([] when it asks one thing)."""
    parts = [_LEAD.sub("", p.strip(" ,;?.!")) for p in _JOINT.split(" ".join(question.split()))]
    parts = [p for p in parts if _content_words(p) >= MIN_PART_WORDS]
    if len(parts) < 2:
        return []
    return parts[:MAX_PARTS]


def _content_words(text: str) -> int:
    return sum(1 for w in _WORD.findall(text.lower()) if w not in _FILLER and len(w) > 1)
