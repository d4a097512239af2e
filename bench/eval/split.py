"""Assign each question of an evaluation set to ``dev`` or ``heldout``: a seeded shuffle per kind.

Run once when a set is written (``python bench/eval/split.py bench/eval/flask.jsonl``); the split
is then committed with the set. Tuning may look at ``dev`` only; ``heldout`` is for reporting.
Re-running gives the same split (the seed and the questions decide it), so it can be checked.
Questions added later (rows without a ``split``) are assigned the same way among themselves, the
odd one out to whichever half has fewer of that kind; rows that already have a split keep it, so
adding questions never moves a held-out question into dev. A batch written as held-out only (batches
4 and 5, see README.md) is committed with ``"split": "heldout"`` on every row, so this script leaves
it alone; never delete those fields to re-split it.
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
        fixed = [r["split"] for r in group if r.get("split")]
        new = [r for r in group if not r.get("split")]
        if not new:
            continue
        order = sorted(new, key=lambda r: r["question"])
        batch = "" if not fixed else f":{len(fixed)}"  # the first batch keeps its original seed
        random.Random(f"{SEED}:{set_name}:{kind}{batch}").shuffle(order)
        first, second = "dev", "heldout"
        if fixed.count("dev") > fixed.count("heldout"):
            first, second = second, first
        half = (len(order) + 1) // 2  # an odd one out goes to the half with fewer of this kind
        for position, row in enumerate(order):
            row["split"] = first if position < half else second
    return rows


def main(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    assign(rows, path.stem)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        main(Path(argument))
