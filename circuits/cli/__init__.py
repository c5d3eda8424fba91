"""The ``emocircuits`` command line (also ``python -m circuits``).

Each sub-command is a thin wrapper over a Python function of the package; run
``emocircuits COMMAND --help`` for its options.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Callable, Sequence

from circuits.circuit.allocation import AllocationConfig
from circuits.core.config import add_config_flags, config_from_args
from circuits.judges.base import DEFAULT_JUDGE, JUDGE_MODES, JUDGE_SPECS
from circuits.runs.discover import DiscoverConfig
from circuits.steer.metrics import METHODS, EvalConfig
from circuits.steer.methods import STEERING_POSITIONS
from circuits.runs.valence_arousal import VAConfig

# The config fields each command exposes as flags (defaults and help come from the dataclasses).
DISCOVER_FLAGS = ("limit", "emotions", "batch_size", "store_dtype", "elicitation", "reference_head_rows",
                  "influence_rows", "reference_layers", "reference_budget_s", "alphas", "sweep_ks", "sweep_modes",
                  "sweep_seeds", "sweep_rows", "sweep_layers", "sweep_layer_count", "generation_rows", "null_seeds", "faithfulness_rows",
                  "faithfulness_seeds", "faithfulness_split", "faithfulness_judge_rows", "seed", "figures")
ALLOCATION_FLAGS = ("budget_per_sublayer", "neuron_share", "min_neurons", "min_heads", "cap_fraction")
EVALUATE_FLAGS = ("methods", "limit", "emotions", "circuit_lambda", "direction_alpha", "direction_layers", "ev_alpha",
                  "positions", "circuit_lambdas", "direction_alphas", "ev_alphas", "direction_source", "sweep_limit",
                  "fluency_factor")
PROMPT_FLAGS = ("placement", "user_instruction", "instruction_position", "emotion_system", "neutral_system")
VA_FLAGS = ("texts", "ratings", "self_report", "lexicon", "vocab_only", "layer", "position", "emotions", "alphas",
            "steer_limit", "refusal", "sycophancy", "limit")

Handler = Callable[[argparse.Namespace], int]


def _sev_validate(args: argparse.Namespace) -> int:
    from circuits.core.sev import SEVFormatError, load_sev

    from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN

    status = 0
    for path in args.files or [str(DEFAULT_TRAIN), str(DEFAULT_TEST)]:
        try:
            ds = load_sev(path)
        except (SEVFormatError, FileNotFoundError) as err:
            print(f"INVALID {err}", file=sys.stderr)
            status = 1
            continue
        print(f"OK {path}: {ds.summary()}")
    return status


def _model_args(p: argparse.ArgumentParser, default: str | None = "toy") -> None:
    """The model flags; ``default=None``: the model of the command's ``--run`` (its summary.json)."""
    shown = default if default is not None else "the model the --run directory was made on"
    p.add_argument("--model", default=default,
                   help=f"hub name, local directory, .gguf file, 'smollm2-135m' (the packaged SmolLM2-135M-Instruct) "
                        f"or 'toy' (default: {shown})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    p.add_argument("--device-map", default=None, help="e.g. 'auto' to spread a large model over GPUs")
    p.add_argument("--no-thinking", action="store_true", help="chat template enable_thinking=False (Qwen3)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of torch (default: torch's choice, one per core). With two jobs on one "
                        "machine give each fewer threads than cores: oversubscribed threads slow CPU "
                        "generation by an order of magnitude")


def run_command(sub: argparse._SubParsersAction, name: str, help: str, func: Handler, *,
                run_help: str = "a discovery run directory", model: bool = True) -> argparse.ArgumentParser:
    """The sub-command ``name`` over one discovery run: the model flags (unless ``model=False``), a
    required ``--run`` and its handler ``func``; the caller adds the command's own flags."""
    p = sub.add_parser(name, help=help)
    if model:
        _model_args(p, default=None)
    p.add_argument("--run", required=True, help=run_help)
    p.set_defaults(func=func)
    return p


def emotions_arg(p: argparse.ArgumentParser) -> None:
    """``--emotions``: a subset of the run's emotions (default: all of them); check with
    :func:`circuits.core.emotions.check_emotions` against the run."""
    p.add_argument("--emotions", nargs="+", default=None, metavar="EMOTION",
                   help="a subset of the run's emotions (default: all of them)")


def _prompt_args(p: argparse.ArgumentParser) -> None:
    """The :class:`~circuits.core.sev.PromptSettings` flags; unset ones take the model's recommended
    prompt (:func:`circuits.core.sev.recommended_prompts`: the paper's, or what was measured to work)."""
    from circuits.core.sev import PromptSettings

    group = p.add_argument_group("prompts (unset: the model's recommended prompt; see `emocircuits prompts`)")
    add_config_flags(group, PromptSettings, PROMPT_FLAGS)
    p.set_defaults(**{name: None for name in PROMPT_FLAGS})


def _prompt_settings(args: argparse.Namespace):
    from circuits.core.sev import recommended_prompts

    given = {name: getattr(args, name) for name in PROMPT_FLAGS if getattr(args, name, None) is not None}
    return replace(recommended_prompts(args.model), **given)


def _judge_arg(p: argparse.ArgumentParser, what: str, modes: bool = True) -> None:
    p.add_argument("--judge", default=None, metavar="SPEC",
                   help=f"judge of {what}: {' | '.join(JUDGE_SPECS)} (llm: EMOCIRCUITS_JUDGE_URL, "
                        f"EMOCIRCUITS_JUDGE_MODEL, EMOCIRCUITS_JUDGE_KEY from the environment); default "
                        f"{DEFAULT_JUDGE} (lexicon for the toy model, whose notion of emotion is that lexicon)")
    if not modes:
        return
    p.add_argument("--judge-mode", default="label", choices=JUDGE_MODES,
                   help="label: a hit is a 7-way verdict equal to the target emotion; match: the judge's "
                        "probability of the target reaches its match threshold (the paper's yes / no question)")


def _judge(args: argparse.Namespace):
    from circuits.judges.base import make_judge, recommended_judge

    if args.judge is None:
        args.judge = recommended_judge(getattr(args, "model", None))
    return make_judge(args.judge, device=getattr(args, "device", None) or "cpu",
                      mode=getattr(args, "judge_mode", "label"))


def _check_model_args(args: argparse.Namespace) -> None:
    """Refuse a device or dtype this machine cannot use before anything is loaded or written; an unset
    ``--model`` of a run command becomes the run's own model."""
    from circuits.core.model import check_device, check_dtype

    if getattr(args, "model", "") is None:
        from circuits.runs.evaluate import run_model

        args.model = run_model(args.run)
    check_device(args.device)
    check_dtype(args.dtype)


def _load(args: argparse.Namespace):
    from circuits.core.model import load_model

    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(max(1, args.threads))
    return load_model(args.model, device=args.device, dtype=args.dtype, device_map=args.device_map,
                      chat_template_kwargs={"enable_thinking": False} if args.no_thinking else None)


def _discover(args: argparse.Namespace) -> int:
    from circuits.runs.discover import agreement_line, check_request, discover
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import load_sev

    allocation = config_from_args(AllocationConfig, args, ALLOCATION_FLAGS)
    cfg = config_from_args(DiscoverConfig, args, DISCOVER_FLAGS, allocation=allocation)
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    _check_model_args(args)
    dataset = load_sev(args.sev)
    check_request(cfg, dataset)  # before the model loads: quick feedback
    settings = _prompt_settings(args)
    judge = _judge(args)
    model = _load(args)
    summary = discover(model, dataset, args.out, cfg, settings=settings, judge=judge)
    ag = summary["agreement"]
    rows = summary["rows"]
    print(f"wrote {args.out}: store {rows['emotion']} emotion rows and {rows['neutral']} neutral rows, circuits "
          f"{summary['circuits']}")
    if cfg.elicitation:
        from circuits.runs.discover import kept_line

        print("elicitation " + kept_line(rows["kept"]))
    print(agreement_line(ag))
    if summary.get("faithfulness"):
        from circuits.circuit.ablation_faithfulness import faithfulness_table

        print(faithfulness_table(summary["faithfulness"]))
    print("timings (s):", summary["timings_s"])
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import DEFAULT_TEST, load_sev
    from circuits.runs.evaluate import check_run_dir, run_evaluation
    from circuits.steer.metrics import method_table, sweep_table

    cfg = config_from_args(EvalConfig, args, EVALUATE_FLAGS)  # every input is checked before the model loads
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    _check_model_args(args)
    check_run_dir(args.run)
    sev = load_sev(args.sev or DEFAULT_TEST)
    judge = _judge(args)
    model = _load(args)
    result = run_evaluation(model, args.run, cfg, sev=sev, out=args.out, judge=judge)
    if result.get("strength_sweep"):
        print(sweep_table(result["strength_sweep"]))
    print(method_table(result))
    print(f"wrote {args.out or args.run}/evaluation.json, evaluation.csv, accuracy.html, report.md")
    return 0


DEMO_EVAL_FLAGS = ("positions", "circuit_lambdas", "direction_alphas", "ev_alphas", "direction_source", "sweep_limit",
                  "fluency_factor")


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
    ecfg = pick(EvalConfig, DEMO_EVAL_FLAGS, "evaluate",
                **({"limit": args.eval_limit} if args.eval_limit is not None else {}))
    _check_model_args(args)
    settings = _prompt_settings(args)
    judge = _judge(args)
    model = _load(args)
    dcfg = pick(DiscoverConfig, DISCOVER_FLAGS, "discover", n_layers=model.arch.n_layers, allocation=allocation)
    run_demo(model, args.out, dcfg, ecfg, settings, judge=judge)
    return 0


def _figures(args: argparse.Namespace) -> int:
    import os

    from circuits.runs.redraw import make_figures

    for p in make_figures(args.run, va=args.va, png_dir=args.png_dir):
        rel = os.path.relpath(p)
        print(p if rel.startswith("..") else rel)
    return 0


def _va(args: argparse.Namespace) -> int:
    from circuits.runs.valence_arousal import VAConfig, run_va
    from circuits.va.probes import load_refusal_phrases

    cfg = config_from_args(
        VAConfig, args, VA_FLAGS, ratings=None if args.self_report else args.ratings,
        refusal_phrases=load_refusal_phrases(args.refusal_phrases) if args.refusal_phrases else None)
    _check_model_args(args)
    judge = _judge(args)
    s = run_va(_load(args), args.out, cfg, judge=judge)
    for what, names in s.get("dropped", {}).items():
        if names:
            print(f"note: left out {what.replace('_', ' ')}: {', '.join(names)}")
    rep = s.get("ratings_report", {})
    if cfg.self_report:
        print(f"self-reported VA: {rep['parsed']} of {rep['asked']} emotions rated; "
              f"{rep['n_unparsed']} unparseable answer(s)"
              + "".join(f"\n  {u['emotion']} {u['which']}: {u['answer']!r}" for u in rep["unparsed"]))
    print(f"layer {s['layer']}: R^2 {s['fit']['r2']}, circumplex order {s['circumplex']['order']}, "
          f"circle residual {s['circumplex']['residual']:.3f}")
    if "lexicon" in s:
        print("lexicon check:", s["lexicon"])
    for r in s.get("probes", {}).get("refusal", []):
        if not r["direction"].startswith("random"):
            by_type = ", ".join(f"{t} {v:.2f}" for t, v in r["refusal_rate_by_type"].items())
            print(f"refusal {r['direction']} alpha {r['alpha']:+g}: {r['refusal_rate']:.2f} ({by_type})")
    print(f"wrote {args.out}/axes.json, axes.safetensors, summary.json, figures/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emocircuits", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sev = sub.add_parser("sev", help="SEV dataset tools").add_subparsers(dest="sev_command", required=True)
    val = sev.add_parser("validate", help="check SEV files and print a one-line summary or the errors")
    val.add_argument("files", nargs="*", help="SEV JSONL (or JSON array) files (default: the shipped train and test splits)")
    val.set_defaults(func=_sev_validate)

    dis = sub.add_parser("discover", help="store, directions, DLA, neurons/heads, sweeps, influence, circuits")
    _model_args(dis)
    dis.add_argument("--out", required=True, help="run directory (created; a matching store in it is reused)")
    dis.add_argument("--sev", default=None, help="SEV file (default: the shipped train split, sev_data/sev.jsonl)")
    add_config_flags(dis, DiscoverConfig, DISCOVER_FLAGS)
    add_config_flags(dis.add_argument_group("circuit budget and allocation"), AllocationConfig, ALLOCATION_FLAGS)
    _prompt_args(dis)
    _judge_arg(dis, "elicited replies and of generations under ablation / enhancement")
    dis.set_defaults(func=_discover)

    ev = run_command(sub, "evaluate", "compare steering methods on the held-out SEV split", _evaluate,
                     run_help="a discovery run directory (circuits, directions, store)")
    add_config_flags(ev, EvalConfig, EVALUATE_FLAGS)
    _judge_arg(ev, "the replies")
    ev.add_argument("--sev", default=None, help="test SEV file (default: the shipped test split, sev_data/sev_test.jsonl)")
    ev.add_argument("--out", default=None, help="where to write the report (default: the run directory)")

    demo = sub.add_parser("demo", help="discovery, circuits, strength sweep and method comparison on one model "
                                       "(default: the packaged SmolLM2-135M-Instruct)")
    _model_args(demo, default="smollm2-135m")
    demo.add_argument("--out", default="runs/demo")
    add_config_flags(demo.add_argument_group("discovery (unset: the model's demo preset, circuits.runs.demo)"),
                     DiscoverConfig, DISCOVER_FLAGS)
    add_config_flags(demo.add_argument_group("circuit budget and allocation"), AllocationConfig, ALLOCATION_FLAGS)
    ev_group = demo.add_argument_group("evaluation (unset: the model's demo preset)")
    ev_group.add_argument("--eval-limit", type=int, default=None, help="SEV test scenarios for the evaluation")
    add_config_flags(ev_group, EvalConfig, DEMO_EVAL_FLAGS)
    demo.set_defaults(**{n: None for n in DISCOVER_FLAGS + DEMO_EVAL_FLAGS})
    _prompt_args(demo)
    _judge_arg(demo, "elicited replies, generations and the evaluation")
    demo.set_defaults(func=_demo)

    va = sub.add_parser("va", help="valence-arousal subspace: axes, circumplex, lexicon check, steering, probes")
    _model_args(va)
    va.add_argument("--out", required=True)
    add_config_flags(va, VAConfig, VA_FLAGS)
    _judge_arg(va, "the steered replies (their labels are counted)", modes=False)
    va.add_argument("--refusal-phrases", metavar="FILE", default=None,
                    help="refusal detector phrases, one per line (default: a built-in list)")
    va.set_defaults(func=_va)

    fig = sub.add_parser("figures", help="regenerate every figure of a discovery run (+ evaluation) and a VA run")
    fig.add_argument("--run", "--discover", dest="run", required=True, help="a discovery run directory")
    fig.add_argument("--va", default=None, help="a VA run directory (emocircuits va)")
    fig.add_argument("--png-dir", default=None, help="copy the PNGs here (make figures: the repo's figures/)")
    fig.set_defaults(func=_figures)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Sub-commands defined next to the code they run (each module exposes ``register_cli``)."""
    import importlib

    out = []
    for mod in ("circuits.cli.toy", "circuits.runs.prompts", "circuits.judges.training", "circuits.runs.export",
                "circuits.runs.faithfulness", "circuits.runs.dose_response", "circuits.runs.concepts",
                "circuits.runs.atlas", "circuits.runs.trace", "circuits.runs.nulls"):
        try:
            out.append(importlib.import_module(mod).register_cli)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
    return out


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input (files, names, models), printed as one line, no traceback."""
    from circuits.core.artifacts import InputError

    return (InputError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command. Bad input (a malformed file, an unknown emotion, a bad number, a model or
    circuit that does not match, an unusable path) prints ``emocircuits: error: ...`` on stderr and
    returns 2, without a traceback; Ctrl-C returns 130; any other exception is a bug: its traceback is
    printed with a line asking to report it, and the status is 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"{parser.prog}: internal error (a bug, not your input): please report it with the command "
              "line and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
