"""Assign each question of an evaluation set to ``dev`` or ``heldout``: a seeded shuffle per kind.

Run once when a set is written (``python bench/eval/split.py bench/eval/flask.jsonl``); the split
is then committed with the set. Tuning may look at ``dev`` only; ``heldout`` is for reporting.
Re-running gives the same split (the seed and the questions decide it), so it can be checked.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SEED = 20261204


def assign(rows: list[dict], set_name: str) -> list[dict]:
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    for kind, group in sorted(by_kind.items()):
        order = sorted(group, key=lambda r: r["question"])
        random.Random(f"{SEED}:{set_name}:{kind}").shuffle(order)
        half = (len(order) + 1) // 2  # an odd one out goes to dev
        for position, row in enumerate(order):
            row["split"] = "dev" if position < half else "heldout"
    return rows


def main(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    assign(rows, path.stem)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        main(Path(argument))
