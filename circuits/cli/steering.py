"""The commands that steer with a discovery run's results: ``dose-response`` and ``trace``
(:mod:`circuits.runs.dose_response`, :mod:`circuits.runs.trace`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
    cfg.check_used(sweeps=False)  # an option the methods would ignore is refused
    common.check_model_args(args)
    Run(args.run)  # refuses a directory that holds no run, before the model loads
    judge = common.judge_from_args(args)
    with common.out_folder(args.out or args.run, "--out" if args.out else "--run"):
        model = common.load_run_model(args)
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


def _check_trace_flags(args: argparse.Namespace, cfg: Any) -> None:
    """Refuse, before the model loads: neither or both of ``--prompt`` / ``--text``, an empty one, and
    the flags the trace would ignore (``--strength`` of an unsteered method; ``--method prompting`` or
    ``--max-new-tokens`` with ``--text``, which generates nothing)."""
    from circuits.core.artifacts import InputError

    if (args.prompt is None) == (args.text is None):
        raise InputError("trace: give exactly one of --prompt (generate a reply) or --text (read a given text)")
    flag, value = ("--prompt", args.prompt) if args.prompt is not None else ("--text", args.text)
    if not value.strip():
        raise InputError(f"{flag}: expected a non-empty text, got {value!r}")
    if args.text is not None and cfg.method == "prompting":
        raise InputError(
            "--method prompting: prompts a generated reply; with --text nothing is generated (use --prompt)"
        )
    if args.text is not None and cfg.max_new_tokens != type(cfg).max_new_tokens:
        raise InputError(f"--max-new-tokens {cfg.max_new_tokens}: --text generates nothing and would ignore it")
    if cfg.strength is not None and cfg.method in ("none", "prompting"):
        raise InputError(
            f"--strength {cfg.strength:g}: --method {cfg.method} does not steer and would ignore it; "
            "leave it out or pick a steered method"
        )


def _trace(args: argparse.Namespace) -> int:
    from circuits.runs.rundir import Run
    from circuits.runs.trace import TraceConfig, check_trace_out, run_trace, write_trace

    cfg = config_from_args(TraceConfig, args, TRACE_FLAGS)
    _check_trace_flags(args, cfg)
    if str(args.out).endswith(".html"):
        common.check_output_files(args, "out")  # a file in an existing folder
    check_trace_out(args.out)  # nothing trace did not write is replaced; checked before the model loads
    common.check_model_args(args)
    Run(args.run)  # refuses a directory that holds no run, before the model loads
    res = run_trace(common.load_run_model(args), args.run, cfg, prompt=args.prompt, text=args.text)
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
    p.add_argument(
        "--out",
        required=True,
        help="a .html file (its scores go beside it, same name .json) or a folder (trace.html and trace.json, "
        "replaced together); files trace did not write are never replaced",
    )
