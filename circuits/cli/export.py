"""``emocircuits export-gguf`` and ``export-graph``: a discovery run's results in formats other tools read
(:mod:`circuits.runs.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.core.artifacts import write_json_atomic
from circuits.runs.export import (
    ControlVectorConfig,
    check_control_vector,
    check_table,
    export_control_vector,
    export_graphs,
)

EXPORT_FLAGS = ("source", "emotion", "strength", "layers", "axis", "check")


def _check_export_flags(args: argparse.Namespace, cfg: ControlVectorConfig) -> None:
    """Refuse the flags ``export-gguf`` would ignore, and a missing ``--va`` of source va, before the
    model loads."""
    from circuits.core.artifacts import InputError

    if cfg.source == "va" and not args.va:
        raise InputError("--va: source 'va' needs the VA run directory (--va DIR)")
    if cfg.source != "va" and args.va:
        raise InputError(f"--va {args.va}: source {cfg.source!r} would ignore it (source va only); leave it out")
    for flag, value in (("--gguf", args.gguf), ("--judge", args.judge)):
        if value is not None and not cfg.check:
            raise InputError(f"{flag} {value}: only used with --check N (N >= 1); leave it out or add --check")
    common.check_output_files(args, "out")


def _export_gguf(args: argparse.Namespace) -> int:
    from circuits.runs.rundir import Run

    cfg = config_from_args(ControlVectorConfig, args, EXPORT_FLAGS)
    _check_export_flags(args, cfg)
    common.check_model_args(args)
    Run(args.run)  # refuses a directory that holds no run, before the model loads
    judge = common.judge_from_args(args) if cfg.check else None
    model = common.load_run_model(args)
    cfg.check_model(model)
    cv = export_control_vector(model, args.run, cfg, va_dir=args.va)
    path = cv.save(args.out)
    print(
        f"wrote {path}: {len(cv.vectors)} layer(s) {list(cv.vectors)}, model hint {cv.model_hint!r}; "
        f"llama.cpp: --control-vector {path}"
    )
    if cfg.check:
        res = check_control_vector(
            model,
            cv,
            cfg.emotion,
            limit=cfg.check,
            run_dir=args.run,
            judge=judge,
            circuit_lambda=cfg.strength if cfg.source == "circuit" else None,
            threads=args.threads or 2,
            gguf_model=args.gguf,
        )
        print(check_table(res))
        report = Path(str(args.out) + ".check.json")
        write_json_atomic(report, res)
        print(f"wrote {report}")
    return 0


def _export_graph(args: argparse.Namespace) -> int:
    common.check_model_args(args)
    for p in export_graphs(common.load_run_model(args), args.run, args.emotions):
        print(p)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = common.run_command(
        sub,
        "export-gguf",
        "a direction, Emotion Vector, VA axis or circuit as a llama.cpp control vector (GGUF)",
        _export_gguf,
    )
    add_config_flags(p, ControlVectorConfig, EXPORT_FLAGS)
    p.add_argument("--va", default=None, help="source va: the VA run directory (emocircuits va)")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--gguf", default=None, help="the model as GGUF for llama.cpp (default: the packaged SmolLM2)")
    common.judge_arg(p, "the replies of --check", modes=False)

    g = common.run_command(
        sub, "export-graph", "per circuit: EAP-IG graph JSON, node-link JSON and an HTML view", _export_graph
    )
    common.emotions_arg(g)
