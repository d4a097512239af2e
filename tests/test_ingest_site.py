"""`supportbot ingest URL` reads a published docs site (storage/crawl.py), served here by a
loopback HTTP server: it stays in the start URL's folder, obeys robots.txt, keeps documents
only, cites each passage by its page's URL, leaves the site's chrome out, re-ingests
incrementally, prunes pages the site dropped, and fails in one line when the site is not there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.knowledge_helpers import write_text_pdf
from tests.test_knowledge_ingest import run_cli

Page = tuple[int, dict[str, str], bytes]


def html(title: str, body: str, *, links: str = "") -> Page:
    """A page as a docs generator publishes it: sidebar, search, content, footer."""
    page = (
        f"<html><head><title>{title}</title></head><body>"
        f'<div role="navigation">Sidebar zebra links {links}</div>'
        f'<div role="search">Search the quagga docs</div>'
        f'<div role="main"><h1>{title}<a class="headerlink" href="#">¶</a></h1>{body}</div>'
        "<footer>Copyright 2026 Okapi Inc.</footer></body></html>"
    )
    return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()


@dataclass
class Site:
    pages: dict[str, Page]
    requested: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    pdf = write_text_pdf(
        tmp_path / "manual.pdf", ["Operator manual", "The pelican relay restarts at 03:00."]
    )
    links = (
        '<a href="install.html">Install</a> <a href="guide/config.html#ports">Config</a> '
        '<a href="private/internal.html">Internal</a> <a href="/blog/post.html">Blog</a> '
        '<a href="http://example.invalid/elsewhere.html">Elsewhere</a> '
        '<a href="logo.png">Logo</a> <a href="missing.html">Missing</a> '
        '<a href="old-install.html">Old</a> <a href="notes.md">Notes</a> '
        '<a href="manual.pdf">Manual</a> <a href="index.html">Home</a> '
        '<a href="download.bin">Download</a>'
    )
    state = Site(
        pages={
            "/robots.txt": (
                200,
                {"Content-Type": "text/plain"},
                b"User-agent: *\nDisallow: /docs/private/\n",
            ),
            "/docs/": html(
                "Orbit docs", "<p>Welcome to the Orbit documentation home.</p>", links=links
            ),
            "/docs/index.html": html(
                "Orbit docs", "<p>Welcome to the Orbit documentation home.</p>", links=links
            ),
            "/docs/install.html": html(
                "Installing Orbit",
                "<h2>Ports</h2><p>The orbit daemon listens on port 6612 by default.</p>",
            ),
            "/docs/guide/config.html": html(
                "Configuration", "<p>The quokka cache is flushed every 45 minutes.</p>"
            ),
            "/docs/private/internal.html": html("Internal", "<p>The staging wombat password.</p>"),
            "/blog/post.html": html("Blog", "<p>Our walrus launch party.</p>"),
            "/docs/logo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG"),
            "/docs/old-install.html": (301, {"Location": "/docs/install.html"}, b""),
            "/docs/notes.md": (
                200,
                {"Content-Type": "text/plain; charset=utf-8"},
                b"# Release notes\n\nVersion 2 renames the heron flag to --heron-mode.\n",
            ),
            "/docs/manual.pdf": (200, {"Content-Type": "application/pdf"}, pdf.read_bytes()),
            "/docs/download.bin": (200, {"Content-Type": "application/octet-stream"}, b"\x00\x01"),
        }
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requested.append(self.path)
            status, headers, body = state.pages.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A loopback HTTP server for the test's duration; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def search(question: str, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    code, out, err = run_cli(["kb", "search", question, "--json", "-k", "3"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_a_docs_site_is_ingested_and_cited_by_url(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["ingest", f"{site.url}/docs/"], capsys)
    assert code == 0, err
    # Home, install, config, notes, manual: the redirect and index.html are the same pages.
    assert f"Fetched 5 page(s) from {site.url}/docs/ (3 left out: listed below)." in err
    assert f"skipped {site.url}/docs/private/internal.html: disallowed by robots.txt" in err
    assert f"skipped {site.url}/docs/missing.html: HTTP 404" in err
    assert f"skipped {site.url}/docs/download.bin: not a document (application/octet-stream)" in err
    assert out.startswith("Ingested 5 file(s):")
    # Never fetched: outside the folder, another host, images, what robots.txt forbids.
    assert not [p for p in site.requested if p.startswith(("/blog", "/docs/private"))]
    assert "/docs/logo.png" not in site.requested

    hit = search("which port does the orbit daemon listen on", capsys)[0]
    assert (hit["source"], hit["title"]) == (f"{site.url}/docs/install.html", "Installing Orbit")
    assert search("when does the pelican relay restart", capsys)[0]["source"] == (
        f"{site.url}/docs/manual.pdf"
    )
    assert search("heron flag renamed", capsys)[0]["source"] == f"{site.url}/docs/notes.md"
    assert (
        search("quokka cache flushed", capsys)[0]["source"] == f"{site.url}/docs/guide/config.html"
    )
    # The site's chrome is on every page and is nobody's answer.
    for chrome in ("zebra", "quagga", "Okapi", "¶"):
        assert all(chrome not in h["snippet"] for h in search(chrome, capsys)), chrome

    # An answer cites the page by its URL (a link on Slack and Discord).
    code, out, err = run_cli(
        ["ask", "--json", "Which port does the orbit daemon listen on?"], capsys
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["kind"] == "answer"
    assert answer["sources"][0]["path"] == f"{site.url}/docs/install.html"


def test_a_site_re_ingests_incrementally_and_prunes_dropped_pages(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["ingest", f"{site.url}/docs/"], capsys)[0] == 0
    code, out, _ = run_cli(["ingest", f"{site.url}/docs/"], capsys)
    assert code == 0 and "0 chunk(s) added" in out and "0 removed" in out

    del site.pages["/docs/guide/config.html"]
    code, out, err = run_cli(["ingest", f"{site.url}/docs/", "--prune"], capsys)
    assert code == 0 and "1 removed" in out, out
    assert f"skipped {site.url}/docs/guide/config.html: HTTP 404" in err
    assert all("guide/config.html" not in h["source"] for h in search("quokka cache", capsys))


def test_a_sitemap_lists_the_pages_and_max_pages_stops_the_crawl(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.pages["/docs/sitemap.xml"] = (
        200,
        {"Content-Type": "application/xml"},
        (
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{site.url}/docs/install.html</loc></url>"
            f"<url><loc>{site.url}/docs/guide/config.html</loc></url>"
            f"<url><loc>{site.url}/blog/post.html</loc></url></urlset>"
        ).encode(),
    )
    code, out, err = run_cli(["ingest", f"{site.url}/docs/sitemap.xml", "--max-pages", "1"], capsys)
    assert code == 0 and out.startswith("Ingested 1 file(s)"), err
    assert f"Fetched 1 page(s) from {site.url}/docs/sitemap.xml." in err
    assert "stopped at 1 pages (--max-pages); 1 more were found and not fetched" in err
    assert "/blog/post.html" not in site.requested  # listed, but outside the folder


def test_a_site_that_is_not_there_is_one_line_and_changes_nothing(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["ingest", f"{site.url}/docs/"], capsys)[0] == 0
    code, _, err = run_cli(["ingest", f"{site.url}/nowhere/", "--prune"], capsys)
    assert code != 0
    assert f"{site.url}/nowhere/ answered HTTP 404" in err and "Traceback" not in err
    code, _, err = run_cli(["ingest", "http://127.0.0.1:9/docs/"], capsys)  # nothing listens
    assert code != 0 and "cannot fetch http://127.0.0.1:9/docs/: ConnectionRefusedError" in err
    # The knowledge base still holds the site.
    assert search("orbit daemon port", capsys)[0]["source"] == f"{site.url}/docs/install.html"


def test_a_start_url_that_redirects_is_crawled_where_it_lands(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.pages["/latest/"] = (302, {"Location": "/docs/"}, b"")
    code, _, err = run_cli(["ingest", f"{site.url}/latest/"], capsys)
    assert code == 0, err
    assert f"Fetched 5 page(s) from {site.url}/latest/" in err
    hit = search("which port does the orbit daemon listen on", capsys)[0]
    assert hit["source"] == f"{site.url}/docs/install.html"


@pytest.fixture
def old_host(site: Site) -> Iterator[str]:
    """A second loopback host (another port: another origin, with no robots.txt) whose every
    path redirects to the same path on the site's host, as a renamed docs domain does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/robots.txt":
                self.send_response(404)
                self.send_header("Content-Length", "0")
            else:
                self.send_response(301)
                self.send_header("Location", site.url + self.path)
                self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url


