"""Per-question diagnosis on a ``dev`` half only: where the gold pages ranked, and why the
offline answerer answered or refused. Refuses ``heldout`` on purpose: held-out failures are
never looked at, so they cannot leak into tuning.

    .venv/bin/python bench/eval/diagnose.py flask [--kb-dir bench/results/eval-kb] [--all]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_sets import SETS, open_kb  # noqa: E402

from bot.agent import AgentRequest, AgentResult, OfflineAgent  # noqa: E402
from bot.kb_eval import load_questions, score_ranking  # noqa: E402
from storage.embeddings import make_embedder  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("set")
    parser.add_argument("--kb-dir", type=Path, default=ROOT / "bench" / "results" / "eval-kb")
    parser.add_argument("--all", action="store_true", help="show correct questions too")
    parser.add_argument("--bm25", action="store_true", help="the knowledge base without vectors")
    args = parser.parse_args()
    questions_file, corpus = SETS[args.set]
    kb = open_kb(args.kb_dir, args.set, corpus, None if args.bm25 else make_embedder("local"))
    agent = OfflineAgent(kb)
    for q in load_questions(questions_file, "dev"):
        hits = kb.search(q.question, k=10)
        ranked = list(dict.fromkeys(h.source for h in hits))
        recall, rr, both = score_ranking(q, ranked) if q.answerable else (1.0, 1.0, True)
        result = None
        async for item in agent.run(AgentRequest(question=q.question)):
            if isinstance(item, AgentResult):
                result = item
        assert result is not None
        answered = result.kind.value == "answer"
        decision = result.tool_metadata["decision"]
        ok_retrieval = recall == 1.0 and rr == 1.0
        ok_decision = answered == q.answerable
        if args.all or not (ok_retrieval and ok_decision):
            print(f"\n[{q.kind}] {q.question}")
            print(f"  gold={list(q.gold)} also={list(q.also)}")
            print(f"  recall@5={recall:.2f} rr={rr:.2f} both@10={both} top={ranked[:5]}")
            print(
                f"  answered={answered} (should {q.answerable}) reason={decision['reason']} "
                f"coverage={decision['best_coverage']} missing={decision['missing']} "
                f"cited={[s.url_or_path for s in result.sources]}"
            )


if __name__ == "__main__":
    asyncio.run(main())
