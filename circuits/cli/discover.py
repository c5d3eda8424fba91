"""``emocircuits discover``: store, directions, attribution, sweeps, influence and circuits of one model."""

from __future__ import annotations

import argparse
from dataclasses import replace

from circuits.circuit.allocation import AllocationConfig
from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.runs.discover import DiscoverConfig

# The config fields each command exposes as flags (defaults and help come from the dataclasses).
DISCOVER_FLAGS = (
    "limit",
    "emotions",
    "batch_size",
    "store_dtype",
    "elicitation",
    "reference_head_rows",
    "influence_rows",
    "reference_layers",
    "reference_budget_s",
    "alphas",
    "sweep_ks",
    "sweep_modes",
    "sweep_seeds",
    "sweep_rows",
    "sweep_layers",
    "sweep_layer_count",
    "generation_rows",
    "null_seeds",
    "faithfulness_rows",
    "faithfulness_seeds",
    "faithfulness_split",
    "faithfulness_judge_rows",
    "seed",
    "figures",
)
ALLOCATION_FLAGS = ("budget_per_sublayer", "neuron_share", "min_neurons", "min_heads", "cap_fraction")


def _discover(args: argparse.Namespace) -> int:
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import load_sev
    from circuits.runs.discover import agreement_line, check_request, check_rerun, discover

    allocation = config_from_args(AllocationConfig, args, ALLOCATION_FLAGS)
    cfg = config_from_args(DiscoverConfig, args, DISCOVER_FLAGS, allocation=allocation)
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    common.check_model_args(args)
    dataset = load_sev(args.sev)
    check_request(cfg, dataset)  # before the model loads: quick feedback
    settings = common.prompt_settings(args)
    judge = common.judge_from_args(args)
    with common.out_folder(args.out):
        check_rerun(args.out, args.replace)  # before the model loads, under the run's writer lock
        model = common.load_model_from_args(args)
        summary = discover(model, dataset, args.out, cfg, settings=settings, judge=judge, replace=args.replace)
    ag = summary["agreement"]
    rows = summary["rows"]
    print(
        f"wrote {args.out}: store {rows['emotion']} emotion rows and {rows['neutral']} neutral rows, circuits "
        f"{summary['circuits']}"
    )
    if cfg.elicitation:
        from circuits.runs.discover import kept_line

        print("elicitation " + kept_line(rows["kept"]))
    print(agreement_line(ag))
    if summary.get("faithfulness"):
        from circuits.circuit.ablation_faithfulness import faithfulness_table

        print(faithfulness_table(summary["faithfulness"]))
    print("timings (s):", summary["timings_s"])
    print(f"the run's page: {args.out}/report.html")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    dis = sub.add_parser("discover", help="store, directions, DLA, neurons/heads, sweeps, influence, circuits")
    common.model_args(dis)
    dis.add_argument("--out", required=True, help="run directory (created; a matching store in it is reused)")
    dis.add_argument(
        "--replace",
        action="store_true",
        help="into a run that holds outputs of other commands (evaluate, concepts, ...): delete them "
        "(without it, such a rerun is refused with the list of what would go)",
    )
    dis.add_argument("--sev", default=None, help="SEV file (default: the shipped train split, sev_data/sev.jsonl)")
    add_config_flags(dis, DiscoverConfig, DISCOVER_FLAGS)
    add_config_flags(dis.add_argument_group("circuit budget and allocation"), AllocationConfig, ALLOCATION_FLAGS)
    common.prompt_args(dis)
    common.judge_arg(dis, "elicited replies and of generations under ablation / enhancement")
    dis.set_defaults(func=_discover)
