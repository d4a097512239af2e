"""The operator's report: what was asked, how it went, and what the docs are missing.

Everything comes from what the Responder already stores: each answer's ``tool_metadata``
(``kind``, ``first_token_ms``, ``sources``, ``cited``, ``question``), the event memories of
errors and silent auto-answer posts, and the feedback table. Unanswered questions are grouped
into coverage gaps with the configured embedder, or by shared content words when there is none.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.grounding import content_words
from storage import activity
from storage.db import Database

USER, ASSISTANT, EVENT = "user", "assistant", "event"
OUTCOME_KINDS = ("answer", "no_answer", "unanswered", "escalated", "error")
UNANSWERED_KINDS = ("no_answer", "unanswered")
EMBEDDING_SIMILARITY = 0.6  # cosine; all-MiniLM: paraphrases ~0.65-0.75, other topics < 0.3
WORD_SIMILARITY = 0.5  # Jaccard of content words, when no embedder is configured
TOP_GAPS = 10
TOP_DOCUMENTS = 10
EXAMPLES_PER_GAP = 5
# A gap's nearest pages: the ones its refusals most often offered as closest (the page to extend,
# or to link a new one from).
PAGES_PER_GAP = 3
MAX_CLUSTERED = 1000  # the most recent unanswered questions are grouped; older ones are counted

Embed = Callable[[list[str]], Any]  # texts -> array of vectors (an Embedder's .embed)


def parse_since(text: str | None) -> timedelta | None:
    """``7d``, ``12h``, ``2w``, ``30m``; ``all`` (or None) means no limit."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if unit not in units or not value.isdigit() or int(value) <= 0:
        raise ValueError("--since takes a duration such as 30m, 12h, 7d or 2w (or 'all')")
    return timedelta(**{units[unit]: int(value)})


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Gap:
    label: str
    count: int
    questions: list[str]
    # The pages its refusals offered as closest, most often first (none recorded: empty).
    pages: list[str] = field(default_factory=list)


def cluster_questions(
    questions: list[str],
    embed: Embed | None = None,
    related: Sequence[Sequence[str]] | None = None,
) -> list[Gap]:
    """Greedy single pass: a question joins the first group whose first question is similar
    enough, else starts a group. Groups are returned largest first. ``related[i]``: the pages
    offered with question i's refusal (:attr:`Gap.pages` counts them)."""
    if not questions:
        return []
    groups: list[list[int]] = []
    if embed is not None:
        vectors = [_normalise(v) for v in embed(questions)]

        def similar(i: int, j: int) -> bool:
            return sum(a * b for a, b in zip(vectors[i], vectors[j], strict=True)) >= (
                EMBEDDING_SIMILARITY
            )
    else:
        words = [content_words(q) for q in questions]

        def similar(i: int, j: int) -> bool:
            union = words[i] | words[j]
            return bool(union) and len(words[i] & words[j]) / len(union) >= WORD_SIMILARITY

    for i in range(len(questions)):
        for group in groups:
            if similar(group[0], i):
                group.append(i)
                break
        else:
            groups.append([i])
    gaps = []
    for group in groups:
        texts = [questions[i] for i in group]
        label = Counter(t.strip().lower() for t in texts).most_common(1)[0][0]
        label = next(t for t in texts if t.strip().lower() == label)
        pages = Counter(page for i in group for page in (related[i] if related else ()))
        ranked = sorted(pages, key=lambda page: (-pages[page], page))[:PAGES_PER_GAP]
        gaps.append(Gap(label, len(texts), list(dict.fromkeys(texts))[:EXAMPLES_PER_GAP], ranked))
    return sorted(gaps, key=lambda g: (-g.count, g.label))


def _normalise(vector: Any) -> list[float]:
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values)) or 1.0
    return [x / norm for x in values]


def cited_sources(metadata: dict[str, Any]) -> list[str]:
    """The documents an answer cited: ``cited`` numbers looked up in its ``sources``."""
    numbers = {int(n) for n in metadata.get("cited") or [] if isinstance(n, int | float)}
    seen: dict[str, None] = {}
    for source in metadata.get("sources") or []:
        if isinstance(source, dict) and source.get("n") in numbers and source.get("source"):
            seen[str(source["source"])] = None
    return list(seen)


async def build_report(
    db: Database,
    *,
    since: timedelta | None = None,
    kb_sources: Sequence[str] | None = None,
    embed: Embed | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report as plain JSON-ready data (``supportbot report --json`` prints exactly this)."""
    now = now or datetime.now(UTC)
    start = now - since if since is not None else None
    turns = await activity.turns_since(db, since=start, roles=(USER, ASSISTANT, EVENT))
    votes = await activity.feedback_counts(db, since=start)

    questions = sum(1 for t in turns if t.role == USER)
    outcomes = Counter({kind: 0 for kind in OUTCOME_KINDS})
    first_tokens: list[float] = []
    unanswered: list[str] = []
    nearest: list[list[str]] = []  # each unanswered question's closest pages (Reply.related)
    citations: Counter[str] = Counter()
    for turn in turns:
        meta = turn.tool_metadata or {}
        kind = meta.get("kind")
        if turn.role == USER or kind not in OUTCOME_KINDS:
            continue
        outcomes[kind] += 1
        if isinstance(meta.get("first_token_ms"), int | float):
            first_tokens.append(float(meta["first_token_ms"]))
        if kind in UNANSWERED_KINDS and meta.get("question"):
            unanswered.append(str(meta["question"]))
            nearest.append([str(page) for page in meta.get("related") or [] if page])
        if kind == "answer":
            citations.update(cited_sources(meta))

    gaps = cluster_questions(unanswered[-MAX_CLUSTERED:], embed, nearest[-MAX_CLUSTERED:])
    ranked = sorted(citations.items(), key=lambda kv: (-kv[1], kv[0]))
    documents: dict[str, Any] = {
        "most_cited": [{"source": s, "citations": n} for s, n in ranked[:TOP_DOCUMENTS]],
        "least_cited": [
            {"source": s, "citations": n}
            for s, n in sorted(citations.items(), key=lambda kv: (kv[1], kv[0]))[:TOP_DOCUMENTS]
        ],
        "never_cited": None,
    }
    if kb_sources is not None:
        documents["never_cited"] = sorted(set(kb_sources) - set(citations))
        documents["in_knowledge_base"] = len(set(kb_sources))
    median, p95 = percentile(first_tokens, 50), percentile(first_tokens, 95)
    return {
        "window": {
            "since": start.isoformat() if start else None,
            "until": now.isoformat(),
        },
        "questions": questions,
        "answered": outcomes["answer"],
        "refused": outcomes["no_answer"] + outcomes["unanswered"],
        "unanswered_auto_posts": outcomes["unanswered"],
        "escalated": outcomes["escalated"],
        "errors": outcomes["error"],
        "feedback": {"up": votes[1], "down": votes[-1]},
        "time_to_first_token_ms": {
            "median": median,
            "p95": p95,
            "samples": len(first_tokens),
        },
        "coverage_gaps": [
            {"label": g.label, "count": g.count, "questions": g.questions, "nearest_pages": g.pages}
            for g in gaps[:TOP_GAPS]
        ],
        "gap_clustering": "embedder" if embed is not None else "shared words",
        "documents": documents,
    }
