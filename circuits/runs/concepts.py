"""``concepts``: emotion-concept vectors (:mod:`circuits.discovery.concept_vectors`) for a discovery run, saved next
to its SEV directions and compared with them layer by layer.

    emocircuits concepts --model smollm2-135m --run runs/smol-full            # the shipped labelled texts
    emocircuits concepts --model M --run DIR --texts my_texts.jsonl --start-offset 50 --variance-share 0.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.core.artifacts import write_json_atomic
from circuits.core.model import ModelHandle
from circuits.core.ownership import owned

CONCEPTS_JSON = "concept_directions_comparison.json"


def compare_directions(a: Any, b: Any, point: str = "mlp") -> dict[str, Any]:
    """Cosine of two :class:`Directions` per emotion and layer at ``point`` (emotions both have):
    ``{"emotions", "cosine": [n_layers][n_emotions], "mean_by_layer": [n_layers]}``."""
    p = ("attn", "mlp").index(point)
    emotions = [e for e in a.emotions if e in b.emotions]
    ia, ib = [a.emotions.index(e) for e in emotions], [b.emotions.index(e) for e in emotions]
    cos = (a.unit[p][:, ia] * b.unit[p][:, ib]).sum(-1)  # [L, E]
    return {"emotions": emotions, "point": point, "cosine": cos.tolist(), "mean_by_layer": cos.mean(1).tolist()}


def run_concepts(
    model: ModelHandle, run_dir: str | Path, cfg: Any = None, texts: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Concept directions from ``texts`` (default: the shipped labelled texts) for the run's emotions, written
    as ``concept_directions`` in the run; returns (and writes) their comparison with the SEV directions."""
    from circuits.core.resources import data_path
    from circuits.discovery.concept_vectors import (
        CONCEPT_DIRECTIONS,
        ConceptConfig,
        concept_directions,
        load_concept_texts,
    )
    from circuits.runs.rundir import Run

    run = Run(run_dir)
    sev = run.directions()
    rows = load_concept_texts(texts or data_path("va_texts"))
    concept = concept_directions(model, rows, cfg or ConceptConfig(), emotions=sev.emotions, progress=progress)
    res = {
        "texts": str(texts or data_path("va_texts")),
        "recipe": concept.prompts,
        "vs_sev": {p: compare_directions(concept, sev, p) for p in ("attn", "mlp")},
    }
    with owned(run.path, "--run"):
        concept.save(run.file(CONCEPT_DIRECTIONS))
        write_json_atomic(run.file(CONCEPTS_JSON), res)
    return res
