"""Edits and reads as data, and the one place that turns them into TransformerLens hooks.

An :class:`Intervention` says what to change (site, layer, units), how (scale / add / set) and where
(which token positions); a :class:`Read` says what to capture. The same objects drive the store, the
attribution references, the ablation sweeps, the influence measure, steering and export;
:func:`make_hooks` turns both into hooks and :func:`run_forward` runs one hooked forward pass. No
other module writes hook closures, except the influence gradient's per-row deltas (documented in
:mod:`circuits.discovery.influence`).

Sites and the hook each one acts on (shapes at one position):

==============  =========================  ============================  ====================
site            hook                       units (``index``)             ``vector`` shape
==============  =========================  ============================  ====================
``neurons``     ``mlp.hook_post``          neuron indices                ``[k]``
``heads``       ``attn.hook_z``            head indices                  ``[k, d_head]``
``resid_mid``   ``hook_attn_out`` (*)      (none)                        ``[d_model]``
``resid_post``  ``hook_resid_post``        (none)                        ``[d_model]``
``attn_out``    ``hook_attn_out``          (none)                        ``[d_model]``
``mlp_out``     ``hook_mlp_out``           (none)                        ``[d_model]``
==============  =========================  ============================  ====================

(*) an edit of ``resid_mid`` changes the attention output by what it changes in ``resid_pre +
attn_out``, so it reaches the residual stream (:func:`resid_mid_edit`); reads of ``resid_mid`` use
``hook_resid_mid``.

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

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Float, Int

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
        return site_hook(model, self.site, self.layer)

    def check(self, model: ModelHandle) -> None:
        """Raise ValueError if the layer or indices are out of range for ``model``."""
        a = model.arch
        if not 0 <= self.layer < a.n_layers:
            raise ValueError(f"Intervention.layer {self.layer} out of range (model has {a.n_layers} layers)")
        size = {"neurons": a.d_mlp, "heads": a.n_heads}.get(self.site)
        if size is not None and any(not 0 <= i < size for i in self.index or ()):
            raise ValueError(f"Intervention.index out of range for {self.site} (size {size}): {self.index}")
        self.check_finite(model.dtype)

    def check_finite(self, dtype: torch.dtype) -> None:
        """Raise :class:`~circuits.core.artifacts.InputError` unless ``factor`` and ``factor * vector``
        are finite in ``dtype``, the dtype the edit is computed in (a strength of 1e300 is a float64 but
        overflows float32; 1e5 overflows float16)."""
        from circuits.core.artifacts import InputError

        top = torch.finfo(dtype).max if dtype.is_floating_point else float("inf")
        if not math.isfinite(self.factor) or abs(self.factor) > top:
            raise InputError(
                f"strength {self.factor!r} on {self.site} of layer {self.layer} is not finite in {dtype} "
                f"(|x| <= {top:.4g}); choose a smaller strength"
            )
        if self.vector is not None and self.op in ("add", "add_rms"):
            peak = float(self.vector.detach().abs().max()) if self.vector.numel() else 0.0
            if not math.isfinite(peak) or abs(self.factor) * peak > top:
                raise InputError(
                    f"strength {self.factor!r} times the steering vector on {self.site} of layer {self.layer} "
                    f"(largest entry {peak:.4g}) is not finite in {dtype} (|x| <= {top:.4g}); choose a smaller strength"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "layer": self.layer,
            "op": self.op,
            "index": list(self.index) if self.index is not None else None,
            "vector": self.vector.tolist() if self.vector is not None else None,
            "factor": self.factor,
            "positions": self.positions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Intervention":
        vec = d.get("vector")
        return cls(
            site=d["site"],
            layer=int(d["layer"]),
            op=d["op"],
            index=tuple(d["index"]) if d.get("index") is not None else None,
            vector=torch.tensor(vec, dtype=torch.float32) if vec is not None else None,
            factor=float(d.get("factor", 1.0)),
            positions=d.get("positions", "all"),
        )


def _apply(iv: Intervention, act: torch.Tensor, pos: slice | int) -> torch.Tensor:
    """Apply ``iv`` to ``act[:, pos]`` in place-free fashion; returns the new tensor."""
    out = act.clone()
    if iv.site in ("neurons", "heads"):
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


def _apply_rows(iv: Intervention, act: torch.Tensor, pos: slice, rows: torch.Tensor | None) -> torch.Tensor:
    """:func:`_apply` on the batch rows ``rows`` only (None: every row)."""
    if rows is None:
        return _apply(iv, act, pos)
    out = act.clone()
    out[rows] = _apply(iv, act[rows], pos)
    return out


def edit_fn(iv: Intervention, rows: Sequence[int] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The edit of ``iv`` as a function of the activation it acts on, ``[batch, pos, ...]`` -> same shape,
    for one forward pass or one ``generate`` call (the first call is the prefill, see the module
    docstring). ``rows``: the batch rows it applies to (None: all). Both paths (TransformerLens hooks
    here, plain-HF module hooks in :mod:`circuits.core.fastpath`) wrap this one function, so they share
    the semantics of sites, ops and positions."""
    state = {"calls": 0}
    row_t = None if rows is None else torch.tensor(list(rows), dtype=torch.long)

    def fn(act: torch.Tensor) -> torch.Tensor:
        prefill = state["calls"] == 0
        state["calls"] += 1
        p = iv.positions
        r = None if row_t is None else row_t.to(act.device)
        if prefill:
            if p in ("all", "prompt"):
                return _apply_rows(iv, act, slice(None), r)
            if p in ("last", "last+generated"):
                return _apply_rows(iv, act, slice(act.shape[1] - 1, None), r)
            return act
        if p in ("all", "last+generated", "generated"):
            return _apply_rows(iv, act, slice(None), r)
        return act

    return fn


