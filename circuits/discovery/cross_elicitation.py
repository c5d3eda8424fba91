"""Emotion state or instruction word? Tests that tell the two apart (the statistics of ``emocircuits
validity``; the job that reads the prompts and steers is :mod:`circuits.runs.validity`).

Four prompt sets (:data:`circuits.core.elicitation.ELICITATIONS`), each with a ``dev`` and a ``final`` side:
``explicit`` (SEV prompts that name the emotion; dev: SEV train split, final: test split), ``stance``
(the same scenarios with a stance instruction that never names it; its instructions split by hash as
well), ``event`` and ``story`` (texts alone; their rows split by hash). Only emotional rows are used:
every probe below is six-way over the emotions.

Features (:class:`SetFeatures`): the last-prompt-token residual per layer. Each set is centred by its own
mean: the set's format (template, instruction length) is shared by all its rows and is not emotion.
Then, per layer and per implicit set ``s``:

- ``within``: cross-validated accuracy on explicit dev (scenario-grouped folds): the layer reads the
  prompted emotion at all;
- ``forward[s]``: a probe fitted on explicit dev, accuracy on ``s`` final;
- ``reverse[s]``: a probe fitted on ``s`` dev, accuracy on explicit final;
- ``cosine[s]``: cosine between the explicit and ``s`` directions (class mean minus the mean of the
  class means, unit norm; on explicit prompts this is the SEV directions' formula), mean over emotions;
- every one of these against a **permuted-label null**: the same computation with the fitted side's
  labels shuffled (``seeds`` permutations; the null's 95th percentile is the bar);
- ``tokens``: the forward and reverse transfer of the same probe on the prompts' token identities alone
  (the mean input embedding of each prompt's tokens: what a reader of words without context gets);
- ``word_share``: the share of each unit direction's squared norm that lies in the plane of the
  emotion's own name (its input embedding and its unembedding, each centred over the emotions), against
  the share in another emotion's plane (mismatched) and ``2 / d_model`` (a random direction).

:func:`band_verdicts` turns them into one verdict per layer band (:data:`VERDICT_RULE`).
The probe is the workbench's logistic probe (:func:`~circuits.discovery.directions.logistic_probe_cv`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from jaxtyping import Float

from circuits.core.stats import wilson_interval
from circuits.discovery.directions import logistic_probe_cv

IMPLICIT = ("stance", "event", "story")
"""The implicit sets compared with ``explicit``."""

VERDICTS = ("emotion state", "instruction word", "cannot tell")

VERDICT_RULE = (
    "For each layer band (the layers split into equal consecutive bands) and each implicit set s, "
    "averaging every number over the band's layers: s *supports a shared state* when (1) the probe fitted "
    "on explicit prompts reads s above the 95th percentile of its permuted-label null, (2) the probe "
    "fitted on s reads explicit prompts above its null, (3) the explicit and s directions' cosine is "
    "above its null, and (4) the forward transfer beats the same probe on token identities alone. "
    "Verdict: *emotion state* when at least two of the three implicit sets support it; *instruction word* "
    "when none does while the explicit prompts' own emotion is read above its null (the layer encodes "
    "the prompted emotion but it does not carry over to prompts that never name it); *cannot tell* "
    "otherwise (one set only, or nothing read at all)."
)
"""The rule of :func:`band_verdicts`, written down (reports print it)."""


@dataclass
class SetFeatures:
    """One side of one prompt set: ``x`` ``[n, n_layers, d_model]`` (last-token residuals at one read
    point), ``tokens`` ``[n, d_model]`` (mean input embedding of each prompt's tokens), ``y`` ``[n]`` (index
    into the emotions) and ``groups`` (the cross-validation groups: scenario or theme)."""

    name: str
    side: str
    x: Float[torch.Tensor, "n n_layers d_model"]
    tokens: Float[torch.Tensor, "n d_model"]
    y: torch.Tensor
    groups: list[str]

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.x.shape[0] != n or self.tokens.shape[0] != n or len(self.groups) != n:
            raise ValueError(f"{self.name} {self.side}: x, tokens, y and groups must have one row per prompt")


def centred(x: torch.Tensor) -> torch.Tensor:
    """``x`` minus its mean over rows (dimension 0)."""
    return x - x.mean(0, keepdim=True)


def permuted_labels(y: torch.Tensor, seeds: int, seed: int) -> torch.Tensor:
    """``[1 + seeds, n]``: ``y`` first, then ``seeds`` seeded shuffles of it."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([y] + [y[torch.randperm(len(y), generator=g)] for _ in range(seeds)])


