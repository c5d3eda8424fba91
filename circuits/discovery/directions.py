"""Context-agnostic emotion directions and the evidence that they are context-agnostic.

For a read point p ("attn" = resid_mid, "mlp" = resid_post) and layer L, with h_{g,e} the last-token
residual of group g = (scenario, valence) under emotion e:

    mu_g = mean_e h_{g,e};   c_e = mean_g (h_{g,e} - mu_g);   v_e = normalise(c_e - mean_e' c_e').

With elicitation, a row whose reply was not judged as its emotion is not accepted. The centre mu_g is
still the mean over all of the group's prompted rows (it describes the context, whatever the replies),
while c_e averages only over the groups where emotion e was accepted. Without elicitation (every row
accepted) this is the formula above exactly; it lets a model that follows an emotion prompt only
sometimes (a small one) still give directions from the rows where it did.

``c_e - mean c`` (the *difference vector*, in residual units) is kept next to the unit ``v_e``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float
from safetensors.torch import save_file

from circuits.core.artifacts import InputError, write_atomic, write_json_atomic
from circuits.core.emotions import check_emotions
from circuits.core.readers import as_path, load_tensors, read_json
from circuits.discovery.store import READ_POINTS, ActivationStore


@dataclass
class Directions:
    """``unit`` and ``diff``: ``[2 read points ("attn", "mlp"), n_layers, n_emotions, d_model]``."""

    emotions: tuple[str, ...]
    unit: Float[torch.Tensor, "point n_layers n_emotions d_model"]
    diff: Float[torch.Tensor, "point n_layers n_emotions d_model"]
    n_groups: int
    fingerprint: str
    prompts: dict[str, Any] | None = None
    """The :class:`~circuits.core.sev.PromptSettings` (as a dict) of the store they come from."""

    def get(self, point: str, layer: int, emotion: str, unit: bool = True) -> Float[torch.Tensor, " d_model"]:
        (e,) = check_emotions([emotion], self.emotions)
        t = self.unit if unit else self.diff
        return t[READ_POINTS.index(point), layer, self.emotions.index(e)]

    def at(self, point: str) -> Float[torch.Tensor, "n_layers n_emotions d_model"]:
        return self.unit[READ_POINTS.index(point)]

    def save(self, path: str | Path) -> None:
        """``path``.safetensors + ``path``.json (atomic)."""
        path = Path(path)
        write_atomic(
            path.with_suffix(".safetensors"),
            lambda p: save_file({"unit": self.unit.contiguous(), "diff": self.diff.contiguous()}, str(p)),
        )
        write_json_atomic(
            path.with_suffix(".json"),
            {
                "emotions": list(self.emotions),
                "read_points": list(READ_POINTS),
                "n_groups": self.n_groups,
                "fingerprint": self.fingerprint,
                "shape": list(self.unit.shape),
                "prompts": self.prompts,
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> "Directions":
        """Read ``path``.json + ``path``.safetensors. A missing, truncated or damaged file, a field of
        the wrong type, unknown emotions, tensors whose shapes disagree with the metadata, or NaN / inf
        values raise :class:`InputError` naming the file."""
        path = as_path(path, "Directions.load: path")
        meta_path, tensor_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
        meta = read_json(meta_path, what="directions file")

        def bad(field: str, expected: str) -> InputError:
            return InputError(f"{meta_path}: field {field!r}: expected {expected}")

        names = meta.get("emotions")
        if not isinstance(names, list) or not names or not all(isinstance(e, str) for e in names):
            raise bad("emotions", "a non-empty list of emotion names")
        try:
            emotions = check_emotions(names)
        except InputError as err:
            raise InputError(f"{meta_path}: field 'emotions': {err}") from None
        if len(emotions) != len(names):
            raise bad("emotions", "each emotion once")
        n_groups = meta.get("n_groups")
        if not isinstance(n_groups, int) or isinstance(n_groups, bool) or n_groups < 0:
            raise bad("n_groups", "a whole number >= 0")
        if not isinstance(meta.get("fingerprint"), str):
            raise bad("fingerprint", "the model fingerprint (a string)")
        if meta.get("prompts") is not None and not isinstance(meta["prompts"], dict):
            raise bad("prompts", "an object of prompt settings or null")
        spec = (len(READ_POINTS), None, len(emotions), None)
        t = load_tensors(
            tensor_path, what="directions tensor file", expect={"unit": (spec, None), "diff": (spec, None)}
        )
        if t["unit"].shape != t["diff"].shape or not t["unit"].is_floating_point():
            raise InputError(
                f"{tensor_path}: tensors 'unit' {tuple(t['unit'].shape)} and 'diff' {tuple(t['diff'].shape)} "
                "must be floating tensors of one shape"
            )
        return cls(emotions, t["unit"], t["diff"], n_groups, meta["fingerprint"], meta.get("prompts"))


def masked_centred_mean(
    h: Float[torch.Tensor, "groups n_emotions ..."], mask: Bool[torch.Tensor, "groups n_emotions"] | None = None
) -> Float[torch.Tensor, "n_emotions ..."]:
    """c_e = mean over the groups where e is accepted of (h_{g,e} - mean_e' h_{g,e'}); an emotion with
    no accepted group gets zeros. Without ``mask``: the plain mean over groups."""
    dev = h - h.mean(dim=1, keepdim=True)
    if mask is None:
        return dev.mean(dim=0)
    w = mask.to(h.dtype).reshape(*mask.shape, *([1] * (h.ndim - 2)))
    return (dev * w).sum(0) / w.sum(0).clamp_min(1.0)


def masked_group_tensor(
    store: ActivationStore, name: str, emotions: Sequence[str], rows: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Stack a store tensor as ``[n_groups, n_emotions, ...]`` (restricted to ``rows`` if given) over every
    group in which each emotion has a prompted row (accepted or not) and some row is accepted; also
    returns the ``[n_groups, n_emotions]`` bool mask of accepted rows and the group keys."""
    pool = range(len(store.rows)) if rows is None else rows
    where: dict[tuple[str, str], dict[str, int]] = {}
    for i in pool:
        r = store.rows[i]
        if r.kind == "emotion" and r.emotion in emotions:
            where.setdefault(r.group, {})[r.emotion] = i
    groups = [
        g for g, d in where.items() if len(d) == len(emotions) and any(store.rows[i].accepted for i in d.values())
    ]
    if not groups:
        raise ValueError(
            f"{store.path}: no (scenario, valence) group has an accepted row and rows for all of {list(emotions)}"
        )
    idx = torch.tensor([[where[g][e] for e in emotions] for g in groups])
    mask = torch.tensor([[store.rows[int(i)].accepted for i in row] for row in idx])
    return store.tensor(name)[idx], mask, groups


