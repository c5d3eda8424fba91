"""Emotion circuits: budgeted selection of MLP neurons and attention heads, export and import.

A circuit for one emotion is a set of MLP neurons and attention heads per layer (arXiv 2510.11328).
:func:`assemble_circuit` builds it from per-sublayer influence scores and per-unit scores:

1. The total budget is ``K = budget_per_sublayer * 2 * n_layers`` (every layer has two sublayers,
   attention and MLP), split into ``K_neurons = round(neuron_share * K)`` and
   ``K_heads = K - K_neurons`` (see :meth:`AllocationConfig.budget`).
2. :func:`allocate` spreads ``K_neurons`` over the layers in proportion to the positive part of the
   MLP influence (every layer gets at least ``min_neurons``, none more than
   ``floor(cap_fraction * K_neurons)``), and ``K_heads`` likewise with the attention influence.
3. Within a layer the ``k`` neurons (heads) with the highest signed scores are taken.

On disk a circuit is a JSON file (described by :data:`CIRCUIT_JSON_SCHEMA`, checked by
:func:`validate_circuit_json`) plus a safetensors sidecar with the same stem holding the Delta-mu
vectors of the selected units::

    anger.json          {"schema_version": 1, "kind": "emotion-circuit", "emotion": "anger", ...}
    anger.safetensors   mlp.{L}: [k_neurons_L]   attn.{L}: [k_heads_L, d_head]

:meth:`Circuit.to_graph` gives the circuit in EAP-IG's graph JSON layout for other circuit tools.
"""

from __future__ import annotations

import json
import math
import operator
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file

from circuits.emotions import EMOTIONS, check_emotions
from circuits.io import write_atomic, write_json_atomic
from circuits.model import ArchInfo

SCHEMA_VERSION = 1
"""Version of the circuit JSON format written by :meth:`Circuit.save`."""
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
CIRCUIT_KIND = "emotion-circuit"
GRAPH_FORMAT = "eap-graph"
GRAPH_SCHEMA_VERSION = 2

Array = Union[torch.Tensor, np.ndarray]
"""Array inputs may be torch tensors (any device / float dtype) or numpy arrays."""

_EPS = 1e-9
"""Tolerance added before flooring/rounding budget products, so that e.g. 0.29 * 100 floors to 29."""


class CircuitFormatError(ValueError):
    """A circuit file is missing, unreadable or does not follow :data:`CIRCUIT_JSON_SCHEMA`.

    ``path`` is the offending file and ``problems`` the list of everything found wrong; the message
    names the file and every problem (with its JSON path, e.g. ``layers[3].mlp.neurons[5]``).
    """

    def __init__(self, path: str | os.PathLike, problems: str | Sequence[str]) -> None:
        self.path = str(path)
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            msg = f"{self.path}: {self.problems[0]}"
        else:
            msg = f"{self.path}: {len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


