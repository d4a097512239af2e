"""Per-channel settings: migration 0008, the repository, the CLI, and the core honouring them
without a restart (another process changes them; the next messages follow)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from bot import texts
from bot.agent import OfflineAgent
from bot.channels import ChannelSettings
from bot.memory import MemoryPolicy
from bot.messages import Author, ConversationKey, IncomingMessage, Platform, ReplyKind
from bot.responder import Responder
from storage import channel_settings, migrate
from storage.db import Database
from storage.knowledge import KnowledgeBase
from tests.cli_support import run_supportbot
from tests.test_answer_path import statements
from tests.test_migrations import execute, table_names

DOCS = {
    "billing/invoices.md": "# Invoices\n\n## Invoice emails\n\nInvoices are emailed on the first "
    "day of each month. The invoice lists every seat and the plan price.\n",
    "auth/passwords.md": "# Passwords\n\n## Reset\n\nTo reset your password open Settings and "
    "click Reset password. The invoice email address is not used for password resets.\n",
}


def build_kb(tmp_path: Path) -> KnowledgeBase:
    root = tmp_path / "docs"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.open(str(tmp_path / "kb"), None)
    kb.ingest([root])
    return kb


def post(text: str, *, channel: str = "C1", msg_id: str = "m1") -> IncomingMessage:
    return IncomingMessage(
        id=msg_id,
        conversation=ConversationKey(Platform.SLACK, "T1", channel, msg_id),
        author=Author("U1"),
        text=text,
        mentions_bot=True,
    )


def supportbot(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_supportbot(*args, cwd=cwd, env={"DATABASE_URL": database_url})


async def test_migration_0008_up_down_keeps_channel_rows(any_db_url: str) -> None:
    url = any_db_url
    await migrate.upgrade(url, "0005_slack_oauth")
    stamp = "2024-01-02 03:04:05" if not url.startswith("postgresql") else None
    await execute(
        url,
        "INSERT INTO channel_settings (platform, workspace_id, channel_id, auto_answer, "
        "ephemeral, knowledge_filter, updated_at) VALUES ('slack', 'T1', 'C1', true, false, "
        "'billing/', " + (":t" if stamp else "now()") + ")",
        {"t": stamp} if stamp else {},
    )
    await migrate.upgrade(url, "0008_ops")
    rows = await execute(
        url,
        "SELECT knowledge_filter, refusal_language, forum_tags, archive_on_resolve "
        "FROM channel_settings",
    )
    assert [tuple(r) for r in rows] == [("billing/", None, None, None)]
    assert "learned_answers" in await table_names(url)
    await migrate.upgrade(url)  # and the revisions after it: then the models match
    assert await migrate.check(url) == []

    await migrate.downgrade(url, "0005_slack_oauth")
    assert "learned_answers" not in await table_names(url)
    rows = await execute(url, "SELECT channel_id, knowledge_filter FROM channel_settings")
    assert [tuple(r) for r in rows] == [("C1", "billing/")]
    await migrate.upgrade(url, "0008_ops")
    assert [tuple(r) for r in await execute(url, "SELECT channel_id FROM channel_settings")] == [
        ("C1",)
    ]


async def test_repository_upsert_keeps_other_columns(db: Database) -> None:
    key = {"platform": "slack", "workspace_id": "T1", "channel_id": "C9"}
    assert await channel_settings.get_setting(db, **key) is None
    await channel_settings.upsert_setting(db, **key, auto_answer=True, knowledge_filter="billing/")
    await channel_settings.upsert_setting(db, **key, forum_tags={"solved": "Solved ✅"})
    row = await channel_settings.get_setting(db, **key)
    assert row is not None and row.auto_answer and row.knowledge_filter == "billing/"
    assert row.forum_tags == {"solved": "Solved ✅"} and row.ephemeral is False
    assert [r.channel_id for r in await channel_settings.list_settings(db)] == ["C9"]
    with pytest.raises(ValueError):
        await channel_settings.upsert_setting(db, **key, id=5)
    assert await channel_settings.delete_setting(db, **key)
    assert await channel_settings.list_settings(db) == []


async def test_the_policy_cache_forgets_expired_workspaces(db: Database) -> None:
    """A bot in many workspaces must not keep the settings of every one it ever saw."""
    settings = ChannelSettings(db, ttl=0.3, prune_at=20)
    for i in range(25):
        await settings.policy(ConversationKey(Platform.SLACK, f"T{i}", "C1", None))
    assert settings.cached() == 25  # all still fresh: nothing to forget
    await asyncio.sleep(0.35)
    await settings.policy(ConversationKey(Platform.SLACK, "T99", "C1", None))
    assert settings.cached() == 1  # the expired ones went


async def test_new_channels_and_dms_cost_one_read_per_workspace(db: Database) -> None:
    """A burst of new DMs and threads in channels nobody configured is answered from one read
    of the workspace's settings, not one query per channel; a configured channel among them
    still gets its own settings."""
    await channel_settings.upsert_setting(
        db, platform="discord", workspace_id="G1", channel_id="C7", knowledge_filter="billing/"
    )
    settings = ChannelSettings(db, ttl=60)
    with statements(db) as seen:
        dms = [
            await settings.policy(ConversationKey(Platform.DISCORD, "", f"D{i}", None))
            for i in range(50)
        ]
        threads = [
            await settings.policy(
                ConversationKey(Platform.DISCORD, "G1", f"T{i}", f"T{i}"),
                parent_channel_id="C7" if i % 2 else f"C{i}",
            )
            for i in range(50)
        ]
    assert len([s for s in seen if "CHANNEL_SETTINGS" in s]) == 2  # DMs' "" and G1
    assert {p.knowledge_filter for p in dms} == {None}
    assert [p.knowledge_filter for p in threads[:4]] == [None, "billing/", None, "billing/"]


async def test_threads_of_a_channel_share_its_cached_policy(db: Database) -> None:
    """A Discord thread's policy is its parent channel's (a row for the thread itself is not
    read), so it is cached under the parent: a new thread is a cache hit, not one more entry."""
    for channel, prefix in (("C1", "billing/"), ("T1", "auth/")):
        await channel_settings.upsert_setting(
            db, platform="discord", workspace_id="G1", channel_id=channel, knowledge_filter=prefix
        )
    settings = ChannelSettings(db, ttl=60)
    policies = [
        await settings.policy(
            ConversationKey(Platform.DISCORD, "G1", thread, thread), parent_channel_id="C1"
        )
        for thread in ("T1", "T2", "T3")
    ]
    assert {policy.knowledge_filter for policy in policies} == {"billing/"}
    assert settings.cached() == 1


async def test_cli_changes_take_effect_without_restart(any_db_url: str, tmp_path: Path) -> None:
    """A running Responder follows `supportbot channels set` from another process."""
    await migrate.upgrade(any_db_url)
    db = Database(any_db_url)
    kb = build_kb(tmp_path)
    responder = Responder(
        db=db,
        agent=OfflineAgent(kb),
        memory=MemoryPolicy(db, turns=5),
        channels=ChannelSettings(db, ttl=0.3),
    )
    try:
        before = await responder.handle(post("when are invoice emails sent", msg_id="a"))
        assert before is not None and before.kind is ReplyKind.ANSWER
        assert before.sources[0].url_or_path == "billing/invoices.md"

        result = await asyncio.to_thread(
            supportbot,
            "channels", "set", "slack:T1:C1", "--knowledge-filter", "auth/",
            "--refusal-language", "fr", "--ephemeral", "on",
            database_url=any_db_url, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        await asyncio.sleep(0.4)  # the cache's TTL

        filtered = await responder.handle(post("when are invoice emails sent", msg_id="b"))
        assert filtered is not None
        assert all(s.url_or_path.startswith("auth/") for s in filtered.sources)
        refused = await responder.handle(post("how do I export a Grafana dashboard", msg_id="c"))
        assert refused is not None and refused.kind is ReplyKind.NO_ANSWER
        assert refused.text == texts.NOT_IN_DOCS_TRANSLATIONS["fr"]
        answered = await responder.handle(post("how do I reset my password", msg_id="d"))
        assert answered is not None and answered.ephemeral
        # Another channel keeps the defaults.
        other = await responder.handle(post("when are invoice emails sent", channel="C2"))
        assert other is not None and other.sources[0].url_or_path == "billing/invoices.md"

        shown = await asyncio.to_thread(
            supportbot, "channels", "show", "slack:T1:C1", "--json",
            database_url=any_db_url, cwd=tmp_path,
        )  # fmt: skip
        assert json.loads(shown.stdout)["knowledge_filter"] == "auth/"
        listed = await asyncio.to_thread(
            supportbot, "channels", "list", "--json", database_url=any_db_url, cwd=tmp_path
        )
        assert [r["channel"] for r in json.loads(listed.stdout)] == ["slack:T1:C1"]
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["channels", "set", "slack:T1"], "PLATFORM:WORKSPACE:CHANNEL"),
        (["channels", "set", "slack:T1:C1", "--auto-answer", "maybe"], "on or off"),
        (["channels", "set", "slack:T1:C1", "--refusal-language", "xx"], "refusal language"),
        (["channels", "set", "slack:T1:C1"], "nothing to set"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = supportbot(*args, database_url=url, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and fragment in line


@pytest.mark.parametrize("embedder", ["none", "local"])
def test_search_source_prefix_filters_before_ranking(embedder: str, tmp_path: Path) -> None:
    from storage.embeddings import local_embedder_available, make_embedder

    if embedder == "local" and not local_embedder_available():
        pytest.skip("local embedder not installed")
    root = tmp_path / "docs"
    for name, text in {
        **DOCS,
        "billing_x/odd.md": "# Odd\n\nInvoice emails, odd folder.\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase.open(str(tmp_path / "kb"), make_embedder(embedder))
    kb.ingest([root])
    modes = ("fts", "hybrid", "vector") if embedder == "local" else ("fts",)
    for mode in modes:
        everything = {h.source for h in kb.search("invoice emails", mode=mode)}
        assert "billing/invoices.md" in everything and "billing_x/odd.md" in everything
        only = [h.source for h in kb.search("invoice emails", mode=mode, source_prefix="billing/")]
        assert only == ["billing/invoices.md"], mode
        odd = [h.source for h in kb.search("invoice emails", mode=mode, source_prefix="billing_")]
        assert odd == ["billing_x/odd.md"], mode  # "_" is a character here, not LIKE's wildcard
        assert kb.search("invoice emails", mode=mode, source_prefix="nope/") == []
    assert kb.sources() == sorted(everything | {"auth/passwords.md"})


async def test_concurrent_first_writes_make_one_row(db: Database) -> None:
    key = {"platform": "discord", "workspace_id": "G", "channel_id": "F"}
    await asyncio.gather(
        channel_settings.upsert_setting(db, **key, auto_answer=True),
        channel_settings.upsert_setting(db, **key, refusal_language="fr"),
        channel_settings.upsert_setting(db, **key, unanswered_reaction="eyes"),
    )
    [row] = await channel_settings.list_settings(db)
    assert (row.auto_answer, row.refusal_language, row.unanswered_reaction) == (True, "fr", "eyes")


def test_cli_warns_when_a_knowledge_filter_matches_no_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter with a typo ("billng/") made the channel refuse everything, silently."""
    from tests.test_knowledge_ingest import run_cli

    build_kb(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_KB_URI", str(tmp_path / "kb"))
    monkeypatch.setenv("SUPPORTBOT_EMBEDDER", "none")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.chdir(tmp_path)
    assert run_cli(["db", "upgrade"], capsys)[0] == 0

    code, out, err = run_cli(
        ["channels", "set", "slack:T1:C1", "--knowledge-filter", "billng/"], capsys
    )
    assert code == 0 and "knowledge_filter: billng/" in out
    assert err.strip() == texts.channel_filter_matches_nothing("billng/", 2, "auth/passwords.md")
    assert "billng/" in err and "answer nothing" in err

    code, out, err = run_cli(
        ["channels", "set", "slack:T1:C1", "--knowledge-filter", "billing/"], capsys
    )
    assert code == 0 and err == ""
