"""The run-directory format in one place: every file name a run writes, and the CSV writer / readers.

A discovery run (``emocircuits discover``)::

    store/                      activation store (safetensors shards + meta.json)
    directions.*                emotion directions            directions_evidence.json
    dla.csv  logit_lens.csv     direct logit attribution      scores.safetensors  neurons.csv  heads.csv
    sweeps.csv                  ablation / enhancement        ablation_generations.json
    influence.csv               sublayer influence            circuits/{emotion}.json|.safetensors|.graph.json
    summary.json                what ran, agreements, timings figures/*.html|.png

``emocircuits evaluate`` adds ``evaluation.json``, ``evaluation.csv``, ``accuracy.html``, ``report.md``,
``replies.jsonl`` (every judged reply) and ``emotion_vectors.safetensors``; a VA run (``emocircuits va``) holds ``vectors.safetensors``,
``text_activations.safetensors``, ``texts.json``, ``axes.*``, ``summary.json`` and ``figures/``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from circuits.core.artifacts import write_text_atomic

STORE_DIR = "store"
DIRECTIONS = "directions"
EVIDENCE_JSON = "directions_evidence.json"
DLA_CSV = "dla.csv"
LOGIT_LENS_CSV = "logit_lens.csv"
SCORES = "scores.safetensors"
NEURONS_CSV = "neurons.csv"
HEADS_CSV = "heads.csv"
SWEEPS_CSV = "sweeps.csv"
ABLATION_GENERATIONS_JSON = "ablation_generations.json"
INFLUENCE_CSV = "influence.csv"
CIRCUITS_DIR = "circuits"
SUMMARY_JSON = "summary.json"
FAITHFULNESS_JSON = "faithfulness.json"
FIGURES_DIR = "figures"
EVALUATION_JSON = "evaluation.json"
EVALUATION_CSV = "evaluation.csv"
ACCURACY_HTML = "accuracy.html"
REPORT_MD = "report.md"
REPLIES_JSONL = "replies.jsonl"
EMOTION_VECTORS = "emotion_vectors.safetensors"
REPORT_HTML = "report.html"
FINDINGS_MD = "findings.md"

SWEEPS_COLUMNS = ("emotion", "layer", "kind", "mode", "k", "selection", "delta_s")
INFLUENCE_COLUMNS = ("emotion", "layer", "sublayer", "intervention", "gradient", "normalised")
NEURONS_COLUMNS = ("emotion", "layer", "rank", "neuron", "contribution")
HEADS_COLUMNS = ("emotion", "layer", "head", "importance_one_pass")


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write ``header`` and ``rows`` as CSV, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file written by :func:`write_csv`, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_sweeps(run: str | Path) -> list[dict[str, Any]]:
    """``sweeps.csv`` as the records :func:`circuits.discovery.ablation.sweep` returned."""
    return [
        dict(r, k=int(r["k"]), layer=int(r["layer"]), delta_s=float(r["delta_s"]))
        for r in read_csv(Path(run) / SWEEPS_CSV)
    ]


def read_influence(run: str | Path, emotions: Sequence[str], n_layers: int) -> torch.Tensor:
    """The normalised influence of ``influence.csv`` as ``[n_layers, 2 (attn, mlp), n_emotions]``."""
    out = torch.zeros(n_layers, 2, len(emotions))
    for r in read_csv(Path(run) / INFLUENCE_CSV):
        out[int(r["layer"]), ("attn", "mlp").index(r["sublayer"]), list(emotions).index(r["emotion"])] = float(
            r["normalised"]
        )
    return out


def read_logit_lens(run: str | Path, emotions: Sequence[str]) -> torch.Tensor:
    """``logit_lens.csv`` as ``[n_layers, n_emotions]``."""
    return torch.tensor([[float(r[e]) for e in emotions] for r in read_csv(Path(run) / LOGIT_LENS_CSV)])


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines (one object a line, UTF-8), atomically."""
    return write_text_atomic(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
