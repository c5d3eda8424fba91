"""The valence-arousal subspace: text activations, emotion vectors, self-reported ratings, PCA + ridge axes,
the circumplex check, the lexicon check and steering along an axis.

Shapes: emotion vectors ``[n_emotions, d_model]`` at one layer; axes are unit ``[d_model]`` vectors
(``VAAxes.valence``, ``VAAxes.arousal``) in residual-stream units of that layer (resid_post).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from circuits.core.artifacts import InputError, write_atomic, write_json_atomic
from circuits.core.hooks import Intervention, Read, run_forward
from circuits.core.model import ModelHandle
from circuits.core.readers import FLOATING, as_path, load_tensors, read_json
from circuits.va.loaders import VAInputError


# ------------------------------------------------------------------------------------- activations
@torch.no_grad()
def text_activations(
    model: ModelHandle,
    texts: Sequence[str],
    layers: Sequence[int],
    position: str = "last",
    batch_size: int = 32,
    progress: bool = True,
) -> Float[torch.Tensor, "n_texts n_layers d_model"]:
    """resid_post of plain (no chat template) texts at ``layers``: the last token or the mean over tokens."""
    if position not in ("last", "mean"):
        raise ValueError(f"position must be 'last' or 'mean', got {position!r}")
    layers = list(layers)
    out = []
    for s in tqdm(range(0, len(texts), batch_size), desc="text activations", disable=not progress):
        seqs = [
            model.tokenizer(t, add_special_tokens=True)["input_ids"] or [model.pad_id]
            for t in texts[s : s + batch_size]
        ]
        ids, mask = model.pad_left(seqs)
        reads = [Read("resid_post", L, positions=position) for L in layers]
        got = run_forward(model, ids, mask, reads=reads)
        out.append(torch.stack([got[r] for r in reads], 1))
    return torch.cat(out)


def emotion_vectors_from_texts(
    acts: Float[torch.Tensor, "n ... d"],
    labels: Sequence[Sequence[str]],
    emotions: Sequence[str] | None = None,
    neutral: str = "neutral",
    min_texts: int = 1,
) -> tuple[list[str], torch.Tensor]:
    """Mean activation of each emotion's texts minus the mean of the neutral texts (a text with several
    labels counts for each). Returns ``(emotions, [n_emotions, ..., d])``."""
    have = sorted({l for ls in labels for l in ls} - {neutral})
    emotions = list(emotions) if emotions is not None else have
    neutral_idx = [i for i, ls in enumerate(labels) if neutral in ls]
    if not neutral_idx:
        raise VAInputError(f"no text is labelled {neutral!r}: the emotion vectors need neutral texts")
    base = acts[neutral_idx].mean(0)
    vecs = []
    for e in emotions:
        idx = [i for i, ls in enumerate(labels) if e in ls]
        if len(idx) < min_texts:
            raise VAInputError(f"emotion {e!r} has {len(idx)} texts (need {min_texts})")
        vecs.append(acts[idx].mean(0) - base)
    return emotions, torch.stack(vecs)


# ----------------------------------------------------------------------------------- self-reports
VALENCE_QUESTION = (
    "On a scale from 1 (very unpleasant) to 9 (very pleasant), how pleasant is the feeling of "
    "{emotion}? Answer with one number."
)
AROUSAL_QUESTION = (
    "On a scale from 1 (very calm, low energy) to 9 (very excited, high energy), how activating is "
    "the feeling of {emotion}? Answer with one number."
)


_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_SCALE = re.compile(  # restatements of the scale: "1-9", "from 1 to 9", "/9", "out of 9", "of 10"
    r"(?:\b(?:from\s+)?[01]\s*(?:-|\u2013|\u2014|to)\s*(?:9|10)\b|(?:/\s*|\bout\s+of\s+|\bof\s+)(?:9|10)\b)", re.I
)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b(\s+and\s+a\s+half\b)?", re.I)


def parse_rating(text: str, low: float = 1, high: float = 9) -> float | None:
    """The rating in a model's answer, or None when there is none in [low, high].

    A ``<think>...</think>`` block and restatements of the scale ("1-9", "from 1 to 9", "/9",
    "out of 9") are removed first; then the first number written in digits is the answer
    ("Valence: 3/9" -> 3, "I'd say 6.5" -> 6.5); without digits, the first number word
    ("eight" -> 8, "six and a half" -> 6.5). A first number outside [low, high] ("12", "-3") gives
    None rather than a guess at a later one."""
    t = _SCALE.sub(" ", _THINK.sub(" ", text))
    m = _NUMBER.search(t)
    if m:
        v = float(m.group())
    else:
        w = _WORD_NUMBER.search(t)
        if not w:
            return None
        v = _NUMBER_WORDS[w.group(1).lower()] + (0.5 if w.group(2) else 0.0)
    return v if low <= v <= high else None


def self_report_va(
    model: ModelHandle,
    emotions: Sequence[str],
    valence_question: str = VALENCE_QUESTION,
    arousal_question: str = AROUSAL_QUESTION,
    max_new_tokens: int = 8,
) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Ask the model to rate each emotion's valence and arousal (greedy, chat template, no system
    prompt; the questions are templates with an ``{emotion}`` field). Returns the ratings of the
    emotions whose two answers parsed (:func:`parse_rating`) and a report::

        {"asked": n_emotions, "parsed": n_rated, "n_unparsed": n_answers_not_parsed,
         "unparsed": [{"emotion", "which" ("valence" | "arousal"), "answer"}, ...],
         "answers": {emotion: {"valence": answer, "arousal": answer}}}

    Unparseable answers are counted and reported, never silently dropped: an emotion with one
    unparseable answer is left out of the ratings and listed in ``unparsed``."""
    from circuits.core.generate import GenerationSettings, generate

    for q in (valence_question, arousal_question):
        if "{emotion}" not in q:
            raise ValueError(f"a self-report question needs an {{emotion}} field, got {q!r}")
    prompts = [
        model.chat_ids(None, q.format(emotion=e)) for e in emotions for q in (valence_question, arousal_question)
    ]
    answers = generate(model, prompts, GenerationSettings(max_new_tokens=max_new_tokens), progress=False)
    ratings: dict[str, tuple[float, float]] = {}
    unparsed: list[dict[str, str]] = []
    raw: dict[str, dict[str, str]] = {}
    for i, e in enumerate(emotions):
        got = {}
        raw[e] = {"valence": answers[2 * i], "arousal": answers[2 * i + 1]}
        for which, ans in raw[e].items():
            got[which] = parse_rating(ans)
            if got[which] is None:
                unparsed.append({"emotion": e, "which": which, "answer": ans})
        if got["valence"] is not None and got["arousal"] is not None:
            ratings[e] = (got["valence"], got["arousal"])
    return ratings, {
        "asked": len(emotions),
        "parsed": len(ratings),
        "n_unparsed": len(unparsed),
        "unparsed": unparsed,
        "answers": raw,
    }


