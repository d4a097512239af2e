"""Fetch a published documentation site so that it can be ingested like a folder.

``supportbot ingest https://docs.example.com/guide/`` reads the pages a team already publishes,
so nobody has to export them, and every passage is cited by the page's own URL (a link in Slack
and Discord). The crawl stays inside the start URL's folder on its host (``/guide/`` above),
follows the site's links breadth first, obeys ``robots.txt``, reads a ``sitemap.xml`` when one
is given as the start URL, and keeps only documents (HTML, Markdown, text, PDF...). Each page
is written to a local folder under a plain name; the ingest reads those files and names their
passages by URL (:class:`storage.documents.FetchedPages`).

Synchronous on purpose, with the standard library's client: ``ingest`` is a batch command, and
one request at a time is polite to the docs server.
"""

from __future__ import annotations

import hashlib
import logging
import re
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.error import HTTPError, URLError
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from urllib.request import HTTPRedirectHandler, Request, build_opener
from urllib.robotparser import RobotFileParser

from storage.documents import (
    SUPPORTED_SUFFIXES,
    FetchedPages,
    FoundFile,
    SkippedFile,
    generated_page,
)

log = logging.getLogger(__name__)

USER_AGENT = "supportbot-ingest (+https://github.com/supportbot)"
DEFAULT_MAX_PAGES = 500
TIMEOUT_SECONDS = 15.0
DISALLOWED = "disallowed by robots.txt"
# Links to these are never documents: not worth a request.
_NOT_DOCUMENTS = {
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico", ".css", ".js", ".map", ".json",
    ".zip", ".gz", ".tgz", ".tar", ".whl", ".exe", ".dmg", ".mp4", ".webm", ".mp3", ".woff",
    ".woff2", ".ttf", ".eot", ".xml",
}  # fmt: skip
_CONTENT_TYPES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/plain": ".txt",
    "text/x-rst": ".rst",
    "text/asciidoc": ".adoc",
    "application/pdf": ".pdf",
}
_SITEMAP_TAG = re.compile(r"\{[^}]*\}")
# Code hosts' web pages are an application (issues, commits, blame...), not a docs site: a crawl
# of a repository's pages would index hundreds of them. Their files are read from a clone.
_CODE_HOSTS = {"github.com", "www.github.com", "gitlab.com", "bitbucket.org", "codeberg.org"}


# Answers that say "not now" rather than "not here": the page keeps its passages (--prune).
# 404 and 410 say the page is gone; 401 and 403 that it is no longer public: both drop it.
_PASSING_STATUSES = {408, 425, 429}


class CrawlError(Exception):
    """The site cannot be read at all (bad URL, start page unreachable); ``str`` says why."""


@dataclass(frozen=True)
class _Response:
    url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    too_large: bool = False
    refused: bool = False  # it redirects to ``url``, which robots.txt forbids: not followed


