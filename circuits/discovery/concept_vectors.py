"""Emotion-concept vectors: a fourth direction source, from texts rather than from SEV prompts.

The recipe (the 2026 emotion-concepts study and its open replications), written here from its
description: the model reads plain texts labelled with one emotion (or ``neutral``), no chat template;
at every layer and both read points (resid_mid, resid_post) the residual is averaged over the tokens
from ``start_offset`` on (the first tokens carry little of the text's content); each emotion's mean
minus the mean over emotions is its raw vector; then the top principal components of the *neutral*
texts' activations, as many as cover ``variance_share`` of their variance, are projected out (they
carry what any text has in common, not emotion). The result is a :class:`Directions` with the SEV
directions' layout, so it is selectable wherever a direction is used (``--direction-source concept``
in ``evaluate`` and ``dose-response``; ``emocircuits concepts`` writes it into a run).

The shipped texts (``circuits/data/emotion_texts.jsonl``: about 26 sentences per emotion and 30 neutral
ones, written for this project) are short, so the default offset is 2 tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from circuits.core.artifacts import InputError
from circuits.core.config import ConfigError, check_config, help_field
from circuits.core.emotions import EMOTIONS, NEUTRAL, check_emotions
from circuits.core.hooks import Read, run_forward
from circuits.core.model import ModelHandle
from circuits.core.readers import iter_csv, iter_jsonl
from circuits.discovery.directions import Directions
from circuits.discovery.store import READ_POINTS

CONCEPT_DIRECTIONS = "concept_directions"
"""Stem of the concept directions in a run directory (``.safetensors`` + ``.json``, as ``directions``)."""
_SITES = {"attn": "resid_mid", "mlp": "resid_post"}


@dataclass(frozen=True)
class ConceptConfig:
    start_offset: int = help_field(
        2, "tokens skipped at the start of each text (texts shorter than that use their last token)", min=0
    )
    variance_share: float = help_field(
        0.5,
        "share of the neutral texts' variance whose top principal components "
        "are projected out: the fewest that cover it (0: none; below 1)",
        min=0,
    )
    batch_size: int = help_field(16, "texts per forward pass", min=1)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.variance_share < 1:
            raise ConfigError(
                f"ConceptConfig.variance_share (--variance-share): expected a value below 1, got "
                f"{self.variance_share!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONCEPT_LABELS: tuple[str, ...] = EMOTIONS + (NEUTRAL,)
"""The labels a concept text may carry: the six emotions and ``neutral``."""


def _labels(value: Any) -> list[str] | None:
    """The labels of one text: a list of strings, or one string split at ``,`` ``;`` ``|``."""
    if isinstance(value, list):
        return [v.strip().lower() for v in value if v.strip()] if all(isinstance(v, str) for v in value) else None
    if isinstance(value, str):
        return [p.strip().lower() for p in value.replace(";", ",").replace("|", ",").split(",") if p.strip()]
    return None


def load_concept_texts(path: str | Path) -> list[tuple[str, tuple[str, ...]]]:
    """Labelled texts for :func:`concept_directions` from JSONL (``{"text": ..., "label": str}`` or
    ``"labels": [...]``) or CSV (columns ``text`` and ``label`` or ``labels``). Every label must be one of
    :data:`CONCEPT_LABELS`; a problem raises :class:`InputError` naming the file, line and field."""
    path = Path(path)
    rows: list[tuple[str, tuple[str, ...]]] = []
    if path.suffix.lower() == ".csv":
        entries = ((n, r) for n, r in iter_csv(path, columns=("text",), what="concept-text file"))
    else:
        entries = iter_jsonl(path, what="concept-text file")
    for n, rec in entries:
        where = f"{path}:{n}"
        text = rec.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: field 'text': expected a non-empty string")
        key = "labels" if "labels" in rec else "label"
        labels = _labels(rec.get(key))
        if not labels:
            raise InputError(f"{where}: field {key!r}: expected one or more of {', '.join(CONCEPT_LABELS)}")
        unknown = [x for x in labels if x not in CONCEPT_LABELS]
        if unknown:
            raise InputError(
                f"{where}: field {key!r}: unknown label {unknown[0]!r} (expected {', '.join(CONCEPT_LABELS)})"
            )
        rows.append((text.strip(), tuple(labels)))
    if not rows:
        raise InputError(f"{path}: the concept-text file holds no texts")
    return rows


@torch.no_grad()
def text_token_means(
    model: ModelHandle, texts: Sequence[str], start_offset: int, batch_size: int = 16, progress: bool = True
) -> Float[torch.Tensor, "n_texts 2 n_layers d_model"]:
    """Residual (both read points, every layer) averaged over each text's tokens from ``start_offset``."""
    L = model.arch.n_layers
    reads = [Read(_SITES[p], layer, positions="all") for p in READ_POINTS for layer in range(L)]
    out = []
    for s in tqdm(range(0, len(texts), batch_size), desc="concept texts", disable=not progress):
        seqs = [
            model.tokenizer(t, add_special_tokens=True)["input_ids"] or [model.pad_id]
            for t in texts[s : s + batch_size]
        ]
        ids, mask = model.pad_left(seqs)
        got = run_forward(model, ids, mask, reads=reads)
        h = torch.stack([got[r] for r in reads], 1).float()  # [b, 2L, pos, d]
        width = ids.shape[1]
        weights = torch.zeros(len(seqs), width)
        for row, seq in enumerate(seqs):
            first = width - len(seq) + min(start_offset, len(seq) - 1)
            weights[row, first:] = 1.0
        weights /= weights.sum(1, keepdim=True)
        mean = torch.einsum("bkpd,bp->bkd", h, weights)
        out.append(mean.reshape(len(seqs), 2, L, -1))
    return torch.cat(out)


