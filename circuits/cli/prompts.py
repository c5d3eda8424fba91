"""``emocircuits prompts``: prompted accuracy per instruction placement and wording
(:mod:`circuits.runs.prompts`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.runs.prompts import PromptsConfig

PROMPTS_FLAGS = ("limit", "emotions", "max_new_tokens", "batch_size", "wordings")


def _run(args: argparse.Namespace) -> int:
    from circuits.core.artifacts import write_json_atomic
    from circuits.core.sev import DEFAULT_TRAIN, load_sev
    from circuits.runs.prompts import measure_prompts, prompts_table

    cfg = config_from_args(PromptsConfig, args, PROMPTS_FLAGS)
    common.check_output_files(args, "out", "replies")
    common.check_model_args(args)
    dataset = load_sev(args.sev or DEFAULT_TRAIN)
    judge = common.judge_from_args(args)
    model = common.load_model_from_args(args)
    replies: list[dict[str, Any]] = []
    rows = measure_prompts(model, dataset, cfg, judge=judge, record=replies)
    print(
        f"{model.name}: prompted accuracy (%) on {rows[0]['n'] if rows else 0} replies per candidate from "
        f"{dataset.path} (judge {args.judge}, echoes of the instruction removed); 'flu': fluent accuracy "
        "(broken replies are misses), 'raw': the judge alone, 'brk': replies flagged broken; 'echo': replies "
        "that only restate the instruction, 'same': items whose reply is the same for every emotion"
    )
    print(prompts_table(rows))
    for i, w in enumerate(cfg.wordings):
        print(f"  w{i + 1}: {w!r}")
    if args.out:
        path = write_json_atomic(
            Path(args.out),
            {"model": model.describe(), "dataset": str(dataset.path), "config": cfg.to_dict(), "candidates": rows},
        )
        print(f"wrote {path}")
    if args.replies:
        from circuits.runs.layout import write_jsonl

        print(
            f"wrote {write_jsonl(Path(args.replies), replies)} (every reply; re-judge with "
            "`emocircuits judge eval FILE --by candidate --judge A --judge B`)"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prompts", help="prompted accuracy per instruction placement and wording (pick the prompt your model follows)"
    )
    common.model_args(p)
    add_config_flags(p, PromptsConfig, PROMPTS_FLAGS)
    p.add_argument(
        "--sev", default=None, help="SEV file (default: the train split; keep the test split for the final numbers)"
    )
    p.add_argument("--out", default=None, help="also write the table and example replies as JSON here")
    p.add_argument(
        "--replies",
        default=None,
        metavar="FILE",
        help="also write every reply (text, prompted emotion, candidate, verdict) as JSON Lines here",
    )
    common.judge_arg(p, "the replies")
    p.set_defaults(func=_run)
