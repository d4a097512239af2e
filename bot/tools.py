"""Tools the model may call, their JSON schemas, and their execution for one answer.

A :class:`ToolBox` lives for one answer: it numbers every retrieved passage once (citations
``[1]``, ``[2]`` refer to that numbering across all searches) and records each call for the
answer's ``tool_metadata``. Escalation is only *requested* here; the Responder opens it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bot import metrics, offload
from bot.doc_links import NO_LINKS, DocsLinks, is_url
from bot.errors import KnowledgeBaseError
from bot.grounding import content_words, found_in, passage_words
from bot.learning import LEARNED_FOLDER
from bot.messages import Source
from storage.kb_errors import KnowledgeError
from storage.passages import breadcrumb, snippet_of
from storage.queries import sub_queries

if TYPE_CHECKING:  # the hits' type only; lancedb is imported where the KB is opened
    from storage.knowledge import SearchHit

log = logging.getLogger(__name__)

SEARCH_TOOL = "search_knowledge_base"
ESCALATE_TOOL = "escalate_to_human"
MAX_QUERY_CHARS = 500
PASSAGE_CHARS = 1200  # passage text shown to the model per hit
SNIPPET_CHARS = 240  # passage text kept in Reply.sources
# The best passage of a file is not always the one that answers (another section may): show
# the two best of each source.
PASSAGES_PER_SOURCE = 2
# Pages offered with a refusal ("closest pages in the docs"): on the external evaluation sets'
# dev halves and spent fresh batches, the page that answers a wrongly refused question was among
# the first three of its search 87% of the time (48 of 55), among the first one 71%.
RELATED_PAGES = 3

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": SEARCH_TOOL,
            "description": (
                "Search the team's documentation. Returns numbered passages; cite them as [n]. "
                "Call again with a different query if the passages do not answer the question."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for, in words."}
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": ESCALATE_TOOL,
            "description": (
                "Ask a human from the support team to join the conversation. Use it when the "
                "user asks for a human, or when the docs cannot answer and the user needs help."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why a human is needed."}
                },
                "required": ["reason"],
                "additionalProperties": False,
            },
        },
    },
]


class Searchable(Protocol):
    def search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        per_source: int = 1,
        source_prefix: str | None = None,
    ) -> list[SearchHit]: ...

    def document_frequencies(self) -> tuple[Mapping[str, int], int] | None: ...


@dataclass
class ToolBox:
    """Executes tool calls for one answer and remembers what they did."""

    knowledge: Searchable
    k: int = 5
    per_source: int = PASSAGES_PER_SOURCE
    question: str = ""  # the user's question: its parts are searched with the model's first query
    source_prefix: str | None = None  # the channel's knowledge filter ("billing/")
    links: DocsLinks = field(default_factory=DocsLinks)  # cited files -> published pages
    passages: list[SearchHit] = field(default_factory=list)  # numbered: passages[n-1] is [n]
    calls: list[dict[str, Any]] = field(default_factory=list)
    escalation_reason: str | None = None
    _numbers: dict[str, int] = field(default_factory=dict)
    _parts_searched: bool = False

    async def search(self, query: str) -> list[tuple[int, SearchHit]]:
        """Search, number new passages, and return (citation number, hit) pairs."""
        query = " ".join(query.split())[:MAX_QUERY_CHARS]
        started = time.perf_counter()
        try:
            hits = await offload.run_kb(
                self.knowledge.search,
                query,
                k=self.k,
                per_source=self.per_source,
                source_prefix=self.source_prefix,
            )
        except KnowledgeError as exc:  # an expected fault: one line for the operator
            raise KnowledgeBaseError(str(exc)) from exc
        metrics.RETRIEVAL_LATENCY.observe(time.perf_counter() - started)
        numbered = [(self._number(hit), hit) for hit in hits]
        self.calls.append(
            {
                "name": SEARCH_TOOL,
                "arguments": {"query": query},
                "results": [
                    {"n": n, "chunk_id": h.chunk_id, "source": h.source, "score": h.score}
                    for n, h in numbered
                ],
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
        return numbered

    async def _search_question_parts(
        self, query: str, already: list[tuple[int, SearchHit]]
    ) -> list[tuple[int, SearchHit]]:
        """Once per answer, with the model's first search: each part of a two-part question
        searched on its own, so that the page for the second part is in front of the model
        even when its query only covered the first. Only passages not already shown."""
        if self._parts_searched or not self.question:
            return []
        self._parts_searched = True
        shown = {n for n, _ in already}
        extra: list[tuple[int, SearchHit]] = []
        for part in sub_queries(self.question):
            if part.lower() in query.lower():
                continue
            for n, hit in await self.search(part):
                if n not in shown:
                    shown.add(n)
                    extra.append((n, hit))
        return extra

    def request_escalation(self, reason: str) -> None:
        self.escalation_reason = reason.strip()[:500] or "requested"
        self.calls.append({"name": ESCALATE_TOOL, "arguments": {"reason": self.escalation_reason}})

    async def execute(self, name: str, raw_arguments: str) -> str:
        """Run one model tool call; every failure of the *arguments* is reported to the model."""
        try:
            arguments = json.loads(raw_arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except (json.JSONDecodeError, ValueError) as exc:
            self.calls.append({"name": name, "arguments": raw_arguments, "error": "bad arguments"})
            return f"error: invalid arguments ({exc}); send a JSON object."
        if name == SEARCH_TOOL:
            query = str(arguments.get("query") or "").strip()
            if not query:
                return "error: 'query' is required."
            numbered = await self.search(query)
            found = numbered + await self._search_question_parts(query, numbered)
            return format_passages(found, self.links)
        if name == ESCALATE_TOOL:
            self.request_escalation(str(arguments.get("reason") or ""))
            return (
                "A human from the support team has been asked to join. "
                "Tell the user briefly that someone will reply in this conversation."
            )
        self.calls.append({"name": name, "arguments": arguments, "error": "unknown tool"})
        return f"error: unknown tool {name!r}."

    def _number(self, hit: SearchHit) -> int:
        if hit.chunk_id not in self._numbers:
            self.passages.append(hit)
            self._numbers[hit.chunk_id] = len(self.passages)
        return self._numbers[hit.chunk_id]

    def sources(self, upto: int | None = None) -> tuple[Source, ...]:
        """Reply sources in citation order (``sources[i]`` is ``[i + 1]``)."""
        chosen = self.passages if upto is None else self.passages[:upto]
        return tuple(source_of(hit, self.links) for hit in chosen)

    def retrieved_metadata(self) -> list[dict[str, Any]]:
        return [
            {
                "n": n,
                "chunk_id": h.chunk_id,
                "source": h.source,
                "title": h.title,
                "heading": h.heading,
                "score": round(float(h.score), 6),
            }
            for n, h in enumerate(self.passages, start=1)
        ]


def source_of(hit: SearchHit, links: DocsLinks | None = None) -> Source:
    """The citation of a passage: linked to its published page when ``links`` knows it."""
    snippet = snippet_of(hit.text, SNIPPET_CHARS)
    return Source(
        title=hit.title or hit.source,
        url_or_path=citation_target(hit, links),
        snippet=snippet,
        score=float(hit.score),
        heading=hit.heading,
    )


def citation_target(hit: SearchHit, links: DocsLinks | None) -> str:
    """Where a citation points: the published page of a docs file; a crawled page's URL, at
    its section where the page gave the heading an id; else the stored source (an approved
    learned answer has no page and is cited as the team's answer, by its path)."""
    if hit.source.startswith(f"{LEARNED_FOLDER}/"):
        return hit.source
    return (links or NO_LINKS).url_for(hit.source, hit.heading, hit.facts) or hit.source


def published_url(hit: SearchHit, links: DocsLinks | None) -> str | None:
    """The page a passage is cited by, when it has one (``kb search --json``'s ``url``)."""
    target = citation_target(hit, links)
    return target if is_url(target) else None


def related_sources(
    question: str,
    hits: list[SearchHit],
    limit: int = RELATED_PAGES,
    links: DocsLinks | None = None,
) -> tuple[Source, ...]:
    """The pages nearest a question the docs were not found to answer, for the asker to read
    themselves: the best passage of each of the first ``limit`` pages in retrieval order that
    shares a word with the question (a page found only by meaning for an off-topic question is
    noise, not a lead)."""
    words = content_words(question)
    related: dict[str, SearchHit] = {}
    for hit in hits:
        if len(related) >= limit:
            break
        if hit.source not in related and any(found_in(w, passage_words(hit)) for w in words):
            related[hit.source] = hit
    return tuple(source_of(hit, links) for hit in related.values())


def format_passages(numbered: list[tuple[int, SearchHit]], links: DocsLinks | None = None) -> str:
    """The tool result the model reads: numbered passages with their origin, and the page
    each is published at when SUPPORTBOT_DOCS_URL says (so that a link the model writes in
    its prose is the published page, not a file path; citations stay numbers)."""
    if not numbered:
        return "No passages found for this query."
    blocks = []
    for n, hit in numbered:
        where = breadcrumb(hit.title, hit.heading)
        text = hit.text if len(hit.text) <= PASSAGE_CHARS else hit.text[:PASSAGE_CHARS] + " …"
        url = published_url(hit, links)
        page = f"\nPage: {url}" if url and url != hit.source else ""
        blocks.append(f"[{n}] {where} ({hit.source}){page}\n{text}")
    return "\n\n".join(blocks)
