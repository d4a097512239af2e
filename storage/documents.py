"""Read documentation files and split them by headings into ~800-character chunks.

Pure functions over files and strings: no database, no embedder. Problems with one file become a
:class:`SkippedFile` (or a warning on the parsed document) so that one bad file never stops a run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage import asciidoc, myst, notebooks
from storage.page_facts import HEADING_ID, PageFacts, heading_key
from storage.passages import HEADING_SEPARATOR
from storage.secrets import RedactionReport, drop_secret_lines, redact
from storage.titles import title_from_name

log = logging.getLogger(__name__)

CHUNK_CHARS = 800
# Bumped whenever chunking changes what is stored: a knowledge base built by another version is
# detected (storage.knowledge) and rebuilt on the next ingest instead of mixing two chunkings.
# ("3" was a chunking released and reverted on 2026-12-04: never reuse a number.)
CHUNKER_VERSION = "4"
MIN_SECTION_CHARS = (
    80  # a smaller section (a bare heading, a one-liner) joins the passage before it
)
OVERLAP_CHARS = 200  # the longest sentence repeated at the start of a continuation passage
CODE_BLOCK_CHARS = 1600  # a code block up to this size is never cut
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
RST_SUFFIXES = {".rst", ".rest"}
TEXT_SUFFIXES = {".txt", ".text"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
ASCIIDOC_SUFFIXES = {".adoc", ".asciidoc"}  # not ".asc": also armoured PGP signatures
NOTEBOOK_SUFFIXES = {".ipynb"}
SUPPORTED_SUFFIXES = (
    MARKDOWN_SUFFIXES
    | RST_SUFFIXES
    | TEXT_SUFFIXES
    | HTML_SUFFIXES
    | PDF_SUFFIXES
    | ASCIIDOC_SUFFIXES
    | NOTEBOOK_SUFFIXES
)


@dataclass(frozen=True)
class Chunk:
    source: str
    title: str
    heading: str
    text: str
    content_hash: str
    chunk_id: str
    links: str = ""  # PageFacts.encode(): what the page's published address needs, or ""

    @property
    def embedding_text(self) -> str:
        """What the embedder sees: where the passage sits, then the passage."""
        place = HEADING_SEPARATOR.join(p for p in (self.title, self.heading) if p)
        return f"{place}\n{self.text}" if place else self.text

    @property
    def search_text(self) -> str:
        """What BM25 indexes: title and headings count as words of the passage."""
        return f"{self.title}\n{self.heading}\n{self.text}"


@dataclass
class Section:
    path: list[str]
    lines: list[str] = field(default_factory=list)
    anchor: str = ""  # the id its heading was given explicitly ({#id}, <h2 id=...>), if any


@dataclass
class ParsedDocument:
    title: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)
    slug: str = ""  # front matter's ``slug:`` and ``id:`` (Docusaurus names the page by them)
    page_id: str = ""
    titled_by_heading: bool = False  # the title is the page's first heading (it has an id too)


@dataclass(frozen=True)
class SkippedFile:
    path: Path | str  # a local file, or the URL of a page fetched from a site
    reason: str

    @property
    def name(self) -> str:
        return self.path.name if isinstance(self.path, Path) else self.path


class UnreadableFile(Exception):
    """This file cannot be used; ``str(exc)`` is the reason."""


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True)
class FoundFile:
    path: Path
    source: str  # path relative to the ingest root, with forward slashes; or the page's URL
    fetched: bool = False  # a page fetched from a site into ``path``: messages name its URL

    @property
    def where(self) -> Path | str:
        """How messages name it: the local file, or the URL it was fetched from."""
        return self.source if self.fetched else self.path


@dataclass
class FetchedPages:
    """Pages fetched from elsewhere (a docs site: storage/crawl.py) into local files; each is
    cited by its own name (its URL), not by its local path."""

    label: str  # what the pages are called in messages: the URL they were fetched from
    files: list[FoundFile]
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Set when the fetch did not see the whole site (it stopped at its page limit, or a page
    # failed in passing: a timeout, a 5xx), to the URL prefix its pages live under: a page under
    # it that was not fetched this time may still exist, so --prune must not drop it.
    incomplete_under: str | None = None
    unread: list[str] = field(default_factory=list)  # pages that exist but were not read

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Found:
    """What one ingest run found: the sources it saw, and the prefixes under which a source it
    did not see may still exist (an incomplete site fetch). Pruning drops only what is gone."""

    sources: frozenset[str]
    unsure_prefixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, files: Sequence[FoundFile], roots: Sequence[Path | FetchedPages] = ()) -> Found:
        fetched = [root for root in roots if isinstance(root, FetchedPages)]
        unread = [source for root in fetched for source in root.unread]
        unsure = tuple(root.incomplete_under for root in fetched if root.incomplete_under)
        return cls(frozenset([item.source for item in files] + unread), unsure)

    def may_exist(self, source: str) -> bool:
        return source in self.sources or source.startswith(self.unsure_prefixes)


def discover(roots: Sequence[Path | FetchedPages]) -> tuple[list[FoundFile], list[SkippedFile]]:
    """All supported files under the roots (hidden files and folders ignored), sorted.

    A file whose real path lies outside its root (a symlink such as ``config.txt -> ../.env``)
    is skipped: ingesting a folder must never pull in what sits next to it.
    """
    found: list[FoundFile] = []
    skipped: list[SkippedFile] = []
    for root in roots:
        if isinstance(root, FetchedPages):
            found.extend(root.files)
            skipped.extend(root.skipped)
            continue
        if root.is_file():
            candidates = [(root, root.name)]  # named explicitly: the user chose this file
        else:
            candidates = [
                (path, path.relative_to(root).as_posix())
                for path in sorted(root.rglob("*"))
                if path.is_file() and not _is_hidden(path.relative_to(root))
            ]
        real_root = root.resolve()
        for path, source in candidates:
            if not root.is_file() and not path.resolve().is_relative_to(real_root):
                log.warning("skipped %s: it links outside %s", path, root)
                skipped.append(SkippedFile(path, f"links outside the ingested folder {root}"))
            elif generated_page(source) and not root.is_file():
                skipped.append(SkippedFile(path, "a docs generator's by-product, not a page"))
            elif path.suffix.lower() in SUPPORTED_SUFFIXES:
                found.append(FoundFile(path, source))
            else:
                skipped.append(
                    SkippedFile(path, f"unsupported file type {path.suffix or '(none)'}")
                )
    return found, skipped


# Pages a docs generator writes beside the docs (Sphinx, MkDocs, Docusaurus): copies of every
# page's source, highlighted module code, the term index, the search page, the 404 page. Read as
# documents, each page's copy competes with the page itself (Sphinx-built Flask docs, BM25, dev
# questions: MRR@10 0.700 with them, 0.842 without).
_GENERATED_FOLDERS = {"_sources", "_modules"}
_GENERATED_PAGES = {"genindex.html", "search.html", "py-modindex.html", "404.html"}


def generated_page(relative: str) -> bool:
    """Is this (a path or URL path, "/"-separated) a docs generator's by-product?"""
    parts = [part for part in relative.split("/") if part]
    return bool(parts) and (
        parts[-1].lower() in _GENERATED_PAGES or any(p in _GENERATED_FOLDERS for p in parts[:-1])
    )


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