# ---------------------------------------------------------------------------------------- subspace
@dataclass
class VAAxes:
    """Unit valence and arousal axes at ``layer``; ``pcs`` used, ridge strengths and CV fit."""

    layer: int
    valence: torch.Tensor
    arousal: torch.Tensor
    n_components: int
    ridge_alpha: dict[str, float]
    r2: dict[str, float]
    emotions: list[str]
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def project(self, x: Float[torch.Tensor, "... d"]) -> Float[torch.Tensor, "... 2"]:
        return torch.stack([x @ self.valence, x @ self.arousal], -1)

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        write_atomic(
            path.with_suffix(".safetensors"),
            lambda p: save_file({"valence": self.valence.contiguous(), "arousal": self.arousal.contiguous()}, str(p)),
        )
        d = {k: v for k, v in asdict(self).items() if k not in ("valence", "arousal")}
        write_json_atomic(path.with_suffix(".json"), d)

    @classmethod
    def load(cls, path: str | Path) -> "VAAxes":
        """Read ``path``.json + ``path``.safetensors (:meth:`save`). A missing, truncated or damaged
        file, a field of the wrong type, or axes that are not finite ``[d]`` vectors of one size raise
        :class:`InputError` naming the file."""
        path = as_path(path, "VAAxes.load: path")
        meta_path = path.with_suffix(".json")
        d = read_json(meta_path, what="VA axes file", allow_nan=True)
        known = set(cls.__dataclass_fields__) - {"valence", "arousal"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{meta_path}: unknown field {unknown[0]!r} (expected {', '.join(sorted(known))})")
        for key, ok, expected in (
            ("layer", lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
            (
                "n_components",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                "a whole number >= 1",
            ),
            ("ridge_alpha", lambda v: isinstance(v, dict), "an object"),
            ("r2", lambda v: isinstance(v, dict), "an object"),
            ("emotions", lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v), "a list of names"),
        ):
            if key not in d or not ok(d[key]):
                raise InputError(f"{meta_path}: field {key!r}: expected {expected}, got {d.get(key)!r}")
        if not isinstance(d.get("fingerprint", ""), str) or not isinstance(d.get("meta", {}), dict):
            raise InputError(f"{meta_path}: fields 'fingerprint' and 'meta': expected a string and an object")
        tensor_path = path.with_suffix(".safetensors")
        t = load_tensors(
            tensor_path,
            what="VA axes tensor file",
            expect={"valence": ((None,), FLOATING), "arousal": ((None,), FLOATING)},
        )
        if t["valence"].shape != t["arousal"].shape:
            raise InputError(
                f"{tensor_path}: 'valence' {tuple(t['valence'].shape)} and 'arousal' {tuple(t['arousal'].shape)} differ"
            )
        return cls(valence=t["valence"], arousal=t["arousal"], **d)


RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
"""Ridge strengths the VA fit chooses from (leave-one-out CV over the emotions)."""


def _pc_ridge(
    x: Float[torch.Tensor, "n_emotions d"], ratings: np.ndarray, n_components: int | None, alphas: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, list[Any]]:
    """PCA over the centred rows of ``x`` (float64), then one ridge per rating column on the top PC
    scores: ``(mean [d], components [k, d], [fitted RidgeCV per column])``."""
    from sklearn.linear_model import RidgeCV

    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    k = n_components or max(1, min(len(x) - 1, int((s > s[0] * 1e-6).sum())))
    scores = ((x - mean) @ vt[:k].T).numpy()
    y = np.asarray(ratings, dtype=float)
    regs = [RidgeCV(alphas=list(alphas), store_cv_results=True).fit(scores, y[:, j]) for j in range(2)]
    return mean, vt[:k], regs


def correlation(a: np.ndarray, b: np.ndarray, kind: str = "spearman") -> float | None:
    """Pearson or Spearman correlation of two vectors; None when either is constant (the coefficient
    is undefined there, and a summary must not hold NaN)."""
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float((spearmanr if kind == "spearman" else pearsonr)(a, b)[0])


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))


