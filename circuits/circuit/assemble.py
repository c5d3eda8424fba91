"""Assembling a circuit from influence and unit scores, and comparing circuits (overlap)."""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
import torch
from jaxtyping import Float

from circuits.circuit.allocation import AllocationConfig, Array, allocate
from circuits.circuit.emotion_circuit import Circuit, LayerCircuit
from circuits.core.arch import ArchInfo
from circuits.core.emotions import check_emotions


def _to_tensor(x: Any, name: str, shape: tuple[int, ...], dims: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(device="cpu", dtype=dtype)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: expected a numeric array of shape [{dims}], got {type(x).__name__}") from err
    if tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape [{dims}] = {list(shape)} for this architecture, got {list(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t


def _model_info(model_info: Any) -> dict[str, Any]:
    if isinstance(model_info, Mapping):
        missing = [k for k in ("name", "fingerprint", "arch") if k not in model_info]
        if missing:
            raise ValueError(f"model_info: missing key(s) {', '.join(missing)} (expected name, fingerprint, arch)")
        name, fp, arch = model_info["name"], model_info["fingerprint"], model_info["arch"]
    elif all(hasattr(model_info, a) for a in ("name", "fingerprint", "arch")):
        name, fp, arch = model_info.name, model_info.fingerprint, model_info.arch
    else:
        raise ValueError("model_info: expected a dict with name, fingerprint and arch (or a ModelHandle)")
    if not isinstance(arch, ArchInfo):
        if not isinstance(arch, Mapping):
            raise ValueError(f"model_info['arch']: expected an ArchInfo or a dict, got {type(arch).__name__}")
        missing = [k for k in ArchInfo.__dataclass_fields__ if k not in arch]
        if missing:
            raise ValueError(f"model_info['arch']: missing field(s) {', '.join(missing)}")
        arch = ArchInfo.from_dict(dict(arch))
    if not isinstance(fp, str) or not fp:
        raise ValueError(f"model_info['fingerprint']: expected a non-empty string, got {fp!r}")
    return {"name": str(name), "fingerprint": fp, "arch": arch.to_dict()}


def _top_k(scores: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
    """Indices and values of the ``k`` largest entries, descending, ties to the lower index."""
    values, order = torch.sort(scores, descending=True, stable=True)
    return [int(i) for i in order[:k].tolist()], [float(v) for v in values[:k].tolist()]


def assemble_circuit(
    emotion: str,
    *,
    influence_attn: Float[Array, " n_layers"],
    influence_mlp: Float[Array, " n_layers"],
    neuron_scores: Float[Array, "n_layers d_mlp"],
    head_scores: Float[Array, "n_layers n_heads"],
    delta_mu_mlp: Float[Array, "n_layers d_mlp"],
    delta_mu_heads: Float[Array, "n_layers n_heads d_head"],
    model_info: Mapping[str, Any] | Any,
    config: AllocationConfig = AllocationConfig(),
    meta: Mapping[str, Any] | None = None,
) -> Circuit:
    """Select one emotion's circuit under the budget of ``config``.

    Args:
        emotion: an emotion name (case-insensitive).
        influence_attn, influence_mlp: [n_layers] sublayer influence; the positive part weights the
            allocation of heads and neurons over layers.
        neuron_scores: [n_layers, d_mlp] signed neuron scores (higher = more pro-emotion).
        head_scores: [n_layers, n_heads] signed head scores.
        delta_mu_mlp: [n_layers, d_mlp] Delta-mu of each neuron's activation.
        delta_mu_heads: [n_layers, n_heads, d_head] Delta-mu of each head's z vector.
        model_info: ``{"name", "fingerprint", "arch"}`` (arch an ArchInfo or its dict), or a ModelHandle.
        config: the allocation settings.
        meta: free-form JSON-serialisable facts to keep with the circuit.

    Per layer L: ``k_neurons_L`` from ``allocate(max(influence_mlp, 0), K_neurons, min_neurons,
    neuron_cap, d_mlp)`` and ``k_heads_L`` from ``allocate(max(influence_attn, 0), K_heads,
    min_heads, head_cap, n_heads)`` (sizes from :meth:`AllocationConfig.budget`); then the top
    ``k`` neurons / heads by score (descending, ties to the lower index), their scores and their
    Delta-mu slices (stored as float32 on the CPU). Inputs may be torch tensors or numpy arrays;
    shapes are checked against the architecture.
    """
    (emotion,) = check_emotions([emotion])
    info = _model_info(model_info)
    arch = ArchInfo.from_dict(info["arch"])
    if not isinstance(config, AllocationConfig):
        raise ValueError(f"config: expected an AllocationConfig, got {type(config).__name__}")
    n, d_mlp, n_heads, d_head = arch.n_layers, arch.d_mlp, arch.n_heads, arch.d_head
    f64, f32 = torch.float64, torch.float32
    inf_attn = _to_tensor(influence_attn, "influence_attn", (n,), "n_layers", f64)
    inf_mlp = _to_tensor(influence_mlp, "influence_mlp", (n,), "n_layers", f64)
    n_scores = _to_tensor(neuron_scores, "neuron_scores", (n, d_mlp), "n_layers, d_mlp", f64)
    h_scores = _to_tensor(head_scores, "head_scores", (n, n_heads), "n_layers, n_heads", f64)
    dmu_mlp = _to_tensor(delta_mu_mlp, "delta_mu_mlp", (n, d_mlp), "n_layers, d_mlp", f32)
    dmu_heads = _to_tensor(delta_mu_heads, "delta_mu_heads", (n, n_heads, d_head), "n_layers, n_heads, d_head", f32)
    meta_d = dict(meta or {})
    try:
        json.dumps(meta_d, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta: must be JSON-serialisable: {err}") from err

    b = config.budget(n)
    k_neurons = allocate(inf_mlp.clamp(min=0).tolist(), b["neurons"], config.min_neurons, b["neuron_cap"], d_mlp)
    k_heads = allocate(inf_attn.clamp(min=0).tolist(), b["heads"], config.min_heads, b["head_cap"], n_heads)

    layers: list[LayerCircuit] = []
    delta_mu: dict[str, torch.Tensor] = {}
    for L in range(n):
        neurons, nscores = _top_k(n_scores[L], k_neurons[L])
        heads, hscores = _top_k(h_scores[L], k_heads[L])
        layers.append(LayerCircuit(L, neurons, nscores, heads, hscores))
        delta_mu[f"mlp.{L}"] = dmu_mlp[L, torch.tensor(neurons, dtype=torch.long)].clone()
        delta_mu[f"attn.{L}"] = dmu_heads[L, torch.tensor(heads, dtype=torch.long)].clone().reshape(len(heads), d_head)
    return Circuit(
        emotion=emotion,
        model=info,
        allocation=config,
        layers=layers,
        influence={"attn": [float(x) for x in inf_attn.tolist()], "mlp": [float(x) for x in inf_mlp.tolist()]},
        delta_mu=delta_mu,
        meta=meta_d,
    )


def _jaccard(a: set, b: set) -> float:
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def overlap(a: Circuit, b: Circuit) -> dict[str, float]:
    """Jaccard overlap of two circuits of the same architecture.

    Returns ``{"neurons": |A∩B| / |A∪B|`` over (layer, neuron) pairs, ``"heads":`` the same over
    (layer, head) pairs``}``; two empty sets overlap 1.0. Raises ValueError for different architectures.
    """
    if dict(a.model["arch"]) != dict(b.model["arch"]):
        raise ValueError("overlap: the circuits were built for different architectures")
    na = {(lc.layer, i) for lc in a.layers for i in lc.neurons}
    nb = {(lc.layer, i) for lc in b.layers for i in lc.neurons}
    ha = {(lc.layer, h) for lc in a.layers for h in lc.heads}
    hb = {(lc.layer, h) for lc in b.layers for h in lc.heads}
    return {"neurons": _jaccard(na, nb), "heads": _jaccard(ha, hb)}
