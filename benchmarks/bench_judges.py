"""Judge cost: load time and replies per second of each judge on the same replies of our judge set.

    python benchmarks/bench_judges.py --limit 300 --threads 2
    python benchmarks/bench_judges.py --judges learned style lexicon --split final --json judges.json

Each judge is built (load time measured: the learned judge loads SmolLM2's first blocks and its head),
judges the same replies once to warm up on a few of them, then all of them (wall time measured);
printed as a table with each judge's time per reply relative to the lexicon judge's. (Quality is
`emocircuits judge eval`'s job: on the dev split the learned judge's accuracy would be in-sample.)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuits.core.resources import data_path  # noqa: E402
from circuits.judges.base import judge_name, make_judge  # noqa: E402
from circuits.judges.calibrate import judge_labels, read_labelled  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default=str(data_path("judge_replies")))
    p.add_argument("--split", default="dev")
    p.add_argument("--limit", type=int, default=300, help="replies judged (spread evenly over the split)")
    p.add_argument("--judges", nargs="+", default=["lexicon", "style", "learned"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = read_labelled(args.file, split=args.split or None)
    rows = rows[:: max(1, len(rows) // args.limit)][: args.limit]
    results = []
    for spec in args.judges:
        t0 = time.perf_counter()
        judge = make_judge(spec)
        load = time.perf_counter() - t0
        judge_labels(judge, rows[:8])  # warm-up
        t0 = time.perf_counter()
        judge_labels(judge, rows)
        wall = time.perf_counter() - t0
        results.append(
            {
                "judge": judge_name(judge),
                "load_s": load,
                "judge_s": wall,
                "n": len(rows),
                "per_reply_ms": 1000 * wall / len(rows),
            }
        )
    base = next((r["per_reply_ms"] for r in results if r["judge"] == "lexicon"), results[0]["per_reply_ms"])
    print(f"{len(rows)} replies of {args.file} (split {args.split or 'all'})")
    print(f"{'judge':<10} {'load s':>7} {'judge s':>8} {'ms/reply':>9} {'x lexicon':>10}")
    for r in results:
        print(
            f"{r['judge']:<10} {r['load_s']:>7.2f} {r['judge_s']:>8.2f} {r['per_reply_ms']:>9.2f} "
            f"{r['per_reply_ms'] / base:>10.1f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    if args.json:
        from circuits.core.artifacts import write_json_atomic

        write_json_atomic(Path(args.json), {"results": results, "peak_rss_mb": peak})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
