"""Passages as sentences and short windows: what answer checks compare a question with.

Shared by the knowledge base, which embeds each passage's windows once at ingest (so a question
is compared with them at the cost of one small read), and by the answerer's checks
(bot.grounding, bot.semantic), which must split a passage exactly as the ingest did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Not after "e.g." / "i.e." / "cf." / "vs.": "pass encoded bytes, e.g. `content=...`" is one
# sentence (it was quoted as "`content=<str>.encode("latin1")`." on its own).
SENTENCE_SPLIT = re.compile(
    r"(?<=[.!?])(?<![eE]\.g\.)(?<![iI]\.e\.)(?<!\bcf\.)(?<!\bvs\.)\s+(?=[A-Z0-9`\"'(*])"
)
LIST_ITEM = re.compile(r"^\d+[.)]\s")
WINDOW_SENTENCES = 2  # about as long as an answer
MAX_WINDOWS = 8  # per passage; passages are <= ~800 characters, so this rarely binds
HEADING_JOIN = " › "
# The chunker stores a passage's heading path joined with this ("Install > Linux").
HEADING_SEPARATOR = " > "
# What people are shown between a page's title and each of its headings, on every platform.
BREADCRUMB_SEPARATOR = " › "
# Windows are embedded at ingest only for the local model: the answerer's semantic check is
# fitted on its similarity scale (bot.semantic), and with a paid embedding API they would double
# the cost of every ingest.
WINDOW_EMBEDDER_PREFIX = "local:"


@dataclass(frozen=True)
class CodeBlock:
    language: str  # the fence's info string ("sh"), may be empty
    body: str


def sentences_of(text: str) -> list[str]:
    """Sentences of a Markdown-ish passage: wrapped lines rejoined, list items and table rows
    kept apart, code fences dropped."""
    return [sentence for sentence, _ in sentences_with_code(text)]


def sentences_with_code(text: str) -> list[tuple[str, CodeBlock | None]]:
    """:func:`sentences_of`, each with the fenced code block that directly follows it (no prose
    between): "A snapshot is taken with `etcdctl`:" is followed by the command a quote of it
    needs."""
    return [(sentence, code) for sentence, code, _ in _sentences(text)]


def own_lines(text: str) -> frozenset[int]:
    """Which of the text's sentences (:func:`sentences_of` indices) a quote starts on a line of
    its own: each list item's first, and the first after a list. Run on, "Modes are:" +
    "linear" + "exponential" + "Pick one." reads "Modes are: linear exponential Pick one."."""
    return frozenset(i for i, (_, _, own) in enumerate(_sentences(text)) if own)


def _sentences(text: str) -> list[tuple[str, CodeBlock | None, bool]]:
    """Each sentence, the code block that follows it, and whether it starts a line of its own
    (:func:`own_lines`)."""
    units: list[tuple[str, CodeBlock | None, bool]] = []
    current: list[str] = []
    item = False  # is ``current`` a list item
    code: list[str] | None = None  # the lines of the fence being read
    language = ""

    def flush() -> None:
        nonlocal item
        if current:
            units.append((" ".join(current), None, item))
            current.clear()
        item = False

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```"):
            flush()
            if code is None:
                code, language = [], line[3:].strip()
            else:
                if units and units[-1][1] is None and code:
                    units[-1] = (units[-1][0], CodeBlock(language, "\n".join(code)), units[-1][2])
                code = None
            continue
        if code is not None:
            code.append(raw.rstrip())
            continue
        if line.startswith(("- ", "* ")) or LIST_ITEM.match(line):
            # A list item, with the lines it is wrapped onto: "`None` to always" + "allow."
            flush()
            current.append(line[2:].strip() if line[0] in "-*" else line)
            item = True
            continue
        if not line or line.startswith(("#", "|", "> ")):
            flush()
            if line and not set(line) <= set("|-: "):  # table separators carry nothing
                units.append((line.strip("#>*-| ").replace(" | ", ", "), None, False))
            continue
        current.append(line)
    flush()
    sentences: list[tuple[str, CodeBlock | None, bool]] = []
    after_list = False
    for unit, after, listed in units:
        parts = [s.strip() for s in SENTENCE_SPLIT.split(unit) if len(s.strip()) > 2]
        # The code follows the unit's last sentence; an item, or what follows a list, starts
        # a line with its first.
        last, own = len(parts) - 1, listed or after_list
        sentences += [(s, after if i == last else None, own and not i) for i, s in enumerate(parts)]
        after_list = listed
    return sentences


def window_texts(text: str) -> list[str]:
    """The text's overlapping windows of WINDOW_SENTENCES sentences (at most MAX_WINDOWS)."""
    sentences = sentences_of(text) or [" ".join(text.split())]
    count = max(1, len(sentences) - WINDOW_SENTENCES + 1)
    return [" ".join(sentences[i : i + WINDOW_SENTENCES]) for i in range(count)][:MAX_WINDOWS]


def heading_of(passage: Any) -> str:
    """Where a passage sits, as its windows were embedded at ingest: "Title › Heading" (either
    may be empty). Keep it as it is, or stored windows stop matching; users see `breadcrumb`."""
    return HEADING_JOIN.join(p for p in (passage.title, passage.heading) if p)


def breadcrumb(title: str, heading: str) -> str:
    """Where a passage sits, as users are shown it: "Title › Install › Linux", one separator
    throughout (the stored heading path uses another); a first heading that repeats the title
    is shown once."""
    parts = [p.strip() for p in heading.split(HEADING_SEPARATOR)] if heading else []
    if parts and title and parts[0] == title.strip():
        parts = parts[1:]
    return BREADCRUMB_SEPARATOR.join(p for p in (title.strip(), *parts) if p)


def windows_of(passage: Any) -> list[str]:
    """The passage (anything with ``title``, ``heading`` and ``text``) as its windows, each
    under its title and heading, which often carry what the sentences leave implicit."""
    context = heading_of(passage)
    return [f"{context}: {w}" if context else w for w in window_texts(passage.text)]


_FENCE_LINE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)


def snippet_of(text: str, limit: int) -> str:
    """A passage as one line of at most ``limit`` characters, cut at a word: its code fences'
    marker lines are left out (on one line "```python client = ..." is no code block, and a
    cut one left Discord's embed and the terminal with an unclosed fence)."""
    flat = " ".join(_FENCE_LINE.sub("", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"
