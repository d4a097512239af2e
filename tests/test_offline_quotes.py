"""The offline answer quotes the code block or the steps its sentences introduce."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.slack.render import markdown_to_mrkdwn
from bot.agent import AgentRequest, AgentResult, OfflineAgent
from bot.messages import ReplyKind
from bot.quotes import MAX_CODE_LINES, quote_markdown
from storage.documents import chunk_document, parse_markdown, parse_rst
from storage.knowledge import KnowledgeBase
from storage.passages import CodeBlock, own_lines, sentences_of, sentences_with_code
from tests.knowledge_helpers import load_local_embedder

BACKUP_DOC = """# Maintenance

## Snapshot backup

Snapshotting the cluster on a regular basis serves as a durable backup of the keyspace. By
taking periodic snapshots of a member's database, a cluster can be recovered to a known good
state.

A snapshot is taken with `vaultctl`:

```sh
$ vaultctl snapshot save backup.db
$ vaultctl snapshot status backup.db
```

## Adding a member

Adding a member safely is recommended while the cluster is healthy. This is a three step process:

1. Register the new member with `vaultctl member add`.
2. Start the new member with the updated member list.
3. Wait until the new member has caught up.

Afterwards the member serves reads.
"""

PASSAGE = """Install the client first. Then connect:

```python
client = connect("db://host")
client.ping()
```

Pings are cheap."""


def test_code_is_attached_to_the_sentence_it_follows() -> None:
    pairs = sentences_with_code(PASSAGE)
    assert [s for s, _ in pairs] == sentences_of(PASSAGE)
    assert sentences_of(PASSAGE) == [
        "Install the client first.",
        "Then connect:",
        "Pings are cheap.",
    ]
    assert pairs[0][1] is None and pairs[2][1] is None
    assert pairs[1][1] == CodeBlock("python", 'client = connect("db://host")\nclient.ping()')


def test_a_quote_shows_the_code_its_sentence_introduces() -> None:
    pairs = sentences_with_code(PASSAGE)
    # The chosen sentence is followed by the code.
    assert quote_markdown(pairs, [1]).endswith(
        '```python\nclient = connect("db://host")\nclient.ping()\n```'
    )
    # The next sentence only introduces the code (it ends with a colon): both come along.
    quote = quote_markdown(pairs, [0])
    assert quote.startswith("> Install the client first. Then connect:\n```python\n")
    # A quote that leads to no code stays a quote.
    assert quote_markdown(pairs, [2]) == "> Pings are cheap."


def test_long_code_is_cut_and_cannot_end_the_fence() -> None:
    body = "\n".join(f"line {i}" for i in range(40)) + "\n```"
    pairs = [("Run this:", CodeBlock("", body))]
    quote = quote_markdown(pairs, [0])
    lines = quote.split("\n")
    assert lines[0] == "> Run this:" and lines[1] == "```" and lines[-1] == "```"
    assert lines[-2] == "…" and len(lines) == MAX_CODE_LINES + 4
    assert quote.count("```") == 2


def test_a_quote_ending_with_a_colon_shows_the_steps() -> None:
    pairs = sentences_with_code(BACKUP_DOC.split("## Adding a member")[1])
    quote = quote_markdown(pairs, [0, 1])
    assert quote.split("\n> ")[1:] == [
        "Register the new member with `vaultctl member add`.",
        "Start the new member with the updated member list.",
        "Wait until the new member has caught up.",
    ]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "maintenance.md").write_text(BACKUP_DOC, encoding="utf-8")
    return folder


async def _offline_answer(kb: KnowledgeBase, question: str) -> AgentResult:
    result = None
    async for item in OfflineAgent(kb).run(AgentRequest(question=question)):
        if isinstance(item, AgentResult):
            result = item
    assert result is not None
    return result


@pytest.mark.parametrize("embedder", ["none", "local"])
async def test_offline_answer_to_how_do_i_carries_the_command(
    docs: Path, tmp_path: Path, embedder: str
) -> None:
    kb = KnowledgeBase.open(
        str(tmp_path / "kb"), load_local_embedder() if embedder == "local" else None
    )
    kb.ingest([docs])
    result = await _offline_answer(kb, "How do I take a snapshot backup?")
    assert result.kind is ReplyKind.ANSWER
    assert (
        "```sh\n$ vaultctl snapshot save backup.db\n$ vaultctl snapshot status backup.db\n```"
        in (result.text)
    )
    # Slack keeps it a code block (fences lose their language tag there).
    assert "```\n$ vaultctl snapshot save backup.db" in markdown_to_mrkdwn(result.text)


def test_reference_links_show_their_text() -> None:
    pairs = sentences_with_code("See the [design doc][design-learner] and [the API][] first.")
    assert quote_markdown(pairs, [0]) == "> See the design doc and the API first."


def test_a_wrapped_list_item_is_one_sentence_and_keeps_its_emphasis() -> None:
    """A list item wrapped onto the next line used to be cut into "...or `None` to always" and
    "allow.", and a list item's closing emphasis lost its ``*``."""
    passage = (
        "Limits define:\n\n"
        "- `max_keepalive_connections`, allowable keep-alive connections, or `None` to always\n"
        "allow. (Defaults 20)\n"
        "- `max_connections`, maximum number of connections.\n\n"
        "As well as these optional installs:\n\n"
        "* `h2` - HTTP/2 support. *(Optional, with `httpx[http2]`)*\n"
        "1. Register the member\n   with `vaultctl member add`.\n"
    )
    assert sentences_of(passage) == [
        "Limits define:",
        "`max_keepalive_connections`, allowable keep-alive connections, or `None` to always allow.",
        "(Defaults 20)",
        "`max_connections`, maximum number of connections.",
        "As well as these optional installs:",
        "`h2` - HTTP/2 support.",
        "*(Optional, with `httpx[http2]`)*",
        "Register the member with `vaultctl member add`.",
    ]


