"""``emocircuits evaluate``: compare the steering methods of a discovery run on the held-out split."""

from __future__ import annotations

import argparse
from dataclasses import replace

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.steer.metrics import EvalConfig

EVALUATE_FLAGS = (
    "methods",
    "limit",
    "emotions",
    "circuit_lambda",
    "direction_alpha",
    "direction_layers",
    "ev_alpha",
    "positions",
    "circuit_lambdas",
    "direction_alphas",
    "ev_alphas",
    "direction_source",
    "sweep_limit",
    "fluency_factor",
)


def _evaluate(args: argparse.Namespace) -> int:
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import DEFAULT_TEST, load_sev
    from circuits.runs.evaluate import evaluation_target, run_evaluation
    from circuits.runs.rundir import Run
    from circuits.steer.metrics import method_table, sweep_table

    cfg = config_from_args(EvalConfig, args, EVALUATE_FLAGS)  # every input is checked before the model loads
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    cfg.check_used()  # an option the methods would ignore is refused
    common.check_model_args(args)
    target = evaluation_target(Run(args.run), args.out)  # a run, and an --out it may replace, before the model loads
    sev = load_sev(args.sev or DEFAULT_TEST)
    judge = common.judge_from_args(args)
    with common.out_folder(args.out or args.run, "--out" if args.out else "--run"):
        model = common.load_run_model(args)
        result = run_evaluation(model, args.run, cfg, sev=sev, out=args.out, judge=judge)
    if result.get("strength_sweep"):
        print(sweep_table(result["strength_sweep"]))
    print(method_table(result))
    print(
        f"wrote {target}/ (evaluation.json, evaluation.csv, accuracy.html, report.md, replies.jsonl)"
        + ("" if args.out else f"; the run's page: {args.run}/report.html")
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = common.run_command(
        sub,
        "evaluate",
        "compare steering methods on the held-out SEV split",
        _evaluate,
        run_help="a discovery run directory (circuits, directions, store)",
    )
    add_config_flags(ev, EvalConfig, EVALUATE_FLAGS)
    common.judge_arg(ev, "the replies")
    ev.add_argument(
        "--sev", default=None, help="test SEV file (default: the shipped test split, sev_data/sev_test.jsonl)"
    )
    ev.add_argument(
        "--out",
        default=None,
        help="the folder to write the evaluation into, replaced whole: new, empty or an earlier evaluation's "
        "(default: RUN/evaluation/)",
    )
