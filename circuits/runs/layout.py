"""The run-directory format in one place: every file name a run writes, and the CSV writer / readers.

A discovery run (``emocircuits discover``)::

    store/                      activation store (safetensors shards + meta.json)
    directions.*                emotion directions            directions_evidence.json
    dla.csv  logit_lens.csv     direct logit attribution      scores.safetensors  neurons.csv  heads.csv
    sweeps.csv                  ablation / enhancement        ablation_generations.json
    influence.csv               sublayer influence            circuits/{emotion}.json|.safetensors|.graph.json
    summary.json                what ran, agreements, timings figures/*.html|.png

``emocircuits evaluate`` adds ``evaluation/`` (``evaluation.json``, ``evaluation.csv``, ``accuracy.html``,
``report.md``, ``replies.jsonl``: every judged reply; written as one folder swap; runs made by 0.2
hold these five at their top level) and ``emotion_vectors.safetensors``; a VA run (``emocircuits va``) holds ``vectors.safetensors``,
``text_activations.safetensors``, ``texts.json``, ``axes.*``, ``summary.json`` and ``figures/``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from circuits.core.artifacts import InputError, write_text_atomic
from circuits.core.elicitation import ELICITATIONS
from circuits.core.readers import iter_csv, to_float, to_int

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
EVALUATION_DIR = "evaluation"
"""The folder of ``emocircuits evaluate``'s default output in a run (a run made by 0.2 holds the same files
at its top level)."""
EVALUATION_FILES = (EVALUATION_JSON, EVALUATION_CSV, ACCURACY_HTML, REPORT_MD, REPLIES_JSONL)
"""The files of one evaluation, written together as one swap (:func:`circuits.runs.evaluate.write_evaluation`)."""
HOUSEKEEPING = re.compile(r"\..+\.(lock|lock\.json|tmp|[a-z0-9_]{8}\.partial|[a-z0-9_]{8}\.old)")
"""Hidden names of writer locks, atomic writes and staging folders (of a folder's sub-folders): not outputs."""
FINDINGS_MD = "findings.md"
VALIDITY_DIR = "validity"
"""The folder of ``emocircuits validity`` in a run (one swap)."""
VALIDITY_JSON = "validity.json"
VALIDITY_MD = "validity.md"
VALIDITY_DIRECTIONS = "directions"
"""Stem of each prompt set's directions in the validity folder: ``directions_{set}.json|.safetensors``."""
VALIDITY_FILES = (VALIDITY_JSON, VALIDITY_MD) + tuple(
    f"{VALIDITY_DIRECTIONS}_{family}.{ext}" for family in ELICITATIONS for ext in ("json", "safetensors")
)
"""The files of one validity check, written together as one swap (:func:`circuits.runs.validity.run_validity`)."""


def foreign_entries(folder: str | Path, own: Sequence[str] | frozenset[str]) -> list[str]:
    """The entries of an existing ``folder`` that are not in ``own`` (the names a command writes there)
    and not :data:`HOUSEKEEPING` names: what a command that replaces ``folder`` whole would delete.
    Folder names end with ``/``; sorted; empty when ``folder`` does not exist."""
    path = Path(folder)
    if not path.is_dir():
        return []
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in path.iterdir()
        if p.name not in own and not HOUSEKEEPING.fullmatch(p.name)
    )


def check_own_folder(folder: str | Path, own: Sequence[str], flag: str, what: str) -> None:
    """:class:`InputError` when the existing ``folder``, which a command replaces whole, holds anything
    but the files ``own`` that ``what`` (``"evaluation"``, ``"validity check"``) writes there (and the
    :data:`HOUSEKEEPING` names): naming ``flag`` and listing what else it holds."""
    other = foreign_entries(folder, own)
    if other:
        a = "an" if what[0] in "aeiou" else "a"
        where = f"{flag} {folder}" if flag == "--out" else f"{folder} (the {what} folder of {flag})"
        raise InputError(
            f"{where}: holds files that are not {a} {what}'s ({shown_names(other)}); {a} {what} replaces its "
            f"folder whole, so give --out a new or empty folder, or one an earlier {what} wrote"
        )


def shown_names(names: Sequence[str], most: int = 12) -> str:
    """``names`` for a one-line message: the first ``most``, then ``and N more``."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


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


def read_csv(path: str | Path, columns: Sequence[str] = ()) -> list[dict[str, str]]:
    """The rows of a CSV file written by :func:`write_csv`, as dicts of strings; a missing file, a
    header without ``columns`` or a malformed line raises :class:`InputError` naming file and line."""
    return [row for _, row in iter_csv(path, columns=columns)]


def _where(path: Path, n: int, column: str) -> str:
    return f"{path}:{n}: column {column!r}"


def read_sweeps(run: str | Path) -> list[dict[str, Any]]:
    """``sweeps.csv`` as the records :func:`circuits.discovery.ablation.sweep` returned."""
    path = Path(run) / SWEEPS_CSV
    out = []
    for n, r in iter_csv(path, columns=SWEEPS_COLUMNS):
        out.append(
            dict(
                r,
                k=to_int(r["k"], _where(path, n, "k"), minimum=0),
                layer=to_int(r["layer"], _where(path, n, "layer"), minimum=0),
                delta_s=to_float(r["delta_s"], _where(path, n, "delta_s"), finite=False),
            )
        )
    return out


def read_influence(run: str | Path, emotions: Sequence[str], n_layers: int) -> torch.Tensor:
    """The normalised influence of ``influence.csv`` as ``[n_layers, 2 (attn, mlp), n_emotions]``."""
    path = Path(run) / INFLUENCE_CSV
    out = torch.zeros(n_layers, 2, len(emotions))
    for n, r in iter_csv(path, columns=("emotion", "layer", "sublayer", "normalised")):
        layer = to_int(r["layer"], _where(path, n, "layer"), minimum=0)
        if layer >= n_layers:
            raise InputError(f"{_where(path, n, 'layer')}: layer {layer} beyond the model's {n_layers} layers")
        if r["sublayer"] not in ("attn", "mlp"):
            raise InputError(f"{_where(path, n, 'sublayer')}: expected attn or mlp, got {r['sublayer']!r}")
        if r["emotion"] not in emotions:
            raise InputError(
                f"{_where(path, n, 'emotion')}: expected one of {', '.join(emotions)}, got {r['emotion']!r}"
            )
        value = to_float(r["normalised"], _where(path, n, "normalised"))
        out[layer, ("attn", "mlp").index(r["sublayer"]), list(emotions).index(r["emotion"])] = value
    return out


def read_logit_lens(run: str | Path, emotions: Sequence[str]) -> torch.Tensor:
    """``logit_lens.csv`` as ``[n_layers, n_emotions]``."""
    path = Path(run) / LOGIT_LENS_CSV
    rows = list(iter_csv(path, columns=tuple(emotions)))
    if not rows:
        raise InputError(f"{path}: no rows (expected one per layer)")
    return torch.tensor([[to_float(r[e], _where(path, n, e)) for e in emotions] for n, r in rows])


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines (one object a line, UTF-8), atomically."""
    return write_text_atomic(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
