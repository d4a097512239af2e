"""Where a cited docs file is published: ``SUPPORTBOT_DOCS_URL`` turns ``guide/install.md`` into
``https://docs.example.com/guide/install/#heading``, so a citation is a link, not a path.

Docs ingested from a folder are cited by their path inside it. Teams publish that folder with a
generator, and each generator has its own rule from a file to a page and from a heading to an
anchor; an operator names the generator (:class:`DocsStyle`) rather than writing a template,
because a template cannot say that ``index.md`` is the folder's page or how headings become
anchors. Stdlib only: bot/config.py validates the setting with it at start-up.
"""

from __future__ import annotations

import enum
import posixpath
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from storage.page_facts import NO_FACTS, PageFacts
from storage.passages import HEADING_SEPARATOR


class DocsStyle(enum.StrEnum):
    """How a generator names pages; ``auto`` decides per file by its suffix."""

    AUTO = "auto"  # .rst -> Sphinx, .adoc -> Asciidoctor/Antora, the rest clean (the default)
    MKDOCS = "mkdocs"  # guide/install.md -> guide/install/ ; guide/index.md -> guide/
    SPHINX = "sphinx"  # guide/install.rst -> guide/install.html
    CLEAN = "clean"  # Docusaurus, Hugo, VitePress: guide/02-install.md -> guide/install
    FILE = "file"  # served as they are: guide/install.md -> guide/install.md


MARKDOWN = frozenset({".md", ".markdown", ".mdx"})
RESTRUCTURED = frozenset({".rst", ".rest"})
ASCIIDOC = frozenset({".adoc", ".asciidoc"})
NOTEBOOK = frozenset({".ipynb"})
# Sources a generator turns into a page; anything else (.html, .pdf, .txt) is published as it is.
GENERATED = MARKDOWN | RESTRUCTURED | ASCIIDOC | NOTEBOOK
# MkDocs builds Markdown (and notebooks with mkdocs-jupyter); other files it copies as they are.
_PAGES = {DocsStyle.MKDOCS: MARKDOWN | NOTEBOOK}
# A folder's own page in MkDocs (index.md, else README.md), Docusaurus (index, README) and
# Hugo (_index.md): the folder's URL.
INDEX_STEMS = frozenset({"index", "readme", "_index"})

