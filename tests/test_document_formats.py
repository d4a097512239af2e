"""AsciiDoc pages and Jupyter notebooks are documentation too: they are read into sections and
passages like Markdown, searched through a real LanceDB table, and a broken notebook is skipped
with its reason while the rest of the folder is ingested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.documents import chunk_document, read_document
from storage.knowledge import KnowledgeBase
from tests.knowledge_helpers import write_docs
from tests.test_knowledge_ingest import run_cli

ASCIIDOC_PAGE = """\
// Antora page: the comment, the author line and attribute entries are not text
= Replication Guide
Jane Writer <jane@example.com>
v2.1, 2026-10-01
:description: How the kestrel replicator copies ledgers between regions.
:toc: left
:product: Kestrel

////
A block comment that mentions the word zeppelin.
////

== Setting up replicas

include::partial$setup-note.adoc[]

The {product} replicator needs a link:https://example.com/keys[signed region key] before it
starts; see <<failover,the failover section>>.

[source,yaml]
.replicator.yaml
----
replicas: 3

regions: [eu, us]
----

=== Tuning the batch size

NOTE: Batches above 4096 records are split. Smaller batches lower the replication lag but cost
more round trips between the regions.

[[failover]]
== Failover

****
The standby region takes over after three missed heartbeats. Writes made in the primary
region during the last second before the failover may be replayed.
****
"""


def _notebook(cells: list[dict], language: str = "python") -> str:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"language_info": {"name": language}},
            "cells": cells,
        }
    )


NOTEBOOK = _notebook(
    [
        {"cell_type": "markdown", "source": ["# Quickstart\n", "\n", "## Loading a ledger\n"]},
        {"cell_type": "markdown", "source": "Open the ledger with the marmot client first."},
        {
            "cell_type": "code",
            "source": ["client = marmot.connect()\n", "ledger = client.open('sales')"],
            "outputs": [{"output_type": "stream", "text": ["platypus output\n"]}],
        },
        {"cell_type": "raw", "source": "raw cells are not rendered"},
    ]
)


def test_an_asciidoc_page_becomes_sections_with_whole_code_blocks(tmp_path: Path) -> None:
    path = write_docs(tmp_path, {"replication.adoc": ASCIIDOC_PAGE}) / "replication.adoc"
    chunks = chunk_document(read_document(path), source="replication.adoc")
    text = "\n".join(chunk.text for chunk in chunks)

    assert {chunk.title for chunk in chunks} == {"Replication Guide"}
    # The page's own summary opens it, and headings nest as in Markdown.
    assert chunks[0].text.startswith("How the kestrel replicator copies ledgers")
    assert [chunk.heading for chunk in chunks] == [
        "",
        "Setting up replicas",
        "Setting up replicas > Tuning the batch size",
        "Failover",
    ]
    # A listing block is one fenced block in its language, blank line inside kept.
    assert "```yaml\nreplicas: 3\n\nregions: [eu, us]\n```" in text
    # Macros keep the words a reader sees; attribute references resolve.
    assert "The Kestrel replicator needs a signed region key before it" in text
    assert "see the failover section." in text
    assert "replicator.yaml" in text and "NOTE: Batches above 4096 records are split." in text
    assert "The standby region takes over after three missed heartbeats." in text
    # What carries no words for a reader is gone.
    for dropped in ("Jane Writer", "zeppelin", ":toc:", "include::", "[source", "[[failover]]"):
        assert dropped not in text, dropped
    assert "****" not in text and "----" not in text and "////" not in text


def test_a_notebook_becomes_its_prose_and_code_without_outputs(tmp_path: Path) -> None:
    path = write_docs(tmp_path, {"quickstart.ipynb": NOTEBOOK}) / "quickstart.ipynb"
    chunks = chunk_document(read_document(path), source="quickstart.ipynb")

    assert [(chunk.title, chunk.heading) for chunk in chunks] == [
        ("Quickstart", "Loading a ledger")
    ]
    assert chunks[0].text == (
        "Open the ledger with the marmot client first.\n\n"
        "```python\nclient = marmot.connect()\nledger = client.open('sales')\n```"
    )


def test_ingest_searches_asciidoc_and_notebooks_and_skips_a_broken_notebook(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = write_docs(
        cli_env / "docs",
        {
            "guides/replication.adoc": ASCIIDOC_PAGE,
            "tutorials/quickstart.ipynb": NOTEBOOK,
            "tutorials/half-saved.ipynb": NOTEBOOK[: len(NOTEBOOK) // 2],
            "tutorials/not-a-notebook.ipynb": json.dumps({"worksheets": []}),
        },
    )
    code, out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0
    assert "Ingested 2 file(s)" in out and "2 file(s) skipped" in out
    assert "half-saved.ipynb" in err and "not valid notebook JSON" in err
    assert "not-a-notebook.ipynb" in err and "not a Jupyter notebook" in err

    kb = KnowledgeBase.open(str(cli_env / "cli-kb"), None)
    hit = kb.search("how many missed heartbeats before the standby region takes over", k=1)[0]
    assert (hit.source, hit.title, hit.heading) == (
        "guides/replication.adoc",
        "Replication Guide",
        "Failover",
    )
    hit = kb.search("how do I open a ledger with the marmot client", k=1)[0]
    assert hit.source == "tutorials/quickstart.ipynb" and "marmot.connect()" in hit.text
    assert not kb.search("platypus output", k=3)  # outputs are not documentation


MDX_PAGE = """\
---
title: Installing Gizmo
---
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

