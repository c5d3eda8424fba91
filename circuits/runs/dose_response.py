"""``dose-response``: accuracy, emotion score and perplexity of each steered method against strength, with
random controls of equal norm (:mod:`circuits.steer.dose`), for a discovery run.

    emocircuits dose-response --model smollm2-135m --run runs/smol-full --sweep-limit 1 \\
        --direction-alphas 1 2 4 8 --ev-alphas 1 2 4 8 --circuit-lambdas 0.5 1 2 4 --out runs/smol-full/dose
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic
from circuits.core.config import ConfigError, check_config, help_field
from circuits.core.model import ModelHandle
from circuits.core.ownership import check_folder_target, owned
from circuits.core.provenance import provenance
from circuits.steer.metrics import EvalConfig

DOSE_JSON = "dose_response.json"


@dataclass(frozen=True)
class DoseConfig:
    """The random controls of :func:`run_dose_response` (the strengths come from its :class:`EvalConfig`)."""

    null_seeds: tuple[int, ...] = help_field(
        (0, 1, 2),
        "seeds of the random controls, one control per seed and strength; the figure draws their min-max band",
        min=0,
    )

    def __post_init__(self) -> None:
        check_config(self)
        if len(set(self.null_seeds)) != len(self.null_seeds):
            raise ConfigError(
                f"DoseConfig.null_seeds (--null-seeds): expected distinct seeds, got {list(self.null_seeds)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_dose_response(
    model: ModelHandle,
    run_dir: str | Path,
    cfg: EvalConfig,
    *,
    out: str | Path | None = None,
    dose: DoseConfig | None = None,
    dev: Any = None,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`circuits.steer.dose.dose_response` with the run's methods and their random controls
    (one per seed of ``dose.null_seeds``) on the train split (``dev``, default the shipped one); writes ``dose_response.json``
    and ``dose_response.html`` to ``out`` (default the run directory), holding its writer lock."""
    from circuits.runs.rundir import Run

    null_seeds = (dose or DoseConfig()).null_seeds
    run = Run(run_dir)
    target = check_folder_target(out or run.path, "--out" if out is not None else "--run")
    with owned(target):  # before anything is written (the cached Emotion Vectors included)
        return _dose_response_into(model, run, cfg, target, null_seeds, dev, judge, progress)


def _dose_response_into(
    model: ModelHandle,
    run: Any,
    cfg: EvalConfig,
    target: Path,
    null_seeds: tuple[int, ...],
    dev: Any,
    judge: Any,
    progress: bool,
) -> dict[str, Any]:
    from circuits.core.emotions import check_emotions
    from circuits.core.sev import DEFAULT_TRAIN, SEVDataset, load_sev
    from circuits.runs.evaluate import method_factories
    from circuits.steer.dose import dose_response

    emotions = check_emotions(cfg.emotions)
    factories, _ = method_factories(model, run, cfg, emotions, progress=progress)
    controls = [method_factories(model, run, cfg, emotions, null_seed=s, progress=False)[0] for s in null_seeds]
    dev = dev if isinstance(dev, SEVDataset) else load_sev(dev or DEFAULT_TRAIN)
    res = dose_response(model, dev, factories, controls, cfg, run.prompts, judge, progress=progress)
    res["null_seeds"] = list(null_seeds)
    res.update(provenance())
    target.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target / DOSE_JSON, res)
    res["figures"] = dose_figure(res, target)
    return res


def dose_figure(res: dict[str, Any], out_dir: Any) -> list:
    """``dose_response.html`` (+ PNG where a renderer exists), drawn by
    :func:`circuits.figures.dose_curves.dose_response_figure` (the run report draws the same figure)."""
    from circuits.figures.dose_curves import dose_response_figure
    from circuits.figures.render import save_figure

    title = (
        f"Dose-response on {res['model']['name']} ({res['dev']['items_per_point']} dev replies "
        f"per point, judge {res['judge']})"
    )
    return save_figure(dose_response_figure(res, title=title), Path(out_dir), "dose_response")