def resid_mid_edit(edit: Callable[[torch.Tensor], torch.Tensor]) -> tuple[Callable, Callable]:
    """An edit of the residual after attention, made where it can reach the rest of the network.

    ``resid_mid = resid_pre + attn_out`` is not a tensor any module passes on (the bridge's
    ``hook_resid_mid`` is the MLP norm's input: an edit there would reach the MLP but not the
    residual stream). So the block input is remembered (``stash``) and the attention output is
    changed by what the edit changes in ``resid_pre + attn_out`` (``on_attn_out``): rows and positions
    the edit leaves alone keep their attention output bit for bit."""
    seen: dict[str, torch.Tensor] = {}

    def stash(resid_pre: torch.Tensor) -> None:
        seen["pre"] = resid_pre

    def on_attn_out(attn_out: torch.Tensor) -> torch.Tensor:
        cur = seen.pop("pre") + attn_out
        return attn_out + (edit(cur) - cur)

    return stash, on_attn_out


def make_hooks(
    model: ModelHandle,
    interventions: Sequence[Intervention],
    reads: Sequence[Read] = (),
    *,
    into: dict | None = None,
    mask: torch.Tensor | None = None,
    rows: Sequence[Sequence[int] | None] | None = None,
) -> list[tuple[str, Callable]]:
    """Fresh ``(hook_name, fn)`` pairs for ``model.bridge.hooks(fwd_hooks=...)`` (one forward pass or
    one ``generate`` call). Interventions on the same hook are applied in order; ``reads`` capture
    into ``into[read]`` after every edit (``mask``: the attention mask, needed for ``positions="mean"``).
    ``rows[i]``: the batch rows ``interventions[i]`` applies to (None or absent: every row)."""
    if reads and into is None:
        raise ValueError("make_hooks: reads need a dict to capture into (into=...)")
    hooks = []
    for i, iv in enumerate(interventions):
        iv.check(model)
        edit = edit_fn(iv, None if rows is None else rows[i])
        if iv.site == "resid_mid":
            stash, on_attn_out = resid_mid_edit(edit)
            hooks.append((model.hooks.resid_pre(iv.layer), lambda act, hook, f=stash: f(act)))
            hooks.append((model.hooks.attn_out(iv.layer), lambda act, hook, f=on_attn_out: f(act)))
        else:
            hooks.append((iv.hook_name(model), lambda act, hook, f=edit: f(act)))
    hooks += [(r.hook_name(model), _read_hook(r, into, mask)) for r in reads]
    return hooks


def rows_of(
    per_prompt: Sequence[Sequence[Intervention]], batch: Sequence[int]
) -> tuple[list[Intervention], list[tuple[int, ...] | None]]:
    """Per-row interventions of one batch as ``(interventions, rows)`` for :func:`make_hooks` and
    :func:`circuits.core.fastpath.plain_hooks`: ``per_prompt[i]`` applies to prompt ``i``;
    ``batch[r]`` is the prompt in row ``r``. The same object on several rows becomes one entry
    (rows None when it is on every row), so a batch of few distinct edits costs few hooks."""
    order: list[Intervention] = []
    where: dict[int, list[int]] = {}
    for r, i in enumerate(batch):
        for iv in per_prompt[i]:
            if id(iv) not in where:
                where[id(iv)] = []
                order.append(iv)
            where[id(iv)].append(r)
    rows = [None if len(where[id(iv)]) == len(batch) else tuple(where[id(iv)]) for iv in order]
    return order, rows


# ----------------------------------------------------------------------------------------- reads
READ_SITES = (
    "resid_pre",
    "resid_mid",
    "resid_post",
    "z",
    "mlp_post",
    "attn_out",
    "mlp_out",
    "final_resid",
    "final_scale",
    "attn_post_scale",
    "mlp_post_scale",
)
"""What a :class:`Read` can capture: the store's tensors (``z`` = per-head o_proj input, ``mlp_post`` =
MLP post-activations), sublayer outputs, the final residual and the final norm's scale
(``final_state = final_resid / final_scale``), and Gemma2's post-norm scales."""
READ_POSITIONS = ("last", "all", "mean")
"""``last``: the last position (``[batch, ...]``); ``all``: every position (``[batch, pos, ...]``);
``mean``: the mean over the valid positions of the attention mask (``[batch, ...]``)."""


