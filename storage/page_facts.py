"""What a passage's published address needs beyond its file's path and heading, stored with
the passage at ingest (the ``links`` column) and read by bot/doc_links.py.

A generator's page and anchor usually follow from the file's path and the heading's words,
but not always: a page's front matter may name its own URL (``slug:``) or id (``id:``), and a
heading repeated on a page gets a numbered anchor whose number depends on the headings before
it, which a single passage does not hold. Those facts are generator-neutral; which rule uses
them is the publishing side's business (SUPPORTBOT_DOCS_URL_STYLE can change without
re-ingesting). Stdlib only; "" when there is nothing to say, which is the common case.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields

# A heading's own id, as a page names it ("## Install {#setup}", AsciiDoc's "[[setup]]", HTML's
# <h2 id="setup">): the characters every reader here keeps as the heading's anchor, so the
# AsciiDoc and HTML readers only pass on an id that reads back as "{#id}" in Markdown.
HEADING_ID = r"[\w:.-]+"
# Words of a heading as every slug rule compares them: two headings with the same letters
# and digits get the same anchor before numbering (a slightly wider net than any one rule).
_NOT_WORD = re.compile(r"[\W_]+")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def heading_key(heading: str) -> str:
    return _NOT_WORD.sub("", _MARKDOWN_LINK.sub(r"\1", heading).lower())


@dataclass(frozen=True, slots=True)
class PageFacts:
    slug: str = ""  # the page's front-matter ``slug:`` (absolute "/x" or relative "x")
    id: str = ""  # the page's front-matter ``id:``
    # How many headings before this passage's heading on the same page have its words (0: the
    # first or only one), and its place among all the page's repeated headings (1 for the
    # first repeat): Sphinx numbers repeats page-wide (id1, id2...), the others per heading.
    repeat: int = 0
    repeated: int = 0
    # The id the page gave this passage's heading itself ("## Install {#setup}", or an HTML
    # heading's id): every generator links it as written, so no slug rule is needed.
    anchor: str = ""

    def encode(self) -> str:
        kept = {key: value for key, value in asdict(self).items() if value}
        return json.dumps(kept, separators=(",", ":"), sort_keys=True) if kept else ""

    @classmethod
    def decode(cls, raw: str | None) -> PageFacts:
        """Tolerant: anything unreadable is no facts (the plain rules apply)."""
        if not raw:
            return NO_FACTS
        try:
            data = json.loads(raw)
        except ValueError:
            return NO_FACTS
        if not isinstance(data, dict):
            return NO_FACTS
        known = {f.name: f.type for f in fields(cls)}
        kept = {
            key: value
            for key, value in data.items()
            if key in known and isinstance(value, int if known[key] == "int" else str)
        }
        return cls(**kept)


NO_FACTS = PageFacts()
