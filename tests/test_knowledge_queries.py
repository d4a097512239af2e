"""Two-part questions (issue 13): decomposition, both pages in the results, in the agent's tools,
and the eval command's per-split, per-kind JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.agent import AgentResult, OfflineAgent, final_result
from bot.kb_eval import load_questions
from bot.tools import SEARCH_TOOL, ToolBox
from storage.knowledge import KnowledgeBase
from storage.queries import sub_queries
from tests.knowledge_helpers import write_docs
from tests.test_knowledge_ingest import run_cli

FILLER = "It is described here in enough words to be a passage of its own. " * 3
DOCS = {
    "backup.md": "# Backups\n\n## Snapshot\n\nTake a snapshot of the heron store with "
    "`heronctl snapshot save`. " + FILLER,
    "restore.md": "# Restore\n\n## Into a new cluster\n\nRestoring a snapshot into a new "
    "cluster uses `heronutl restore` on every member. " + FILLER,
    "network.md": "# Network\n\nThe heron store listens on port 7410 for clients. " + FILLER,
    "faq.md": "# FAQ\n\nThe heron store is a key value store for small values. " + FILLER,
}


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "How do I take a snapshot and then restore it into a new cluster?",
            ["How do I take a snapshot", "restore it into a new cluster"],
        ),
        (
            "What is a learner member, and how do I promote one?",
            ["What is a learner member", "how do I promote one"],
        ),
        (
            "Do I need a license? Which port does it use?",
            ["Do I need a license", "Which port does it use"],
        ),
        ("How do blueprints and application factories work together?", []),
        ("How do I install and configure the gateway?", []),
        ("snapshot and restore", []),
    ],
)
def test_sub_queries_split_only_at_clear_joints(question: str, parts: list[str]) -> None:
    assert sub_queries(question) == parts


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    base = KnowledgeBase.open(str(tmp_path / "kb"), None)
    base.ingest([write_docs(tmp_path / "docs", DOCS)])
    return base


def test_both_pages_of_a_two_part_question_come_first(kb: KnowledgeBase) -> None:
    question = "How do I save a heron snapshot, and how do I restore it into a new cluster?"
    sources = [hit.source for hit in kb.search(question, k=4)]
    assert set(sources[:2]) == {"backup.md", "restore.md"}
    plain = [hit.source for hit in kb.search(question, k=4, decompose=False)]
    assert sorted(plain) == sorted(sources)  # same pages, possibly another order


async def test_the_tool_loop_also_searches_the_parts_of_the_users_question(
    kb: KnowledgeBase,
) -> None:
    toolbox = ToolBox(
        kb, k=1, question="Which port does heron listen on, and how do I restore a snapshot?"
    )
    shown = await toolbox.execute(SEARCH_TOOL, json.dumps({"query": "heron port"}))
    assert "(network.md)" in shown and "(restore.md)" in shown
    searched = [c["arguments"]["query"] for c in toolbox.calls]
    assert searched[0] == "heron port" and len(searched) == 3
    again = await toolbox.execute(SEARCH_TOOL, json.dumps({"query": "heron faq"}))
    assert len(toolbox.calls) == 4 and "(faq.md)" in again  # the parts only once per answer


async def test_offline_answerer_refuses_a_name_only_elsewhere(kb: KnowledgeBase) -> None:
    agent = OfflineAgent(kb)

    async def answer(question: str) -> AgentResult:
        return await final_result(agent, question)

    assert (await answer("Which port does the heron store listen on?")).kind.value == "answer"
    refused = await answer("How do I restore a heron snapshot from Zookeeper?")
    assert refused.kind.value == "no_answer"
    assert (await answer("Does heron support HTTP/2 for clients?")).kind.value == "no_answer"


def test_eval_cli_splits_kinds_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPPORTBOT_KB_URI", str(tmp_path / "kb"))
    monkeypatch.setenv("SUPPORTBOT_EMBEDDER", "none")
    monkeypatch.chdir(tmp_path)
    docs = write_docs(tmp_path / "docs", DOCS)
    rows = [
        {"question": "heron port for clients", "gold": ["network.md"], "kind": "direct",
         "split": "dev"},
        {"question": "heron snapshot save", "gold": ["backup.md"], "kind": "direct",
         "split": "heldout"},
        {"question": "How do I save a heron snapshot, and how do I restore it into a new cluster?",
         "gold": ["backup.md", "restore.md"], "kind": "two-page", "split": "dev"},
        {"question": "hreon restor new clsuter", "gold": ["restore.md"], "kind": "typo",
         "split": "dev"},
        {"question": "Does heron run on Windows Server?", "answerable": False, "gold": [],
         "kind": "unanswerable", "split": "dev"},
    ]  # fmt: skip
    questions = tmp_path / "set.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [q.kind for q in load_questions(questions, "heldout")] == ["direct"]

    assert run_cli(["ingest", str(docs)], capsys)[0] == 0
    code, out, err = run_cli(
        ["eval", str(questions), "--split", "dev", "--answers", "--json"], capsys
    )
    assert code == 0, err
    data = json.loads(out)
    (fts,) = data["retrieval"]
    assert fts["questions"] == 3 and set(fts["by_kind"]) == {"direct", "two-page", "typo"}
    assert fts["recall_at_5"] == 1.0 and fts["by_kind"]["two-page"]["both_at_10"] == 1.0
    answers = data["answers"]
    assert answers["questions"] == 4 and answers["refused_unanswerable"] == 1.0
    code, out, _ = run_cli(["eval", str(questions), "--split", "dev"], capsys)
    assert code == 0 and "two-page" in out and "both@10" in out
    assert run_cli(["eval", str(questions), "--split", "nope"], capsys)[0] != 0


def test_a_table_too_large_for_typo_correction_is_not_recounted_on_every_search(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past VOCABULARY_MAX_ROWS the vocabulary is not loaded; that answer is kept for the
    table's version, so a large knowledge base's searches make no extra round trips."""
    import storage.knowledge as knowledge

    monkeypatch.setattr(knowledge, "VOCABULARY_MAX_ROWS", 1)
    table = kb._table()
    counted = []
    count_rows = type(table).count_rows

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted.append(1)
        return count_rows(self, *args, **kwargs)

    monkeypatch.setattr(type(table), "count_rows", counting)
    for _ in range(5):
        assert kb.search("How do I rotate an SDK key?", k=3, mode="fts")
    assert len(counted) == 1
    assert kb.document_frequencies() is None  # too large: no word weights either