def neutral_projection(neutral: Float[torch.Tensor, "n d"], share: float) -> Float[torch.Tensor, "d k"]:
    """Orthonormal basis of the fewest top principal components of ``neutral`` covering ``share`` of its
    variance (``[d, 0]`` when ``share`` is 0)."""
    x = neutral - neutral.mean(0)
    if share <= 0 or x.shape[0] < 2:
        return torch.zeros(x.shape[1], 0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    var = s.pow(2)
    k = int((torch.cumsum(var, 0) / var.sum() < share).sum()) + 1
    return vh[:k].T


def concept_directions(
    model: ModelHandle,
    rows: Sequence[tuple[str, Sequence[str]]],
    config: ConceptConfig | None = None,
    emotions: Sequence[str] | None = None,
    neutral: str = "neutral",
    progress: bool = True,
) -> Directions:
    """Concept vectors from labelled texts ``(text, labels)`` (a text with several labels counts for each;
    ``neutral`` texts give the projection). ``unit``/``diff`` as :class:`Directions` ([2, L, E, d]): ``diff``
    is the projected vector, ``unit`` its normalisation. ``prompts`` records the recipe (source, config,
    text counts, components removed per read point and layer)."""
    cfg = config or ConceptConfig()
    labels = [list(ls) for _, ls in rows]
    unknown = sorted({x for ls in labels for x in ls} - set(EMOTIONS) - {neutral})
    if unknown:
        raise InputError(
            f"concept_directions: unknown label(s) {', '.join(map(repr, unknown))} among the texts (expected "
            f"{', '.join(EMOTIONS)} or {neutral!r})"
        )
    have = sorted({x for ls in labels for x in ls} - {neutral})
    emotions = check_emotions(emotions if emotions is not None else have)
    counts = {e: sum(e in ls for ls in labels) for e in emotions}
    missing = [e for e, n in counts.items() if n == 0]
    if missing:
        raise InputError(f"concept_directions: no text is labelled {', '.join(missing)}")
    neutral_idx = [i for i, ls in enumerate(labels) if neutral in ls]
    acts = text_token_means(model, [t for t, _ in rows], cfg.start_offset, cfg.batch_size, progress)  # [n, 2, L, d]
    means = torch.stack(
        [acts[[i for i, ls in enumerate(labels) if e in ls]].mean(0) for e in emotions], 2
    )  # [2, L, E, d]
    raw = means - means.mean(2, keepdim=True)
    diff = torch.empty_like(raw)
    removed = [[0] * raw.shape[1] for _ in range(2)]
    for p in range(2):
        for layer in range(raw.shape[1]):
            basis = (
                neutral_projection(acts[neutral_idx, p, layer], cfg.variance_share)
                if neutral_idx
                else torch.zeros(raw.shape[-1], 0)
            )
            removed[p][layer] = int(basis.shape[1])
            v = raw[p, layer]  # [E, d]
            diff[p, layer] = v - (v @ basis) @ basis.T
    unit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    recipe = {
        "source": "emotion-concept texts",
        "config": cfg.to_dict(),
        "n_texts": counts,
        "n_neutral": len(neutral_idx),
        "components_removed": removed,
    }
    return Directions(tuple(emotions), unit, diff, len(rows), model.fingerprint, recipe)
