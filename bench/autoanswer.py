"""Auto-answer precision and coverage: every evaluation question posted as a new post.

Each question becomes a top-level post (nobody mentions the bot) in a channel with auto-answer
on, answered by the real Responder, its confidence gate, the offline answerer and a fresh
knowledge base of the docs. Per gate setting it reports:

- precision: of the posts the bot answered, the share whose cited sources include a gold source
  (an answer to an unanswerable question counts as wrong);
- coverage: the share of answerable questions it answered.

Baseline, measured in the same run: no gate (the channel's normal answer mode, where anything the
agent does not refuse is posted). Targets: precision >= 95%, coverage >= 70%.

    .venv/bin/python bench/autoanswer.py [QUESTION_FILE ...] [--docs DIR] [--embedder none|local]
        [--split dev|heldout]

A question file has one JSON object per line: {"question": ..., "gold": [source, ...]} for an
answerable question; no "gold" (or "answerable": false) for an unanswerable one. Defaults:
bench/eval/questions.jsonl and bench/eval/unanswerable.jsonl over bot/sample_docs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.agent import OfflineAgent  # noqa: E402
from bot.autoanswer import DEFAULT_MIN_PROBABILITY  # noqa: E402
from bot.channels import ChannelSettings  # noqa: E402
from bot.kb_eval import kept_for_this_run  # noqa: E402
from bot.memory import MemoryPolicy  # noqa: E402
from bot.messages import Author, ConversationKey, IncomingMessage, Platform  # noqa: E402
from bot.responder import Responder  # noqa: E402
from storage import channel_settings, migrate  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.embeddings import make_embedder  # noqa: E402
from storage.knowledge import KnowledgeBase  # noqa: E402

EVAL = ROOT / "bench" / "eval"
DEFAULT_FILES = [EVAL / "questions.jsonl", EVAL / "unanswerable.jsonl"]
SAMPLE_DOCS = ROOT / "bot" / "sample_docs"
# The gate's bar on the decision's learned probability.
GATES = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
TARGET_PRECISION, TARGET_COVERAGE = 0.95, 0.70


@dataclass
class Question:
    text: str
    gold: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.gold)


@dataclass
class Figures:
    name: str
    answered: int
    correct: int
    answerable: int
    answered_answerable: int
    ms_p50: float

    @property
    def precision(self) -> float:
        return self.correct / self.answered if self.answered else 1.0

    @property
    def coverage(self) -> float:
        return self.answered_answerable / self.answerable if self.answerable else 0.0


def load_questions(
    paths: list[Path], split: str | None = None, fresh_batch: int | None = None
) -> list[Question]:
    """Questions of the files; with ``split``, only rows of that half (rows without one count
    as dev: the bundled tuning files). Held-out batches kept unscored (UNSCORED_BATCHES) are
    left out, unless ``fresh_batch`` asks for exactly one of them."""
    out = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if split is not None and row.get("split", "dev") != split:
                continue
            if not kept_for_this_run(row.get("batch"), fresh_batch):
                continue
            # A page listed under "also" answers the question as well (bench/eval/README.md).
            pages = [*(row.get("gold") or ()), *(row.get("also") or ())]
            gold = () if row.get("answerable") is False else tuple(pages)
            out.append(Question(row["question"], gold))
    return out


async def run(
    name: str, questions: list[Question], kb: KnowledgeBase, db: Database, *, gate: float | None
) -> Figures:
    channel = f"C-{name}"
    await channel_settings.upsert_setting(
        db, platform="slack", workspace_id="T1", channel_id=channel, auto_answer=gate is not None
    )
    responder = Responder(
        db=db,
        agent=OfflineAgent(kb),
        memory=MemoryPolicy(db, turns=5),
        channels=ChannelSettings(db),
        auto_answer_min_probability=gate or 0.0,
    )
    answered = correct = answerable = answered_answerable = 0
    timings = []
    for i, q in enumerate(questions):
        msg = IncomingMessage(
            id=f"{name}-{i}",
            conversation=ConversationKey(Platform.SLACK, "T1", channel, f"{name}-{i}"),
            author=Author("U1"),
            text=q.text,
        )
        started = time.perf_counter()
        reply = await responder.handle(msg)
        timings.append((time.perf_counter() - started) * 1000)
        posted = reply is not None and not reply.silent and reply.kind.value == "answer"
        answerable += q.answerable
        if posted:
            answered += 1
            cited = {s.url_or_path for s in reply.sources}
            if q.answerable:
                answered_answerable += 1
                correct += bool(cited & set(q.gold))
    timings.sort()
    return Figures(
        name, answered, correct, answerable, answered_answerable, timings[len(timings) // 2]
    )


def naive(questions: list[Question], kb: KnowledgeBase) -> Figures:
    """Baseline: post the top search hit for every post, no decision at all."""
    answered = correct = answered_answerable = 0
    timings = []
    for q in questions:
        started = time.perf_counter()
        hits = kb.search(q.text, k=1)
        timings.append((time.perf_counter() - started) * 1000)
        if not hits:
            continue
        answered += 1
        if q.answerable:
            answered_answerable += 1
            correct += hits[0].source in q.gold
    timings.sort()
    answerable = sum(q.answerable for q in questions)
    return Figures(
        "always post the top hit (baseline)",
        answered,
        correct,
        answerable,
        answered_answerable,
        timings[len(timings) // 2],
    )


def table(rows: list[Figures]) -> str:
    lines = [
        "| gate | answered | precision | coverage of answerables | p50 ms/post |",
        "|---|---|---|---|---|",
    ]
    for f in rows:
        lines.append(
            f"| {f.name} | {f.answered} | {f.precision:.1%} ({f.correct}/{f.answered}) | "
            f"{f.coverage:.1%} ({f.answered_answerable}/{f.answerable}) | {f.ms_p50:.1f} |"
        )
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="question files (JSON lines)")
    parser.add_argument("--docs", type=Path, default=SAMPLE_DOCS)
    parser.add_argument("--embedder", default="none", choices=("none", "local"))
    parser.add_argument("--split", choices=("dev", "heldout"), help="only this half of the files")
    parser.add_argument(
        "--kb-dir", type=Path, help="keep the knowledge base here (re-runs ingest only changes)"
    )
    parser.add_argument(
        "--fresh-batch", type=int, help="only this held-out batch, otherwise left out"
    )
    args = parser.parse_args()
    questions = load_questions(args.files or DEFAULT_FILES, args.split, args.fresh_batch)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        where = args.kb_dir or Path(tmp) / "kb"
        kb = KnowledgeBase.open(str(where), make_embedder(args.embedder))
        kb.ingest([args.docs], prune=True)
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await migrate.upgrade(url)
        db = Database(url)
        try:
            rows = [
                naive(questions, kb),
                await run("no gate: agent's own refusals (baseline)", questions, kb, db, gate=None),
            ]
            for gate in sorted({*GATES, DEFAULT_MIN_PROBABILITY}):
                rows.append(await run(f"probability >= {gate}", questions, kb, db, gate=gate))
        finally:
            await db.dispose()
    answerable = sum(q.answerable for q in questions)
    print(
        f"{len(questions)} posts ({answerable} answerable, {len(questions) - answerable} "
        f"unanswerable), embedder {args.embedder}, load average {load:.1f}"
    )
    print(table(rows))
    default = next(r for r in rows if r.name == f"probability >= {DEFAULT_MIN_PROBABILITY}")
    ok = default.precision >= TARGET_PRECISION and default.coverage >= TARGET_COVERAGE
    print(f"default gate: precision {default.precision:.1%}, coverage {default.coverage:.1%}")
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
