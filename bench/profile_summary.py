"""Summarise a cProfile file by package: where the CPU of one answer goes.

    .venv/bin/python bench/profile_summary.py PROFILE --per 300 [--top 25]

``--per`` divides the totals (e.g. by the number of answers profiled). Prints a Markdown table
of self time per package (site-packages folder, our top-level package, or the stdlib module)
and the functions with the most self time.
"""

from __future__ import annotations

import argparse
import collections
import pstats
import re


def package_of(filename: str, function: str) -> str:
    site = re.search(r"site-packages/([^/]+)", filename)
    if site:
        return site.group(1).removesuffix(".py")
    ours = re.search(r"/(bot|storage|adapters|bench|tests)/", filename)
    if ours:
        return f"supportbot: {ours.group(1)}"
    stdlib = re.search(r"python3\.\d+/([^/]+)", filename)
    if stdlib:
        return f"stdlib: {stdlib.group(1).removesuffix('.py')}"
    return f"built-in: {function.strip('<>')[:40]}" if filename == "~" else filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--per", type=float, default=1.0, help="divide totals by this")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    stats = pstats.Stats(args.profile).stats  # type: ignore[attr-defined]
    by_package: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    for (filename, line, function), (_, _, self_time, _, _) in stats.items():
        by_package[package_of(filename, function)] += self_time
        short = re.sub(r".*site-packages/|.*/perf/|.*python3\.\d+/", "", filename)
        by_function[f"{short}:{line}({function})"] += self_time
    total = sum(by_package.values())
    print(f"Total profiled CPU: {total * 1000 / args.per:.2f} ms per unit\n")
    print("| package | ms per unit | share |\n|---|---|---|")
    for name, value in by_package.most_common(args.top):
        print(f"| {name} | {value * 1000 / args.per:.2f} | {value / total:.0%} |")
    print("\n| function (self time) | ms per unit |\n|---|---|")
    for name, value in by_function.most_common(args.top):
        print(f"| `{name}` | {value * 1000 / args.per:.3f} |")


if __name__ == "__main__":
    main()
