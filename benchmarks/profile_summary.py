"""Summarise a py-spy profile (``py-spy record --format raw``): the share of samples under each stage of
a command and the heaviest leaf frames, for the speed guide's "where the time goes" tables.

    py-spy record --rate 10 --format raw -o discover.raw -- python -m circuits discover ...
    python benchmarks/profile_summary.py discover.raw --stage _discover_into --leaves 12

``--stage FUNC``: the frames called directly by FUNC are the stages (inclusive share each).
Leaves: the innermost frame of each sample, grouped by function name and file (inclusive of nothing).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def read_raw(path: str) -> list[tuple[list[str], int]]:
    """The samples of a raw (collapsed) profile: (frames from the outermost, count)."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                out.append((stack.split(";"), int(count)))
    return out


def name(frame: str) -> str:
    m = FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw")
    ap.add_argument("--stage", default=None, help="the function whose direct callees are the stages")
    ap.add_argument("--leaves", type=int, default=12)
    args = ap.parse_args()
    samples = read_raw(args.raw)
    total = sum(c for _, c in samples)
    print(f"{args.raw}: {total} samples")
    if args.stage:
        stages: Counter[str] = Counter()
        for frames, c in samples:
            names = [name(f) for f in frames]
            idx = [i for i, n in enumerate(names) if n.startswith(args.stage + " ")]
            if idx and idx[-1] + 1 < len(names):
                stages[names[idx[-1] + 1]] += c
        for n, c in stages.most_common():
            print(f"  stage {n:<70} {c / total:6.1%}")
    leaves: Counter[str] = Counter()
    for frames, c in samples:
        leaves[name(frames[-1])] += c
    for n, c in leaves.most_common(args.leaves):
        print(f"  leaf  {n:<70} {c / total:6.1%}")


if __name__ == "__main__":
    main()
