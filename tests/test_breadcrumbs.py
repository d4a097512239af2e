"""Where a passage sits is shown with one separator on every surface users read: the console,
the offline answer, Slack and Discord sources, `supportbot kb search` and the passages the
model reads (and may copy into its answer)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from adapters.console import ConsoleAdapter
from adapters.discord.render import render_reply as discord_reply
from adapters.slack.render import render_reply as slack_reply
from bot.messages import Reply, Source
from bot.tools import format_passages
from storage.db import Database
from storage.knowledge import KnowledgeBase
from storage.passages import breadcrumb
from tests.core_support import responder

GUIDE = """# Deployment guide

Deployments go through the release pipeline described below.

## Servers

### Linux

On Linux, install the agent with `apt install supportbot-agent` and start the service with
systemd. The agent listens on port 8125 and needs outbound HTTPS to the collector.
"""


def test_breadcrumb_uses_one_separator_and_shows_the_title_once() -> None:
    assert breadcrumb("Guide", "Servers > Linux") == "Guide › Servers › Linux"
    assert breadcrumb("Guide", "Guide > Linux") == "Guide › Linux"
    assert breadcrumb("Guide", "") == "Guide"
    assert breadcrumb("", "Servers > Linux") == "Servers › Linux"


async def test_every_surface_shows_nested_headings_with_one_separator(
    sqlite_db: Database, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text(GUIDE, encoding="utf-8")
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([docs])
    hits = kb.search("How do I install the agent on Linux?", k=1)
    assert hits[0].heading == "Servers > Linux"  # the stored form is unchanged
    want = "Deployment guide › Servers › Linux"

    out = io.StringIO()
    exchange = await ConsoleAdapter(responder(sqlite_db, kb=kb), out=out).send(
        "How do I install the agent on Linux?"
    )
    assert exchange.reply is not None
    shown = out.getvalue()
    assert f"**{want}** [1]" in shown and f"[1] {want} (" in shown
    assert format_passages([(1, hits[0])]).startswith(f"[1] {want} (")

    source = Source(
        title="Deployment guide", url_or_path="https://d/deploy/", heading=hits[0].heading
    )
    slack = json.dumps(
        slack_reply(Reply(text="a", sources=(source,)))[0].blocks, ensure_ascii=False
    )
    assert f"|{want}>" in slack
    discord = json.dumps(
        discord_reply(Reply(text="a", sources=(source,)))[0].embeds, ensure_ascii=False
    )
    assert f"[{want}](https://d/deploy/)" in discord
    for text in (shown, slack, discord):
        assert " > " not in text and "&gt;" not in text
