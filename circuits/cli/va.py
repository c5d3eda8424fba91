"""``emocircuits va``: the valence-arousal subspace of one model (:mod:`circuits.runs.valence_arousal`)."""

from __future__ import annotations

import argparse

from circuits.cli import common
from circuits.cli.common import add_config_flags, config_from_args
from circuits.runs.valence_arousal import VAConfig

VA_FLAGS = (
    "texts",
    "ratings",
    "self_report",
    "lexicon",
    "vocab_only",
    "layer",
    "position",
    "emotions",
    "alphas",
    "steer_limit",
    "refusal",
    "sycophancy",
    "probe_limit",
    "refusal_tokens",
    "limit",
)


def _va(args: argparse.Namespace) -> int:
    from circuits.core.artifacts import InputError
    from circuits.runs import valence_arousal
    from circuits.va.probes import load_refusal_phrases

    if args.self_report and args.ratings != VAConfig.ratings:
        raise InputError(
            f"--ratings {args.ratings}: --self-report asks the model instead and would ignore it; give one"
        )
    if args.refusal_phrases and not args.refusal:
        raise InputError(
            f"--refusal-phrases {args.refusal_phrases}: only used by the refusal probe; add --refusal CSV or leave it out"
        )
    cfg = config_from_args(
        VAConfig,
        args,
        VA_FLAGS,
        ratings=None if args.self_report else args.ratings,
        refusal_phrases=load_refusal_phrases(args.refusal_phrases) if args.refusal_phrases else None,
    )
    common.check_model_args(args)
    judge = common.judge_from_args(args)
    valence_arousal.check_va_out(args.out)  # a VA run replaces its folder whole: refuse other files first
    with common.out_folder(args.out):
        s = valence_arousal.run_va(common.load_model_from_args(args), args.out, cfg, judge=judge)
    for what, names in s.get("dropped", {}).items():
        if names:
            print(f"note: left out {what.replace('_', ' ')}: {', '.join(names)}")
    rep = s.get("ratings_report", {})
    if cfg.self_report:
        print(
            f"self-reported VA: {rep['parsed']} of {rep['asked']} emotions rated; "
            f"{rep['n_unparsed']} unparseable answer(s)"
            + "".join(f"\n  {u['emotion']} {u['which']}: {u['answer']!r}" for u in rep["unparsed"])
        )
    print(
        f"layer {s['layer']}: R^2 {s['fit']['r2']}, circumplex order {s['circumplex']['order']}, "
        f"circle residual {s['circumplex']['residual']:.3f}"
    )
    if s["fit"].get("heldout"):
        h = s["fit"]["heldout"]
        print(
            f"each emotion left out ({h['n']}): R^2 "
            + ", ".join(
                f"{a} {'undefined (ratings all equal)' if v is None else f'{v:.2f}'}" for a, v in h["r2"].items()
            )
        )
    if "lexicon" in s:
        print("lexicon check:", s["lexicon"])
    for r in s.get("probes", {}).get("refusal", []):
        if not r["direction"].startswith("random"):
            by_type = ", ".join(f"{t} {v:.2f}" for t, v in r["refusal_rate_by_type"].items())
            print(f"refusal {r['direction']} alpha {r['alpha']:+g}: {r['refusal_rate']:.2f} ({by_type})")
    for name, b in s.get("behaviour", {}).items():
        if name != "rule":
            print(
                f"{b['claim']}: slope {b['slope']:+.4f} per alpha [{b['low']:+.4f}, {b['high']:+.4f}], "
                f"n {b['n']}: {b['verdict']} ({b['reason']})"
            )
    print(f"wrote {args.out}/axes.json, axes.safetensors, summary.json, figures/")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    va = sub.add_parser("va", help="valence-arousal subspace: axes, circumplex, lexicon check, steering, probes")
    common.model_args(va)
    va.add_argument("--out", required=True)
    add_config_flags(va, VAConfig, VA_FLAGS)
    common.judge_arg(va, "the steered replies (their labels are counted)", modes=False)
    va.add_argument(
        "--refusal-phrases",
        metavar="FILE",
        default=None,
        help="refusal detector phrases, one per line (default: a built-in list)",
    )
    va.set_defaults(func=_va)