def fit_va_axes(
    vectors: Float[torch.Tensor, "n_emotions d"],
    ratings: np.ndarray,
    n_components: int | None = None,
    alphas: Sequence[float] = RIDGE_ALPHAS,
    layer: int = -1,
    emotions: Sequence[str] = (),
) -> VAAxes:
    """PCA over the (centred) emotion vectors, ridge regression (strength chosen by leave-one-out CV)
    from the top-``n_components`` PC scores to each rating column (valence, arousal); the axis is the
    ridge coefficient vector mapped back to d-space and normalised. ``r2`` is in sample (see
    :func:`heldout_fit` for emotions left out)."""
    x = vectors.double()
    mean, comps, regs = _pc_ridge(x, ratings, n_components, alphas)
    scores = ((x - mean) @ comps.T).numpy()
    axes, used_alpha, r2 = [], {}, {}
    for j, (name, reg) in enumerate(zip(("valence", "arousal"), regs)):
        used_alpha[name] = float(reg.alpha_)
        r2[name] = _r2(np.asarray(ratings, dtype=float)[:, j], reg.predict(scores))
        axis = torch.from_numpy(reg.coef_) @ comps
        axes.append((axis / axis.norm().clamp_min(1e-12)).float())
    return VAAxes(layer, axes[0], axes[1], len(comps), used_alpha, r2, list(emotions))