class _Refused(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class _CheckedRedirects(HTTPRedirectHandler):
    """Follows a redirect only where ``allowed`` says (robots.txt of the target's host)."""

    def __init__(self, allowed: Callable[[str], bool]) -> None:
        self.allowed = allowed

    def redirect_request(
        self, req: Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> Request | None:
        if not self.allowed(newurl):
            fp.close()
            raise _Refused(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Client:
    """GET with redirects followed, a timeout, and a size cap (the body is not read past it).
    ``allowed`` (set by the crawl) is asked before each redirect is followed."""

    def __init__(self, timeout: float, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allowed: Callable[[str], bool] = lambda url: True
        self._checked = build_opener(_CheckedRedirects(lambda url: self.allowed(url)))
        self._unchecked = build_opener()

    def get(self, url: str, *, check_redirects: bool = True) -> _Response:
        """Raises OSError (URLError, timeouts) when there is no HTTP answer at all."""
        request = Request(url, headers={"User-Agent": USER_AGENT})
        opener = self._checked if check_redirects else self._unchecked
        try:
            with opener.open(request, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
                content_type = response.headers.get("Content-Type", "")
                return _Response(
                    url=response.geturl(),
                    status=response.status,
                    content_type=content_type.split(";")[0].strip().lower(),
                    body=body[: self.max_bytes],
                    too_large=len(body) > self.max_bytes,
                )
        except HTTPError as exc:
            exc.close()
            return _Response(url=exc.geturl() or url, status=exc.code, content_type="", body=b"")
        except _Refused as refused:
            return _Response(url=refused.url, status=0, content_type="", body=b"", refused=True)


@dataclass
class _Crawl:
    """One crawl's state: what is queued, seen and kept."""

    scope: str  # every fetched URL starts with this (scheme://host[:port]/folder/)
    folder: Path
    max_bytes: int
    client: _Client
    queue: deque[str] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)
    pages: list[FoundFile] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)  # the pages' URLs
    skipped: list[SkippedFile] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # pages that exist but were not kept
    failed_in_passing: int = 0  # pages with no answer or a transient error this time
    robots: dict[str, RobotFileParser] = field(default_factory=dict)  # by scheme://host[:port]

    def allowed(self, url: str) -> bool:
        """What the robots.txt of the URL's own host says (read once per host): after a
        start URL redirects to another host, that host's rules are the ones that apply."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.robots:
            self.robots[origin] = _robots(self.client, parts.scheme, parts.netloc)
        return self.robots[origin].can_fetch(USER_AGENT, url)

    def keep(self, page: FoundFile) -> None:
        self.pages.append(page)
        self.kept.add(page.source)

    def enqueue(self, url: str) -> None:
        url = normalize(url)
        if url in self.seen or not url.startswith(self.scope):
            return
        path = urlsplit(url).path
        if PurePosixPath(path).suffix.lower() in _NOT_DOCUMENTS or generated_page(path):
            return
        self.seen.add(url)
        self.queue.append(url)


def crawl(
    start_url: str,
    folder: Path,
    *,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_bytes: int = 10 * 1024 * 1024,
    timeout: float = TIMEOUT_SECONDS,
    progress: Callable[[int], None] | None = None,
) -> FetchedPages:
    """Fetch the site under ``start_url`` into ``folder``; the pages, named by URL.
    ``progress`` is told how many pages are kept after each request (a large site takes a
    while: one request at a time)."""
    start = normalize(start_url)
    parts = urlsplit(start)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CrawlError(f"{start_url} is not an http(s) URL")
    if parts.hostname in _CODE_HOSTS:
        raise CrawlError(
            f"{start_url} is a code host's web interface, not a docs site: clone the repository "
            "(git clone) and ingest its docs folder, or give the published docs site's URL"
        )
    if parts.username or parts.password:
        # Every page would be cited by a URL holding them: in the knowledge base and in replies.
        raise CrawlError("the URL holds a user name or password; give a URL without them")
    sitemap = parts.path.endswith(".xml")
    scope = _folder_of(start)
    client = _Client(timeout, max_bytes)
    state = _Crawl(scope=scope, folder=folder, max_bytes=max_bytes, client=client)
    client.allowed = state.allowed
    if sitemap:
        for url in _sitemap_urls(client, start):
            state.enqueue(url)
        if not state.queue:
            raise CrawlError(f"{start_url} lists no pages under {scope}")
    else:
        state.enqueue(start)
    while state.queue and len(state.pages) < max_pages:
        url = state.queue.popleft()
        if not state.allowed(url):
            state.skipped.append(SkippedFile(url, DISALLOWED))
            continue
        _fetch(client, url, state, first=not state.pages and not sitemap)
        if progress is not None:
            progress(len(state.pages))
    if not state.pages and state.skipped:
        raise CrawlError(f"nothing to read at {start_url}: {state.skipped[0].reason}")
    fetched = FetchedPages(
        label=start_url, files=state.pages, skipped=state.skipped, unread=state.unread
    )
    if state.queue:
        fetched.warnings.append(
            f"{start_url}: stopped at {max_pages} pages (--max-pages); "
            f"{len(state.queue)} more were found and not fetched"
        )
    if state.failed_in_passing:
        fetched.warnings.append(
            f"{start_url}: {state.failed_in_passing} page(s) could not be fetched this time "
            "(no answer or a server error); they are tried again on the next ingest"
        )
    if state.queue or state.failed_in_passing:
        # Pages behind the ones not fetched were not found either: --prune keeps the site's
        # stored pages that this fetch did not see, rather than drop pages that still exist.
        fetched.incomplete_under = state.scope
        fetched.warnings.append(
            f"{start_url}: the site was not fetched completely; its pages not seen this time "
            "are kept (--prune removes none of them)"
        )
    return fetched


def _folder_of(url: str) -> str:
    """The crawl's scope: the URL up to its last "/" (``/guide/intro.html`` -> ``/guide/``)."""
    parts = urlsplit(url)
    folder = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
    return urlunsplit((parts.scheme, parts.netloc, folder, "", ""))


def normalize(url: str) -> str:
    """One spelling per page: no fragment or query, lower-case scheme and host, a path."""
    url, _ = urldefrag(url.strip())
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def _fetch(client: _Client, url: str, state: _Crawl, *, first: bool) -> None:
    try:
        response = client.get(url)
    except OSError as exc:
        reason = _no_answer(exc)
        if first:
            raise CrawlError(f"cannot fetch {url}: {reason}") from None
        state.skipped.append(SkippedFile(url, f"cannot fetch: {reason}"))
        state.failed_in_passing += 1
        return
    final = normalize(response.url)
    if response.refused:
        state.skipped.append(SkippedFile(url, f"redirects to {final}, {DISALLOWED}"))
        return
    if response.status != 200:
        if first:
            raise CrawlError(f"{url} answered HTTP {response.status}")
        state.skipped.append(SkippedFile(url, f"HTTP {response.status}"))
        if response.status in _PASSING_STATUSES or response.status >= 500:
            state.failed_in_passing += 1
        return
    if first and final != url:
        state.scope = _folder_of(final)  # http -> https, docs.x.com -> x.com/docs/: go along
    if final != url and not final.startswith(state.scope):
        state.skipped.append(SkippedFile(url, f"redirects outside {state.scope}"))
        return
    if final != url and final in state.kept:
        return  # a second address of a page already kept
    state.seen.add(final)
    suffix = _suffix(response.content_type, final)
    if suffix is None:
        kind = response.content_type or "no content type"
        state.skipped.append(SkippedFile(url, f"not a document ({kind})"))
        return
    body = response.body
    if response.too_large:
        limit = state.max_bytes // (1024 * 1024)
        state.skipped.append(SkippedFile(url, f"larger than the {limit} MB limit"))
        state.unread.append(final)  # it exists: --prune keeps what an earlier ingest read
        return
    digest = hashlib.sha256(body).hexdigest()
    if digest in state.digests:
        return  # the same page under another address (/guide/ and /guide/index.html)
    state.digests.add(digest)
    path = _local_path(state.folder, final, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    state.keep(FoundFile(path, final, fetched=True))
    if suffix == ".html":
        for link in _links(body, final):
            state.enqueue(link)


def _local_path(folder: Path, url: str, suffix: str) -> Path:
    """Where a page is kept: its URL's path under ``folder`` (so that a page without a title
    is named after its URL's last part, as a file would be), ending in its type's suffix."""
    parts = [part[:100] for part in PurePosixPath(urlsplit(url).path).parts[1:]]
    parts = [part for part in parts if part not in ("", ".", "..")] or ["index"]
    if url.endswith("/"):
        parts.append("index")
    if PurePosixPath(parts[-1]).suffix.lower() != suffix:
        parts[-1] += suffix
    path = folder.joinpath(*parts)
    number = 1
    while path.exists():  # "/guide/a" and "/guide/a.html" are two pages
        number += 1
        path = path.with_name(f"{PurePosixPath(parts[-1]).stem}-{number}{suffix}")
    return path


def _no_answer(exc: OSError) -> str:
    """Why there was no HTTP answer, in a word or two (ConnectionRefusedError, timeout...)."""
    cause = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    return type(cause).__name__ if isinstance(cause, BaseException) else str(cause)


def _suffix(content_type: str, url: str) -> str | None:
    """How to read the page: by its content type, or by its name when served as plain text."""
    named = PurePosixPath(urlsplit(url).path).suffix.lower()
    if content_type in ("text/plain", "application/octet-stream", "") and (
        named in SUPPORTED_SUFFIXES
    ):
        return named  # raw Markdown or reST from a repository viewer or a static host
    return _CONTENT_TYPES.get(content_type)


def _links(html: bytes, base: str) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    base_tag = soup.find("base", href=True)
    if base_tag is not None:
        base = urljoin(base, str(base_tag["href"]))
    robots = soup.find("meta", attrs={"name": "robots"})
    if robots is not None and "nofollow" in str(robots.get("content", "")).lower():
        return []
    return [urljoin(base, str(anchor["href"])) for anchor in soup.find_all("a", href=True)]


def _robots(client: _Client, scheme: str, netloc: str) -> RobotFileParser:
    """The site's robots.txt rules; none (everything allowed) when it has none."""
    parser = RobotFileParser()
    try:
        robots_txt = f"{scheme}://{netloc}/robots.txt"
        response: _Response | None = client.get(robots_txt, check_redirects=False)
    except OSError:
        response = None
    if response is not None and response.status == 200:
        parser.parse(response.body.decode("utf-8", errors="replace").splitlines())
    else:
        parser.parse([])
    return parser


def _sitemap_urls(client: _Client, url: str, depth: int = 0) -> list[str]:
    """The page URLs a sitemap lists, following a sitemap index one level down."""
    try:
        response = client.get(url)
    except OSError as exc:
        raise CrawlError(f"cannot read the sitemap {url}: {_no_answer(exc)}") from None
    if response.status != 200:
        raise CrawlError(f"cannot read the sitemap {url}: HTTP {response.status}")
    try:
        root = ElementTree.fromstring(response.body)
    except ElementTree.ParseError:
        raise CrawlError(f"cannot read the sitemap {url}: not valid XML") from None
    locations = [
        (element.text or "").strip()
        for element in root.iter()
        if _SITEMAP_TAG.sub("", element.tag) == "loc"
    ]
    if _SITEMAP_TAG.sub("", root.tag) == "sitemapindex" and depth == 0:
        return [page for sitemap in locations for page in _sitemap_urls(client, sitemap, 1)]
    return locations