def centred_directions(
    h: Float[torch.Tensor, "groups n_emotions ... d_model"],
    mask: Bool[torch.Tensor, "groups n_emotions"] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The group-centred formula on a stacked tensor: returns (unit, diff) of shape [n_emotions, ..., d].
    ``mask``: accepted rows; each c_e averages over its accepted groups only (the centre uses all rows)."""
    c = masked_centred_mean(h, mask)
    diff = c - c.mean(dim=0, keepdim=True)
    unit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit, diff


def emotion_directions(
    store: ActivationStore, emotions: Sequence[str] | None = None, rows: Sequence[int] | None = None
) -> Directions:
    """Directions for every layer and both read points from the store's emotion rows."""
    emotions = check_emotions(emotions, store.emotions)
    units, diffs = [], []
    n_groups = 0
    for point in READ_POINTS:
        h, mask, groups = masked_group_tensor(store, "resid_mid" if point == "attn" else "resid_post", emotions, rows)
        unit, diff = centred_directions(h, mask)  # [E, L, d]
        units.append(unit.transpose(0, 1))
        diffs.append(diff.transpose(0, 1))
        n_groups = len(groups)
    return Directions(
        tuple(emotions), torch.stack(units), torch.stack(diffs), n_groups, store.fingerprint, store.meta.get("prompts")
    )


def cross_context_cosine(
    store: ActivationStore, by: str = "theme", emotions: Sequence[str] | None = None
) -> dict[str, Any]:
    """Directions computed on disjoint contexts, compared by cosine.

    ``by="theme"``: the themes are split into two halves (alternating); ``by="valence"``: one set of
    directions per valence, all pairs compared. Returns ``{"pairs": [(a, b)], "cosine": [n_pairs, 2,
    n_layers, n_emotions] (torch), "mean": [2, n_layers] (mean over pairs and emotions)}``.
    """
    emotions = check_emotions(emotions, store.emotions)
    rows = [i for i, r in enumerate(store.rows) if r.kind == "emotion"]
    if by == "theme":
        themes = sorted({store.rows[i].theme for i in rows})
        if len(themes) < 2:
            raise ValueError("need at least two themes to compare directions across themes")
        halves = {"themes A": set(themes[0::2]), "themes B": set(themes[1::2])}
        parts = {k: [i for i in rows if store.rows[i].theme in v] for k, v in halves.items()}
    elif by == "valence":
        vals = sorted({store.rows[i].valence for i in rows})
        parts = {v: [i for i in rows if store.rows[i].valence == v] for v in vals}
    else:
        raise ValueError(f"by must be 'theme' or 'valence', got {by!r}")
    dirs = {k: emotion_directions(store, emotions, v).unit for k, v in parts.items()}
    keys = list(dirs)
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]]
    cos = torch.stack([(dirs[a] * dirs[b]).sum(-1) for a, b in pairs])
    return {"pairs": pairs, "cosine": cos, "mean": cos.mean(dim=(0, 3))}


