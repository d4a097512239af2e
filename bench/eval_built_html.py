"""Retrieval on a corpus as its site is published: the evaluation questions of a reST or Markdown
set, asked of the HTML a docs generator built from the same sources (gold ``x.rst`` / ``x.md``
read as ``x.html``). It measures how ``ingest`` reads published HTML (site chrome, a
generator's by-products) against the same docs read from their sources.

Build the HTML first, outside the project's environment (Sphinx is not a dependency):

    python3 -m venv /tmp/sphinx && /tmp/sphinx/bin/pip install sphinx
    cp -r bench/eval/corpora/flask/docs /tmp/flask-src
    printf 'project = "Flask"\\nhtml_theme = "alabaster"\\n' > /tmp/flask-src/conf.py
    /tmp/sphinx/bin/sphinx-build -q -b html /tmp/flask-src /tmp/flask-html

then:

    .venv/bin/python bench/eval_built_html.py /tmp/flask-html bench/eval/flask.jsonl \\
        [--split dev] [--mode fts|hybrid] [--kb-dir /tmp/flask-html-kb]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.kb_eval import load_questions  # noqa: E402
from storage.embeddings import make_embedder  # noqa: E402
from storage.knowledge import KnowledgeBase  # noqa: E402


def as_html(source: str) -> str:
    return str(PurePosixPath(source).with_suffix(".html"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the generator's output folder")
    parser.add_argument("questions", type=Path, help="an evaluation set (bench/eval/*.jsonl)")
    parser.add_argument("--split", default="dev", choices=("dev", "heldout", "all"))
    parser.add_argument("--mode", default="fts", choices=("fts", "hybrid"))
    parser.add_argument("--kb-dir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()

    kb_dir = args.kb_dir or Path(tempfile.mkdtemp(prefix="supportbot-html-eval-"))
    shutil.rmtree(kb_dir, ignore_errors=True)
    kb = KnowledgeBase.open(str(kb_dir), make_embedder("local") if args.mode == "hybrid" else None)
    report = kb.ingest([args.html])
    questions = [q for q in load_questions(args.questions, args.split) if q.answerable]
    recall = reciprocal = 0.0
    for question in questions:
        gold = {as_html(source) for source in (*question.gold, *question.also)}
        sources = [hit.source for hit in kb.search(question.question, k=10, mode=args.mode)]
        recall += any(source in gold for source in sources[:5])
        reciprocal += next((1 / n for n, s in enumerate(sources, start=1) if s in gold), 0.0)
    print(
        f"{args.questions.stem} {args.split} as built HTML ({report.files} pages read, "
        f"{report.skipped_count} skipped), {args.mode}: n={len(questions)} "
        f"recall@5={recall / len(questions):.3f} MRR@10={reciprocal / len(questions):.3f}"
    )


if __name__ == "__main__":
    main()
