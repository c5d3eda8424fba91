"""``faithfulness``: measure the faithfulness of a discovery run's circuits (also a step of ``discover``)
and write it into the circuit files (schema version 2) and ``faithfulness.json``.

    emocircuits faithfulness --model smollm2-135m --run runs/smol-full --rows 24 --seeds 3 --judge-rows 4
    emocircuits faithfulness --model smollm2-135m --run runs/smol-full --split train   # in-sample
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic
from circuits.core.model import ModelHandle
from circuits.core.ownership import owned
from circuits.runs import layout


def run_faithfulness(
    model: ModelHandle,
    run_dir: str | Path,
    cfg: Any = None,
    *,
    judge: Any = None,
    emotions: list[str] | None = None,
    heldout: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Faithfulness of the circuits of ``run_dir`` (:func:`circuits.circuit.ablation_faithfulness.circuit_faithfulness`
    on the run's store and directions; with ``cfg.split == "test"`` on the items of ``heldout``, an
    :class:`~circuits.core.sev.SEVDataset` or a path, default the shipped test split). Each circuit file is rewritten with its ``faithfulness`` block
    (atomically, one file at a time); ``faithfulness.json`` holds ``{"summary", "blocks", "config"}``."""
    from circuits.circuit.ablation_faithfulness import FaithfulnessConfig, circuit_faithfulness, faithfulness_summary
    from circuits.core.sev import DEFAULT_TEST, SEVDataset, load_sev
    from circuits.runs.rundir import Run

    run = Run(run_dir)
    cfg = cfg or FaithfulnessConfig()
    store = run.store(model)
    dirs = run.directions()
    circuits = run.circuits(model=model, emotions=emotions)
    held = None
    if heldout is not None and cfg.split != "test":
        from circuits.core.artifacts import InputError

        raise InputError("--sev (the held-out items) is only read with --split test, not with --split train")
    if cfg.split == "test":
        held = heldout if isinstance(heldout, SEVDataset) else load_sev(heldout or DEFAULT_TEST)
    blocks = circuit_faithfulness(
        model, store, dirs, list(circuits.values()), cfg, heldout=held, judge=judge, progress=progress
    )
    from circuits.judges.base import judge_name

    result = {
        "summary": faithfulness_summary(blocks),
        "blocks": blocks,
        "config": cfg.to_dict(),
        "judge": judge_name(judge) if cfg.judge_rows else None,
        "model": model.describe(),
    }
    with owned(run.path, "--run"):
        for emotion, c in circuits.items():
            c.faithfulness = blocks[emotion]
            c.save(run.circuit_file(emotion))
        write_json_atomic(run.file(layout.FAITHFULNESS_JSON), result)
    return result