PROBE_SOLVERS = ("pca", "lbfgs")
"""``"pca"``: the fit on each fold's principal-component basis, preconditioned (the default);
``"lbfgs"``: plain L-BFGS on the standardised features, the reference it is tested against."""


@dataclass
class ProbeData:
    """What a probe is fitted on: ``x`` ``[n, n_layers, d]`` (float32 residuals of the accepted emotion
    rows ``idx``), labels ``y`` ``[n]`` (index into ``emotions``), scenario-grouped ``splits``
    (``(train_idx, test_idx)`` pairs, which depend on the rows' scenarios only, never on the labels)."""

    idx: list[int]
    x: Float[torch.Tensor, "n n_layers d"]
    y: torch.Tensor
    splits: list[tuple[np.ndarray, np.ndarray]]
    emotions: tuple[str, ...]


def probe_data(
    store: ActivationStore, point: str = "mlp", emotions: Sequence[str] | None = None, folds: int = 5
) -> ProbeData:
    """The accepted emotion rows of ``store`` at read ``point`` with their labels and scenario-grouped
    folds (``min(folds, scenarios)`` of them)."""
    from sklearn.model_selection import GroupKFold

    emotions = check_emotions(emotions, store.emotions)
    idx = [i for i, r in enumerate(store.rows) if r.kind == "emotion" and r.accepted and r.emotion in emotions]
    y = np.array([emotions.index(store.rows[i].emotion) for i in idx])
    groups = np.array([store.rows[i].skeleton_id for i in idx])
    folds = min(folds, len(set(groups)))
    splits = list(GroupKFold(folds).split(np.zeros(len(y)), None, groups))
    return ProbeData(idx, store.resid(point)[idx].float(), torch.from_numpy(y), splits, tuple(emotions))