_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Docusaurus drops a number prefix ("02-", "3. ", "10_") from file and folder names, but not
# the start of a date or version ("2021-01-notes", "7.0-upgrade").
_NUMBER_PREFIX = re.compile(r"^\d+\s*[-_.]+\s*(?=[^-_.\s])")
_NOT_NUMBER_PREFIX = re.compile(r"^\d+[-_.]\d")
# Antora: modules/ROOT/pages/x.adoc is the component version's page x.html; another module's
# pages sit under its name (modules/admin/pages/x.adoc -> admin/x.html).
_ANTORA_PAGE = re.compile(r"(?:^|/)modules/([^/]+)/pages/(.+)$")


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def mkdocs_anchor(heading: str) -> str:
    """Python-Markdown's ``toc`` slugify (MkDocs and Material's default)."""
    value = re.sub(r"[^\w\s-]", "", _ascii(heading)).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def github_anchor(heading: str) -> str:
    """github-slugger's rule (Docusaurus; Hugo's default ``github`` heading ids): lower-case,
    punctuation dropped, each space a hyphen (runs are not collapsed)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def asciidoc_anchor(heading: str) -> str:
    """Asciidoctor's generated section id with the default ``idprefix`` and ``idseparator``
    (both ``_``; Antora keeps them): lower-case, characters other than word characters,
    spaces, hyphens and periods removed, each run of spaces, hyphens and periods one ``_``."""
    value = re.sub(r"[^\w \-.]", "", "_" + heading.strip().lower())
    return re.sub(r"[ \-._]+", "_", value).rstrip("_") or "_"


def sphinx_anchor(heading: str) -> str:
    """docutils' ``make_id`` (Sphinx section ids, MyST Markdown's too): runs of anything but
    ASCII letters and digits become one hyphen; leading digits and hyphens are dropped."""
    value = re.sub(r"[^a-z0-9]+", "-", " ".join(_ascii(heading.lower()).split()))
    return re.sub(r"^[-0-9]+|-+$", "", value)


@dataclass(frozen=True, slots=True)
class DocsSite:
    """One published folder: its base URL (ending in ``/``) and its generator's style."""

    base: str
    style: DocsStyle = DocsStyle.AUTO

    def url(self, path: str, heading: str = "", facts: PageFacts = NO_FACTS) -> str:
        page, anchor = self.page(path, facts), self.anchor(path, heading, facts)
        url = self.base + quote(page, safe="/")
        return f"{url}#{quote(anchor, safe='-_')}" if anchor else url

    def page(self, path: str, facts: PageFacts = NO_FACTS) -> str:
        """The page's path under the base."""
        folder, _, name = path.rpartition("/")
        suffix = _suffix(name)
        stem = name[: len(name) - len(suffix)]
        style = self._style_for(suffix)
        if style is DocsStyle.FILE or suffix not in _PAGES.get(style, GENERATED) or not stem:
            return path
        if style is DocsStyle.SPHINX:
            if suffix in ASCIIDOC and (antora := _ANTORA_PAGE.search(path)):
                module, page = antora.groups()
                path = page if module == "ROOT" else f"{module}/{page}"
            return f"{path[: len(path) - len(suffix)]}.html"
        if style is DocsStyle.CLEAN:
            return _clean_page(folder, stem, facts)
        if stem.lower() in INDEX_STEMS:
            return f"{folder}/" if folder else ""
        return f"{folder}/{stem}/" if folder else f"{stem}/"

    def anchor(self, path: str, heading: str, facts: PageFacts = NO_FACTS) -> str:
        """The anchor of the passage's innermost heading where the generator's rule is known
        (Markdown, reStructuredText and AsciiDoc pages), numbered as the generator numbers a
        repeated heading; "" otherwise: the page without an anchor."""
        innermost = heading.rsplit(HEADING_SEPARATOR, 1)[-1].strip()
        innermost = _MARKDOWN_LINK.sub(r"\1", innermost)
        if not innermost:
            return ""
        suffix = _suffix(path)
        style = self._style_for(suffix)
        repeat = facts.repeat
        if style is DocsStyle.FILE or suffix not in _PAGES.get(style, GENERATED):
            return ""
        if facts.anchor:  # "## Install {#setup}", "[[setup]]": every generator keeps the id
            return facts.anchor
        if suffix in ASCIIDOC:  # Asciidoctor numbers a repeat from 2: _usage, _usage_2
            return asciidoc_anchor(innermost) + (f"_{repeat + 1}" if repeat else "")
        if suffix in RESTRUCTURED and style is not DocsStyle.SPHINX:
            return ""
        if suffix in NOTEBOOK:  # nbsphinx and mkdocs-jupyter ids: a rule we do not know
            return ""
        if style is DocsStyle.SPHINX:  # docutils gives a repeat the page's next "idN"
            return f"id{max(facts.repeated, 1)}" if repeat else sphinx_anchor(innermost)
        if style is DocsStyle.MKDOCS:  # Python-Markdown's toc: usage, usage_1, usage_2
            return mkdocs_anchor(innermost) + (f"_{repeat}" if repeat else "")
        return github_anchor(innermost) + (f"-{repeat}" if repeat else "")  # usage, usage-1

    def _style_for(self, suffix: str) -> DocsStyle:
        if self.style is not DocsStyle.AUTO:
            return self.style
        if suffix in RESTRUCTURED:
            return DocsStyle.SPHINX  # only Sphinx builds reStructuredText
        if suffix in ASCIIDOC:
            return DocsStyle.SPHINX  # Asciidoctor and Antora publish install.adoc as install.html
        return DocsStyle.CLEAN


def _clean_page(folder: str, stem: str, facts: PageFacts) -> str:
    """Docusaurus's rule (which Hugo and VitePress share for plain names): number prefixes
    dropped from the file's and its folders' names; a front-matter ``slug`` is the page's
    path, from the docs' root when it starts with "/", else from the file's folder; without
    one, a front-matter ``id`` replaces the file's name; a folder's index (index, README, or
    Docusaurus's file named as its folder: guides/guides.md) is the folder."""
    folders = "/".join(_without_number(part) for part in folder.split("/")) if folder else ""
    if facts.slug.startswith("/"):
        return facts.slug.lstrip("/")
    if not facts.slug and _is_folder_index(folder, stem):
        return f"{folders}/" if folders else ""
    name = facts.slug or facts.id or _without_number(stem)
    resolved = posixpath.normpath(posixpath.join("/", folders, name))
    trailing = "/" if name.endswith("/") and resolved != "/" else ""
    return resolved.lstrip("/") + trailing


def _is_folder_index(folder: str, stem: str) -> bool:
    """Docusaurus's category index: index, README, or the folder's own name, as written."""
    name = stem.lower()
    return name in INDEX_STEMS or (bool(folder) and name == folder.rsplit("/", 1)[-1].lower())


