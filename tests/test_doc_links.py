"""Citations link to the published docs page (SUPPORTBOT_DOCS_URL, bot/doc_links.py): the
mapping per generator, the setting's validation, and the core turning a cited local file into
its page while crawled pages and learned answers keep their source."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.agent import OfflineAgent, final_result
from bot.cli import main
from bot.config import load_settings
from bot.doc_links import DocsLinks, DocsSite, DocsStyle, asciidoc_anchor
from bot.errors import ConfigError
from storage.db import Database
from storage.documents import FetchedPages, FoundFile, heading_attributes
from storage.knowledge import LINKS_COLUMN, KnowledgeBase
from storage.page_facts import PageFacts
from tests import discord_fixtures
from tests.core_support import message, openai_agent, responder
from tests.discord_fixtures import make_settings, model_overrides, running_bot
from tests.fakes import openai_server
from tests.fakes.discord_world import DiscordWorld
from tests.fakes.openai_server import FakeOpenAI, ToolCall, Turn
from tests.fakes.slack_api import DEFAULT_BOT_USER as SLACK_BOT
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api
from tests.fakes.slack_harness import build_kb as build_slack_kb
from tests.fakes.slack_harness import running_harness, slack_settings
from tests.fakes.slack_sender import app_mention

world = discord_fixtures.world  # fixtures (pytest finds them as module attributes)
kb_uri = discord_fixtures.kb_uri  # the Discord world's two docs
fake_openai = openai_server.fake_openai
__all__ = ["api", "fake_openai", "kb_uri", "world"]

BASE = "https://docs.example.com/"
SLACK_CHANNEL = "C0000001"  # where app_mention posts by default
ROOT = Path(__file__).resolve().parent.parent


def url(style: str, path: str, heading: str = "") -> str:
    return DocsSite(BASE, DocsStyle(style)).url(path, heading)


@pytest.mark.parametrize(
    ("style", "path", "expected"),
    [
        # MkDocs: directory URLs; index.md (or README.md) is its folder's page.
        ("mkdocs", "guide/install.md", "guide/install/"),
        ("mkdocs", "guide/index.md", "guide/"),
        ("mkdocs", "guide/README.md", "guide/"),
        ("mkdocs", "index.md", ""),
        ("mkdocs", "a/b/c/deep.markdown", "a/b/c/deep/"),
        ("mkdocs", "tutorials/intro.ipynb", "tutorials/intro/"),
        ("mkdocs", "guide/install.rst", "guide/install.rst"),  # copied, not built
        # Sphinx: one .html per source, index included; .md is MyST, .ipynb nbsphinx/myst-nb.
        ("sphinx", "guide/install.rst", "guide/install.html"),
        ("sphinx", "guide/index.rst", "guide/index.html"),
        ("sphinx", "guide/install.md", "guide/install.html"),
        ("sphinx", "tutorials/intro.ipynb", "tutorials/intro.html"),
        # Docusaurus / Hugo / VitePress: no suffix, no trailing slash; _index.md is Hugo's.
        ("clean", "guide/install.md", "guide/install"),
        ("clean", "guide/install.mdx", "guide/install"),
        ("clean", "guide/_index.md", "guide/"),
        ("clean", "guide/index.md", "guide/"),
        ("clean", "guide/install.adoc", "guide/install"),
        # Plain: the file is served as it is.
        ("file", "guide/install.md", "guide/install.md"),
        ("file", "guide/index.md", "guide/index.md"),
        # auto (the default): .rst as Sphinx, .adoc as Asciidoctor's .html, the rest clean.
        ("auto", "guide/install.rst", "guide/install.html"),
        ("auto", "guide/install.adoc", "guide/install.html"),
        ("auto", "guide/install.asciidoc", "guide/install.html"),
        ("auto", "guide/install.md", "guide/install"),
        ("auto", "guide/index.md", "guide/"),
        # Pages that are published as they are, whatever the generator.
        ("mkdocs", "reference/api.html", "reference/api.html"),
        ("sphinx", "manual.pdf", "manual.pdf"),
        ("clean", "notes/changes.txt", "notes/changes.txt"),
        # Suffixes in any case; a dot in a folder name is not a suffix.
        ("sphinx", "guide/INSTALL.RST", "guide/INSTALL.html"),
        ("mkdocs", "v1.2/notes", "v1.2/notes"),
        # Spaces and other characters a URL cannot hold are percent-encoded.
        ("mkdocs", "user guide/set up & run.md", "user%20guide/set%20up%20%26%20run/"),
        ("sphinx", "guía/instalación.rst", "gu%C3%ADa/instalaci%C3%B3n.html"),
    ],
)
def test_a_file_becomes_its_generators_page(style: str, path: str, expected: str) -> None:
    assert url(style, path) == BASE + expected


@pytest.mark.parametrize(
    ("style", "path", "heading", "anchor"),
    [
        # MkDocs (Python-Markdown toc): punctuation dropped, runs of spaces/hyphens one hyphen.
        ("mkdocs", "a.md", "Install on Linux (Debian)", "install-on-linux-debian"),
        ("mkdocs", "a.md", "Don't panic -- really", "dont-panic-really"),
        ("mkdocs", "a.md", "Using `pip` > The [CLI](cli.md)", "the-cli"),
        ("mkdocs", "a.md", "Café crème", "cafe-creme"),
        # Docusaurus / Hugo (github-slugger): each space one hyphen, no collapsing.
        ("clean", "a.md", "Install on Linux (Debian)", "install-on-linux-debian"),
        ("clean", "a.md", "Don't panic -- really", "dont-panic----really"),
        ("auto", "a.mdx", "Step 2: Configure", "step-2-configure"),
        # Sphinx (docutils make_id): any run of other characters is one hyphen, leading
        # digits dropped; MyST Markdown pages get the same ids.
        ("sphinx", "a.rst", "Don't panic", "don-t-panic"),
        ("sphinx", "a.rst", "2. Setting up ``pip``", "setting-up-pip"),
        ("auto", "a.rst", "Parent > Using the API", "using-the-api"),
        ("sphinx", "a.md", "Install (Linux)", "install-linux"),
        # Only the innermost heading of the path counts.
        ("mkdocs", "a.md", "Setup > Linux > Debian", "debian"),
    ],
)
def test_the_cited_heading_becomes_the_generators_anchor(
    style: str, path: str, heading: str, anchor: str
) -> None:
    assert url(style, path, heading).endswith("#" + anchor)


@pytest.mark.parametrize(
    ("style", "path"),
    [
        ("file", "a.md"),  # a file served raw has no heading ids
        ("mkdocs", "a.rst"),  # MkDocs does not build reStructuredText: unsure, no anchor
        ("mkdocs", "a.adoc"),  # MkDocs does not build AsciiDoc
        ("sphinx", "a.ipynb"),  # nbsphinx keeps the heading's case
        ("mkdocs", "a.html"),  # the page's own ids are unknown
        ("clean", "a.pdf"),
    ],
)
def test_no_anchor_where_the_rule_is_not_known(style: str, path: str) -> None:
    assert "#" not in url(style, path, "Some heading")


@pytest.mark.parametrize(
    ("path", "facts", "expected"),
    [
        # Number prefixes order the sidebar; Docusaurus drops them from the URL, in file and
        # folder names alike, but not a date's or a version's digits.
        ("docs/01-intro.md", PageFacts(), "docs/intro"),
        ("02-guides/03-setup.md", PageFacts(), "guides/setup"),
        ("02-guides/10_more.mdx", PageFacts(), "guides/more"),
        ("02-guides/index.md", PageFacts(), "guides/"),
        ("2021-01-notes.md", PageFacts(), "2021-01-notes"),
        ("7.0-upgrade.md", PageFacts(), "7.0-upgrade"),
        # Front matter: an absolute slug is the page's path from the docs' root, a relative
        # one is resolved from the file's folder; an id replaces the file's name.
        ("02-guides/03-setup.md", PageFacts(slug="/start/here"), "start/here"),
        ("02-guides/03-setup.md", PageFacts(slug="install"), "guides/install"),
        ("02-guides/03-setup.md", PageFacts(slug="../install"), "install"),
        ("02-guides/03-setup.md", PageFacts(id="first-steps"), "guides/first-steps"),
        ("02-guides/03-setup.md", PageFacts(slug="/x", id="y"), "x"),
        ("02-guides/index.md", PageFacts(slug="/"), ""),
        # A file named as its folder is the folder's page too (Docusaurus's category index),
        # compared as written; a top-level file is an ordinary page.
        ("02-guides/02-guides.md", PageFacts(), "guides/"),
        ("guides/Guides.md", PageFacts(), "guides/"),
        ("02-guides/guides.md", PageFacts(), "guides/guides"),
        ("guides.md", PageFacts(), "guides"),
        ("guides/guides.md", PageFacts(slug="setup"), "guides/setup"),
    ],
)
def test_docusaurus_names_a_page_without_number_prefixes_or_by_its_front_matter(
    path: str, facts: PageFacts, expected: str
) -> None:
    for style in ("clean", "auto"):
        assert DocsSite(BASE, DocsStyle(style)).url(path, facts=facts) == BASE + expected
    # MkDocs names pages by their files as they are.
    assert url("mkdocs", "02-guides/03-setup.md") == BASE + "02-guides/03-setup/"


@pytest.mark.parametrize(
    ("style", "path", "expected"),
    [
        # Antora: the ROOT module's pages are the component version's top-level pages (its
        # URL is the base); another module's pages sit under the module's name.
        ("auto", "modules/ROOT/pages/deploy.adoc", "deploy.html"),
        ("auto", "docs/modules/ROOT/pages/index.adoc", "index.html"),
        ("auto", "modules/admin/pages/user-management.adoc", "admin/user-management.html"),
        ("sphinx", "modules/admin/pages/sub/page.adoc", "admin/sub/page.html"),
        # A plain Asciidoctor tree keeps its folders.
        ("auto", "guide/install.adoc", "guide/install.html"),
        # "modules" without "pages" under it is an ordinary folder.
        ("auto", "modules/ROOT/partials/x.adoc", "modules/ROOT/partials/x.html"),
    ],
)
def test_antora_publishes_a_modules_pages_at_the_components_root(
    style: str, path: str, expected: str
) -> None:
    assert url(style, path) == BASE + expected


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Section Title", "_section_title"),
        ("Wiley & Sons, Inc.", "_wiley_sons_inc"),
        ("Set up: v1.2 - fast", "_set_up_v1_2_fast"),
        ("Parent > Using the API", "_using_the_api"),
    ],
)
def test_an_asciidoc_heading_links_to_asciidoctors_section_id(heading: str, anchor: str) -> None:
    assert url("auto", "modules/ROOT/pages/a.adoc", heading).endswith("#" + anchor)
    assert asciidoc_anchor(heading.rsplit(" > ", 1)[-1]) == anchor


@pytest.mark.parametrize(
    ("style", "path", "first", "second", "third"),
    [
        # github-slugger (Docusaurus, Hugo): -1, -2; Python-Markdown (MkDocs): _1, _2;
        # Asciidoctor: _2, _3; docutils (Sphinx): the page's next idN, repeats page-wide.
        ("clean", "a.md", "usage", "usage-1", "usage-2"),
        ("mkdocs", "a.md", "usage", "usage_1", "usage_2"),
        ("auto", "a.adoc", "_usage", "_usage_2", "_usage_3"),
        ("sphinx", "a.rst", "usage", "id1", "id2"),
    ],
)
def test_a_repeated_heading_links_to_its_own_numbered_anchor(
    style: str, path: str, first: str, second: str, third: str
) -> None:
    site = DocsSite(BASE, DocsStyle(style))
    anchors = [site.anchor(path, "Usage", PageFacts(repeat=n, repeated=n)) for n in range(3)]
    assert anchors == [first, second, third]


REPEATED = """---
id: flag-setup
---
# Flagpole setup

