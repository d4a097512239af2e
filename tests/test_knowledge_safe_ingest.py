"""Issue 12 point 5: ingest never indexes what sits outside the docs folder, nor a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.test_knowledge_ingest import run_cli

# Assembled at run time so that the repository itself holds no token-shaped string.
SLACK_TOKEN = "xoxb-" + "2468013579-1357924680135-" + "Zq8WcVbNmLkJhGfDsAaPoIuY"
OPENAI_KEY = "sk-" + "proj-" + "Q1w2E3r4T5y6U7i8O9p0AsDfGhJkLzXc"
AWS_KEY = "AKIA" + "Z7Q4ME2XW9RT3KVB"


def search(query: str, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    code, out, err = run_cli(["kb", "search", query, "--json", "-k", "10"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_symlink_out_of_the_docs_folder_is_skipped_and_its_token_never_searchable(
    cli_env: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    (cli_env / ".env").write_text(f"SLACK_BOT_TOKEN={SLACK_TOKEN}\nPORT=3000\n")
    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "setup.md").write_text("# Setup\n\nSet the bot token in the environment.\n")
    (docs / "config.txt").symlink_to(cli_env / ".env")
    (docs / "inside.md").symlink_to(docs / "setup.md")  # a link that stays inside is fine

    with caplog.at_level(logging.WARNING):
        code, _out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0, err
    assert "config.txt" in err and "outside" in err
    assert any("config.txt" in r.getMessage() for r in caplog.records)

    for query in ("SLACK_BOT_TOKEN", SLACK_TOKEN, "xoxb", "PORT 3000"):
        assert all(hit["source"] != "config.txt" for hit in search(query, capsys)), query
        assert all(SLACK_TOKEN not in hit["snippet"] for hit in search(query, capsys))
    sources = {hit["source"] for hit in search("bot token environment", capsys)}
    assert sources == {"setup.md", "inside.md"}


def test_secret_lines_are_dropped_the_rest_indexed_and_reported(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "deploy.md").write_text(
        "# Deploy\n\n## Credentials\n\n"
        "Export the key before starting the quetzal worker.\n"
        f"OPENAI_API_KEY={OPENAI_KEY}\n"
        f"aws_access_key_id = {AWS_KEY}\n"
        "Then restart the quetzal worker.\n"
    )
    code, _out, err = run_cli(["ingest", str(docs)], capsys)
    assert code == 0, err
    assert "deploy.md" in err and "2 secret-looking line(s)" in err
    assert "openai-key" in err and "aws-access-key" in err
    assert OPENAI_KEY not in err and AWS_KEY not in err

    hits = search("quetzal worker", capsys)
    assert hits and hits[0]["source"] == "deploy.md"
    assert "restart the quetzal worker" in hits[0]["snippet"]
    for query in (OPENAI_KEY, AWS_KEY, "OPENAI_API_KEY", "aws_access_key_id"):
        for hit in search(query, capsys):
            assert OPENAI_KEY not in hit["snippet"] and AWS_KEY not in hit["snippet"]
            assert "OPENAI_API_KEY" not in hit["snippet"]