<!-- TODO(ops): the staging password is hunter2, rotate before launch -->

## Requirements

:::note
Gizmo needs Node 18 or newer on every build agent.
:::

:::tip Faster builds
Cache the gizmo folder between pipeline runs to save a minute per build.
:::

<Tabs>
<TabItem value="npm" label="npm">

```bash
npm install gizmo
<!-- a comment inside code is code -->
```

</TabItem>
</Tabs>

Run the installer <!-- inline author note --> once per agent.
<!--
## Old section
The legacy wombat installer is gone.
-->
{% include footer.html %}
"""


def page_chunks(folder: Path, name: str, page: str) -> tuple[list, str]:
    """One page written to ``folder``, read and chunked: its chunks and their text."""
    path = write_docs(folder, {name: page}) / name
    chunks = chunk_document(read_document(path), source=name)
    return chunks, "\n".join(chunk.text for chunk in chunks)


def test_markup_a_reader_never_sees_is_not_indexed(tmp_path: Path) -> None:
    chunks, text = page_chunks(tmp_path, "install.mdx", MDX_PAGE)

    # The page starts with its first visible words, not with module imports.
    assert [chunk.heading for chunk in chunks] == ["Requirements"]
    assert text.startswith("Gizmo needs Node 18 or newer on every build agent.")
    assert "Faster builds\nCache the gizmo folder" in text  # an admonition keeps its title
    assert "```bash\nnpm install gizmo\n<!-- a comment inside code is code -->\n```" in text
    assert "Run the installer  once per agent." in text
    for hidden in ("hunter2", "TODO", "inline author note", "wombat", "Old section"):
        assert hidden not in text, hidden
    for markup in ("import Tabs", "<Tabs>", "</TabItem>", ":::", "{% include"):
        assert markup not in text, markup


RST_PAGE = """\
Deploying
=========

.. _deploy-label:

.. TODO(ops): the staging password is hunter2; this comment
   goes on over an indented line.

Rollouts
--------

.. _Kubernetes: https://kubernetes.io

    A block quote right after a target is text.

..
   An empty comment hides this whole block about the wombat cluster.

.. note::

   Rollouts pause after 3 failed health checks in a row.

See :ref:`deploy-label` for the rollback steps.
"""


def test_rst_comments_and_link_targets_are_not_indexed(tmp_path: Path) -> None:
    chunks, text = page_chunks(tmp_path, "deploy.rst", RST_PAGE)

    assert [chunk.heading for chunk in chunks] == ["Rollouts"]
    assert text.startswith("A block quote right after a target is text.")
    assert "Rollouts pause after 3 failed health checks in a row." in text
    assert "See deploy-label for the rollback steps." in text
    for hidden in ("hunter2", "indented line", "wombat", "_deploy-label:", "kubernetes.io"):
        assert hidden not in text, hidden


def test_code_that_looks_like_markup_is_kept(tmp_path: Path) -> None:
    """Template code in an HTML page's <pre> (not fenced once extracted) and in an indented
    Markdown code block is documentation, not the page's own markup."""
    docs = write_docs(
        tmp_path,
        {
            "templates.html": (
                "<html><body><h1>Templates</h1><p>The base layout of every blog page:</p><pre>"
                "&lt;!doctype html&gt;\n{% block content %}{% endblock %}\n&lt;div&gt;\n"
                "&lt;!-- header --&gt;</pre></body></html>"
            ),
            "layout.md": (
                "# Layout\n\nThe base layout of every blog page:\n\n"
                "    {% block content %}\n    <div>\n    <!-- header -->\n"
            ),
        },
    )
    for name in ("templates.html", "layout.md"):
        text = "\n".join(c.text for c in chunk_document(read_document(docs / name), source=name))
        for code in ("{% block content %}", "<div>", "<!-- header -->"):
            assert code in text, (name, code)