def probe_accuracy(
    store: ActivationStore,
    point: str = "mlp",
    emotions: Sequence[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = 200,
    C: float = 0.1,
    solver: str = "pca",
    data: ProbeData | None = None,
) -> np.ndarray:
    """Cross-validated accuracy of a logistic-regression emotion probe per layer, ``[n_layers]``.

    Folds are grouped by scenario, so a test fold's scenarios were never seen in training: the probe
    only scores well if the emotion is represented the same way across contexts. The probe is
    sklearn's ``StandardScaler`` + multinomial ``LogisticRegression(C=C)``, fitted for every layer at
    once (:func:`logistic_probe_cv`, tested against sklearn; ``solver`` in :data:`PROBE_SOLVERS`).
    ``data``: the rows and folds already gathered by :func:`probe_data` (for this store and ``point``).
    """
    data = probe_data(store, point, emotions, folds) if data is None else data
    return logistic_probe_cv(
        data.x, data.y, data.splits, n_classes=len(data.emotions), C=C, max_iter=max_iter, solver=solver
    ).numpy()


def _pca_basis(xs: Float[torch.Tensor, "n_layers n d"], C: float, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The principal axes of standardised (centred) training features and the preconditioner of each:
    ``basis`` ``[n_layers, d, k]`` (orthonormal columns, ``k = min(n, d)`` largest eigenvalues of the
    covariance) and ``scale`` ``[n_layers, k]`` = ``1 / sqrt(1 + C * n * lambda * h)``, the inverse root of
    the objective's curvature along each axis at the start (``h = (E - 1) / E^2``, the softmax's)."""
    n, d = xs.shape[1], xs.shape[2]
    evals, evecs = torch.linalg.eigh(xs.transpose(1, 2) @ xs / n)  # ascending
    k = min(n, d)
    evals, evecs = evals[:, -k:].clamp_min(0.0), evecs[:, :, -k:]
    h = (n_classes - 1) / n_classes**2
    return evecs, (1.0 + C * n * h * evals).rsqrt()


def logistic_probe_cv(
    x: Float[torch.Tensor, "n n_layers d"],
    y: torch.Tensor,
    splits: Sequence[tuple],
    n_classes: int,
    C: float = 0.1,
    max_iter: int = 200,
    solver: str = "pca",
) -> torch.Tensor:
    """Mean test accuracy over ``splits`` (``(train_idx, test_idx)`` pairs) of a standardised multinomial
    logistic regression with sklearn's objective (``C * sum of cross-entropies + ||W||^2 / 2``, bias not
    penalised), one independent probe per layer, all layers fitted together by L-BFGS: ``[n_layers]``,
    or ``[S, n_layers]`` when ``y`` is ``[S, n]`` (S label sets on the same rows, fitted in one solve).

    ``solver="lbfgs"`` fits the weights on the ``d`` standardised features (the reference).
    ``solver="pca"`` fits the same objective on each fold's principal axes: the optimal weights lie in
    the span of the training rows (the penalty is a plain ridge and rotation-invariant), so the optimum
    and its predictions are the same; each axis is rescaled by :func:`_pca_basis`'s preconditioner, so
    L-BFGS needs a fraction of the iterations (tested to give the reference accuracies within 0.01).
    """
    if solver not in PROBE_SOLVERS:
        raise ValueError(f"solver must be one of {PROBE_SOLVERS}, got {solver!r}")
    batched = y.ndim == 2
    ys = y if batched else y[None]  # [S, n]
    S, L = ys.shape[0], x.shape[1]
    accs = []
    for train, test in splits:
        train, test = torch.as_tensor(train), torch.as_tensor(test)
        xt = x[train]
        mu, sd = xt.mean(0), xt.std(0, unbiased=False).clamp_min(1e-12)
        xs = ((xt - mu) / sd).transpose(0, 1)  # [L, n_train, d]
        xe = ((x[test] - mu) / sd).transpose(0, 1)  # [L, n_test, d]
        if solver == "pca":
            basis, scale = _pca_basis(xs, C, n_classes)
            xs, xe = (xs @ basis) * scale[:, None], (xe @ basis) * scale[:, None]  # [L, n, k]
            penalty = scale.pow(2)[None, :, :, None]  # ||W||^2 in the original coordinates
            bias_scale = (C * len(train) * (n_classes - 1) / n_classes**2) ** -0.5  # the bias's curvature
        else:
            penalty, bias_scale = torch.ones(1, 1, 1, 1), 1.0
        W = torch.zeros(S, L, xs.shape[2], n_classes, requires_grad=True)
        b = torch.zeros(S, L, 1, n_classes, requires_grad=True)
        yt = ys[:, train]  # [S, n_train]
        target = yt[:, None].expand(S, L, -1).reshape(-1)
        opt = torch.optim.LBFGS(
            [W, b],
            lr=1,
            max_iter=max_iter,
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
            history_size=20,
            line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad()
            logits = xs @ W + bias_scale * b  # [S, L, n, E]
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, n_classes), target, reduction="sum")
            loss = (C * ce + 0.5 * (penalty * W.pow(2)).sum()) / len(train)
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            accs.append(((xe @ W + bias_scale * b).argmax(-1) == ys[:, None, test]).float().mean(-1))  # [S, L]
    acc = torch.stack(accs).mean(0)
    return acc if batched else acc[0]


def pca_by_layer(
    store: ActivationStore, point: str = "mlp", n_components: int = 2, emotions: Sequence[str] | None = None
) -> dict[str, Any]:
    """PCA of the group-centred last-token residuals per layer (accepted emotion rows).

    Each row is centred by the mean of every prompted row of its (scenario, valence) group, as the
    directions are (:func:`masked_group_tensor`), so elicitation that rejects some rows of a group
    keeps the group's other rows. Returns ``{"coords": [n_layers, rows, n_components], "explained":
    [n_layers, n_components], "labels": [rows] emotion names}`` over the accepted rows, group-major.
    Centring by group removes what the scenario contributes, so the plot shows how emotions separate.
    """
    emotions = check_emotions(emotions, store.emotions)
    h, mask, _ = masked_group_tensor(store, "resid_mid" if point == "attn" else "resid_post", emotions)
    h = h - h.mean(dim=1, keepdim=True)  # [G, E, L, d]
    rows = h[mask]  # [accepted rows, L, d], group-major
    flat = rows.transpose(0, 1)  # [L, n, d]
    coords, explained = [], []
    for layer in range(flat.shape[0]):
        x = flat[layer] - flat[layer].mean(0)
        u, s, vt = torch.linalg.svd(x, full_matrices=False)
        k = min(n_components, s.numel())
        coords.append((u[:, :k] * s[:k]).numpy())
        var = s**2
        explained.append((var[:k] / var.sum().clamp_min(1e-12)).numpy())
    labels = [emotions[e] for g, e in mask.nonzero().tolist()]
    return {"coords": np.stack(coords), "explained": np.stack(explained), "labels": labels}
