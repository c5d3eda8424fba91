"""The circuit budget and how it is spread over layers (largest-remainder allocation with floors and caps)."""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from circuits.core.config import ConfigError, config_from_dict, help_field

Array = Union[torch.Tensor, np.ndarray]
"""Array inputs may be torch tensors (any device / float dtype) or numpy arrays."""

_EPS = 1e-9
"""Tolerance added before flooring/rounding budget products, so that e.g. 0.29 * 100 floors to 29."""


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

    budget_per_sublayer: int = help_field(10, "circuit units per sublayer (total K = this x 2 x layers)")
    neuron_share: float = help_field(0.7, "share of K given to MLP neurons (the rest to heads)")
    min_neurons: int = help_field(4, "neurons every layer gets before the proportional split")
    min_heads: int = help_field(2, "heads every layer gets before the proportional split")
    cap_fraction: float = help_field(0.4, "per-layer cap as a share of the kind's budget")

    def __post_init__(self) -> None:
        if not _is_int(self.budget_per_sublayer) or self.budget_per_sublayer < 1:
            raise ConfigError(
                f"AllocationConfig.budget_per_sublayer: expected an integer >= 1, got {self.budget_per_sublayer!r}"
            )
        for name in ("min_neurons", "min_heads"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise ConfigError(f"AllocationConfig.{name}: expected an integer >= 0, got {v!r}")
        if not _is_real(self.neuron_share) or not 0.0 <= float(self.neuron_share) <= 1.0:
            raise ConfigError(f"AllocationConfig.neuron_share: expected a number in [0, 1], got {self.neuron_share!r}")
        if not _is_real(self.cap_fraction) or not 0.0 < float(self.cap_fraction) <= 1.0:
            raise ConfigError(f"AllocationConfig.cap_fraction: expected a number in (0, 1], got {self.cap_fraction!r}")
        for name in ("budget_per_sublayer", "min_neurons", "min_heads"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("neuron_share", "cap_fraction"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AllocationConfig":
        """Build from a dict; missing keys take their defaults, unknown keys raise ValueError."""
        return config_from_dict(cls, d)

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
    for i, x in enumerate(
        np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=np.float64)
        .reshape(-1)
        .tolist()
    ):
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