def transfer_accuracy(
    train_x: Float[torch.Tensor, "n n_layers d"],
    train_y: torch.Tensor,
    test_x: Float[torch.Tensor, "m n_layers d"],
    test_y: torch.Tensor,
    n_classes: int,
    C: float = 0.1,
    max_iter: int = 100,
) -> torch.Tensor:
    """Accuracy on ``test`` of a probe per layer fitted on ``train`` (each side centred by its own mean
    first): ``[n_layers]``, or ``[S, n_layers]`` when ``train_y`` is ``[S, n]`` (S label sets, one solve)."""
    x = torch.cat([centred(train_x), centred(test_x)])
    n = len(train_x)
    ys = train_y if train_y.ndim == 2 else train_y[None]
    y = torch.cat([ys, test_y[None].expand(len(ys), -1)], 1)
    split = [(np.arange(n), np.arange(n, len(x)))]
    acc = logistic_probe_cv(x, y, split, n_classes=n_classes, C=C, max_iter=max_iter)
    return acc if train_y.ndim == 2 else acc[0]


def class_differences(
    x: Float[torch.Tensor, "n n_layers d"], y: torch.Tensor, n_classes: int
) -> Float[torch.Tensor, "n_layers n_classes d"]:
    """Per class: its mean minus the mean of the class means (``x`` as it is; residual units)."""
    onehot = torch.nn.functional.one_hot(y, n_classes).float()  # [n, E]
    means = torch.einsum("ne,nld->led", onehot, x) / onehot.sum(0).clamp_min(1.0)[None, :, None]
    return means - means.mean(1, keepdim=True)


