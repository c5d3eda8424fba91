"""``emocircuits demo``: discovery, circuits, strength sweep and method comparison on one model."""

from __future__ import annotations

import argparse

from circuits.circuit.allocation import AllocationConfig
from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.cli.discover import ALLOCATION_FLAGS, DISCOVER_FLAGS
from circuits.runs.discover import DiscoverConfig
from circuits.steer.metrics import EvalConfig

DEMO_EVAL_FLAGS = (
    "positions",
    "circuit_lambdas",
    "direction_alphas",
    "ev_alphas",
    "direction_source",
    "sweep_limit",
    "fluency_factor",
)


def _demo(args: argparse.Namespace) -> int:
    """Discovery + circuits + strength sweep + evaluation on one model (default: SmolLM2), one run directory."""
    from circuits.runs.demo import preset_for, resolve_layer_counts, run_demo

    preset = preset_for(args.model)

    def pick(cls, flags, section, n_layers=None, **extra):
        given = {n: getattr(args, n) for n in flags if getattr(args, n) is not None}
        values = {**preset[section], **extra, **given}
        if n_layers is not None:
            values = resolve_layer_counts(values, n_layers)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    allocation = config_from_args(AllocationConfig, args, ALLOCATION_FLAGS)
    ecfg = pick(
        EvalConfig, DEMO_EVAL_FLAGS, "evaluate", **({"limit": args.eval_limit} if args.eval_limit is not None else {})
    )
    common.check_model_args(args)
    settings = common.prompt_settings(args)
    judge = common.judge_from_args(args)
    model = common.load_model_from_args(args)
    dcfg = pick(DiscoverConfig, DISCOVER_FLAGS, "discover", n_layers=model.arch.n_layers, allocation=allocation)
    run_demo(model, args.out, dcfg, ecfg, settings, judge=judge, print_fn=print)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="discovery, circuits, strength sweep and method comparison on one model "
        "(default: the packaged SmolLM2-135M-Instruct)",
    )
    common.model_args(demo, default="smollm2-135m")
    demo.add_argument("--out", default="runs/demo")
    add_config_flags(
        demo.add_argument_group("discovery (unset: the model's demo preset, circuits.runs.demo)"),
        DiscoverConfig,
        DISCOVER_FLAGS,
    )
    add_config_flags(demo.add_argument_group("circuit budget and allocation"), AllocationConfig, ALLOCATION_FLAGS)
    ev_group = demo.add_argument_group("evaluation (unset: the model's demo preset)")
    ev_group.add_argument("--eval-limit", type=int, default=None, help="SEV test scenarios for the evaluation")
    add_config_flags(ev_group, EvalConfig, DEMO_EVAL_FLAGS)
    demo.set_defaults(**{n: None for n in DISCOVER_FLAGS + DEMO_EVAL_FLAGS})
    common.prompt_args(demo)
    common.judge_arg(demo, "elicited replies, generations and the evaluation")
    demo.set_defaults(func=_demo)
