"""The commands that add evidence to a discovery run: ``faithfulness``, ``concepts``, ``atlas`` and
``nulls`` (:mod:`circuits.runs.faithfulness`, :mod:`~circuits.runs.concepts`, :mod:`~circuits.runs.atlas`,
:mod:`~circuits.runs.nulls`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.runs import layout

FAITHFULNESS_FLAGS = ("rows", "seeds", "judge_rows", "split", "max_new_tokens", "batch_size", "seed")
CONCEPT_FLAGS = ("start_offset", "variance_share", "batch_size")
NULLS_FLAGS = ("seeds", "seed")


def _refuse_ignored(*flags: tuple[str, object, bool, str]) -> None:
    """Refuse each ``(flag, value, ignored, why)`` given (value not None) where the command would ignore it."""
    from circuits.core.artifacts import InputError

    for flag, value, ignored, why in flags:
        if value is not None and ignored:
            raise InputError(f"{flag} {value}: would be ignored ({why}); leave it out")


def _faithfulness(args: argparse.Namespace) -> int:
    from circuits.circuit.ablation_faithfulness import FaithfulnessConfig, faithfulness_table
    from circuits.runs.faithfulness import run_faithfulness
    from circuits.runs.rundir import Run

    cfg = config_from_args(FaithfulnessConfig, args, FAITHFULNESS_FLAGS)
    _refuse_ignored(
        ("--judge", args.judge, not cfg.judge_rows, "--judge-rows 0 judges nothing"),
        ("--sev", args.sev, cfg.split != "test", f"--split {cfg.split} reads the store's rows, not held-out items"),
    )
    common.check_model_args(args)
    Run(args.run)  # refuses a directory that holds no run, before the model loads
    judge = common.judge_from_args(args) if cfg.judge_rows else None
    res = run_faithfulness(
        common.load_run_model(args), args.run, cfg, judge=judge, emotions=args.emotions, heldout=args.sev
    )
    print(faithfulness_table(res["summary"]))
    print(f"wrote {Path(args.run) / layout.FAITHFULNESS_JSON} and the faithfulness block of every circuit file")
    return 0


def register_faithfulness(sub: argparse._SubParsersAction) -> None:
    from circuits.circuit.ablation_faithfulness import FaithfulnessConfig

    p = common.run_command(
        sub, "faithfulness", "circuit faithfulness of a discovery run against random circuits", _faithfulness
    )
    common.emotions_arg(p)
    add_config_flags(p, FaithfulnessConfig, FAITHFULNESS_FLAGS)
    p.add_argument(
        "--sev", default=None, help="SEV file of the held-out items for --split test (default: the shipped test split)"
    )
    common.judge_arg(p, "the judged generations", modes=False)


def _concepts(args: argparse.Namespace) -> int:
    import torch

    from circuits.discovery.concept_vectors import ConceptConfig
    from circuits.runs.concepts import CONCEPTS_JSON, run_concepts

    cfg = config_from_args(ConceptConfig, args, CONCEPT_FLAGS)
    common.check_model_args(args)
    res = run_concepts(common.load_run_model(args), args.run, cfg, texts=args.texts)
    mean = res["vs_sev"]["mlp"]["mean_by_layer"]
    best = int(torch.tensor(mean).argmax())
    print("emotion-concept vs SEV directions (resid_post), cosine averaged over emotions, per layer:")
    print("  " + " ".join(f"{x:+.2f}" for x in mean))
    print(f"  highest at layer {best}: {mean[best]:+.3f}")
    print(
        f"wrote {Path(args.run) / 'concept_directions.safetensors'} (use: --direction-source concept) and "
        f"{Path(args.run) / CONCEPTS_JSON}"
    )
    return 0


def register_concepts(sub: argparse._SubParsersAction) -> None:
    from circuits.discovery.concept_vectors import ConceptConfig

    p = common.run_command(
        sub,
        "concepts",
        "emotion-concept vectors from labelled texts, a fourth direction source",
        _concepts,
        run_help="a discovery run directory (its emotions and SEV directions)",
    )
    p.add_argument(
        "--texts",
        default=None,
        help="labelled texts, CSV or JSONL (default: the shipped ones); texts labelled 'neutral' give the projection",
    )
    add_config_flags(p, ConceptConfig, CONCEPT_FLAGS)


def _atlas(args: argparse.Namespace) -> int:
    from circuits.runs.atlas import ATLAS_HTML, ATLAS_JSON, atlas_table, write_atlas

    common.check_model_args(args)
    atlas = write_atlas(common.load_run_model(args), args.run, args.va)
    run = Path(args.run)
    print(atlas_table(atlas))
    print(f"wrote {run / ATLAS_JSON} and {run / ATLAS_HTML}")
    return 0


def register_atlas(sub: argparse._SubParsersAction) -> None:
    p = common.run_command(
        sub,
        "atlas",
        "one record per emotion linking direction, Emotion Vector, VA, circuit "
        "and faithfulness, with a cross-method agreement table",
        _atlas,
    )
    p.add_argument("--va", default=None, help="a VA run directory (emocircuits va): adds VA coordinates")


def _nulls(args: argparse.Namespace) -> int:
    from circuits.runs.nulls import NullsConfig, nulls_table, run_nulls

    cfg = config_from_args(NullsConfig, args, NULLS_FLAGS)
    common.check_model_args(args)
    evidence = run_nulls(common.load_run_model(args), args.run, cfg)
    print(nulls_table(evidence))
    print(f"wrote the null block of {Path(args.run) / layout.EVIDENCE_JSON}")
    return 0


def register_nulls(sub: argparse._SubParsersAction) -> None:
    from circuits.runs.nulls import NullsConfig

    p = common.run_command(
        sub, "nulls", "permuted-label nulls of a run's probe accuracy and cross-context cosine", _nulls
    )
    add_config_flags(p, NullsConfig, NULLS_FLAGS)


VALIDITY_FLAGS = (
    "limit",
    "texts_per_emotion",
    "point",
    "seeds",
    "seed",
    "bands",
    "batch_size",
    "steer_limit",
    "direction_alpha",
    "circuit_lambda",
    "positions",
    "max_new_tokens",
)


def _validity(args: argparse.Namespace) -> int:
    from circuits.runs.rundir import Run
    from circuits.runs.validity import ValidityConfig, check_stance_run, run_validity, validity_target

    cfg = config_from_args(ValidityConfig, args, VALIDITY_FLAGS)
    _refuse_ignored(
        ("--judge", args.judge, not cfg.steer_limit, "--steer-limit 0 steers nothing"),
        ("--stance-run", args.stance_run, not cfg.steer_limit, "--steer-limit 0 steers nothing"),
    )
    common.check_model_args(args)
    target = validity_target(Run(args.run), args.out)  # refused before the model loads
    check_stance_run(args.stance_run)
    judge = common.judge_from_args(args) if cfg.steer_limit else None
    res = run_validity(
        common.load_run_model(args), args.run, cfg, judge=judge, stance_run=args.stance_run, out=args.out
    )
    print(f"{'layers':>8}  {'verdict':<17} supporting sets")
    for b in res["bands"]:
        lo, hi = b["layers"]
        print(f"{lo:>3}-{hi:<4}  {b['verdict']:<17} {', '.join(b['supporting']) or 'none'}")
    for name, arm in ((res.get("steering") or {}).get("arms") or {}).items():
        print(f"  steering, {name}: fluent accuracy {arm['accuracy']:.2f} (n={arm['n']})")
    print(f"wrote {target / layout.VALIDITY_JSON}, {target / layout.VALIDITY_MD} and each set's directions")
    return 0


def register_validity(sub: argparse._SubParsersAction) -> None:
    from circuits.runs.validity import ValidityConfig

    p = common.run_command(
        sub,
        "validity",
        "emotion state or instruction word: probes, directions and steering across prompts that never name the emotion",
        _validity,
    )
    add_config_flags(p, ValidityConfig, VALIDITY_FLAGS)
    p.add_argument(
        "--stance-run",
        default=None,
        help="a discovery run made with --elicitation stance: its circuits are steered beside the run's",
    )
    p.add_argument("--out", default=None, help="folder of the results (default: RUN/validity/)")
    common.judge_arg(p, "the steered replies", modes=False)