# ---------------------------------------------------------------- reading


def read_document(path: Path, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ParsedDocument:
    """Parse one file; raises UnreadableFile with the reason when it cannot be used."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise UnreadableFile(f"larger than the {max_bytes // (1024 * 1024)} MB limit")
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return _read_pdf(path)
    raw = _read_bytes(path)
    if b"\x00" in raw[:8192]:
        raise UnreadableFile("looks binary, not text")
    warnings: list[str] = []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        warnings.append("invalid UTF-8; undecodable bytes were replaced")
    if suffix in HTML_SUFFIXES:
        if is_template(text):
            raise UnreadableFile("a site template (Jinja or Liquid tags), not a page")
        doc = parse_html(text, fallback_title=_title_from_name(path))
    elif suffix in RST_SUFFIXES:
        doc = parse_rst(text, fallback_title=_title_from_name(path))
    elif suffix in TEXT_SUFFIXES:
        doc = parse_text(text, fallback_title=_title_from_name(path))
    elif suffix in ASCIIDOC_SUFFIXES:
        doc = parse_markdown(asciidoc.to_markdown(text), fallback_title=_title_from_name(path))
        doc.titled_by_heading = False  # Asciidoctor gives the document title no section id
    elif suffix in NOTEBOOK_SUFFIXES:
        try:
            markdown = notebooks.to_markdown(text)
        except notebooks.NotANotebook as exc:
            raise UnreadableFile(str(exc)) from None
        doc = parse_markdown(markdown, fallback_title=_title_from_name(path))
    else:
        doc = parse_markdown(text, fallback_title=_title_from_name(path))
    doc.warnings[:0] = warnings
    return doc


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None


def _title_from_name(path: Path) -> str:
    return title_from_name(path.stem) or path.name


_FENCE = re.compile(r"^\s*(```|~~~)")
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# A heading's attribute list, as Python-Markdown's attr_list (MkDocs), Docusaurus, Hugo,
# VitePress and Pandoc write it: "## Install {#setup}", "## Install { #setup .wide }",
# "## Install {: #setup }". Not part of the heading's words; its id is the heading's anchor.
_HEADING_ATTRIBUTES = re.compile(
    rf"\s*\{{:?\s*((?:[#.]{HEADING_ID}|[\w-]+=\S+)(?:\s+[^{{}}]*)?)\s*\}}\s*$"
)  # an id ("#x") or a class (".x"), whose names take the same characters
_ATTRIBUTE_ID = re.compile(rf"(?:^|\s)#({HEADING_ID})")
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*[\"']?(.+?)[\"']?\s*$", re.MULTILINE)
_FRONT_MATTER_DESCRIPTION = re.compile(r"^description:\s*[\"']?(.+?)[\"']?\s*$", re.MULTILINE)
_FRONT_MATTER_SLUG = re.compile(r"^slug:\s*[\"']?(.+?)[\"']?\s*$", re.MULTILINE)
_FRONT_MATTER_ID = re.compile(r"^id:\s*[\"']?(.+?)[\"']?\s*$", re.MULTILINE)
_SHORTCODE_LINE = re.compile(r"^\s*\{\{[<%].*[%>]\}\}\s*$")  # Hugo: {{< x >}}, {{% x %}}
# Lines of a source page that are only a site generator's markup: Hugo shortcodes, Liquid or
# Jinja tags ({% include %}), MDX module lines (import X from '...'; export ...), component or
# HTML tags with no text between them (<Tabs>, </TabItem>, <br/>), and admonition fences (:::).
# Not when indented by four spaces or more: that is an indented code block.
_MARKUP_LINE = re.compile(
    r"""^[ ]{0,3}(?:
        \{\{[<%].*[%>]\}\}
      | \{%.*%\}
      | (?:import|export)\s+(?:.+\s+from\s+)?['"][^'"]+['"];?
      | (?:<(?!https?:|mailto:)/?[A-Za-z][^<>]*>\s*)+
      | :::+\s*[\w-]*
    )\s*$""",
    re.VERBOSE,
)
_ADMONITION_TITLE = re.compile(r"^[ ]{0,3}:::+\s*[\w-]+\s+(\S.*)$")  # ":::tip Pro tip" -> "Pro tip"
_HTML_COMMENT = re.compile(r"<!--.*?-->")


def parse_markdown(text: str, *, fallback_title: str, source_page: bool = True) -> ParsedDocument:
    """ATX headings (``#`` .. ``######``) outside code fences start sections.

    YAML front matter gives the title, and its ``description`` (a summary the author wrote for
    the page) opens the first section. Lines that are only a site generator's shortcode
    (Hugo's ``{{< ... >}}``, ``{{% ... %}}``) carry no words for a reader and are dropped.
    On a ``source_page`` (not text already extracted from HTML, whose code blocks are not
    fenced) HTML comments and the other markup lines of ``_MARKUP_LINE`` are dropped too.
    """
    title = slug = page_id = ""
    lead: list[str] = []
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            front = text[4:end]
            match = _FRONT_MATTER_TITLE.search(front)
            title = match.group(1) if match else ""
            described = _FRONT_MATTER_DESCRIPTION.search(front)
            if described:
                lead = [described.group(1), ""]
            slug = match.group(1) if (match := _FRONT_MATTER_SLUG.search(front)) else ""
            page_id = match.group(1) if (match := _FRONT_MATTER_ID.search(front)) else ""
            text = text[end + 4 :]
    titled_by_heading = False
    sections: list[Section] = [Section(path=[], lines=lead)]
    stack: list[tuple[int, str]] = []
    in_fence = False
    markup = _MARKUP_LINE if source_page else _SHORTCODE_LINE
    lines = text.splitlines()
    if source_page:  # MyST (Sphinx's Markdown): roles, directives and targets as rendered
        lines = myst.to_markdown(_admonitions(lines))
    for line in _without_comments(lines) if source_page else lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _ATX_HEADING.match(line)
        if match is None:
            if in_fence:
                sections[-1].lines.append(line)
            elif source_page and (title_match := _ADMONITION_TITLE.match(line)) is not None:
                sections[-1].lines.append(title_match.group(1))
            elif not markup.match(line):
                sections[-1].lines.append(line)
            continue
        level, (heading, anchor) = len(match.group(1)), heading_attributes(match.group(2))
        if level == 1 and not title:
            title, titled_by_heading = heading, True
            continue
        stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, heading)]
        sections.append(Section(path=[h for _, h in stack], anchor=anchor))
    return ParsedDocument(
        title=title or fallback_title,
        sections=sections,
        slug=slug,
        page_id=page_id,
        titled_by_heading=titled_by_heading,
    )


def heading_attributes(heading: str) -> tuple[str, str]:
    """A Markdown heading's words and the id its attribute list gives it ("" if none)."""
    found = _HEADING_ATTRIBUTES.search(heading)
    if found is None or not heading[: found.start()].strip():
        return heading.strip(), ""
    named = _ATTRIBUTE_ID.search(found.group(1))
    return heading[: found.start()].strip(), named.group(1) if named else ""


# Python-Markdown / MkDocs admonitions: '!!! note "Title"' (or '??? tip', '???+ warning'), the
# body indented by four spaces under it.
_ADMONITION = re.compile(r"""^(?:!!!|\?\?\?\+?)\s*[\w-]+(?:\s+[\w-]+)*\s*(?:"([^"]*)")?\s*$""")


def _admonitions(lines: list[str]) -> list[str]:
    """MkDocs admonitions as the prose they show: the title when it has one, then the body
    out-dented (left indented, "!!! tip" opened every quote of it and its body read as an
    indented code block)."""
    out: list[str] = []
    in_fence = False
    body = False  # in an admonition's indented body
    for line in lines:
        if body and line.strip() and not line.startswith(("    ", "\t")):
            body = False
        if body:
            out.append(line[4:] if line.startswith("    ") else line.lstrip("\t"))
            continue
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _ADMONITION.match(line)
        if match is None:
            out.append(line)
            continue
        body = True
        out += ["", match.group(1), ""] if match.group(1) else [""]
    return out


def _without_comments(lines: list[str]) -> Iterator[str]:
    """The lines without HTML comments (``<!-- ... -->``, on one line or several) outside code
    fences: a reader of the published page never sees them (authors' notes, TODOs, disabled
    sections), so they must not be searched or quoted."""
    in_fence = in_comment = False
    for line in lines:
        if in_comment:
            end = line.find("-->")
            if end == -1:
                continue
            line, in_comment = line[end + 3 :], False
            if not line.strip():
                continue
        elif _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or line.startswith(("    ", "\t")):  # code, fenced or indented
            yield line
            continue
        had_comment = "<!--" in line
        line = _HTML_COMMENT.sub("", line)
        start = line.find("<!--")
        if start != -1:
            line, in_comment = line[:start], True
        if not had_comment or line.strip():
            yield line


_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")


def parse_rst(text: str, *, fallback_title: str) -> ParsedDocument:
    """Underlined (optionally overlined) titles; levels follow the order adornments appear."""
    lines = list(_without_rst_comments(text.splitlines()))
    styles: list[str] = []
    title = ""
    sections: list[Section] = [Section(path=[])]
    stack: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        overlined = _RST_ADORNMENT.match(line) and i + 2 < len(lines)
        if overlined and lines[i + 1].strip() and _RST_ADORNMENT.match(lines[i + 2]):
            heading, style, consumed = lines[i + 1].strip(), "over" + line.strip()[0], 3
        elif line.strip() and _RST_ADORNMENT.match(nxt) and len(nxt.strip()) >= len(line.strip()):
            heading, style, consumed = line.strip(), nxt.strip()[0], 2
        else:
            if not _RST_ADORNMENT.match(line):
                sections[-1].lines.append(_strip_rst_markup(line))
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        level = styles.index(style) + 1
        if level == 1 and not title:
            title = heading
        else:
            stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, heading)]
            sections.append(Section(path=[h for _, h in stack]))
        i += consumed
    return ParsedDocument(
        title=title or fallback_title, sections=sections, titled_by_heading=bool(title)
    )


# ".. words" that are not a directive ("name::"), a target ("_label:"), a substitution ("|x|")
# or a footnote ("[1]"), or a bare "..": a comment, whose indented lines belong to it.
_RST_COMMENT = re.compile(r"^\.\.(?:\s*$|\s+(?![_|\[])(?!\S+::))")
_RST_TARGET = re.compile(r"^\.\.\s+_[^:]*:")  # ".. _label:" names a place; it is not text


def _without_rst_comments(lines: list[str]) -> Iterator[str]:
    """The lines without reST comments (and their bodies) and hyperlink targets: a reader of
    the published page sees neither."""
    in_comment = False
    for line in lines:
        if in_comment and (not line.strip() or line[:1].isspace()):
            continue
        in_comment = bool(_RST_COMMENT.match(line))
        if not in_comment and not _RST_TARGET.match(line):
            yield line


_RST_ROLE = re.compile(r":[a-z]+:`([^`<]*?)\s*(?:<[^>]*>)?`")


def _strip_rst_markup(line: str) -> str:
    line = _RST_ROLE.sub(r"\1", line)
    return line.replace("``", "`")


def parse_text(text: str, *, fallback_title: str) -> ParsedDocument:
    """Plain text has no headings; a short first line is its title."""
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    title = first if 0 < len(first) <= 80 else fallback_title
    body = lines
    if title == first:
        body = lines[[line.strip() for line in lines].index(first) + 1 :]
    return ParsedDocument(title=title, sections=[Section(path=[], lines=body)])


_HTML_DROP = (
    "script", "style", "noscript", "template", "iframe", "svg", "nav", "head", "aside", "footer",
    "button",
)  # fmt: skip
# A published page's site chrome (sidebars, search, the site footer) and what it hides from
# readers repeat on every page or are never read: not the page's content.
_HTML_CHROME_ROLES = {"navigation", "search", "contentinfo", "complementary", "banner"}
_WORD = re.compile(r"\w")
_HTML_ID = re.compile(HEADING_ID)  # ids that read back as "{#id}" (others: no anchor)
_HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_HTML_PERMALINK_CLASSES = {"headerlink", "anchorjs-link", "headeranchor"}  # the "¶" after titles
_HTML_BLOCKS = (
    "p", "div", "li", "pre", "tr", "br", "section", "article", "table",
    "blockquote", "dd", "dt", "ul", "ol", "main", "footer", "header",
)  # fmt: skip


# A theme's template beside the docs (MkDocs' overrides/, Sphinx's _templates/): statement tags
# outside code. A published page shows a template only as code, in <pre> or <code>.
_TEMPLATE_TAG = re.compile(
    r"\{%-?\s*(?:extends|block|include|import|from|if|for|set|macro|call|with|raw|assign|"
    r"capture|unless|case)\b"
)
_HTML_CODE = re.compile(r"<(pre|code|script|textarea)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)


def is_template(html: str) -> bool:
    """Is this HTML file a site generator's template rather than a page?"""
    return bool(_TEMPLATE_TAG.search(_HTML_CODE.sub("", html)))


def parse_html(text: str, *, fallback_title: str) -> ParsedDocument:
    """Scripts and styles dropped; h1-h6 become Markdown headings, then parsed as Markdown."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_HTML_DROP):
        tag.decompose()
    # Read before the permalinks go: a "¶" or "#" link is chrome, not the heading's words.
    anchors: dict[int, str] = {}
    for heading in soup.find_all(_HTML_HEADINGS):
        anchors[id(heading)] = _html_heading_id(heading)
        for link in heading.find_all("a", href=True):
            if str(link["href"]).startswith("#") and not _WORD.search(link.get_text()):
                link.decompose()
    for tag in soup.find_all(_is_chrome):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(("ul", "ol")):
        if not tag.decomposed and _is_link_list(tag):
            tag.decompose()
    # The page's own content, when the page says where it is.
    main = soup.find("main") or soup.find(attrs={"role": "main"})
    body = main if main is not None and main.get_text(strip=True) else soup.body or soup
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            words = heading.get_text(" ", strip=True)
            anchor = anchors.get(id(heading), "")
            named = f" {{#{anchor}}}" if words and _HTML_ID.fullmatch(anchor) else ""
            heading.replace_with(f"\n\n{'#' * level} {words}{named}\n\n")
    for block in soup.find_all(_HTML_BLOCKS):
        block.insert_before("\n")
        block.insert_after("\n")
    plain = "\n".join(line.strip() for line in body.get_text().splitlines())
    doc = parse_markdown(plain, fallback_title=page_title or fallback_title, source_page=False)
    if page_title and doc.title == fallback_title:
        doc.title = page_title
    return doc


def _html_heading_id(heading: Any) -> str:
    """The id a link to this heading's section uses: the heading's own (MkDocs, Docusaurus,
    Hugo), its permalink's target ("#x"), or the section it opens (Sphinx's <section id>)."""
    own = heading.get("id")
    if own:
        return str(own)
    for link in heading.find_all("a", href=True):
        href = str(link["href"])
        if href.startswith("#") and len(href) > 1:
            return href[1:]
    parent = heading.parent
    if parent is not None and parent.name in ("section", "div") and parent.get("id"):
        first = parent.find(_HTML_HEADINGS)
        if first is heading:
            return str(parent["id"])
    return ""


def _is_link_list(tag: Any) -> bool:
    """A list whose items are only links (a table of contents, "next" and "see also" lists):
    navigation inside the content. On a hub page it holds every child page's title, so the hub
    outranks the pages it links to."""
    if not tag.find_all("li", recursive=False):
        return False
    text = len(tag.get_text(" ", strip=True))
    linked = sum(len(a.get_text(" ", strip=True)) for a in tag.find_all("a"))
    return text > 0 and linked >= 0.9 * text


def _is_chrome(tag: Any) -> bool:
    attributes = tag.attrs or {}
    classes = set(attributes.get("class") or ())
    return (
        attributes.get("role") in _HTML_CHROME_ROLES
        or attributes.get("aria-hidden") == "true"
        or "hidden" in attributes
        or bool(classes & _HTML_PERMALINK_CLASSES)
    )


def _read_pdf(path: Path) -> ParsedDocument:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise UnreadableFile("PDF support needs pypdf: pip install 'supportbot[pdf]'") from None
    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception as exc:  # pypdf raises many types for damaged files
        raise UnreadableFile(f"not a readable PDF ({type(exc).__name__})") from None
    sections = [
        Section(path=[f"Page {number}"], lines=page.splitlines())
        for number, page in enumerate(pages, start=1)
        if page.strip()
    ]
    doc = ParsedDocument(title=str(meta_title).strip() or _title_from_name(path), sections=sections)
    if not sections:
        doc.warnings.append("PDF has no extractable text (scanned?); nothing to index")
    return doc


# ---------------------------------------------------------------- secrets


def redact_document(doc: ParsedDocument) -> RedactionReport:
    """Drop every secret-looking line from the document, in place; what was dropped (counts
    and kinds, never the secret) is returned for the ingest report."""
    total = RedactionReport()
    doc.title = redact(doc.title)
    for section in doc.sections:
        section.path = [redact(part) for part in section.path]
        kept, report = drop_secret_lines("\n".join(section.lines))
        if report:
            section.lines = kept.splitlines()
            total.lines += report.lines
            total.kinds.update(report.kinds)
    return total


# ---------------------------------------------------------------- chunking


def chunk_document(
    doc: ParsedDocument, *, source: str, chunk_chars: int = CHUNK_CHARS
) -> list[Chunk]:
    """Passages of about ``chunk_chars``: paragraphs and code blocks kept whole, a section too
    small to stand alone merged into the passage before it (with its heading as a line), and a
    long section's passages overlapping by a sentence so that no fact is cut from its context.
    """
    pieces: list[tuple[str, str, str]] = []  # (heading, text, links)
    for section, links in zip(doc.sections, _page_facts(doc), strict=True):
        heading = HEADING_SEPARATOR.join(section.path)
        texts = list(_pack(_paragraphs(section.lines), chunk_chars))
        small = len(texts) == 1 and len(texts[0]) < MIN_SECTION_CHARS
        if not texts and section.path:
            texts, small = [""], True  # a bare heading still says what follows is about
        if small and pieces and len(pieces[-1][1]) + len(texts[0]) + 80 <= chunk_chars:
            previous_heading, previous, previous_links = pieces[-1]
            label = section.path[-1] if section.path else ""
            merged = "\n\n".join(p for p in (previous, label, texts[0]) if p)
            pieces[-1] = (previous_heading, merged, previous_links)
            continue
        for number, text in enumerate(texts):
            if number:  # a continuation starts with the end of the passage before it
                text = f"{_tail(texts[number - 1])}\n\n{text}".strip()
            if text:
                pieces.append((heading, text, links))
    return _chunks(doc.title, source, pieces)


def _page_facts(doc: ParsedDocument) -> Iterator[str]:
    """Each section's :class:`PageFacts`, encoded: the page's front-matter slug and id, and
    how its heading repeats one before it on the page (the title's heading included)."""
    seen: dict[str, int] = {}
    if doc.titled_by_heading:
        seen[heading_key(doc.title)] = 1
    repeated = 0
    for section in doc.sections:
        repeat = 0
        if section.path:
            key = heading_key(section.path[-1])
            repeat = seen.get(key, 0)
            seen[key] = repeat + 1
            repeated += 1 if repeat else 0
        facts = PageFacts(
            doc.slug, doc.page_id, repeat, repeated if repeat else 0, anchor=section.anchor
        )
        yield facts.encode()


def _chunks(title: str, source: str, pieces: list[tuple[str, str, str]]) -> list[Chunk]:
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for heading, text, links in pieces:
        # What the page says of its address is part of the passage (a changed slug, or a new
        # heading of the same name above it, is a changed row); nothing said, nothing added.
        hashed = f"{CHUNKER_VERSION}\x1f{title}\x1f{heading}\x1f{text}"
        if links:
            hashed += f"\x1f{links}"
        content_hash = hashlib.sha256(hashed.encode()).hexdigest()[:32]
        # The same passage twice in one file still needs two distinct ids.
        ordinal = seen.get(content_hash, 0)
        seen[content_hash] = ordinal + 1
        chunk_id = hashlib.sha256(f"{source}\x1f{content_hash}\x1f{ordinal}".encode())
        chunks.append(
            Chunk(
                source=source,
                title=title,
                heading=heading,
                text=text,
                content_hash=content_hash,
                chunk_id=chunk_id.hexdigest()[:32],
                links=links,
            )
        )
    return chunks


def _tail(text: str) -> str:
    """The last sentence of a passage (at most OVERLAP_CHARS), for the next one's context."""
    if _FENCE.match(text.splitlines()[-1] if text else ""):
        return ""  # a code block's end is not a sentence worth repeating
    last = _SENTENCE_END.split(text.strip())[-1]
    return last if len(last) <= OVERLAP_CHARS else ""


def _paragraphs(lines: list[str]) -> Iterator[str]:
    """Blank-line separated blocks; a code fence stays one block."""
    block: list[str] = []
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if block:
                yield "\n".join(block).strip()
                block = []
            continue
        block.append(line.rstrip())
    if block:
        yield "\n".join(block).strip()


def _pack(paragraphs: Iterator[str], limit: int) -> Iterator[str]:
    current = ""
    for paragraph in paragraphs:
        for piece in _split_long(paragraph, limit):
            if current and len(current) + 2 + len(piece) > limit:
                yield current
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current.strip():
        yield current


_SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)")


def _split_long(paragraph: str, limit: int) -> Iterator[str]:
    if len(paragraph) <= limit:
        yield paragraph
        return
    if _FENCE.match(paragraph):
        yield from _split_code(paragraph, limit)
        return
    current = ""
    # Sentences are rejoined with the line break they had: a list's next item starts a line.
    parts = _SENTENCE_END.split(paragraph)
    joint = " "
    for sentence, gap in zip(parts[::2], [*parts[1::2], ""], strict=True):
        while len(sentence) > limit:  # one enormous "sentence": cut at a space
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                yield current
                current = ""
            yield sentence[:cut].strip()
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > limit:
            yield current
            current = sentence
        else:
            current = f"{current}{joint}{sentence}" if current else sentence
        joint = "\n" if "\n" in gap else " "
    if current:
        yield current


def _split_code(block: str, limit: int) -> Iterator[str]:
    """A code block stays whole up to CODE_BLOCK_CHARS; a longer one is cut between lines, and
    every part is a complete fenced block (so it renders, and never splits a line)."""
    if len(block) <= max(limit, CODE_BLOCK_CHARS):
        yield block
        return
    lines = block.splitlines()
    opening = lines[0]
    fence = _FENCE.match(opening).group(1)  # type: ignore[union-attr]
    body = lines[1:-1] if len(lines) > 1 and lines[-1].strip().startswith(fence) else lines[1:]
    part: list[str] = []
    size = 0
    for line in body:
        if part and size + len(line) + 1 > limit:
            yield "\n".join([opening, *part, fence])
            part, size = [], 0
        part.append(line)
        size += len(line) + 1
    if part:
        yield "\n".join([opening, *part, fence])