def class_directions(
    x: Float[torch.Tensor, "n n_layers d"], y: torch.Tensor, n_classes: int
) -> Float[torch.Tensor, "n_layers n_classes d"]:
    """:func:`class_differences` at unit norm."""
    diff = class_differences(x, y, n_classes)
    return diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def plane_share(
    units: Float[torch.Tensor, "n_layers n_emotions d"], words: Float[torch.Tensor, "n_emotions 2 d"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(matched, mismatched)``, each ``[n_layers, n_emotions]``: the share of each unit direction's
    squared norm in the plane of its own emotion's word vectors, and the mean share in the other
    emotions' planes."""
    E = words.shape[0]
    q = torch.linalg.qr(words.transpose(1, 2)).Q  # [E, d, 2] orthonormal bases of each plane
    share = torch.einsum("led,fdk->lefk", units, q).pow(2).sum(-1)  # [L, E (direction), F (plane)]
    eye = torch.eye(E, dtype=torch.bool)
    matched = share[:, eye]
    mismatched = share.masked_fill(eye, 0).sum(-1) / max(E - 1, 1)
    return matched, mismatched


def _cv_splits(groups: Sequence[str], folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    folds = min(folds, len(set(groups)))
    return list(GroupKFold(folds).split(np.zeros(len(groups)), None, np.array(groups)))


def _summary(real: torch.Tensor, null: torch.Tensor) -> dict[str, Any]:
    """Per-layer ``value`` and the null's per-layer 95th percentile and mean (``null``: ``[S, L]``), with
    the draws kept for band means."""
    return {
        "value": real.tolist(),
        "null_p95": torch.quantile(null, 0.95, dim=0).tolist(),
        "null_mean": null.mean(0).tolist(),
        "null_draws": null.tolist(),
    }


def validity_stats(
    sets: dict[tuple[str, str], SetFeatures],
    emotions: Sequence[str],
    *,
    words: Float[torch.Tensor, "n_emotions 2 d"] | None = None,
    implicit: Sequence[str] = IMPLICIT,
    seeds: int = 20,
    seed: int = 0,
    C: float = 0.1,
    max_iter: int = 100,
    folds: int = 5,
) -> dict[str, Any]:
    """Every per-layer statistic of the module docstring. ``sets``: ``(name, side) -> SetFeatures`` with
    ``("explicit", "dev")``, ``("explicit", "final")`` and both sides of each of ``implicit``; ``words``:
    the emotions' centred word vectors (embedding, unembedding; None: no word share). Returns a JSON-ready
    dict: ``within``, ``forward[s]``, ``reverse[s]``, ``cosine[s]`` (each ``value`` / ``null_p95`` /
    ``null_mean`` / ``null_draws`` per layer; the cosine also ``per_emotion`` ``[n_layers][n_emotions]``), ``tokens`` (forward / reverse per set, and within), ``n``
    (rows per set and side), ``word_share`` (per set: ``matched`` and ``mismatched`` per layer and
    ``matched_per_emotion``), ``chance``."""
    E = len(emotions)
    ex_dev, ex_fin = sets[("explicit", "dev")], sets[("explicit", "final")]
    perm = permuted_labels(ex_dev.y, seeds, seed)
    within = logistic_probe_cv(
        ex_dev.x, perm, _cv_splits(ex_dev.groups, folds), n_classes=E, C=C, max_iter=max_iter
    )  # [1 + S, L]
    tok_within = logistic_probe_cv(
        ex_dev.tokens[:, None], ex_dev.y, _cv_splits(ex_dev.groups, folds), n_classes=E, C=C, max_iter=max_iter
    )
    ex_units = class_directions(centred(ex_dev.x), ex_dev.y, E)
    out: dict[str, Any] = {
        "emotions": list(emotions),
        "chance": 1.0 / E,
        "seeds": seeds,
        "n": {f"{k[0]} {k[1]}": len(v.y) for k, v in sets.items()},
        "within": _summary(within[0], within[1:]),
        "forward": {},
        "reverse": {},
        "cosine": {},
        "tokens": {"within": float(tok_within[0]), "forward": {}, "reverse": {}},
    }
    units = {"explicit": ex_units}
    for s in implicit:
        dev, fin = sets[(s, "dev")], sets[(s, "final")]
        fwd = transfer_accuracy(ex_dev.x, perm, fin.x, fin.y, E, C, max_iter)  # [1 + S, L]
        rperm = permuted_labels(dev.y, seeds, seed + 1)
        rev = transfer_accuracy(dev.x, rperm, ex_fin.x, ex_fin.y, E, C, max_iter)
        s_units = class_directions(centred(dev.x), dev.y, E)
        units[s] = s_units
        cos_each = (ex_units * s_units).sum(-1)  # [L, E]
        cos_real = cos_each.mean(-1)  # [L]
        cos_null = torch.stack(
            [(ex_units * class_directions(centred(dev.x), p, E)).sum(-1).mean(-1) for p in rperm[1:]]
        )
        out["forward"][s] = {**_summary(fwd[0], fwd[1:]), "n_test": len(fin.y)}
        out["reverse"][s] = {**_summary(rev[0], rev[1:]), "n_test": len(ex_fin.y)}
        out["cosine"][s] = {**_summary(cos_real, cos_null), "per_emotion": cos_each.tolist()}
        out["tokens"]["forward"][s] = float(
            transfer_accuracy(ex_dev.tokens[:, None], ex_dev.y, fin.tokens[:, None], fin.y, E, C, max_iter)[0]
        )
        out["tokens"]["reverse"][s] = float(
            transfer_accuracy(dev.tokens[:, None], dev.y, ex_fin.tokens[:, None], ex_fin.y, E, C, max_iter)[0]
        )
    if words is not None:
        out["word_share"] = {"random": 2.0 / words.shape[-1]}
        for name, u in units.items():
            matched, mismatched = plane_share(u, words)
            out["word_share"][name] = {
                "matched": matched.mean(1).tolist(),
                "mismatched": mismatched.mean(1).tolist(),
                "matched_per_emotion": matched.tolist(),
            }
    return out


def layer_bands(n_layers: int, bands: int) -> list[tuple[int, int]]:
    """``bands`` consecutive ``(first, last)`` layer ranges covering ``0 .. n_layers - 1`` about equally
    (fewer when there are fewer layers)."""
    bands = max(1, min(bands, n_layers))
    edges = [round(i * n_layers / bands) for i in range(bands + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(bands)]


def _band(stat: dict[str, Any], lo: int, hi: int) -> tuple[float, float]:
    """(band mean of the value, 95th percentile of the band means of the null draws)."""
    value = float(np.mean(stat["value"][lo : hi + 1]))
    draws = np.asarray(stat["null_draws"])[:, lo : hi + 1].mean(1)
    return value, float(np.quantile(draws, 0.95))


def band_verdicts(stats: dict[str, Any], bands: int = 3) -> list[dict[str, Any]]:
    """One row per layer band: the band means of every test against its null, which implicit sets
    support a shared state, and the verdict (:data:`VERDICT_RULE`)."""
    n_layers = len(stats["within"]["value"])
    rows = []
    for lo, hi in layer_bands(n_layers, bands):
        within, within_bar = _band(stats["within"], lo, hi)
        per_set = {}
        for s in stats["forward"]:
            fwd, fwd_bar = _band(stats["forward"][s], lo, hi)
            rev, rev_bar = _band(stats["reverse"][s], lo, hi)
            cos, cos_bar = _band(stats["cosine"][s], lo, hi)
            tokens = stats["tokens"]["forward"][s]
            checks = {
                "forward": fwd > fwd_bar,
                "reverse": rev > rev_bar,
                "cosine": cos > cos_bar,
                "beats_tokens": fwd > tokens,
            }
            per_set[s] = {
                "forward": fwd,
                "forward_null_p95": fwd_bar,
                "reverse": rev,
                "reverse_null_p95": rev_bar,
                "cosine": cos,
                "cosine_null_p95": cos_bar,
                "tokens_forward": tokens,
                "checks": checks,
                "supports": all(checks.values()),
            }
        support = [s for s, d in per_set.items() if d["supports"]]
        read = within > within_bar
        if len(support) >= 2:
            verdict = "emotion state"
        elif not support and read:
            verdict = "instruction word"
        else:
            verdict = "cannot tell"
        rows.append(
            {
                "layers": [lo, hi],
                "within": within,
                "within_null_p95": within_bar,
                "sets": per_set,
                "supporting": support,
                "verdict": verdict,
            }
        )
    return rows


def accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of an accuracy measured on ``n`` items (its count is ``round(accuracy * n)``)."""
    return wilson_interval(round(accuracy * n), n)