def test_a_docs_generators_by_products_are_not_read_as_pages(tmp_path: Path) -> None:
    """A Sphinx build folder holds a copy of every page's source and an index of every term;
    read as documents they compete with the pages themselves."""
    page = "<html><body><div role='main'><h1>Config</h1><p>{}</p></div></body></html>"
    docs = write_docs(
        tmp_path / "html",
        {
            "config.html": page.format("SECRET_KEY signs the session cookie."),
            "_sources/config.rst.txt": "Config\n======\n\nSECRET_KEY signs the session cookie.\n",
            "_modules/flask/app.html": page.format("def secret_key(self): ..."),
            "genindex.html": page.format("SECRET_KEY (config value)"),
            "search.html": page.format("Please activate JavaScript to enable search."),
            "guide/404.html": page.format("Page not found."),
        },
    )
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    report = kb.ingest([docs])
    assert report.files == 1
    assert sorted(str(s.path.relative_to(docs)) for s in report.skipped) == [
        "_modules/flask/app.html",
        "_sources/config.rst.txt",
        "genindex.html",
        "guide/404.html",
        "search.html",
    ]
    assert {s.reason for s in report.skipped} == {"a docs generator's by-product, not a page"}
    assert [hit.source for hit in kb.search("SECRET_KEY session cookie", k=5)] == ["config.html"]


def test_a_list_of_links_is_navigation_not_content() -> None:
    """A hub page's table of contents holds every child page's title; read as text, the hub
    outranks the pages it links to. A list that says something keeps its words."""
    from storage.documents import parse_html

    page = (
        "<html><body><div role='main'><h1>Patterns</h1><p>Recipes for larger apps.</p>"
        "<ul><li><a href='factories.html'>Application factories</a></li>"
        "<li><a href='blueprints.html'>Modular apps with blueprints</a></li>"
        "<li><a href='celery.html'>Background tasks with Celery</a></li></ul>"
        "<h2>Development</h2><ul><li><a href='completion.html'>Shell completion</a></li></ul>"
        "<ul><li>Blueprints need <a href='reg.html'>registering</a> on the app.</li>"
        "<li>Factories take a config object.</li><li>Celery needs a broker.</li></ul>"
        "</div></body></html>"
    )
    text = "\n".join(
        chunk.text for chunk in chunk_document(parse_html(page, fallback_title="x"), source="p")
    )
    assert "Application factories" not in text and "Background tasks with Celery" not in text
    assert "Shell completion" not in text
    assert "Blueprints need registering on the app." in text and "Celery needs a broker." in text


MYST_PAGE = """\
# Advanced Patterns

```{currentmodule} kestrel
```

```{contents}
:depth: 1
:local: true
```

(callbacks-label)=

## Callbacks

A callback is set with {func}`~kestrel.Option.callback` and reads the
{class}`Context`; see {ref}`the evaluation order <callback-evaluation-order>`, which is
{ref}`explained in
the concepts page <concepts>`, and {pep}`8`.

```{versionchanged} 2.0
```

```{note}
Callbacks run after type conversion, for every source.
```

```{admonition} Eager options
:class: tip

   An eager option is handled before the others.
```

Here is an example:

```{eval-rst}
.. click:example::

    @kestrel.command()
    @kestrel.option('--version', is_flag=True, is_eager=True)
    def hello():
        kestrel.echo('Hello')

# And what it looks like:

.. click:run::

    invoke(hello, args=['--version'])

Use :func:`kestrel.echo` with ``err=True`` for errors.

.. tabs::

    .. group-tab:: Bash

        Add this to ``~/.bashrc``:

        .. code-block:: bash

            eval "$(kestrel completion bash)"
```

```{code-block} toml
[tool.kestrel]
eager = true
```

Showing a literal template: `{name}` and ```{r}``` stay as they are.

```{r}
summary(cars)
```
"""


def test_myst_markup_is_read_as_the_rendered_page(tmp_path: Path) -> None:
    """A Sphinx MyST page (Click's docs): roles as the words Sphinx shows, admonitions as
    prose, code directives and eval-rst examples as fenced code, and the directives that
    show nothing (currentmodule, contents, click:run) and (label)= targets gone."""
    chunks, text = page_chunks(tmp_path, "advanced.md", MYST_PAGE)

    assert [chunk.heading for chunk in chunks] == ["Callbacks"]  # "# And what..." is text
    assert "\n\nAnd what it looks like:\n" in text
    assert text.startswith("A callback is set with `callback` and reads the\n`Context`; see")
    assert "see the evaluation order, which is\nexplained in\nthe concepts page, and PEP 8." in text
    assert "Changed in version 2.0.\n\nCallbacks run after type conversion" in text
    assert "Eager options\n\nAn eager option is handled before the others." in text
    assert (
        "```python\n@kestrel.command()\n@kestrel.option('--version', is_flag=True, is_eager=True)"
        "\ndef hello():\n    kestrel.echo('Hello')\n```" in text
    )
    assert "Use `kestrel.echo` with `err=True` for errors." in text
    assert "```toml\n[tool.kestrel]\neager = true\n```" in text
    assert (
        'Bash:\n\nAdd this to `~/.bashrc`:\n\n```bash\neval "$(kestrel completion bash)"\n```'
        in text
    )
    assert "`{name}` and ```{r}``` stay as they are." in text
    assert "```r\nsummary(cars)\n```" in text
    for markup in (
        "{func}",
        "{class}",
        "{ref}",
        "{note}",
        "eval-rst",
        "click:",
        ":class:",
        "currentmodule",
        ":depth:",
        "callbacks-label",
        "invoke(hello",
        ":func:",
    ):
        assert markup not in text, markup


