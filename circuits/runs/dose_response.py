"""``dose-response``: accuracy, emotion score and perplexity of each steered method against strength, with
random controls of equal norm (:mod:`circuits.steer.dose`), for a discovery run.

    emocircuits dose-response --model smollm2-135m --run runs/smol-full --sweep-limit 1 \\
        --direction-alphas 1 2 4 8 --ev-alphas 1 2 4 8 --circuit-lambdas 0.5 1 2 4 --out runs/smol-full/dose
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic
from circuits.core.config import ConfigError, check_config, help_field
from circuits.core.model import ModelHandle
from circuits.steer.metrics import EvalConfig

DOSE_FLAGS = ("methods", "emotions", "circuit_lambda", "direction_alpha", "direction_layers", "ev_alpha", "positions",
              "circuit_lambdas", "direction_alphas", "ev_alphas", "direction_source", "sweep_limit")
DOSE_JSON = "dose_response.json"


@dataclass(frozen=True)
class DoseConfig:
    """The random controls of :func:`run_dose_response` (the strengths come from its :class:`EvalConfig`)."""

    null_seeds: tuple[int, ...] = help_field((0, 1, 2), "seeds of the random controls, one control per seed and "
                                                        "strength; the figure draws their min-max band", min=0)

    def __post_init__(self) -> None:
        check_config(self)
        if len(set(self.null_seeds)) != len(self.null_seeds):
            raise ConfigError(f"DoseConfig.null_seeds (--null-seeds): expected distinct seeds, got "
                              f"{list(self.null_seeds)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DOSE_OWN_FLAGS = ("null_seeds",)


def run_dose_response(model: ModelHandle, run_dir: str | Path, cfg: EvalConfig, *, out: str | Path | None = None,
                      dose: DoseConfig | None = None, dev: Any = None, judge: Any = None,
                      progress: bool = True) -> dict[str, Any]:
    """:func:`circuits.steer.dose.dose_response` with the run's methods and their random controls
    (one per seed of ``dose.null_seeds``) on the train split (``dev``, default the shipped one); writes ``dose_response.json``
    and ``dose_response.html`` to ``out`` (default the run directory)."""
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import DEFAULT_TRAIN, SEVDataset, load_sev
    from circuits.runs.evaluate import check_run_dir, method_factories, run_prompts
    from circuits.steer.dose import dose_figure, dose_response

    null_seeds = (dose or DoseConfig()).null_seeds
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

    dose = config_from_args(DoseConfig, args, DOSE_OWN_FLAGS)
    cfg = config_from_args(EvalConfig, args, DOSE_FLAGS)
    cfg = replace(cfg, emotions=tuple(check_emotions(cfg.emotions)))
    _check_model_args(args)
    check_run_dir(args.run)
    judge = _judge(args)
    res = run_dose_response(_load(args), args.run, cfg, out=args.out, judge=judge, dose=dose)
    print(dose_table(res))
    print(f"wrote {Path(args.out or args.run) / DOSE_JSON} and {', '.join(res['figures'])}")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    from circuits.cli import _judge_arg, run_command
    from circuits.core.config import add_config_flags

    p = run_command(sub, "dose-response", "accuracy, emotion score and perplexity against strength for each "
                                          "steered method, with random controls of equal norm", _dose)
    add_config_flags(p, EvalConfig, DOSE_FLAGS)
    add_config_flags(p, DoseConfig, DOSE_OWN_FLAGS)
    p.add_argument("--out", default=None, help="where to write dose_response.json / .html (default: the run)")
    _judge_arg(p, "the replies", modes=False)