def test_each_code_block_follows_its_own_sentence() -> None:
    """Two sentences, each introducing its own example: the quote used to join the sentences
    and show only the first example, so a Digest question was shown the Basic example."""
    passage = (
        "To provide Basic credentials, pass a 2-tuple as the `auth` argument:\n\n"
        '```pycon\n>>> httpx.get(url, auth=("user", "pw"))\n```\n\n'
        "To provide Digest credentials, pass a `DigestAuth` object as `auth`:\n\n"
        '```pycon\n>>> httpx.get(url, auth=httpx.DigestAuth("user", "pw"))\n```\n\n'
        "Both work with clients too."
    )
    quote = quote_markdown(sentences_with_code(passage), [0, 1])
    assert quote == (
        "> To provide Basic credentials, pass a 2-tuple as the `auth` argument:\n"
        '```pycon\n>>> httpx.get(url, auth=("user", "pw"))\n```\n'
        "> To provide Digest credentials, pass a `DigestAuth` object as `auth`:\n"
        '```pycon\n>>> httpx.get(url, auth=httpx.DigestAuth("user", "pw"))\n```'
    )
    # A sentence after the last example is quoted after it, not before it.
    assert quote_markdown(sentences_with_code(passage), [1, 2]).endswith(
        '"pw"))\n```\n> Both work with clients too.'
    )


def test_an_abbreviation_does_not_end_a_sentence() -> None:
    """ "e.g. `content=...`" was cut into a sentence of its own, quoted as a fragment."""
    assert sentences_of(
        "If you need an explicit encoding, pass encoded bytes, e.g. `content=<str>.encode()`. "
        "Compare the defaults, i.e. UTF-8 here. Responses are guessed."
    ) == [
        "If you need an explicit encoding, pass encoded bytes, e.g. `content=<str>.encode()`.",
        "Compare the defaults, i.e. UTF-8 here.",
        "Responses are guessed.",
    ]


LIST_PAGES = {
    "retries.md": """# Retries

## Backoff

Retries can be tuned per client. The supported backoff modes are:
- linear
- exponential
- jittered

Pick one mode per client.
""",
    "retries.rst": """Retries
=======

Backoff
-------

Retries can be tuned per client. The supported backoff modes are:

* linear
* exponential
* jittered

Pick one mode per client.
""",
}


@pytest.mark.parametrize("name", sorted(LIST_PAGES))
def test_a_quote_keeps_a_list_apart_from_its_intro_and_what_follows(name: str) -> None:
    """A list's intro ran into its items, and the last item into the next sentence: "The
    supported backoff modes are: linear exponential" and "jittered Pick one mode"."""
    parse = parse_rst if name.endswith(".rst") else parse_markdown
    [chunk] = chunk_document(parse(LIST_PAGES[name], fallback_title="x"), source=name)
    pairs, own = sentences_with_code(chunk.text), own_lines(chunk.text)
    assert [s for s, _ in pairs][1:] == [
        "The supported backoff modes are:", "linear", "exponential", "jittered",
        "Pick one mode per client.",
    ]  # fmt: skip
    assert quote_markdown(pairs, [1, 2, 3], own) == (
        "> The supported backoff modes are:\n> linear\n> exponential"
    )
    assert quote_markdown(pairs, [4, 5], own) == "> jittered\n> Pick one mode per client."
    assert quote_markdown(pairs, [0, 1], own).startswith(
        "> Retries can be tuned per client. The supported backoff modes are:\n> linear\n"
    )


async def test_the_offline_answer_quotes_a_list_line_by_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "retries.md").write_text(LIST_PAGES["retries.md"], encoding="utf-8")
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([folder])
    result = await _offline_answer(kb, "Which backoff modes are supported for retries?")
    assert result.kind is ReplyKind.ANSWER
    assert "modes are:\n> linear\n> exponential" in result.text
    assert "are: linear" not in result.text and "exponential jittered" not in result.text
