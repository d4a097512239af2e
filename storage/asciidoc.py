"""AsciiDoc (``.adoc``) pages as the Markdown the chunker reads.

Many teams publish with Asciidoctor or Antora (Spring, Quarkus, Debezium, Neo4j...). Rather
than a second section splitter, a page is rewritten line by line into Markdown: section titles
(``==`` .. ``======``) become ATX headings, listing and literal blocks become fenced code (so a
code block is kept whole like any other), and what carries no words for a reader is dropped:
comments, attribute entries, block attribute lines, anchors, ``include::`` and conditional
directives, and the delimiters of sidebars, examples, quotes and tables (their text stays).
Inline macros keep their text (``link:url[text]`` -> ``text``). Pure string work, no parser
dependency: a page Asciidoctor would render differently still yields its words.
"""

from __future__ import annotations

import re

from storage.page_facts import HEADING_ID

_TITLE = re.compile(r"^(={1,6})\s+(\S.*?)\s*$")
_ATTRIBUTE_ENTRY = re.compile(r"^:!?([\w-]+)!?:\s*(.*)$")
# Block attribute lines: [source,java], [NOTE], [[anchor]], [#id].
_BLOCK_ATTRIBUTES = re.compile(r"^\[\[?[^\[\]]*\]\]?\s*$")
# An id given to the block or section below: [[install]], [[install,Install]], [#install.role].
_BLOCK_ID = re.compile(rf"^\[(?:\[({HEADING_ID})(?:,[^\]]*)?\]|#({HEADING_ID})[^\]]*)\]$")
_SOURCE_LANGUAGE = re.compile(r"^\[(?:source)?,\s*([\w+#.-]+)")
_BLOCK_TITLE = re.compile(r"^\.([^\s.].*)$")  # ".A block title" above a block
_DIRECTIVE = re.compile(r"^(?:include|ifdef|ifndef|ifeval|endif|toc|image)::")
_CODE_DELIMITER = re.compile(r"^(-{4,}|\.{4,}|```)(.*)$")  # listing, literal, fenced (```lang)
# Sidebar, example, quote, passthrough, open block, tables, a list continuation ("+").
_DROPPED_DELIMITER = re.compile(r"^(?:\*{4,}|={4,}|_{4,}|\+{4,}|-{2}|\|={3,}|,={3,}|:={3,}|\+)$")
_COMMENT_BLOCK = re.compile(r"^/{4,}$")
# Inline macros and cross references, replaced by the text a reader sees.
_LINK_MACRO = re.compile(r"\b(?:link|xref|mailto):([^\s\[]+)\[([^\]]*)\]")
_URL_WITH_TEXT = re.compile(r"\b(https?://[^\s\[]+)\[([^\]]*)\]")
_CROSS_REFERENCE = re.compile(r"<<([^,>]+)(?:,\s*([^>]+))?>>")
_PASSTHROUGH = re.compile(r"\b(?:pass|kbd|btn|menu):\[([^\]]*)\]")
_ATTRIBUTE_REFERENCE = re.compile(r"\{([\w-]+)\}")


def to_markdown(text: str) -> str:
    """The page as Markdown: ``# Title``, an optional description paragraph, then the body."""
    lines = text.splitlines()
    out: list[str] = []
    attributes: dict[str, str] = {}
    index = _header(lines, out, attributes)
    code_delimiter: str | None = None
    language = ""
    block_id = ""  # from an anchor line, for the section title right below it
    in_comment = False
    while index < len(lines):
        line = lines[index].rstrip()
        index += 1
        stripped = line.strip()
        if in_comment:
            in_comment = not _COMMENT_BLOCK.match(stripped)
            continue
        if code_delimiter is not None:
            if stripped == code_delimiter:
                out.append("```")
                code_delimiter = None
            else:
                out.append(line)
            continue
        if _COMMENT_BLOCK.match(stripped):
            in_comment = True
        elif (fence := _CODE_DELIMITER.match(stripped)) is not None and (
            fence.group(1) == "```" or not fence.group(2)
        ):
            code_delimiter = fence.group(1)
            out.append(f"```{language or fence.group(2).strip()}")
            language = ""
        elif stripped.startswith("//"):
            continue
        elif _BLOCK_ATTRIBUTES.match(stripped):
            source = _SOURCE_LANGUAGE.match(stripped)
            language = source.group(1) if source else ""
            block_id = _block_id(stripped) or block_id
            continue
        elif (match := _ATTRIBUTE_ENTRY.match(stripped)) is not None:
            attributes[match.group(1).lower()] = match.group(2)
        elif _DIRECTIVE.match(stripped) or _DROPPED_DELIMITER.match(stripped):
            continue
        elif (match := _TITLE.match(stripped)) is not None:
            level, named = len(match.group(1)), f" {{#{block_id}}}" if block_id else ""
            out.append(f"{'#' * level} {_inline(match.group(2), attributes)}{named}")
        elif (match := _BLOCK_TITLE.match(stripped)) is not None:
            out.append(_inline(match.group(1), attributes))
        else:
            out.append(_inline(line, attributes))
        block_id = ""  # an anchor line names only what directly follows it
    if code_delimiter is not None:
        out.append("```")  # an unclosed block still ends as a block
    return "\n".join(out) + "\n"


def _block_id(line: str) -> str:
    """The id an anchor line gives the block or section below ("" if none). In the shorthand
    "[#id.role%option]" a "." starts a role, so the id ends there."""
    named = _BLOCK_ID.match(line)
    if named is None:
        return ""
    return named.group(1) or named.group(2).partition(".")[0]


def _header(lines: list[str], out: list[str], attributes: dict[str, str]) -> int:
    """The document header: ``= Title``, then the author and revision lines and attribute
    entries up to the first blank line. Writes the title and ``:description:`` (the author's
    summary of the page, which opens the first section) and returns where the body starts."""
    index = 0
    while index < len(lines) and (not lines[index].strip() or lines[index].startswith("//")):
        index += 1
    if index >= len(lines):
        return index
    match = _TITLE.match(lines[index].strip())
    if match is None or len(match.group(1)) != 1:
        return index
    out.append(f"# {match.group(2)}")
    index += 1
    while index < len(lines) and lines[index].strip():
        entry = _ATTRIBUTE_ENTRY.match(lines[index].strip())
        if entry is not None:
            attributes[entry.group(1).lower()] = entry.group(2)
        index += 1  # author and revision lines carry nothing to search for
    if attributes.get("description"):
        out.extend(["", attributes["description"]])
    return index


def _inline(line: str, attributes: dict[str, str]) -> str:
    line = _LINK_MACRO.sub(lambda m: m.group(2) or m.group(1), line)
    line = _URL_WITH_TEXT.sub(lambda m: m.group(2) or m.group(1), line)
    line = _CROSS_REFERENCE.sub(lambda m: m.group(2) or m.group(1).replace("_", " "), line)
    line = _PASSTHROUGH.sub(r"\1", line)
    # Attribute references resolve to the page's own attributes; unknown ones stay as written.
    return _ATTRIBUTE_REFERENCE.sub(lambda m: attributes.get(m.group(1).lower(), m.group(0)), line)
