"""``dose-response``: accuracy, emotion score and perplexity of each steered method against strength, with
random controls of equal norm (:mod:`circuits.steer.dose`), for a discovery run.

    emocircuits dose-response --model smollm2-135m --run runs/smol-full --sweep-limit 1 \\
        --direction-alphas 1 2 4 8 --ev-alphas 1 2 4 8 --circuit-lambdas 0.5 1 2 4 --out runs/smol-full/dose
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from circuits.core.artifacts import write_json_atomic
from circuits.core.model import ModelHandle
from circuits.steer.evaluate import EvalConfig

DOSE_FLAGS = ("methods", "emotions", "circuit_lambda", "direction_alpha", "direction_layers", "ev_alpha", "positions",
              "circuit_lambdas", "direction_alphas", "ev_alphas", "direction_source", "sweep_limit")
DOSE_JSON = "dose_response.json"


def run_dose_response(model: ModelHandle, run_dir: str | Path, cfg: EvalConfig, *, out: str | Path | None = None,
                      dev: Any = None, judge: Any = None, null_seeds: Sequence[int] = (0, 1, 2),
                      progress: bool = True) -> dict[str, Any]:
    """:func:`circuits.steer.dose.dose_response` with the run's methods and their random controls
    (one per seed of ``null_seeds``) on the train split (``dev``, default the shipped one); writes ``dose_response.json``
    and ``dose_response.html`` to ``out`` (default the run directory)."""
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import DEFAULT_TRAIN, SEVDataset, load_sev
    from circuits.runs.evaluate import check_run_dir, method_factories, run_prompts
    from circuits.steer.dose import dose_figure, dose_response

    if not null_seeds or len(set(null_seeds)) != len(null_seeds):
        raise ValueError(f"run_dose_response: null_seeds must be distinct seeds, at least one; got {list(null_seeds)}")
    run = check_run_dir(run_dir)
    emotions = check_emotions(cfg.emotions)
    factories, _ = method_factories(model, run, cfg, emotions, progress=progress)
    controls = [method_factories(model, run, cfg, emotions, null_seed=s, progress=False)[0] for s in null_seeds]
    dev = dev if isinstance(dev, SEVDataset) else load_sev(dev or DEFAULT_TRAIN)
    res = dose_response(model, dev, factories, controls, cfg, run_prompts(run), judge, progress=progress)
    res["null_seeds"] = list(null_seeds)
    target = Path(out or run)
    target.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target / DOSE_JSON, res)
    res["figures"] = dose_figure(res, target)
    return res


def _dose(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from circuits.cli import _check_model_args, _judge, _load
    from circuits.core.config import config_from_args
    from circuits.core.emotions import check_emotions
    from circuits.runs.evaluate import check_run_dir
    from circuits.steer.dose import dose_table

    if len(set(args.null_seeds)) != len(args.null_seeds):
        from circuits.core.artifacts import InputError

        raise InputError(f"--null-seeds: expected distinct seeds, got {args.null_seeds}")
    cfg = config_from_args(EvalConfig, args, DOSE_FLAGS)
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    _check_model_args(args)
    check_run_dir(args.run)
    judge = _judge(args)
    res = run_dose_response(_load(args), args.run, cfg, out=args.out, judge=judge, null_seeds=args.null_seeds)
    print(dose_table(res))
    print(f"wrote {Path(args.out or args.run) / DOSE_JSON} and {', '.join(res['figures'])}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    from circuits.cli import _judge_arg, _model_args
    from circuits.core.config import add_config_flags

    p = sub.add_parser("dose-response", help="accuracy, emotion score and perplexity against strength for each "
                                             "steered method, with random controls of equal norm")
    _model_args(p)
    p.add_argument("--run", required=True, help="a discovery run directory")
    add_config_flags(p, EvalConfig, DOSE_FLAGS)
    p.add_argument("--null-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the random controls, one control per seed and strength; the figure draws their "
                        "min-max band (default: 0 1 2)")
    p.add_argument("--out", default=None, help="where to write dose_response.json / .html (default: the run)")
    _judge_arg(p, "the replies", modes=False)
    p.set_defaults(func=_dose)
