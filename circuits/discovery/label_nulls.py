"""Null controls for the emotion directions: the same evidence computed with permuted emotion labels.

A direction is only evidence of an emotion representation if the real labels do better than labels
that carry no emotion. :func:`permuted_store` shuffles the emotion labels of the emotion rows *within
each (scenario, valence) group*: every group still holds each emotion once (so group-centred directions
stay defined and the prompts' structure is unchanged), but a label no longer names the emotion the
prompt asked for. :func:`direction_nulls` recomputes, over several seeds, the probe accuracy and the
cross-context cosine on such stores; the spread over seeds is the band the real curve must clear.

(The other nulls of the workbench: random units of equal count in every ablation sweep and judged
generation, :mod:`circuits.discovery.ablation`; random circuits of equal size per layer for
faithfulness, :mod:`circuits.circuit.ablation_faithfulness`.)
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
import torch

from circuits.core.emotions import check_emotions
from circuits.discovery.directions import (
    ProbeData,
    cross_context_cosine,
    logistic_probe_cv,
    probe_accuracy,
    probe_data,
)
from circuits.discovery.store import ActivationStore


def permuted_store(store: ActivationStore, seed: int) -> ActivationStore:
    """A view of ``store`` (same tensors, no copy) whose emotion rows carry their group's emotion labels
    in a seeded random order (rejection-free: a group whose shuffle left every label in place is
    rotated by one, so every group changes)."""
    rng = random.Random(seed)
    rows = [dict(r) for r in store.meta["rows"]]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(store.rows):
        if r.kind == "emotion":
            groups.setdefault(r.group, []).append(i)
    for members in groups.values():
        labels = [store.rows[i].emotion for i in members]
        shuffled = labels[:]
        rng.shuffle(shuffled)
        if shuffled == labels and len(labels) > 1:
            shuffled = shuffled[1:] + shuffled[:1]
        for i, label in zip(members, shuffled):
            rows[i]["emotion"] = label
    meta = dict(store.meta)
    meta["rows"] = rows
    meta["permuted_labels_seed"] = seed
    return ActivationStore(store.path, meta, store._tensors)


def _band(values: Sequence[np.ndarray]) -> dict[str, list]:
    arr = np.stack([np.asarray(v, dtype=float) for v in values])
    return {"mean": arr.mean(0).tolist(), "std": arr.std(0).tolist(), "seeds": arr.tolist()}


def direction_nulls(
    store: ActivationStore,
    emotions: Sequence[str] | None = None,
    *,
    seeds: int = 2,
    points: Sequence[str] = ("mlp",),
    probe: bool = True,
    seed: int = 0,
    solver: str = "pca",
    data: dict[str, ProbeData] | None = None,
    batched: bool = True,
) -> dict[str, Any]:
    """Probe accuracy (per read point in ``points``, ``[n_layers]``) and cross-context cosine by theme
    (``[2, n_layers]``) with permuted labels, as ``{"mean", "std", "seeds"}`` over ``seeds`` permutations
    (seeds ``seed .. seed + seeds - 1``); ``"chance"`` is 1 / n_emotions.

    The permutation moves labels, never rows, so the probe's rows and scenario-grouped folds are those
    of the real-label probe: ``data`` (point -> :class:`~circuits.discovery.directions.ProbeData`, e.g.
    the real probe's) is reused when given, and with ``batched`` every permutation's probe is fitted in
    one solve (:func:`~circuits.discovery.directions.logistic_probe_cv` with ``[seeds, n]`` labels).
    ``batched=False`` fits one probe per seed (the reference); where a permutation changes which rows
    the probe uses (an emotion subset: a label can move onto a row of another emotion) the per-seed fit
    is always used."""
    emotions = check_emotions(emotions, store.emotions)
    perms = [permuted_store(store, 7919 * (seed + s) + 1) for s in range(seeds)]
    out: dict[str, Any] = {
        "seeds": seeds,
        "method": "emotion labels permuted within each (scenario, valence) group",
        "chance": 1.0 / len(emotions),
        "cosine_by_theme": _band([cross_context_cosine(p, "theme", emotions)["mean"].numpy() for p in perms]),
    }
    if probe:
        out["probe_accuracy"] = {}
        for pt in points:
            d = (data or {}).get(pt)
            if d is None or d.emotions != tuple(emotions):  # gathered for other emotions: gather again
                d = probe_data(store, pt, emotions)
            labels = _permuted_labels(perms, d) if batched else None
            if labels is None:
                accs = [probe_accuracy(p, pt, emotions, seed=seed, solver=solver) for p in perms]
            else:
                accs = list(logistic_probe_cv(d.x, labels, d.splits, n_classes=len(emotions), solver=solver).numpy())
            out["probe_accuracy"][pt] = _band(accs)
    return out


def _permuted_labels(perms: Sequence[ActivationStore], data: ProbeData) -> torch.Tensor | None:
    """``[len(perms), n]`` labels of ``data``'s rows in each permuted store, or None where a permuted
    store's probe would use other rows (then its folds differ too)."""
    labels = []
    for p in perms:
        idx = [i for i, r in enumerate(p.rows) if r.kind == "emotion" and r.accepted and r.emotion in data.emotions]
        if idx != data.idx:
            return None
        labels.append([data.emotions.index(p.rows[i].emotion) for i in idx])
    return torch.tensor(labels, dtype=torch.long).reshape(len(perms), len(data.idx))
