"""`supportbot report` on a seeded database: every figure matches a hand count (both databases)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.report import cluster_questions, parse_since, percentile
from storage import migrate
from storage.db import Database
from storage.embeddings import local_embedder_available, make_embedder
from storage.knowledge import KnowledgeBase
from storage.models import Feedback, Memory
from tests.cli_support import run_supportbot

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=10)
SCRIPT_QUESTION = "Does it run on <script>Kubernetes</script>?"


def answer(cited: list[int], sources: list[str], first_token_ms: float) -> dict:
    return {
        "kind": "answer",
        "first_token_ms": first_token_ms,
        "cited": cited,
        "sources": [{"n": n, "source": s} for n, s in enumerate(sources, start=1)],
    }


# (session, role, metadata, created_at). Hand count, window 7 days:
# questions 8; answered 3; refused 3 (2 no_answer + 1 silent auto-answer post); escalated 1;
# errors 1; first tokens [100, 300, 200, 50, 80] -> median 100, p95 300; auth.md cited twice,
# billing.md once; faq.md never. The old rows (10 days ago) are outside the window.
SEED = [
    ("a", "user", None, NOW),
    ("a", "assistant", answer([1], ["auth.md", "billing.md"], 100), NOW),
    ("b", "user", None, NOW),
    ("b", "assistant", answer([1], ["billing.md"], 300), NOW),
    ("c", "user", None, NOW),
    ("c", "assistant", answer([1, 2], ["auth.md", "auth.md"], 200), NOW),
    ("d", "user", None, NOW),
    (
        "d",
        "assistant",
        {
            "kind": "no_answer",
            "first_token_ms": 50,
            "question": "Can I pay with PayPal?",
            "related": ["billing.md", "faq.md"],
        },
        NOW,
    ),
    ("e", "user", None, NOW),
    (
        "e",
        "event",
        {
            "kind": "unanswered",
            "first_token_ms": 80,
            "question": "Can I pay using PayPal?",
            "related": ["billing.md"],
        },
        NOW,
    ),
    ("h", "user", None, NOW),
    ("h", "assistant", {"kind": "no_answer", "question": SCRIPT_QUESTION}, NOW),
    ("f", "user", None, NOW),
    ("f", "assistant", {"kind": "escalated", "question": "operator?"}, NOW),
    ("g", "user", None, NOW),
    ("g", "event", {"kind": "error", "error": "ModelError"}, NOW),
    ("g", "summary", {"kind": "answer", "first_token_ms": 1}, NOW),  # not an outcome
    ("old", "user", None, OLD),
    ("old", "assistant", answer([1], ["faq.md"], 9000), OLD),
]
EXPECTED = {
    "questions": 8,
    "answered": 3,
    "refused": 3,
    "unanswered_auto_posts": 1,
    "escalated": 1,
    "errors": 1,
    "feedback": {"up": 2, "down": 1},
    "time_to_first_token_ms": {"median": 100.0, "p95": 300.0, "samples": 5},
    "coverage_gaps": [
        {
            "label": "Can I pay with PayPal?",
            "count": 2,
            "questions": ["Can I pay with PayPal?", "Can I pay using PayPal?"],
            # billing.md was offered with both refusals, faq.md with one.
            "nearest_pages": ["billing.md", "faq.md"],
        },
        {
            "label": SCRIPT_QUESTION,
            "count": 1,
            "questions": [SCRIPT_QUESTION],
            "nearest_pages": [],
        },
    ],
    "gap_clustering": "shared words",
    "documents": {
        "most_cited": [
            {"source": "auth.md", "citations": 2},
            {"source": "billing.md", "citations": 1},
        ],
        "least_cited": [
            {"source": "billing.md", "citations": 1},
            {"source": "auth.md", "citations": 2},
        ],
        "never_cited": ["faq.md"],
        "in_knowledge_base": 3,
    },
}


async def seed(url: str) -> None:
    await migrate.upgrade(url)
    db = Database(url)
    try:
        async with db.session() as session:
            ids = {}
            for session_id, role, meta, at in SEED:
                row = Memory(
                    session_id=session_id, role=role, content="x", tool_metadata=meta, created_at=at
                )
                session.add(row)
                await session.flush()
                ids.setdefault(session_id, row.id)
            votes = [(ids["a"], "u1", 1, NOW), (ids["b"], "u2", 1, NOW), (ids["c"], "u1", -1, NOW)]
            votes.append((ids["old"], "u1", 1, OLD))
            for memory_id, user, value, at in votes:
                session.add(Feedback(memory_id=memory_id, user_id=user, value=value, created_at=at))
    finally:
        await db.dispose()


def make_kb(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("auth.md", "billing.md", "faq.md"):
        (docs / name).write_text(f"# {name}\n\nSome text about {name}.\n", encoding="utf-8")
    KnowledgeBase.open(str(tmp_path / "kb"), None).ingest([docs])
    return tmp_path / "kb"


def supportbot(*args: str, url: str, kb: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": url, "SUPPORTBOT_KB_URI": str(kb), "SUPPORTBOT_EMBEDDER": "none"}
    return run_supportbot(*args, cwd=cwd, env=env)


async def test_report_json_matches_hand_count(any_db_url: str, tmp_path: Path) -> None:
    await seed(any_db_url)
    kb = make_kb(tmp_path)
    result = supportbot("report", "--since", "7d", "--json", url=any_db_url, kb=kb, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data.pop("window")["since"] is not None
    assert data == EXPECTED

    everything = supportbot(
        "report", "--since", "all", "--json", url=any_db_url, kb=kb, cwd=tmp_path
    )
    totals = json.loads(everything.stdout)
    assert (totals["questions"], totals["answered"]) == (9, 4)
    assert totals["documents"]["never_cited"] == []
    assert totals["feedback"] == {"up": 3, "down": 1}

    page = tmp_path / "report.html"
    written = supportbot("report", "--html", str(page), url=any_db_url, kb=kb, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") >= 3 and "<script" not in html and "&lt;script&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_bad_since_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = supportbot("report", "--since", "yesterday", url=url, kb=tmp_path / "kb", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --since")


def test_helpers() -> None:
    assert parse_since("7d") == timedelta(days=7) and parse_since("all") is None
    with pytest.raises(ValueError):
        parse_since("0d")
    assert percentile([], 50) is None and percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 10


@pytest.mark.skipif(not local_embedder_available(), reason="local embedder not installed")
def test_gaps_clustered_with_the_embedder() -> None:
    embedder = make_embedder("local")
    questions = [
        "Can I pay my invoice with PayPal?",
        "Is PayPal accepted as a payment method?",
        "Is there a Kubernetes operator?",
        "Do you ship a Helm chart or operator for Kubernetes?",
        "Does it support SAML single sign-on with Okta?",
    ]
    gaps = cluster_questions(questions, embedder.embed)
    groups = sorted(sorted(g.questions) for g in gaps)
    assert len(gaps) == 3, groups
    assert sorted(questions[:2]) in groups and sorted(questions[2:4]) in groups


async def test_real_failures_and_silences_are_counted(db: Database, tmp_path: Path) -> None:
    """The Responder records what the report counts: a model that cannot be reached is an
    error; a refused question is a gap with its question."""
    import socket

    from bot.agent import OfflineAgent, OpenAIAgent
    from bot.memory import MemoryPolicy
    from bot.messages import Author, ConversationKey, IncomingMessage, Platform, ReplyKind
    from bot.report import build_report
    from bot.responder import Responder
    from tests.core_support import build_kb

    kb = build_kb(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    broken = OpenAIAgent(kb, api_key="k", model="m", base_url=dead, timeout=2, max_retries=0)

    def ask(text: str, thread: str) -> IncomingMessage:
        key = ConversationKey(Platform.SLACK, "T1", "C1", thread)
        return IncomingMessage(id=thread, conversation=key, author=Author("U1"), text=text)

    failed = await Responder(db=db, agent=broken, memory=MemoryPolicy(db, turns=5)).handle(
        ask("how do I reset my password?", "t1")
    )
    await broken.aclose()
    offline = Responder(db=db, agent=OfflineAgent(kb), memory=MemoryPolicy(db, turns=5))
    refused = await offline.handle(ask("Can I pay my invoices with PayPal?", "t2"))
    answered = await offline.handle(ask("how do I reset my password?", "t3"))
    assert (failed.kind, refused.kind, answered.kind) == (
        ReplyKind.ERROR,
        ReplyKind.NO_ANSWER,
        ReplyKind.ANSWER,
    )
    report = await build_report(db, kb_sources=kb.sources())
    assert (report["questions"], report["errors"], report["refused"], report["answered"]) == (
        3,
        1,
        1,
        1,
    )
    assert report["coverage_gaps"][0]["questions"] == ["Can I pay my invoices with PayPal?"]
    assert report["coverage_gaps"][0]["nearest_pages"] == ["billing.md"]  # offered with it
    assert report["time_to_first_token_ms"]["samples"] == 2
    assert report["documents"]["most_cited"] == [{"source": "auth.md", "citations": 1}]
    assert report["documents"]["never_cited"] == ["billing.md"]