def test_after_a_redirect_to_another_host_that_hosts_robots_txt_is_obeyed(
    cli_env: Path, site: Site, old_host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old host allows everything (it has no robots.txt); the host actually crawled
    forbids /docs/private/, and that is the rule that applies to its pages."""
    code, _, err = run_cli(["ingest", f"{old_host}/docs/"], capsys)
    assert code == 0, err
    assert f"skipped {site.url}/docs/private/internal.html: disallowed by robots.txt" in err
    assert "/docs/private/internal.html" not in site.requested
    assert search("orbit daemon port", capsys)[0]["source"] == f"{site.url}/docs/install.html"


def test_a_redirect_to_a_page_robots_txt_forbids_is_not_kept(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    status, headers, body = site.pages["/docs/"]
    site.pages["/docs/"] = (
        status,
        headers,
        body.replace(b"</body>", b'<a href="moved.html">M</a></body>'),
    )
    site.pages["/docs/moved.html"] = (302, {"Location": "/docs/private/internal.html"}, b"")
    code, _, err = run_cli(["ingest", f"{site.url}/docs/"], capsys)
    assert code == 0, err
    assert (
        f"skipped {site.url}/docs/moved.html: redirects to "
        f"{site.url}/docs/private/internal.html, disallowed by robots.txt"
    ) in err
    assert "/docs/private/internal.html" not in site.requested  # the redirect is not followed
    assert "wombat" not in json.dumps(search("staging wombat password", capsys))


def test_a_url_with_credentials_is_refused_before_anything_is_fetched(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_url = site.url.replace("http://", "http://reader:s3cr3t-token@") + "/docs/"
    code, out, err = run_cli(["ingest", secret_url], capsys)
    assert code != 0 and site.requested == []
    assert "holds a user name or password" in err
    assert "s3cr3t-token" not in err + out


def test_a_nofollow_page_is_read_but_its_links_are_not(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    status, headers, body = site.pages["/docs/"]
    nofollow = b'<meta name="robots" content="noindex, nofollow"></head>'
    site.pages["/docs/"] = (status, headers, body.replace(b"</head>", nofollow))
    code, _, err = run_cli(["ingest", f"{site.url}/docs/"], capsys)
    assert code == 0 and f"Fetched 1 page(s) from {site.url}/docs/." in err
    assert [p for p in site.requested if p != "/robots.txt"] == ["/docs/"]


def test_a_code_host_url_is_refused_with_what_to_do_instead(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Crawling a repository's web pages would index its issues and commits, not its docs; the
    refusal comes before any request (this test would otherwise need the internet)."""
    code, _, err = run_cli(["ingest", "https://github.com/acme/orbit/tree/main/docs"], capsys)
    assert code != 0
    assert "code host's web interface" in err and "git clone" in err


def test_a_docs_generators_by_products_are_not_fetched(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    status, headers, body = site.pages["/docs/install.html"]
    extra = b'<a href="_sources/install.rst.txt">Show source</a> <a href="genindex.html">Index</a>'
    site.pages["/docs/install.html"] = (
        status,
        headers,
        body.replace(b"</body>", extra + b"</body>"),
    )
    site.pages["/docs/_sources/install.rst.txt"] = (
        200,
        {"Content-Type": "text/plain"},
        b"port 6612",
    )
    assert run_cli(["ingest", f"{site.url}/docs/"], capsys)[0] == 0
    assert not [p for p in site.requested if "_sources" in p or "genindex" in p]


def test_a_crawl_reports_its_progress_page_by_page(site: Site, tmp_path: Path) -> None:
    """On a terminal, `ingest URL` shows how many pages it has so far (one request at a time
    can take a while on a large site)."""
    from storage.crawl import crawl

    counts: list[int] = []
    fetched = crawl(f"{site.url}/docs/", tmp_path / "pages", progress=counts.append)
    assert len(fetched.files) == 5
    assert counts == sorted(counts) and counts[-1] == 5 and len(counts) >= 5


def test_prune_keeps_the_pages_a_flaky_site_did_not_serve_this_time(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """A re-crawl during a blip (a 503, a timeout) must not delete what the site still has:
    neither the page that failed nor the pages only linked from it."""
    site.pages["/docs/guide/config.html"] = html(
        "Configuration",
        "<p>The quokka cache is flushed every 45 minutes.</p>",
        links='<a href="ports.html">Ports</a>',
    )
    site.pages["/docs/guide/ports.html"] = html(
        "Ports", "<p>The marmot relay listens on port 7733.</p>"
    )
    assert run_cli(["ingest", f"{site.url}/docs/"], capsys)[0] == 0
    assert search("marmot relay port", capsys)[0]["source"].endswith("/docs/guide/ports.html")

    healthy = site.pages["/docs/guide/config.html"]
    site.pages["/docs/guide/config.html"] = (503, {"Content-Type": "text/plain"}, b"busy")
    code, out, err = run_cli(["ingest", f"{site.url}/docs/", "--prune"], capsys)
    assert code == 0, err
    assert "0 removed" in out, out
    assert "1 page(s) could not be fetched this time" in err
    assert "its pages not seen this time are kept" in err
    assert search("quokka cache flushed", capsys)[0]["source"].endswith("/docs/guide/config.html")
    assert search("marmot relay port", capsys)[0]["source"].endswith("/docs/guide/ports.html")

    # Once the site answers in full again, --prune drops what it really dropped.
    site.pages["/docs/guide/config.html"] = healthy
    del site.pages["/docs/guide/ports.html"]
    code, out, err = run_cli(["ingest", f"{site.url}/docs/", "--prune"], capsys)
    assert code == 0 and "1 removed" in out, out
    assert "not seen this time are kept" not in err
    assert all("ports.html" not in h["source"] for h in search("marmot relay port", capsys))


def test_prune_keeps_the_pages_a_crawl_stopped_by_max_pages_did_not_reach(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["ingest", f"{site.url}/docs/"], capsys)[0] == 0
    code, out, err = run_cli(["ingest", f"{site.url}/docs/", "--prune", "--max-pages", "2"], capsys)
    assert code == 0, err
    assert "0 removed" in out, out
    assert "stopped at 2 pages (--max-pages)" in err
    assert search("quokka cache flushed", capsys)[0]["source"].endswith("/docs/guide/config.html")
    assert search("pelican relay restart", capsys)[0]["source"].endswith("/docs/manual.pdf")


def test_prune_keeps_a_page_that_grew_past_the_size_limit(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """As for a file in a folder: a page that exists but cannot be read keeps what was read."""
    assert run_cli(["ingest", f"{site.url}/docs/"], capsys)[0] == 0
    status, headers, body = site.pages["/docs/notes.md"]
    site.pages["/docs/notes.md"] = (status, headers, body + b"x" * 1_100_000)
    code, out, err = run_cli(
        ["ingest", f"{site.url}/docs/", "--prune", "--max-file-mb", "1"], capsys
    )
    assert code == 0, err
    assert "larger than the 1 MB limit" in err
    assert "0 removed" in out, out
    assert search("heron flag renamed", capsys)[0]["source"] == f"{site.url}/docs/notes.md"


class _Lines:
    """A child process's output, read as it comes (the process keeps running)."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, wanted: str, *, after: int = 0, timeout: float = 60.0) -> int:
        """The index of the first line from ``after`` on that contains ``wanted``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if wanted in self.lines[index]:
                        return index
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {wanted!r} in {self.lines}")
                self._changed.wait(left)


def test_ingest_every_follows_the_site_survives_a_failed_round_and_stops_on_sigterm(
    cli_env: Path, site: Site
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "bot", "ingest", f"{site.url}/docs/", "--prune"]
    child = subprocess.Popen(
        [*command, "--every", "1s"],
        cwd=cli_env,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = _Lines(child.stdout), _Lines(child.stderr)
        out.wait_for("Ingested 5 file(s)")
        err.wait_for("Next ingest at")

        # The site goes down: the round says why, and the process carries on.
        site.pages["/docs/"] = (503, {"Content-Type": "text/plain"}, b"maintenance")
        failed = err.wait_for(f"error: {site.url}/docs/ answered HTTP 503")
        err.wait_for("Next ingest at", after=failed)
        assert child.poll() is None

        # Back, without one page: the next round prunes it.
        site.pages["/docs/"] = site.pages["/docs/index.html"]
        del site.pages["/docs/guide/config.html"]
        pruned = out.wait_for("1 removed")
        assert out.lines[pruned].startswith("Ingested 4 file(s)")

        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 0
        err.wait_for("Stopped (SIGTERM).")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not any("Traceback" in line for line in err.lines), err.lines


def test_ingest_every_refuses_a_duration_it_cannot_read(
    cli_env: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["ingest", f"{site.url}/docs/", "--every", "6 hours"], capsys)
    assert code == 1
    assert "error: --every: '6 hours' is not a duration; use a number and s, m, h or d" in err
    assert site.requested == []  # refused before anything was fetched


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), ("1h30m", 5400), (" 2H ", 7200)],
)
def test_every_reads_the_durations_operators_write(text: str, seconds: float) -> None:
    from bot.commands.every import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "0s", "-1h", "6hours", "1h 30"])
def test_every_refuses_what_is_not_a_duration(text: str) -> None:
    from bot.commands.every import parse_duration

    with pytest.raises(ValueError):
        parse_duration(text)