def _without_number(name: str) -> str:
    if _NOT_NUMBER_PREFIX.match(name):
        return name
    return _NUMBER_PREFIX.sub("", name, count=1)


@dataclass(frozen=True, slots=True)
class DocsLinks:
    """Published folders by path prefix ("" for everything else), longest prefix first."""

    sites: tuple[tuple[str, DocsSite], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sites)

    def url_for(self, path: str, heading: str = "", facts: PageFacts = NO_FACTS) -> str | None:
        """The published page of a cited file, None when it has none (no site covers it, or
        it is a crawled page with no id on its heading: its URL is the citation already).
        ``facts``: what the page said of itself at ingest."""
        if is_url(path):  # a crawled page: its heading's own id, where the page gave one
            if not facts.anchor:
                return None
            return f"{path.split('#', 1)[0]}#{quote(facts.anchor, safe='-_.:')}"
        for prefix, site in self.sites:
            if path.startswith(prefix):
                return site.url(path[len(prefix) :], heading, facts)
        return None

    @classmethod
    def parse(cls, urls: str, styles: str = "") -> DocsLinks:
        """From ``SUPPORTBOT_DOCS_URL`` and ``SUPPORTBOT_DOCS_URL_STYLE`` (see
        :func:`parse_docs_urls` and :func:`parse_docs_styles`)."""
        bases = parse_docs_urls(urls)
        chosen = parse_docs_styles(styles, prefixes=set(bases))
        default = chosen.get("", DocsStyle.AUTO)
        sites = {
            prefix: DocsSite(base, chosen.get(prefix, default)) for prefix, base in bases.items()
        }
        ordered = sorted(sites.items(), key=lambda item: len(item[0]), reverse=True)
        return cls(tuple(ordered))


def _suffix(path: str) -> str:
    """The file name's suffix, lower-cased with its dot ("" for none)."""
    name = path.rpartition("/")[2]
    stem, dot, suffix = name.rpartition(".")
    return f".{suffix.lower()}" if dot and stem else ""


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _entries(spec: str) -> list[tuple[str, str]]:
    """``"URL"`` or ``"PREFIX=URL, ..."`` -> [(prefix, value)]; a bare value has prefix ""."""
    entries = []
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        head, sep, tail = entry.partition("=")
        if sep and "://" not in head:  # "api/=https://..." (a bare URL may hold "=" in it)
            entries.append((_folder(head), tail.strip()))
        else:
            entries.append(("", entry))
    return entries


def _folder(prefix: str) -> str:
    prefix = prefix.strip().strip("/")
    if not prefix:
        raise ValueError("has an empty folder before '='; write FOLDER=URL or the URL alone")
    return prefix + "/"


def parse_docs_urls(spec: str) -> dict[str, str]:
    """``"https://docs.example.com/"`` or ``"guide/=https://a.example/,api/=https://b.example/"``
    (and at most one bare URL for every other file) -> {folder prefix: base URL ending in /}."""
    bases: dict[str, str] = {}
    for prefix, url in _entries(spec):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL or FOLDER=URL pairs, got {url!r}")
        if parts.username or parts.password:
            raise ValueError("must not hold a user name or password (every citation shows it)")
        if parts.query or parts.fragment:
            raise ValueError(f"must be a base URL without '?' or '#', got {url!r}")
        if prefix in bases:
            raise ValueError(f"names {prefix or 'the default URL'!r} twice")
        bases[prefix] = url if url.endswith("/") else url + "/"
    return bases


def parse_docs_styles(spec: str, *, prefixes: set[str] | None = None) -> dict[str, DocsStyle]:
    """``"mkdocs"`` or ``"sphinx,api/=sphinx"`` -> {folder prefix: style}; a folder must be one
    ``SUPPORTBOT_DOCS_URL`` names (when ``prefixes`` is given)."""
    styles: dict[str, DocsStyle] = {}
    names = ", ".join(style.value for style in DocsStyle)
    for prefix, value in _entries(spec):
        try:
            styles[prefix] = DocsStyle(value.lower())
        except ValueError:
            raise ValueError(
                f"must be one of {names} (or FOLDER=STYLE pairs), got {value!r}"
            ) from None
        if prefixes is not None and prefix and prefix not in prefixes:
            raise ValueError(f"names folder {prefix!r}, which SUPPORTBOT_DOCS_URL does not")
    return styles


NO_LINKS = DocsLinks()  # no published folders: crawled pages still link their sections