PART_DOCS = {
    "tls.md": "# Security\n\n## Peer certificates\n\nPeers encrypt their traffic when you pass "
    "`--peer-cert-file` and `--peer-key-file` to every member. " + FILLER,
    "health.md": "# Operations\n\n## Health checks\n\nThe command `heronctl endpoint health` "
    "shows the health of each member. " + FILLER,
    "network.md": "# Network\n\nThe heron store listens on port 7410 for clients. " + FILLER,
    "faq.md": "# FAQ\n\nThe heron store is a key value store for small values. " + FILLER,
}


async def test_a_two_part_question_no_passage_covers_is_answered_part_by_part(
    tmp_path: Path,
) -> None:
    """Each half is on its own page, so no passage covers the whole question; each part,
    judged on its own, is answerable: the answer quotes both pages. A question with one part
    the docs do not answer is still refused."""
    base = KnowledgeBase.open(str(tmp_path / "kb"), None)
    base.ingest([write_docs(tmp_path / "docs", PART_DOCS)])
    agent = OfflineAgent(base)
    both = (
        "How do peers encrypt traffic with certificate files, and which command shows the "
        "health of each member?"
    )
    answered = await final_result(agent, both)
    assert answered.kind.value == "answer"
    assert [s.url_or_path for s in answered.sources] == ["tls.md", "health.md"]
    assert "--peer-cert-file" in answered.text and "heronctl endpoint health" in answered.text
    decision = answered.tool_metadata["decision"]
    assert decision["reason"] == "each part covered" and decision["probability"] is not None

    half = (
        "How do peers encrypt traffic with certificate files, and how do I rotate the client CA "
        "without downtime?"
    )
    refused = await final_result(agent, half)
    assert refused.kind.value == "no_answer"
