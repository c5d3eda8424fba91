"""``nulls``: the permuted-label nulls of a discovery run's direction evidence (also a step of ``discover``,
``--null-seeds``), added to its ``directions_evidence.json`` (:mod:`circuits.discovery.label_nulls`).

    emocircuits nulls --model smollm2-135m --run runs/smol-full --seeds 2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuits.core.artifacts import write_json_atomic
from circuits.core.config import check_config, help_field
from circuits.core.model import ModelHandle
from circuits.core.ownership import owned
from circuits.runs import layout


@dataclass(frozen=True)
class NullsConfig:
    """Options of :func:`run_nulls` (the same two as ``discover --null-seeds / --seed``)."""

    seeds: int = help_field(2, "label permutations, one null per permutation", min=1)
    seed: int = help_field(0, "first permutation seed (seeds seed .. seed + seeds - 1)", min=0)

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_nulls(model: ModelHandle, run_dir: str | Path, cfg: NullsConfig | None = None) -> dict[str, Any]:
    """Permuted-label probe accuracy (mlp read point) and cross-context cosine for the run's store,
    written under ``"null"`` in ``directions_evidence.json`` (the rest of the file is kept)."""
    from circuits.discovery.label_nulls import direction_nulls
    from circuits.runs.rundir import Run

    run = Run(run_dir)
    store = run.store(model)
    evidence = run.evidence
    cfg = cfg or NullsConfig()
    evidence["null"] = direction_nulls(store, seeds=cfg.seeds, seed=cfg.seed)
    with owned(run.path, "--run"):
        write_json_atomic(run.file(layout.EVIDENCE_JSON), evidence)
    return evidence


def nulls_table(evidence: dict[str, Any]) -> str:
    """Plain text: per layer, the real probe accuracy and cross-context cosine against the null band."""
    real_p = evidence["probe_accuracy"]["mlp"]
    null = evidence["null"]
    null_p = np.array(null["probe_accuracy"]["mlp"]["seeds"])
    real_c, null_c = evidence["cosine_by_theme"][1], np.array(null["cosine_by_theme"]["seeds"])[:, 1]
    lines = [f"{'layer':>5} {'probe':>6} {'null probe (min-max)':>21} {'cosine':>7} {'null cosine (min-max)':>22}"]
    for L in range(len(real_p)):
        lines.append(
            f"{L:>5} {real_p[L]:>6.3f} {null_p[:, L].min():>10.3f}-{null_p[:, L].max():<10.3f} "
            f"{real_c[L]:>7.3f} {null_c[:, L].min():>11.3f}-{null_c[:, L].max():<10.3f}"
        )
    lines.append(f"chance {null['chance']:.3f}; {null['seeds']} permutations ({null['method']})")
    return "\n".join(lines)
