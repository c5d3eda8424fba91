"""Interventions as data: what to change (site, layer, units), how (scale / add / set) and where
(which token positions). The same :class:`Intervention` drives ablation sweeps, steering and export.

Sites and the hook each one acts on (shapes at one position):

==============  =========================  ============================  ====================
site            hook                       units (``index``)             ``vector`` shape
==============  =========================  ============================  ====================
``neurons``     ``mlp.hook_post``          neuron indices                ``[k]``
``heads``       ``attn.hook_z``            head indices                  ``[k, d_head]``
``resid_mid``   ``hook_resid_mid``         (none)                        ``[d_model]``
``resid_post``  ``hook_resid_post``        (none)                        ``[d_model]``
``attn_out``    ``hook_attn_out``          (none)                        ``[d_model]``
``mlp_out``     ``hook_mlp_out``           (none)                        ``[d_model]``
==============  =========================  ============================  ====================

Operations: ``scale`` multiplies by ``factor``; ``add`` adds ``factor * vector``; ``add_rms`` adds
``factor * rms(current activation) * vector`` per position (direction steering); ``set`` replaces by
``vector`` (``vector=None`` with ``set`` means zero: ablation). ``positions``: ``"all"`` (every prompt
and generated position), ``"prompt"`` (every prompt position), ``"last"`` (the last prompt token
only), ``"last+generated"`` (last prompt token, then each generated token), ``"generated"``.
During generation with a KV cache a hook sees the whole prompt once (prefill), then one position per
step; the hooks built here tell the two apart by call order, so build fresh hooks for every
``generate`` call (``make_hooks`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from circuits.core.model import ModelHandle

SITES = ("neurons", "heads", "resid_mid", "resid_post", "attn_out", "mlp_out")
OPS = ("scale", "add", "add_rms", "set")
POSITIONS = ("all", "prompt", "last", "last+generated", "generated")


@dataclass(frozen=True)
class Intervention:
    """One change to the forward pass (see the module docstring for the fields' meaning)."""

    site: str
    layer: int
    op: str
    index: tuple[int, ...] | None = None
    vector: torch.Tensor | None = field(default=None, compare=False)
    factor: float = 1.0
    positions: str = "all"

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"Intervention.site: expected one of {SITES}, got {self.site!r}")
        if self.op not in OPS:
            raise ValueError(f"Intervention.op: expected one of {OPS}, got {self.op!r}")
        if self.positions not in POSITIONS:
            raise ValueError(f"Intervention.positions: expected one of {POSITIONS}, got {self.positions!r}")
        if self.site in ("neurons", "heads") and not self.index:
            raise ValueError(f"Intervention on {self.site} needs a non-empty index")
        if self.op in ("add", "add_rms") and self.vector is None:
            raise ValueError(f"Intervention op {self.op!r} needs a vector")
        if self.index is not None:
            object.__setattr__(self, "index", tuple(int(i) for i in self.index))

    def hook_name(self, model: ModelHandle) -> str:
        h, L = model.hooks, self.layer
        return {
            "neurons": h.mlp_post(L), "heads": h.z(L), "resid_mid": h.resid_mid(L),
            "resid_post": h.resid_post(L), "attn_out": h.attn_out(L), "mlp_out": h.mlp_out(L),
        }[self.site]

    def check(self, model: ModelHandle) -> None:
        """Raise ValueError if the layer or indices are out of range for ``model``."""
        a = model.arch
        if not 0 <= self.layer < a.n_layers:
            raise ValueError(f"Intervention.layer {self.layer} out of range (model has {a.n_layers} layers)")
        size = {"neurons": a.d_mlp, "heads": a.n_heads}.get(self.site)
        if size is not None and any(not 0 <= i < size for i in self.index or ()):
            raise ValueError(f"Intervention.index out of range for {self.site} (size {size}): {self.index}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site, "layer": self.layer, "op": self.op,
            "index": list(self.index) if self.index is not None else None,
            "vector": self.vector.tolist() if self.vector is not None else None,
            "factor": self.factor, "positions": self.positions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Intervention":
        vec = d.get("vector")
        return cls(site=d["site"], layer=int(d["layer"]), op=d["op"],
                   index=tuple(d["index"]) if d.get("index") is not None else None,
                   vector=torch.tensor(vec, dtype=torch.float32) if vec is not None else None,
                   factor=float(d.get("factor", 1.0)), positions=d.get("positions", "all"))


def _apply(iv: Intervention, act: torch.Tensor, pos: slice | int) -> torch.Tensor:
    """Apply ``iv`` to ``act[:, pos]`` in place-free fashion; returns the new tensor."""
    out = act.clone()
    if iv.site == "neurons":
        target = (slice(None), pos, list(iv.index))
    elif iv.site == "heads":
        target = (slice(None), pos, list(iv.index))
    else:
        target = (slice(None), pos)
    cur = out[target]
    if iv.op == "scale":
        new = cur * iv.factor
    elif iv.op == "add":
        new = cur + iv.factor * iv.vector.to(cur.device, cur.dtype)
    elif iv.op == "add_rms":
        rms = cur.float().pow(2).mean(-1, keepdim=True).sqrt().to(cur.dtype)
        new = cur + iv.factor * rms * iv.vector.to(cur.device, cur.dtype)
    else:
        new = torch.zeros_like(cur) if iv.vector is None else iv.vector.to(cur.device, cur.dtype).expand_as(cur)
    out[target] = new
    return out


def make_hooks(model: ModelHandle, interventions: Sequence[Intervention]) -> list[tuple[str, Callable]]:
    """Fresh ``(hook_name, fn)`` pairs for ``model.bridge.hooks(fwd_hooks=...)`` (one forward pass or
    one ``generate`` call). Interventions on the same hook are applied in order."""
    hooks = []
    for iv in interventions:
        iv.check(model)
        state = {"calls": 0}

        def fn(act: torch.Tensor, hook: Any, iv: Intervention = iv, state: dict = state) -> torch.Tensor:
            prefill = state["calls"] == 0
            state["calls"] += 1
            p = iv.positions
            if prefill:
                if p in ("all", "prompt"):
                    return _apply(iv, act, slice(None))
                if p in ("last", "last+generated"):
                    return _apply(iv, act, slice(act.shape[1] - 1, None))
                return act
            if p in ("all", "last+generated", "generated"):
                return _apply(iv, act, slice(None))
            return act

        hooks.append((iv.hook_name(model), fn))
    return hooks
