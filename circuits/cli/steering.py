"""The commands that steer with a discovery run's results: ``dose-response`` and ``trace``
(:mod:`circuits.runs.dose_response`, :mod:`circuits.runs.trace`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.steer.metrics import EvalConfig

DOSE_FLAGS = (
    "methods",
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
)
DOSE_OWN_FLAGS = ("null_seeds",)
TRACE_FLAGS = ("method", "emotion", "strength", "positions", "direction_source", "max_new_tokens")


def _dose(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from circuits.core.emotions import check_emotions
    from circuits.runs.dose_response import DOSE_JSON, DoseConfig, run_dose_response
    from circuits.runs.rundir import Run
    from circuits.steer.dose import dose_table

    dose = config_from_args(DoseConfig, args, DOSE_OWN_FLAGS)
    cfg = config_from_args(EvalConfig, args, DOSE_FLAGS)
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    common.check_model_args(args)
    Run(args.run)  # refuses a directory that holds no run, before the model loads
    judge = common.judge_from_args(args)
    with common.out_folder(args.out or args.run, "--out" if args.out else "--run"):
        model = common.load_model_from_args(args)
        res = run_dose_response(model, args.run, cfg, out=args.out, judge=judge, dose=dose)
    print(dose_table(res))
    print(f"wrote {Path(args.out or args.run) / DOSE_JSON} and {', '.join(res['figures'])}")
    return 0


def register_dose_response(sub: argparse._SubParsersAction) -> None:
    from circuits.runs.dose_response import DoseConfig

    p = common.run_command(
        sub,
        "dose-response",
        "accuracy, emotion score and perplexity against strength for each "
        "steered method, with random controls of equal norm",
        _dose,
    )
    add_config_flags(p, EvalConfig, DOSE_FLAGS)
    add_config_flags(p, DoseConfig, DOSE_OWN_FLAGS)
    p.add_argument("--out", default=None, help="where to write dose_response.json / .html (default: the run)")
    common.judge_arg(p, "the replies", modes=False)


def _trace(args: argparse.Namespace) -> int:
    from circuits.runs.trace import TraceConfig, run_trace, write_trace

    cfg = config_from_args(TraceConfig, args, TRACE_FLAGS)
    common.check_model_args(args)
    res = run_trace(common.load_model_from_args(args), args.run, cfg, prompt=args.prompt, text=args.text)
    out, scores = write_trace(res, args.out, args.run, from_text=args.text is not None)
    print(f"reply: {res['reply']}")
    print(f"wrote {out} (open in a browser) and {scores}")
    return 0


def register_trace(sub: argparse._SubParsersAction) -> None:
    from circuits.runs.trace import TraceConfig

    p = common.run_command(
        sub,
        "trace",
        "per-token emotion scores of a (steered) reply or a text, as an HTML view",
        _trace,
        run_help="a discovery run directory (its directions, and circuits to steer)",
    )
    p.add_argument("--prompt", default=None, help="a user message: generate the reply and trace it")
    p.add_argument("--text", default=None, help="a text to read and trace (no generation)")
    add_config_flags(p, TraceConfig, TRACE_FLAGS)
    p.add_argument("--out", required=True, help="the HTML file to write (the scores go to the same name .json)")