## Install

Run apt install flagpole on every host that needs the agent, then start the service and
check its log once.

## Usage

Run flagpole status to see whether the agent is connected to the control plane, and which
flags it holds.

## Server

The server keeps the flags; run it next to the database with its own config file and its
own port.

## Usage

Run flagpole-server migrate before the first start of a new server version, and keep a
backup of the database.
"""


async def test_a_cited_repeated_heading_and_front_matter_id_reach_the_link(
    tmp_path: Path,
) -> None:
    """Through ingest (the page's facts stored with its passages) to the offline answer."""
    docs = tmp_path / "docs" / "02-guides"
    docs.mkdir(parents=True)
    (docs / "03-setup.md").write_text(REPEATED, encoding="utf-8")
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([tmp_path / "docs"])
    agent = OfflineAgent(knowledge, links=DocsLinks.parse(BASE))
    server = await final_result(agent, "How do I migrate a new flagpole-server version?")
    assert server.sources[0].url_or_path == BASE + "guides/flag-setup#usage-1"
    agent = OfflineAgent(knowledge, links=DocsLinks.parse(BASE, "mkdocs"))
    client = await final_result(agent, "How do I see whether the agent is connected?")
    assert client.sources[0].url_or_path == BASE + "02-guides/03-setup/#usage"


@pytest.mark.parametrize(
    ("name", "page", "anchor"),
    [
        # The title is a heading with an id in Markdown (and a section in reST): a section
        # of the same name is its repeat. Asciidoctor's document title has no id.
        ("a.md", "# Usage\n\n{intro}\n\n## Usage\n\n{body}\n", "usage-1"),
        ("a.adoc", "= Usage\n\n{intro}\n\n== Usage\n\n{body}\n", "_usage"),
    ],
)
def test_the_pages_title_counts_as_a_heading_where_it_has_an_id(
    tmp_path: Path, name: str, page: str, anchor: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    intro = "The intro says what the usage tool is for and who runs it in production, daily."
    body = "Run the usage report with the --monthly flag to get one row per customer account."
    (docs / name).write_text(page.format(intro=intro, body=body), encoding="utf-8")
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([docs])
    [hit] = knowledge.search("usage report monthly flag customer", k=1)
    assert DocsLinks.parse(BASE).url_for(hit.source, hit.heading, hit.facts).endswith("#" + anchor)


async def test_a_table_built_before_page_facts_gets_them_on_the_next_ingest(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text(GUIDE, encoding="utf-8")
    (docs / "setup.md").write_text(REPEATED.split("## Server")[0], encoding="utf-8")
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([docs])
    knowledge._table().drop_columns([LINKS_COLUMN])  # as an older version built it
    old = KnowledgeBase.open(str(tmp_path / "kb"), None)
    [hit] = old.search("apt install flagpole Debian", k=1)
    assert hit.source == "install.md" and hit.facts == PageFacts()  # searchable as before
    (docs / "setup.md").write_text(REPEATED, encoding="utf-8")  # the page changed since
    report = old.ingest([docs])
    assert report.chunks_unchanged  # install.md's passage was not embedded again
    [hit] = KnowledgeBase.open(str(tmp_path / "kb"), None).search("flagpole-server migrate", k=1)
    assert hit.facts == PageFacts(id="flag-setup", repeat=1, repeated=1)


def test_a_passage_before_the_first_heading_links_the_page_alone() -> None:
    assert url("mkdocs", "guide/install.md", "") == BASE + "guide/install/"


def test_folders_may_be_published_at_their_own_bases_with_their_own_styles() -> None:
    links = DocsLinks.parse(
        "https://docs.example.com/latest, api/=https://api.example.com/ref/,"
        "api/internal/=https://internal.example.com",
        "mkdocs, api/=sphinx",
    )
    assert links.url_for("guide/a.md") == "https://docs.example.com/latest/guide/a/"
    assert links.url_for("api/client.rst") == "https://api.example.com/ref/client.html"
    # The longest folder wins, with the default style (mkdocs) when it names none.
    assert links.url_for("api/internal/x.md") == "https://internal.example.com/x/"
    # A cited URL (a crawled page) is already its page.
    assert links.url_for("https://site.example/a.html") is None
    # Without a bare URL, files outside the named folders keep their path.
    only_api = DocsLinks.parse("api/=https://api.example.com/")
    assert only_api.url_for("guide/a.md") is None
    assert not DocsLinks.parse("") and DocsLinks.parse(BASE)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SUPPORTBOT_DOCS_URL", "docs.example.com", "SUPPORTBOT_DOCS_URL must be an http(s) URL"),
        ("SUPPORTBOT_DOCS_URL", "ftp://docs.example.com/", "SUPPORTBOT_DOCS_URL must be an"),
        ("SUPPORTBOT_DOCS_URL", "https://", "SUPPORTBOT_DOCS_URL must be an http(s) URL"),
        ("SUPPORTBOT_DOCS_URL", "api/=/docs/api", "SUPPORTBOT_DOCS_URL must be an http(s) URL"),
        ("SUPPORTBOT_DOCS_URL", "https://u:pw@docs.example.com/", "SUPPORTBOT_DOCS_URL must not"),
        ("SUPPORTBOT_DOCS_URL", "https://docs.example.com/?v=2", "SUPPORTBOT_DOCS_URL must be a"),
        ("SUPPORTBOT_DOCS_URL", "=https://docs.example.com/", "SUPPORTBOT_DOCS_URL has an empty"),
        ("SUPPORTBOT_DOCS_URL_STYLE", "jekyll", "SUPPORTBOT_DOCS_URL_STYLE must be one of"),
        ("SUPPORTBOT_DOCS_URL_STYLE", "api/=sphinx", "SUPPORTBOT_DOCS_URL_STYLE names folder"),
    ],
)
def test_a_bad_docs_url_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("SUPPORTBOT_DOCS_URL", BASE)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_a_process_with_a_bad_docs_url_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPPORTBOT_", "SLACK_"))}
    env.update(SUPPORTBOT_DOCS_URL="docs.example.com", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SUPPORTBOT_DOCS_URL must be an http(s) URL" in lines[0]


# ---- the core: where a knowledge-base hit becomes a Source ----------------------------------

GUIDE = "# Installing\n\n## On Linux (Debian)\n\nRun apt install flagpole to install the agent.\n"
LEARNED = (
    "# How do I move a workspace?\n\n## Answered by the team on 2026-01-05\n\n"
    "**Question:** How do I move a workspace?\n\nOpen Admin and choose Transfer workspace.\n"
)
CRAWLED = "<html><body><h1>Webhooks</h1><h2>Retries</h2><p>Webhook deliveries are retried "
CRAWLED += "five times over an hour.</p></body></html>"


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    """Three kinds of source: a docs folder, an approved learned answer, a crawled page."""
    docs = tmp_path / "docs"
    (docs / "user guide").mkdir(parents=True)
    (docs / "user guide" / "install.md").write_text(GUIDE, encoding="utf-8")
    learned_root = tmp_path / "learned_docs"
    (learned_root / "learned").mkdir(parents=True)
    (learned_root / "learned" / "1-how-do-i-move-a-workspace.md").write_text(LEARNED, "utf-8")
    page = tmp_path / "fetched" / "webhooks.html"
    page.parent.mkdir()
    page.write_text(CRAWLED, encoding="utf-8")
    site_url = "https://site.example/guide/webhooks.html"
    site = FetchedPages("https://site.example/guide/", [FoundFile(page, site_url, fetched=True)])
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([docs, learned_root, site])
    return knowledge


@pytest.mark.parametrize(
    ("heading", "words", "anchor"),
    [
        ("Install the agent {#setup}", "Install the agent", "setup"),
        ("Install the agent { #setup .wide }", "Install the agent", "setup"),
        ("Install the agent {: #setup }", "Install the agent", "setup"),
        ("Install the agent {.wide}", "Install the agent", ""),
        ("Use {name} in templates", "Use {name} in templates", ""),  # words, not attributes
        ("{#only-attributes}", "{#only-attributes}", ""),
    ],
)
def test_a_markdown_headings_attribute_list_is_its_id_not_its_words(
    heading: str, words: str, anchor: str
) -> None:
    assert heading_attributes(heading) == (words, anchor)


EXPLICIT_IDS = """# Agent guide

## Install the agent {#setup}

Run apt install flagpole-agent on each host, then enable the flagpole-agent service with
systemctl and check its log once: the first start registers the host with the control plane,
which takes a few seconds on a new host and may need the proxy settings of your network.

## Usage { #usage-daily .wide }

Run flagpole status every morning to see which flags the agent holds right now, whether it
is connected to the control plane, and when it last fetched a new set of flags from it; add
--verbose to list each flag with the rule that turned it on for this host.
"""


@pytest.mark.parametrize(
    ("style", "page"), [("clean", "agent"), ("mkdocs", "agent/"), ("sphinx", "agent.html")]
)
async def test_a_heading_given_an_id_is_cited_by_it_and_shown_without_it(
    tmp_path: Path, style: str, page: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "agent.md").write_text(EXPLICIT_IDS, encoding="utf-8")
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([docs])
    agent = OfflineAgent(knowledge, links=DocsLinks.parse(BASE, style))
    install = (await final_result(agent, "How do I install flagpole-agent on a host?")).sources[0]
    assert (install.heading, install.url_or_path) == ("Install the agent", f"{BASE}{page}#setup")
    usage = (await final_result(agent, "Which flags does the agent hold right now?")).sources[0]
    assert (usage.heading, usage.url_or_path) == ("Usage", f"{BASE}{page}#usage-daily")


EXPLICIT_ADOC_IDS = """= Agent guide

[[setup]]
== Install the agent

Run apt install flagpole-agent on each host, then enable the flagpole-agent service with
systemctl and check its log once: the first start registers the host with the control plane,
which takes a few seconds on a new host and may need the proxy settings of your network.

[#usage-daily.wide]
== Usage

Run flagpole status every morning to see which flags the agent holds right now, whether it
is connected to the control plane, and when it last fetched a new set of flags from it; add
--verbose to list each flag with the rule that turned it on for this host.
"""


async def test_an_asciidoc_section_given_an_id_is_cited_by_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "agent.adoc").write_text(EXPLICIT_ADOC_IDS, encoding="utf-8")
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([docs])
    agent = OfflineAgent(knowledge, links=DocsLinks.parse(BASE))
    install = (await final_result(agent, "How do I install flagpole-agent on a host?")).sources[0]
    assert (install.heading, install.url_or_path) == (
        "Install the agent",
        BASE + "agent.html#setup",
    )
    usage = (await final_result(agent, "Which flags does the agent hold right now?")).sources[0]
    assert (usage.heading, usage.url_or_path) == ("Usage", BASE + "agent.html#usage-daily")


# Heading ids as generators write them: Sphinx (the section's id; the "¶" permalink is
# chrome), MkDocs (the heading's own id), a permalink without a class (its target).
CRAWLED_WITH_IDS = """<html><head><title>Webhooks</title></head><body><main>
<h1>Webhooks</h1>
<section id="delivery-retries">
<h2>Delivery retries<a class="headerlink" href="#delivery-retries">¶</a></h2>
<p>Webhook deliveries are retried five times over an hour with a growing delay.</p></section>
<h2 id="signing-secret">Signing secret</h2>
<p>Each delivery carries an HMAC signature made with the endpoint's signing secret.</p>
<h2>Timeouts <a href="#delivery-timeouts">#</a></h2>
<p>A delivery that gets no answer within ten seconds counts as failed and is retried.</p>
<h2>Event types</h2>
<p>Subscriptions choose event types such as invoice.paid and customer.deleted for delivery.</p>
</main></body></html>"""


@pytest.mark.parametrize(
    ("question", "heading", "anchor"),
    [
        ("How many times are webhook deliveries retried?", "Delivery retries", "#delivery-retries"),
        ("How is the HMAC signature of a delivery made?", "Signing secret", "#signing-secret"),
        ("How long until a delivery counts as failed?", "Timeouts", "#delivery-timeouts"),
        ("Which event types can subscriptions choose?", "Event types", ""),
    ],
)
async def test_a_crawled_page_is_cited_at_the_section_its_heading_names(
    tmp_path: Path, question: str, heading: str, anchor: str
) -> None:
    """Without SUPPORTBOT_DOCS_URL too: the page's own ids are its published anchors."""
    page = tmp_path / "fetched" / "webhooks.html"
    page.parent.mkdir()
    page.write_text(CRAWLED_WITH_IDS, encoding="utf-8")
    url = "https://site.example/guide/webhooks.html"
    site = FetchedPages("https://site.example/guide/", [FoundFile(page, url, fetched=True)])
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([site])
    for links in (None, DocsLinks.parse(BASE)):
        source = (await final_result(OfflineAgent(knowledge, links=links), question)).sources[0]
        assert (source.heading, source.url_or_path) == (heading, url + anchor)


async def test_a_cited_docs_file_links_to_its_page_and_heading(kb: KnowledgeBase) -> None:
    agent = OfflineAgent(kb, links=load_settings(docs_url=BASE, docs_url_style="mkdocs").docs_links)
    result = await final_result(agent, "How do I install the agent on Linux?")
    source = result.sources[0]
    assert source.url_or_path == BASE + "user%20guide/install/#on-linux-debian"
    assert source.title == "Installing" and source.heading == "On Linux (Debian)"
    # What the answer's metadata records (and kb search --json reports) is the stored source.
    assert result.tool_metadata["sources"][0]["source"] == "user guide/install.md"


async def test_learned_answers_and_crawled_pages_keep_their_citation(kb: KnowledgeBase) -> None:
    agent = OfflineAgent(kb, links=DocsLinks.parse(BASE))
    learned = await final_result(agent, "How do I move a workspace?")
    assert learned.sources[0].url_or_path == "learned/1-how-do-i-move-a-workspace.md"
    assert learned.sources[0].heading == "Answered by the team on 2026-01-05"
    crawled = await final_result(agent, "How many times are webhook deliveries retried?")
    assert crawled.sources[0].url_or_path == "https://site.example/guide/webhooks.html"


async def test_refusal_leads_link_to_their_pages_too(kb: KnowledgeBase) -> None:
    agent = OfflineAgent(kb, links=DocsLinks.parse(BASE, "file"))
    result = await final_result(agent, "Can I install the agent on Windows with chocolatey?")
    assert result.kind.value == "no_answer"
    assert BASE + "user%20guide/install.md" in [s.url_or_path for s in result.related]


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    """Run the real command line in-process; its stdout parsed as JSON."""
    with contextlib.suppress(SystemExit):
        main(argv)
    return json.loads(capsys.readouterr().out)


def test_kb_search_json_keeps_the_stored_source_and_adds_the_page(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = cli_env / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "install.md").write_text(GUIDE, encoding="utf-8")
    with contextlib.suppress(SystemExit):
        main(["ingest", str(docs)])
    capsys.readouterr()
    question = ["kb", "search", "install the agent on Linux", "--json"]
    [before] = cli_json(question, capsys)  # type: ignore[misc]
    assert "url" not in before  # without the setting: exactly the documented keys
    monkeypatch.setenv("SUPPORTBOT_DOCS_URL", BASE)
    monkeypatch.setenv("SUPPORTBOT_DOCS_URL_STYLE", "mkdocs")
    [hit] = cli_json(question, capsys)  # type: ignore[misc]
    assert hit["source"] == "guide/install.md"
    assert hit["url"] == BASE + "guide/install/#on-linux-debian"


async def test_the_model_reads_the_published_page_of_each_passage(
    sqlite_db: Database, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Its prose can link the page; citations stay numbers mapped to stored passages."""
    docs = tmp_path / "docs"
    (docs / "01-guide").mkdir(parents=True)
    (docs / "01-guide" / "02-install.md").write_text(GUIDE, encoding="utf-8")
    knowledge = KnowledgeBase.open(str(tmp_path / "kb"), None)
    knowledge.ingest([docs])
    results = []
    for links in (None, DocsLinks.parse(BASE)):
        fake_openai.requests.clear()
        fake_openai.queue(
            Turn(tool_calls=[ToolCall("search_knowledge_base", {"query": "install Linux"})]),
            Turn(content="Run apt install flagpole [1]."),
        )
        agent = openai_agent(knowledge, fake_openai)
        agent.links = links or DocsLinks()
        reply = await responder(sqlite_db, agent).handle(message("Install on Linux?"))
        await agent.aclose()
        results.append(fake_openai.requests[-1]["messages"][-1]["content"])
        assert reply.sources[0].url_or_path == (
            BASE + "guide/install#on-linux-debian" if links else "01-guide/02-install.md"
        )
    without, with_links = results
    assert "[1] Installing › On Linux (Debian) (01-guide/02-install.md)\n" in without
    assert "Page:" not in without
    assert (
        "[1] Installing › On Linux (Debian) (01-guide/02-install.md)\n"
        f"Page: {BASE}guide/install#on-linux-debian\nRun apt install flagpole" in with_links
    )


async def test_without_the_setting_citations_are_paths(kb: KnowledgeBase) -> None:
    result = await final_result(OfflineAgent(kb), "How do I install the agent on Linux?")
    assert result.sources[0].url_or_path == "user guide/install.md"


# ---- end to end: a clickable citation on each platform -------------------------------------


@pytest.mark.timeout(60)
async def test_a_slack_answer_links_its_source_to_the_published_page(
    api: FakeSlackAPI, tmp_path: Path, sqlite_db: Database, sqlite_url: str
) -> None:
    """Through the real bolt app and slack_sdk against the fake Slack (offline answerer)."""
    settings = slack_settings(
        sqlite_url, build_slack_kb(tmp_path), api, docs_url=BASE, docs_url_style="mkdocs"
    )
    async with running_harness(api, settings, db=sqlite_db) as harness:
        async with harness.sender() as sender:
            mention = app_mention(text=f"<@{SLACK_BOT}> how do I reset my password?")
            assert (await sender.event(mention)).status == 200
        await api.wait_for(lambda: [m for m in api.posted(SLACK_CHANNEL) if not m.streaming])
        await harness.bot.wait_idle()
    (answer,) = api.posted(SLACK_CHANNEL)
    (block,) = [b for b in answer.blocks if b.get("block_id") == "sb_sources"]
    links = [element["text"] for element in block["elements"][1:]]
    page = BASE + "passwords/#resetting-your-password"
    assert links[0] == f"<{page}|Passwords › Resetting your password>"


@pytest.mark.timeout(60)
async def test_a_discord_answer_links_its_source_to_the_published_page(
    world: DiscordWorld,
    kb_uri: str,
    sqlite_db: Database,
    sqlite_url: str,
    fake_openai: FakeOpenAI,
) -> None:
    """Through the real discord.py client against the fake Discord (the model agent)."""
    settings = make_settings(
        world, sqlite_url, kb_uri, docs_url=BASE, **model_overrides(fake_openai)
    )
    async with running_bot(world, settings, sqlite_db):
        question = await world.say("How do I reset my password?", mention=True)
        answer = (await world.bot_messages(question["id"]))[0]
    field = answer["embeds"][0]["fields"][0]
    page = BASE + "passwords#reset-your-password"  # auto: a Markdown page's clean URL
    assert field["value"].startswith(f"[Passwords › Reset your password]({page})\n")