def site_hook(model: ModelHandle, site: str, layer: int | None) -> str:
    """The TransformerLens hook name of ``site`` at ``layer``: the one site table for edits and reads."""
    h = model.hooks
    if site == "final_resid":
        return h.final_resid
    if site == "final_scale":
        return h.final_scale
    if site in ("attn_post_scale", "mlp_post_scale"):
        return model.post_norm_scale_hook(int(layer), site.split("_")[0])
    table = {
        "neurons": h.mlp_post,
        "mlp_post": h.mlp_post,
        "heads": h.z,
        "z": h.z,
        "resid_pre": h.resid_pre,
        "resid_mid": h.resid_mid,
        "resid_post": h.resid_post,
        "attn_out": h.attn_out,
        "mlp_out": h.mlp_out,
    }
    return table[site](int(layer))


@dataclass(frozen=True)
class Read:
    """One activation to capture during a forward pass: data, like :class:`Intervention`.

    ``site`` (one of :data:`READ_SITES`) at ``layer`` (None for ``final_*``), at ``positions`` (one of
    :data:`READ_POSITIONS`). The captured value is detached, float32 and on the CPU, unless
    ``keep_graph`` (then it stays on the model's device with its autograd graph, for gradients).
    ``stop``: end the forward pass right after this read (what comes after is not needed).
    """

    site: str
    layer: int | None = None
    positions: str = "last"
    keep_graph: bool = False
    stop: bool = False

    def __post_init__(self) -> None:
        if self.site not in READ_SITES:
            raise ValueError(f"Read.site: expected one of {READ_SITES}, got {self.site!r}")
        if self.positions not in READ_POSITIONS:
            raise ValueError(f"Read.positions: expected one of {READ_POSITIONS}, got {self.positions!r}")
        if (self.layer is None) != self.site.startswith("final_"):
            raise ValueError(
                f"Read on {self.site!r}: layer must be {'None' if self.site.startswith('final_') else 'given'}"
            )

    def hook_name(self, model: ModelHandle) -> str:
        return site_hook(model, self.site, self.layer)


class StopForward(Exception):
    """Raised by a ``Read(stop=True)`` hook to end a forward pass early; :func:`run_forward` catches it."""


def masked_mean(
    x: Float[torch.Tensor, "batch pos *rest"], mask: Int[torch.Tensor, "batch pos"]
) -> Float[torch.Tensor, " batch *rest"]:
    """Mean of ``x`` over the positions where ``mask`` is 1 (padding excluded): the one token mean."""
    m = mask.reshape(*mask.shape, *([1] * (x.ndim - 2))).to(x.dtype)
    return (x * m).sum(1) / m.sum(1)


def _read_hook(read: Read, into: dict, mask: torch.Tensor | None) -> Callable:
    if read.positions == "mean" and mask is None:
        raise ValueError("a Read with positions='mean' needs the attention mask")

    def fn(act: torch.Tensor, hook: Any) -> torch.Tensor:
        value = act[:, -1] if read.positions == "last" else masked_mean(act, mask) if read.positions == "mean" else act
        into[read] = value if read.keep_graph else value.detach().to("cpu", torch.float32)
        if read.stop:
            raise StopForward
        return act

    return fn


def run_forward(
    model: ModelHandle,
    ids: Int[torch.Tensor, "batch pos"],
    mask: Int[torch.Tensor, "batch pos"],
    interventions: Sequence[Intervention] = (),
    reads: Sequence[Read] = (),
    *,
    extra_hooks: Sequence[tuple[str, Callable]] = (),
    grad: bool = False,
    logits_to_keep: int = 1,
) -> dict[Read, torch.Tensor]:
    """One forward pass of the HF model with ``interventions`` applied and ``reads`` captured (after
    the edits on the same hook); returns ``{read: value}``. Only the last ``logits_to_keep`` logits are
    computed. ``extra_hooks`` are raw ``(hook_name, fn)`` pairs for the one edit that is not data (the
    influence gradient's per-row deltas); ``grad`` keeps autograd on."""
    got: dict[Read, torch.Tensor] = {}
    hooks = make_hooks(model, interventions, reads, into=got, mask=mask)
    with torch.set_grad_enabled(grad), model.bridge.hooks(fwd_hooks=[*extra_hooks, *hooks]):
        try:
            model.hf_model(input_ids=ids, attention_mask=mask, logits_to_keep=logits_to_keep, use_cache=False)
        except StopForward:
            pass
    return got