class CircuitModelMismatch(ValueError):
    """A circuit file was built for another model than the one it is being loaded for."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


# --------------------------------------------------------------------------------------------------
# allocation


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


@dataclass(frozen=True)
class AllocationConfig:
    """How the circuit budget is sized and spread over layers.

    Attributes:
        budget_per_sublayer: units per sublayer; the total budget is
            ``K = budget_per_sublayer * 2 * n_layers`` (two sublayers per layer).
        neuron_share: fraction of ``K`` given to MLP neurons, ``K_neurons = round(neuron_share * K)``
            (round half up); the heads get ``K_heads = K - K_neurons``.
        min_neurons: neurons every layer gets before the proportional split (at most ``d_mlp``).
        min_heads: heads every layer gets before the proportional split (at most ``n_heads``).
        cap_fraction: per-layer cap as a fraction of the kind's budget,
            ``cap = floor(cap_fraction * K_kind)`` (never below the per-layer minimum).
    """

    budget_per_sublayer: int = 10
    neuron_share: float = 0.7
    min_neurons: int = 4
    min_heads: int = 2
    cap_fraction: float = 0.4

    def __post_init__(self) -> None:
        if not _is_int(self.budget_per_sublayer) or self.budget_per_sublayer < 1:
            raise ValueError(
                f"AllocationConfig.budget_per_sublayer: expected an integer >= 1, got {self.budget_per_sublayer!r}"
            )
        for name in ("min_neurons", "min_heads"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise ValueError(f"AllocationConfig.{name}: expected an integer >= 0, got {v!r}")
        if not _is_real(self.neuron_share) or not 0.0 <= float(self.neuron_share) <= 1.0:
            raise ValueError(f"AllocationConfig.neuron_share: expected a number in [0, 1], got {self.neuron_share!r}")
        if not _is_real(self.cap_fraction) or not 0.0 < float(self.cap_fraction) <= 1.0:
            raise ValueError(f"AllocationConfig.cap_fraction: expected a number in (0, 1], got {self.cap_fraction!r}")
        for name in ("budget_per_sublayer", "min_neurons", "min_heads"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("neuron_share", "cap_fraction"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AllocationConfig":
        """Build from a dict; missing keys take their defaults, unknown keys raise ValueError."""
        if not isinstance(d, Mapping):
            raise ValueError(f"AllocationConfig.from_dict: expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"AllocationConfig: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**dict(d))

    def budget(self, n_layers: int) -> dict[str, int]:
        """Budget sizes for a model with ``n_layers`` layers.

        Returns ``{"total": K, "neurons": K_neurons, "heads": K_heads, "neuron_cap": ...,
        "head_cap": ...}`` with ``K = budget_per_sublayer * 2 * n_layers``,
        ``K_neurons = round_half_up(neuron_share * K)``, ``K_heads = K - K_neurons`` and the per-layer
        caps ``floor(cap_fraction * K_neurons)`` and ``floor(cap_fraction * K_heads)``.
        """
        if not _is_int(n_layers) or n_layers < 1:
            raise ValueError(f"n_layers: expected an integer >= 1, got {n_layers!r}")
        total = self.budget_per_sublayer * 2 * int(n_layers)
        neurons = min(total, int(math.floor(self.neuron_share * total + 0.5 + _EPS)))
        heads = total - neurons
        return {
            "total": total,
            "neurons": neurons,
            "heads": heads,
            "neuron_cap": int(math.floor(self.cap_fraction * neurons + _EPS)),
            "head_cap": int(math.floor(self.cap_fraction * heads + _EPS)),
        }


def _largest_remainder(weights: Sequence[Fraction], amount: int) -> list[int]:
    """Split ``amount`` in proportion to ``weights`` (sum > 0): floors, then +1 to the largest
    remainders (ties: lower index first). Exact rational arithmetic."""
    total_w = sum(weights, Fraction(0))
    quotas = [amount * w / total_w for w in weights]
    floors = [q.numerator // q.denominator for q in quotas]
    left = amount - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def allocate(
    weights: Sequence[float] | Array,
    total: int,
    minimum: int,
    cap: int | None,
    capacity: int | Sequence[int],
) -> list[int]:
    """Spread an integer budget over layers; a pure, deterministic function.

    Args:
        weights: per-layer non-negative finite weights, shape [n_layers] (callers pass
            ``max(influence, 0)``).
        total: the budget to place (>= 0).
        minimum: units every layer gets first (>= 0).
        cap: per-layer maximum (>= 0), or None for no cap.
        capacity: units a layer has (``d_mlp`` or ``n_heads``): one int for every layer or one per layer.

    Returns:
        per-layer counts, length n_layers, summing exactly to ``min(total, sum(capacity))``.

    Rules, in order:

    1. If ``total >= sum(capacity)`` every layer gets its capacity.
    2. Minimums: every layer gets ``min(minimum, capacity_L)``. If these alone exceed ``total`` the
       minimum is lowered to the largest value whose minimums still fit.
    3. Proportional split: the rest of ``total`` is split in proportion to ``weights`` (exact
       rational arithmetic) with largest-remainder rounding: each layer gets the floor of its quota,
       the units left go one each to the largest fractional remainders, ties to the lower layer
       index. If all weights are zero the rest is split evenly (the same rule with equal weights,
       so the extra units go to the lowest layer indices).
    4. Caps: a layer's limit is ``min(max(cap, its minimum), capacity_L)`` (the cap never pushes a
       layer below its minimum). Units above the limit are taken off.
    5. Backfill: the units taken off go to layers that still have room below their limit, filling
       them one layer at a time in order of largest weight, then largest remaining room, then lower
       layer index. Only if every layer is at its limit (the caps cannot hold ``total``, e.g. with
       fewer than ``1 / cap_fraction`` layers) are the rest placed beyond the caps, up to each
       layer's capacity, in the same order.
    """
    w: list[Fraction] = []
    for i, x in enumerate(np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights,
                                     dtype=np.float64).reshape(-1).tolist()):
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"allocate: weights[{i}] must be finite and >= 0, got {x!r}")
        w.append(Fraction(x))
    n = len(w)
    for name, v in (("total", total), ("minimum", minimum)):
        if not _is_int(v) or v < 0:
            raise ValueError(f"allocate: {name} must be an integer >= 0, got {v!r}")
    if cap is not None and (not _is_int(cap) or cap < 0):
        raise ValueError(f"allocate: cap must be an integer >= 0 or None, got {cap!r}")
    if _is_int(capacity):
        caps_l = [int(operator.index(capacity))] * n
    else:
        caps_l = [int(c) if _is_int(c) else -1 for c in capacity]
        if len(caps_l) != n:
            raise ValueError(f"allocate: capacity has {len(caps_l)} entries but weights has {n}")
    if any(c < 0 for c in caps_l):
        raise ValueError(f"allocate: capacity must be integers >= 0, got {capacity!r}")
    total, minimum = int(total), int(minimum)

    if total >= sum(caps_l):
        return list(caps_l)

    # 2. minimums (lowered if they alone do not fit)
    lo, hi = 0, minimum
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(mid, c) for c in caps_l) <= total:
            lo = mid
        else:
            hi = mid - 1
    base = [min(lo, c) for c in caps_l]
    limit = [c if cap is None else min(c, max(int(cap), b)) for c, b in zip(caps_l, base)]

    # 3. proportional split of the rest
    rest = total - sum(base)
    share_w = w if sum(w) > 0 else [Fraction(1)] * n
    alloc = [b + s for b, s in zip(base, _largest_remainder(share_w, rest))]

    # 4. caps
    spill = 0
    for i in range(n):
        if alloc[i] > limit[i]:
            spill += alloc[i] - limit[i]
            alloc[i] = limit[i]

    # 5. backfill: within the caps first, then (only if needed) up to capacity
    for bound in (limit, caps_l):
        if spill == 0:
            break
        order = sorted(range(n), key=lambda i: (-w[i], -(bound[i] - alloc[i]), i))
        for i in order:
            give = min(spill, bound[i] - alloc[i])
            if give > 0:
                alloc[i] += give
                spill -= give
    assert spill == 0 and sum(alloc) == total, "allocate: internal error"
    return alloc


# --------------------------------------------------------------------------------------------------
# the circuit


@dataclass
class LayerCircuit:
    """The units of one layer in a circuit, in descending score order.

    ``neurons`` / ``neuron_scores``: MLP neuron indices (< d_mlp) and their scores, equal lengths.
    ``heads`` / ``head_scores``: attention head indices (< n_heads) and their scores, equal lengths.
    """

    layer: int
    neurons: list[int] = field(default_factory=list)
    neuron_scores: list[float] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    head_scores: list[float] = field(default_factory=list)


@dataclass(eq=False)
class Circuit:
    """One emotion's circuit.

    Attributes:
        emotion: one of :data:`circuits.emotions.EMOTIONS`.
        model: ``{"name", "fingerprint", "arch"}`` with ``arch = ArchInfo.to_dict()``.
        allocation: the :class:`AllocationConfig` the budget came from.
        layers: one :class:`LayerCircuit` per layer, ``layers[L].layer == L``.
        influence: ``{"attn": [n_layers floats], "mlp": [n_layers floats]}``, the sublayer influence
            the allocation used (signed; only its positive part drives the split).
        delta_mu: ``"mlp.{L}"`` -> [k_neurons_L] (Delta-mu of each selected neuron, same order as
            ``layers[L].neurons``) and ``"attn.{L}"`` -> [k_heads_L, d_head] (Delta-mu of each
            selected head's z vector, same order as ``layers[L].heads``), for every layer L.
        meta: free-form JSON-serialisable facts (dataset hash, number of rows, ...).

    Equality compares every field, tensors with :func:`torch.equal` (dtype included).
    """

    emotion: str
    model: dict[str, Any]
    allocation: AllocationConfig
    layers: list[LayerCircuit]
    influence: dict[str, list[float]]
    delta_mu: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    @property
    def arch(self) -> ArchInfo:
        return ArchInfo.from_dict(self.model["arch"])

    @property
    def n_layers(self) -> int:
        return int(self.model["arch"]["n_layers"])

    @property
    def n_neurons(self) -> int:
        """Total number of MLP neurons in the circuit."""
        return sum(len(lc.neurons) for lc in self.layers)

    @property
    def n_heads(self) -> int:
        """Total number of attention heads in the circuit."""
        return sum(len(lc.heads) for lc in self.layers)

    def neuron_index(self) -> dict[int, list[int]]:
        """Layer -> selected neuron indices (every layer of the circuit, possibly empty lists)."""
        return {lc.layer: list(lc.neurons) for lc in self.layers}

    def head_index(self) -> dict[int, list[int]]:
        """Layer -> selected head indices (every layer of the circuit, possibly empty lists)."""
        return {lc.layer: list(lc.heads) for lc in self.layers}

    def budget(self) -> dict[str, int]:
        """``{"total", "neurons", "heads"}`` budget sizes for this circuit's model (see AllocationConfig.budget)."""
        b = self.allocation.budget(self.n_layers)
        return {"total": b["total"], "neurons": b["neurons"], "heads": b["heads"]}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        if (self.emotion, self.model, self.allocation, self.layers, self.influence, self.meta) != (
            other.emotion, other.model, other.allocation, other.layers, other.influence, other.meta
        ):
            return False
        if set(self.delta_mu) != set(other.delta_mu):
            return False
        return all(
            self.delta_mu[k].dtype == other.delta_mu[k].dtype
            and torch.equal(self.delta_mu[k].cpu(), other.delta_mu[k].cpu())
            for k in self.delta_mu
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ JSON
    def to_json(self, delta_mu_file: str | None = None) -> dict[str, Any]:
        """The circuit as a JSON object following :data:`CIRCUIT_JSON_SCHEMA` (tensors excluded;
        ``delta_mu_file`` names the sidecar, default ``{emotion}.safetensors``)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": CIRCUIT_KIND,
            "emotion": self.emotion,
            "model": {
                "name": self.model["name"],
                "fingerprint": self.model["fingerprint"],
                "arch": dict(self.model["arch"]),
            },
            "allocation": self.allocation.to_dict(),
            "budget": self.budget(),
            "influence": {"attn": [float(x) for x in self.influence["attn"]],
                          "mlp": [float(x) for x in self.influence["mlp"]]},
            "layers": [
                {
                    "layer": int(lc.layer),
                    "mlp": {"k": len(lc.neurons), "neurons": [int(i) for i in lc.neurons],
                            "scores": [float(s) for s in lc.neuron_scores]},
                    "attention": {"k": len(lc.heads), "heads": [int(h) for h in lc.heads],
                                  "scores": [float(s) for s in lc.head_scores]},
                }
                for lc in self.layers
            ],
            "delta_mu_file": delta_mu_file or f"{self.emotion}.safetensors",
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], delta_mu: Mapping[str, torch.Tensor]) -> "Circuit":
        """Build a circuit from an already validated JSON object and its sidecar tensors."""
        layers = [
            LayerCircuit(
                layer=int(e["layer"]),
                neurons=[int(i) for i in e["mlp"]["neurons"]],
                neuron_scores=[float(s) for s in e["mlp"]["scores"]],
                heads=[int(h) for h in e["attention"]["heads"]],
                head_scores=[float(s) for s in e["attention"]["scores"]],
            )
            for e in obj["layers"]
        ]
        return cls(
            emotion=str(obj["emotion"]),
            model={"name": obj["model"]["name"], "fingerprint": obj["model"]["fingerprint"],
                   "arch": dict(obj["model"]["arch"])},
            allocation=AllocationConfig.from_dict(obj["allocation"]),
            layers=layers,
            influence={"attn": [float(x) for x in obj["influence"]["attn"]],
                       "mlp": [float(x) for x in obj["influence"]["mlp"]]},
            delta_mu={k: v for k, v in delta_mu.items()},
            meta=dict(obj["meta"]),
        )

    def tensor_problems(self, delta_mu: Mapping[str, torch.Tensor] | None = None) -> list[str]:
        """Problems of the Delta-mu tensors (``self.delta_mu`` or the given ones) against the layers:
        keys exactly ``mlp.{L}`` / ``attn.{L}`` for every layer, shapes [k_neurons_L] and
        [k_heads_L, d_head], floating dtype."""
        tensors = self.delta_mu if delta_mu is None else delta_mu
        d_head = int(self.model["arch"]["d_head"])
        problems: list[str] = []
        expected: dict[str, tuple[int, ...]] = {}
        for lc in self.layers:
            expected[f"mlp.{lc.layer}"] = (len(lc.neurons),)
            expected[f"attn.{lc.layer}"] = (len(lc.heads), d_head)
        for key, shape in expected.items():
            if key not in tensors:
                problems.append(f"delta_mu: tensor {key!r} missing (expected shape {list(shape)})")
                continue
            t = tensors[key]
            if not isinstance(t, torch.Tensor):
                problems.append(f"delta_mu[{key!r}]: expected a torch.Tensor, got {type(t).__name__}")
            elif tuple(t.shape) != shape:
                problems.append(f"delta_mu[{key!r}]: shape {list(t.shape)}, expected {list(shape)}")
            elif not t.is_floating_point():
                problems.append(f"delta_mu[{key!r}]: dtype {t.dtype} is not a floating dtype")
        for key in sorted(set(tensors) - set(expected)):
            problems.append(f"delta_mu: unexpected tensor {key!r}")
        return problems

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (must end in ``.json``) and the sidecar ``<stem>.safetensors`` beside it.

        Both are written atomically, the sidecar first, so a JSON file on disk always has its
        sidecar. The circuit is validated first; an invalid one raises :class:`CircuitFormatError`
        and writes nothing. Returns the JSON path.
        """
        path = Path(path)
        if path.suffix != ".json":
            raise ValueError(f"Circuit.save: the path must end in .json, got {str(path)!r}")
        sidecar = path.with_suffix(".safetensors")
        obj = self.to_json(sidecar.name)
        problems = validate_circuit_json(obj) + self.tensor_problems()
        try:
            json.dumps(obj["meta"], allow_nan=False)
        except (TypeError, ValueError) as err:
            problems.append(f"meta: not JSON-serialisable ({err})")
        if problems:
            raise CircuitFormatError(path, ["refusing to write an invalid circuit"] + problems)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.delta_mu.items()}
        metadata = {"kind": CIRCUIT_KIND, "schema_version": str(SCHEMA_VERSION), "emotion": self.emotion,
                    "fingerprint": str(self.model["fingerprint"])}
        write_atomic(sidecar, lambda p: save_file(tensors, str(p), metadata=metadata))
        write_json_atomic(path, obj)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any = None) -> "Circuit":
        """Read and validate a circuit written by :meth:`save`.

        Args:
            path: the circuit JSON file.
            model: optional; anything with ``.fingerprint`` and ``.arch`` (a ModelHandle). When given,
                the circuit must have been built for that model.

        Raises:
            CircuitFormatError: missing or unreadable file, invalid JSON, unknown schema_version,
                any schema violation (every problem listed with its JSON path), missing sidecar or
                sidecar tensors of the wrong shape.
            CircuitModelMismatch: ``model`` has another fingerprint (or architecture).
        """
        path = Path(path)
        if not path.is_file():
            raise CircuitFormatError(path, "circuit file not found")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise CircuitFormatError(path, f"cannot read the circuit file: {err}") from err
        except json.JSONDecodeError as err:
            raise CircuitFormatError(path, f"not valid JSON: {err}") from err
        problems = validate_circuit_json(obj)
        if problems:
            raise CircuitFormatError(path, problems)
        if model is not None:
            _check_model(path, obj["model"], model)
        sidecar = path.parent / obj["delta_mu_file"]
        if not sidecar.is_file():
            raise CircuitFormatError(
                path, f"delta_mu_file: sidecar {str(sidecar)!r} not found (it must lie next to the JSON file)"
            )
        try:
            tensors = load_file(str(sidecar))
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise CircuitFormatError(path, f"delta_mu_file: cannot read sidecar {str(sidecar)!r}: {err}") from err
        circuit = cls.from_json(obj, tensors)
        problems = [f"{p} (in {sidecar.name})" for p in circuit.tensor_problems()]
        if problems:
            raise CircuitFormatError(path, problems)
        return circuit

    # ------------------------------------------------------------------ graph
    def to_graph(self) -> dict[str, Any]:
        """The circuit as a graph JSON object in EAP-IG's layout (``Graph.to_json`` / ``from_json``).

        * ``cfg``: ``n_layers``, ``n_heads`` (query heads), ``d_model``, ``parallel_attn_mlp`` (false);
        * ``nodes``: every node of the model's graph by EAP-IG's names: ``input``, ``a{L}.h{H}``,
          ``m{L}``, ``logits``; each ``{"in_graph": bool}``, circuit nodes also with ``score`` (a head's
          importance; an MLP's sum of its selected neurons' scores) and MLP nodes with
          ``mlp_neurons`` / ``mlp_neuron_scores`` (indices into d_mlp; EAP-IG's own ``neurons`` field
          is over d_model and is not used);
        * ``edges``: this is a node-level circuit, so the edges are those EAP-IG's topology gives
          between its nodes (with ``input`` and ``logits``): ``P->a{L}.h{H}<q|k|v>`` from every
          earlier node, ``P->m{L}`` from every node before that MLP (the heads of its own layer
          included), ``P->logits`` from all; each ``{"score": 0.0, "in_graph": true}`` (edges are
          not scored);
        * ``metadata``: ``format``, ``schema_version``, ``model`` (name, fingerprint, arch), ``emotion``.
        """
        arch = self.model["arch"]
        n_layers, n_heads = int(arch["n_layers"]), int(arch["n_heads"])
        heads = {(lc.layer, h): float(s) for lc in self.layers for h, s in zip(lc.heads, lc.head_scores)}
        mlps = {lc.layer: lc for lc in self.layers if lc.neurons}
        nodes: dict[str, dict[str, Any]] = {"input": {"in_graph": True}}
        for layer in range(n_layers):
            for h in range(n_heads):
                score = heads.get((layer, h))
                nodes[f"a{layer}.h{h}"] = {"in_graph": False} if score is None else {"in_graph": True,
                                                                                    "score": score}
            lc = mlps.get(layer)
            nodes[f"m{layer}"] = {"in_graph": False} if lc is None else {
                "in_graph": True, "score": float(sum(lc.neuron_scores)),
                "mlp_neurons": [int(i) for i in lc.neurons],
                "mlp_neuron_scores": [float(s) for s in lc.neuron_scores]}
        nodes["logits"] = {"in_graph": True}
        edges: dict[str, dict[str, Any]] = {}
        upstream = ["input"]  # circuit nodes whose output the next node reads
        for layer in range(n_layers):
            layer_heads = [f"a{layer}.h{h}" for h in range(n_heads) if (layer, h) in heads]
            for child in layer_heads:
                for parent in upstream:
                    for qkv in "qkv":
                        edges[f"{parent}->{child}<{qkv}>"] = {"score": 0.0, "in_graph": True}
            upstream += layer_heads
            if layer in mlps:
                for parent in upstream:
                    edges[f"{parent}->m{layer}"] = {"score": 0.0, "in_graph": True}
                upstream.append(f"m{layer}")
        for parent in upstream:
            edges[f"{parent}->logits"] = {"score": 0.0, "in_graph": True}
        return {
            "cfg": {"n_layers": n_layers, "n_heads": n_heads, "d_model": int(arch["d_model"]),
                    "parallel_attn_mlp": False},
            "nodes": nodes,
            "edges": edges,
            "metadata": {"format": GRAPH_FORMAT, "schema_version": GRAPH_SCHEMA_VERSION,
                         "model": {"name": self.model["name"], "fingerprint": self.model["fingerprint"],
                                   "arch": dict(self.model["arch"])},
                         "emotion": self.emotion, "edges_scored": False},
        }

    def save_graph(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_graph` to ``path`` atomically; returns the path."""
        return write_json_atomic(Path(path), self.to_graph())


def _check_model(path: Path, info: Mapping[str, Any], model: Any) -> None:
    fp = getattr(model, "fingerprint", None)
    if fp is None:
        raise TypeError(f"model: expected an object with .fingerprint and .arch, got {type(model).__name__}")
    given_name = getattr(model, "name", "?")
    if str(fp) != info["fingerprint"]:
        raise CircuitModelMismatch(
            path,
            f"this circuit was built for model {info['name']!r} (fingerprint {info['fingerprint']}), "
            f"but the given model {given_name!r} has fingerprint {fp}",
        )
    arch = getattr(model, "arch", None)
    arch_d = arch.to_dict() if hasattr(arch, "to_dict") else arch
    if arch_d is not None and dict(arch_d) != dict(info["arch"]):
        raise CircuitModelMismatch(
            path,
            f"this circuit was built for model {info['name']!r} with architecture {dict(info['arch'])}, "
            f"but the given model {given_name!r} has {dict(arch_d)}",
        )


# --------------------------------------------------------------------------------------------------
# assembly


def _to_tensor(x: Any, name: str, shape: tuple[int, ...], dims: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(device="cpu", dtype=dtype)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: expected a numeric array of shape [{dims}], got {type(x).__name__}") from err
    if tuple(t.shape) != shape:
        raise ValueError(
            f"{name}: expected shape [{dims}] = {list(shape)} for this architecture, got {list(t.shape)}"
        )
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
    influence_attn: Float[Array, "n_layers"],
    influence_mlp: Float[Array, "n_layers"],
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


# --------------------------------------------------------------------------------------------------
# JSON schema and validation

_ARCH_INT_FIELDS = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "d_mlp", "d_vocab")


def _int(minimum: int | None = None) -> dict[str, Any]:
    return {"type": "integer"} if minimum is None else {"type": "integer", "minimum": minimum}


_NUMBER = {"type": "number"}

CIRCUIT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "emotion circuit (schema_version 1)",
    "description": (
        "One emotion's circuit: selected MLP neurons and attention heads per layer, with their scores. "
        "The Delta-mu vectors lie in the safetensors sidecar named by delta_mu_file (tensors mlp.{L}: "
        "[k], attn.{L}: [k, d_head]). Beyond this structure validate_circuit_json checks: layers lists "
        "every layer 0..n_layers-1 in order; neurons < d_mlp and heads < n_heads without duplicates; "
        "k and the scores match the number of indices; influence lists have n_layers finite entries; "
        "budget equals what allocation gives for n_layers; delta_mu_file is a bare file name."
    ),
    "type": "object",
    "required": ["schema_version", "kind", "emotion", "model", "allocation", "budget", "influence", "layers",
                 "delta_mu_file", "meta"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION, "description": "format version; this library reads 1"},
        "kind": {"const": CIRCUIT_KIND},
        "emotion": {"type": "string", "enum": list(EMOTIONS)},
        "model": {
            "type": "object",
            "required": ["name", "fingerprint", "arch"],
            "properties": {
                "name": {"type": "string"},
                "fingerprint": {"type": "string", "minLength": 1,
                                "description": "circuits.model fingerprint; loading for another model fails"},
                "arch": {
                    "type": "object",
                    "description": "ArchInfo.to_dict()",
                    "required": list(ArchInfo.__dataclass_fields__),
                    "properties": {
                        "architecture": {"type": "string"},
                        **{k: _int(1) for k in _ARCH_INT_FIELDS},
                        "gated_mlp": {"type": "boolean"},
                        "post_norms": {"type": "boolean"},
                    },
                },
            },
        },
        "allocation": {
            "type": "object",
            "description": "AllocationConfig.to_dict()",
            "required": list(AllocationConfig.__dataclass_fields__),
            "additionalProperties": False,
            "properties": {
                "budget_per_sublayer": _int(1),
                "neuron_share": {"type": "number", "minimum": 0, "maximum": 1},
                "min_neurons": _int(0),
                "min_heads": _int(0),
                "cap_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            },
        },
        "budget": {
            "type": "object",
            "required": ["total", "neurons", "heads"],
            "properties": {"total": _int(0), "neurons": _int(0), "heads": _int(0)},
        },
        "influence": {
            "type": "object",
            "required": ["attn", "mlp"],
            "properties": {
                "attn": {"type": "array", "items": _NUMBER, "description": "[n_layers] attention influence"},
                "mlp": {"type": "array", "items": _NUMBER, "description": "[n_layers] MLP influence"},
            },
        },
        "layers": {
            "type": "array",
            "description": "one entry per layer, in layer order",
            "items": {
                "type": "object",
                "required": ["layer", "mlp", "attention"],
                "properties": {
                    "layer": _int(0),
                    "mlp": {
                        "type": "object",
                        "required": ["k", "neurons", "scores"],
                        "properties": {
                            "k": _int(0),
                            "neurons": {"type": "array", "items": _int(0), "description": "indices < d_mlp"},
                            "scores": {"type": "array", "items": _NUMBER, "description": "one per neuron"},
                        },
                    },
                    "attention": {
                        "type": "object",
                        "required": ["k", "heads", "scores"],
                        "properties": {
                            "k": _int(0),
                            "heads": {"type": "array", "items": _int(0), "description": "indices < n_heads"},
                            "scores": {"type": "array", "items": _NUMBER, "description": "one per head"},
                        },
                    },
                },
            },
        },
        "delta_mu_file": {"type": "string", "minLength": 1, "description": "sidecar file name, same directory"},
        "meta": {"type": "object", "description": "free-form"},
    },
}
"""JSON Schema (draft 2020-12 subset) of the circuit file. :func:`validate_circuit_json` walks it
(keywords used: type, const, enum, required, properties, additionalProperties, items, minimum,
maximum, exclusiveMinimum, minLength) and then applies the cross-field checks listed in its
``description``."""

_JSON_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _walk(value: Any, schema: Mapping[str, Any], path: str, problems: list[str]) -> None:
    where = path or "(root)"
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: expected {schema['const']!r}, got {value!r}")
        return
    if "type" in schema and not _JSON_TYPES[schema["type"]](value):
        problems.append(f"{where}: expected {schema['type']}, got {type(value).__name__} {value!r:.60}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where}: must be a finite number, got {value!r}")
        elif "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: must be >= {schema['minimum']}, got {value!r}")
        elif "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: must be <= {schema['maximum']}, got {value!r}")
        elif "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{where}: must be > {schema['exclusiveMinimum']}, got {value!r}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problems.append(f"{where}: must not be empty")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(f"{_join(path, key)}: required field missing")
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key in value:
                _walk(value[key], sub, _join(path, key), problems)
        if schema.get("additionalProperties") is False:
            for key in value:
                if key not in props:
                    problems.append(f"{_join(path, key)}: unknown field")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _walk(item, schema["items"], _join(path, i), problems)


def _get(obj: Any, *keys: str | int) -> Any:
    """Follow keys into nested dicts/lists; None when any step is missing or of the wrong type."""
    for k in keys:
        if isinstance(k, int):
            if not isinstance(obj, list) or not 0 <= k < len(obj):
                return None
        elif not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def _check_units(entry: Any, path: str, kind: str, idx_key: str, bound: int | None, bound_name: str,
                 problems: list[str]) -> None:
    idx, scores, k = _get(entry, idx_key), _get(entry, "scores"), _get(entry, "k")
    if not isinstance(idx, list):
        return
    ints = [(j, v) for j, v in enumerate(idx) if _JSON_TYPES["integer"](v)]
    if bound is not None:
        for j, v in ints:
            if not 0 <= v < bound:
                problems.append(
                    f"{path}.{idx_key}[{j}]: {kind} index {v} out of range for {bound_name}={bound} "
                    f"(valid 0..{bound - 1})"
                )
    seen: set[int] = set()
    for j, v in ints:
        if v in seen:
            problems.append(f"{path}.{idx_key}[{j}]: duplicate {kind} index {v}")
        seen.add(v)
    if isinstance(scores, list) and len(scores) != len(idx):
        problems.append(f"{path}.scores: {len(scores)} entries but {idx_key} has {len(idx)}")
    if _JSON_TYPES["integer"](k) and k != len(idx):
        problems.append(f"{path}.k: {k} but {idx_key} has {len(idx)} entries")


def validate_circuit_json(obj: Any) -> list[str]:
    """Every problem of a circuit JSON object, each prefixed with its JSON path; [] when valid.

    An unknown ``schema_version`` is reported alone (``"unknown schema_version X (this library
    reads 1)"``), since the rest of such a file follows another format. Otherwise the object is
    checked against :data:`CIRCUIT_JSON_SCHEMA`, then the cross-field rules: arch-dependent index
    ranges (``layers[L].mlp.neurons[j] < d_mlp``, ``layers[L].attention.heads[j] < n_heads``), no
    duplicate indices, ``k`` and ``scores`` lengths, one ``layers`` entry per layer in order,
    ``influence`` lengths, ``budget`` consistent with ``allocation``, a bare ``delta_mu_file`` name.
    """
    if not isinstance(obj, dict):
        return [f"(root): expected a JSON object, got {type(obj).__name__}"]
    if "schema_version" not in obj:
        return ["schema_version: required field missing"]
    version = obj["schema_version"]
    if not _JSON_TYPES["integer"](version) or version not in SUPPORTED_SCHEMA_VERSIONS:
        readable = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        return [f"unknown schema_version {version!r} (this library reads {readable})"]
    problems: list[str] = []
    _walk(obj, CIRCUIT_JSON_SCHEMA, "", problems)

    arch = _get(obj, "model", "arch")
    dims: dict[str, int | None] = {k: None for k in _ARCH_INT_FIELDS}
    if isinstance(arch, dict):
        for k in _ARCH_INT_FIELDS:
            v = arch.get(k)
            if _JSON_TYPES["integer"](v) and v >= 1:
                dims[k] = v
    n_layers = dims["n_layers"]

    for kind in ("attn", "mlp"):
        vals = _get(obj, "influence", kind)
        if isinstance(vals, list) and n_layers is not None and len(vals) != n_layers:
            problems.append(f"influence.{kind}: {len(vals)} entries, expected n_layers={n_layers}")

    layers = obj.get("layers")
    if isinstance(layers, list):
        if n_layers is not None and len(layers) != n_layers:
            problems.append(f"layers: {len(layers)} entries, expected one per layer (n_layers={n_layers})")
        for i, entry in enumerate(layers):
            path = f"layers[{i}]"
            layer = _get(entry, "layer")
            if _JSON_TYPES["integer"](layer):
                if n_layers is not None and not 0 <= layer < n_layers:
                    problems.append(f"{path}.layer: layer {layer} out of range for n_layers={n_layers} "
                                    f"(valid 0..{n_layers - 1})")
                elif layer != i:
                    problems.append(f"{path}.layer: expected {i} (layers must list every layer in order), got {layer}")
            _check_units(_get(entry, "mlp"), f"{path}.mlp", "neuron", "neurons", dims["d_mlp"], "d_mlp", problems)
            _check_units(_get(entry, "attention"), f"{path}.attention", "head", "heads", dims["n_heads"],
                         "n_heads", problems)

    alloc = obj.get("allocation")
    budget = obj.get("budget")
    if isinstance(alloc, dict) and isinstance(budget, dict) and n_layers is not None:
        try:
            known = {k: v for k, v in alloc.items() if k in AllocationConfig.__dataclass_fields__}
            expected = AllocationConfig.from_dict(known).budget(n_layers)
        except (TypeError, ValueError):
            expected = None  # already reported by the schema walk
        if expected is not None:
            for key in ("total", "neurons", "heads"):
                if key in budget and budget[key] != expected[key]:
                    problems.append(f"budget.{key}: {budget[key]!r} but allocation gives {expected[key]} "
                                    f"for n_layers={n_layers}")

    fname = obj.get("delta_mu_file")
    if isinstance(fname, str) and fname and (
        Path(fname).name != fname or "/" in fname or "\\" in fname or fname in (".", "..")
    ):
        problems.append(f"delta_mu_file: must be a bare file name in the same directory, got {fname!r}")
    return problems


# --------------------------------------------------------------------------------------------------
# collections and comparisons


def save_circuits(circuits: Mapping[str, Circuit] | Iterable[Circuit], out_dir: str | os.PathLike) -> list[Path]:
    """Write every circuit as ``out_dir/{emotion}.json`` + ``{emotion}.safetensors``.

    ``circuits`` is an iterable of circuits or a mapping emotion -> circuit (keys must match the
    circuits' emotions). Two circuits for one emotion raise ValueError. Returns the JSON paths.
    """
    if isinstance(circuits, Mapping):
        for key, c in circuits.items():
            if key != c.emotion:
                raise ValueError(f"save_circuits: key {key!r} holds the circuit of {c.emotion!r}")
        items = list(circuits.values())
    else:
        items = list(circuits)
    seen: set[str] = set()
    for c in items:
        if not isinstance(c, Circuit):
            raise ValueError(f"save_circuits: expected Circuit objects, got {type(c).__name__}")
        if c.emotion in seen:
            raise ValueError(f"save_circuits: two circuits for emotion {c.emotion!r}")
        seen.add(c.emotion)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [c.save(out / f"{c.emotion}.json") for c in items]


def load_circuits(
    out_dir: str | os.PathLike, model: Any = None, emotions: Iterable[str] | None = None
) -> dict[str, Circuit]:
    """Load the circuits written by :func:`save_circuits`: emotion -> Circuit, in EMOTIONS order.

    With ``emotions=None`` every ``{emotion}.json`` present is loaded (at least one must be);
    otherwise each named emotion must be present. Other files in the directory are ignored.
    ``model`` is passed to :meth:`Circuit.load` (fingerprint check).

    Raises:
        CircuitFormatError: the directory is missing, holds no circuit, a requested one is missing,
            a file is invalid, or a file holds another emotion than its name says.
        CircuitModelMismatch: a circuit was built for another model.
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise CircuitFormatError(root, "circuit directory not found")
    wanted = EMOTIONS if emotions is None else check_emotions(emotions)
    result: dict[str, Circuit] = {}
    for emo in EMOTIONS:
        if emo not in wanted:
            continue
        path = root / f"{emo}.json"
        if not path.is_file():
            if emotions is not None:
                raise CircuitFormatError(path, f"circuit file for emotion {emo!r} not found")
            continue
        c = Circuit.load(path, model=model)
        if c.emotion != emo:
            raise CircuitFormatError(path, f"emotion: the file is named for {emo!r} but holds {c.emotion!r}")
        result[emo] = c
    if not result:
        raise CircuitFormatError(root, "no circuit files ({emotion}.json for " + ", ".join(EMOTIONS) + ") found")
    return result


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


__all__ = [
    "SCHEMA_VERSION", "CIRCUIT_JSON_SCHEMA", "CircuitFormatError", "CircuitModelMismatch",
    "AllocationConfig", "allocate", "LayerCircuit", "Circuit", "assemble_circuit",
    "validate_circuit_json", "save_circuits", "load_circuits", "overlap",
]