def test_a_theme_template_beside_the_docs_is_not_a_page(tmp_path: Path) -> None:
    """MkDocs' overrides/ (and Sphinx's _templates/) hold the theme's Jinja templates: read as
    a page, "{% set class = ... %}" became a searchable passage. A page that shows template
    code in <pre> is still a page."""
    docs = write_docs(
        tmp_path / "docs",
        {
            "overrides/partials/nav.html": (
                '{% import "partials/nav-item.html" as item with context %}\n'
                '<!-- Main navigation -->\n{% set class = "md-nav md-nav--primary" %}\n'
                '<nav class="{{ class }}" aria-label="{{ lang.t(\'nav.title\') }}">\n'
                "  {% for nav_item in nav %}{{ item.render(nav_item, path, 1) }}{% endfor %}\n"
                "</nav>\n"
            ),
            "templates.html": (
                "<html><body><h1>Templates</h1><p>The base layout of every blog page:</p><pre>"
                "{% extends 'base.html' %}\n{% block content %}{% endblock %}</pre></body></html>"
            ),
            "guide.md": "# Guide\n\nThe navigation lists every page of the site.\n",
        },
    )
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    report = kb.ingest([docs])
    assert report.files == 2
    assert [(s.path.relative_to(docs).as_posix(), s.reason) for s in report.skipped] == [
        ("overrides/partials/nav.html", "a site template (Jinja or Liquid tags), not a page")
    ]
    assert {hit.source for hit in kb.search("navigation class", k=5)} <= {
        "guide.md",
        "templates.html",
    }


def test_mkdocs_admonitions_are_read_as_their_prose(tmp_path: Path) -> None:
    """MkDocs (Python-Markdown) admonitions: "!!! tip" opened the quote of its body, and the
    body, indented by four spaces, was kept as an indented block."""
    page = (
        "# Async\n\n## Clients\n\nUse an async client in async code.\n\n"
        "!!! tip\n    Use IPython to try this code interactively.\n\n"
        '!!! warning "Pool reuse"\n    Do not create a client inside a hot loop.\n\n'
        "    Share one client instead:\n\n    ```python\n    client = make_client()\n    ```\n\n"
        "Closing the client releases its connections.\n\n"
        "```text\n!!! tip\n    inside code it stays\n```\n"
    )
    _, text = page_chunks(tmp_path, "async.md", page)
    assert "Use an async client in async code.\n\nUse IPython to try this code" in text
    assert "Pool reuse\n\nDo not create a client inside a hot loop." in text
    assert "Share one client instead:\n\n```python\nclient = make_client()\n```" in text
    assert "```\n\nClosing the client releases its connections." in text
    assert "```text\n!!! tip\n    inside code it stays\n```" in text
    assert text.count("!!!") == 1


@pytest.mark.parametrize(
    ("given", "anchor"),
    [("a:b.c-d_1", "a:b.c-d_1"), ("a/b", ""), ("install.role", "install.role")],
)
def test_a_heading_id_reads_the_same_from_markdown_asciidoc_and_html(
    tmp_path: Path, given: str, anchor: str
) -> None:
    # One character class for a heading's own id, whichever way a page gives it (an id the
    # Markdown reader would not keep gives no anchor anywhere).
    pages = {
        "page.md": f"# Guide\n\n## Install {{#{given}}}\n\nRun the installer.\n",
        "page.adoc": f"= Guide\n\n[[{given}]]\n== Install\n\nRun the installer.\n",
        "page.html": f'<html><body><h1>Guide</h1><h2 id="{given}">Install</h2>'
        "<p>Run the installer.</p></body></html>",
    }
    for name, text in pages.items():
        (tmp_path / name).write_text(text)
        doc = read_document(tmp_path / name)
        [install] = [s for s in doc.sections if s.path[-1:] and s.path[-1].startswith("Install")]
        assert install.anchor == anchor, name


def test_an_asciidoc_shorthand_id_ends_where_its_role_begins(tmp_path: Path) -> None:
    page = tmp_path / "page.adoc"
    page.write_text("= Guide\n\n[#install.wide%header]\n== Install\n\nRun the installer.\n")
    [install] = [s for s in read_document(page).sections if s.path[-1:] == ["Install"]]
    assert install.anchor == "install"