def heldout_fit(
    vectors: Float[torch.Tensor, "n_emotions d"],
    ratings: np.ndarray,
    emotions: Sequence[str],
    n_components: int | None = None,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> dict[str, Any]:
    """The VA fit checked by leaving each emotion out: the PCA and ridge of :func:`fit_va_axes` refitted
    on the other emotions predict the left-out emotion's (valence, arousal) from its vector. Returns
    ``{"r2": {axis: R^2 of the held-out predictions}, "spearman": {axis: rank correlation},
    "predictions": {emotion: [valence, arousal]}, "n": emotions}`` (R^2 and Spearman are None where the
    ratings of an axis are all the same: nothing to predict); needs at least 4 emotions."""
    x, y = vectors.double(), np.asarray(ratings, dtype=float)
    if len(x) < 4:
        raise VAInputError(f"leaving emotions out needs >= 4 emotions, have {len(x)}")
    pred = np.zeros_like(y)
    for i in range(len(x)):
        keep = [j for j in range(len(x)) if j != i]
        mean, comps, regs = _pc_ridge(x[keep], y[keep], n_components, alphas)
        score = ((x[i : i + 1] - mean) @ comps.T).numpy()
        pred[i] = [reg.predict(score)[0] for reg in regs]
    names = ("valence", "arousal")
    return {
        "r2": {n: _r2(y[:, j], pred[:, j]) if np.ptp(y[:, j]) > 0 else None for j, n in enumerate(names)},
        "spearman": {n: correlation(y[:, j], pred[:, j]) for j, n in enumerate(names)},
        "predictions": {e: [float(v) for v in pred[i]] for i, e in enumerate(emotions)},
        "n": len(x),
    }


def circumplex(points: np.ndarray, emotions: Sequence[str]) -> dict[str, Any]:
    """Angular order of the emotions in the (valence, arousal) plane and an algebraic circle fit
    (centre, radius, relative RMS residual of the distances to the centre)."""
    p = np.asarray(points, dtype=float)
    a = np.c_[2 * p, np.ones(len(p))]
    b = (p**2).sum(1)
    (cx, cy, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    r = math.sqrt(max(c + cx**2 + cy**2, 0.0))
    dist = np.linalg.norm(p - [cx, cy], axis=1)
    angles = np.degrees(np.arctan2(p[:, 1] - cy, p[:, 0] - cx))
    order = [emotions[i] for i in np.argsort(angles)]
    return {
        "center": [float(cx), float(cy)],
        "radius": r,
        "residual": float(np.sqrt(((dist - r) ** 2).mean()) / max(r, 1e-12)),
        "angles": {e: float(t) for e, t in zip(emotions, angles)},
        "order": order,
    }


def lexicon_check(
    model: ModelHandle,
    axes: VAAxes,
    lexicon: dict[str, tuple[float, float]],
    batch_size: int = 64,
    vocab_only: bool = False,
) -> dict[str, Any]:
    """Project each lexicon word's representation (the word alone, last token of resid_post at the
    axes' layer) on the axes; Pearson and Spearman against the lexicon's ratings. ``vocab_only``
    keeps words that are a single token of the model's vocabulary (with a leading space)."""
    words = sorted(lexicon)
    if vocab_only:
        words = [w for w in words if len(model.tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]
    if len(words) < 3:
        raise VAInputError(f"lexicon check needs >= 3 words, have {len(words)}")
    acts = text_activations(model, [" " + w for w in words], [axes.layer], batch_size=batch_size, progress=False)[:, 0]
    proj = axes.project(acts).numpy()
    truth = np.array([lexicon[w] for w in words])
    out = {"n_words": len(words)}
    for j, name in enumerate(("valence", "arousal")):
        out[name] = {
            "pearson": correlation(proj[:, j], truth[:, j], "pearson"),
            "spearman": correlation(proj[:, j], truth[:, j]),
        }
    return out


# ----------------------------------------------------------------------------------- steering/probes
def axis_steering(axis: torch.Tensor, layers: Sequence[int], alpha: float, scale: float = 1.0) -> list[Intervention]:
    """Add ``alpha * scale * axis`` to resid_post at ``layers`` (last prompt token + generated tokens);
    ``scale`` is usually the residual RMS at that layer, so alpha is in units of the typical norm."""
    return [
        Intervention("resid_post", L, "add", vector=axis * scale, factor=alpha, positions="last+generated")
        for L in layers
    ]


def random_directions(d: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` random unit vectors (seeded), the control for axis steering."""
    g = torch.Generator().manual_seed(seed)
    return [v / v.norm() for v in torch.randn(n, d, generator=g)]
