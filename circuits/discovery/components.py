"""Neurons and heads: how much each one writes along an emotion direction.

Neurons (one pass, exact): at the last prompt token of emotion e's rows, neuron n of layer L writes
``a_n * W_out[n]`` into the residual; its contribution along the layer's "mlp" direction is
``a_n * beta_{e,n}`` with ``beta = W_out @ v_e`` (post-norm models: times the norm's gain / scale).

Heads, two ways:

* reference (the paper's): zero head h's slice of the o_proj input (``hook_z``) at layer L, rerun,
  and read the projection of that layer's normalised MLP input (``resid_mid / rms(resid_mid)``) on the
  layer's "attn" direction; importance = mean(baseline - ablated). One forward pass per head
  (the pass stops as soon as layer L's MLP input is read).
* one pass (:func:`head_scores_one_pass`): the same quantity computed from cached activations only
  (removing a head changes the MLP input by exactly minus that head's write), so it equals the
  reference up to floating-point error, without any rerun. :func:`head_direct_projection` is the
  first-order version (direct write on the direction over the unablated norm).
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from circuits.core.hooks import Intervention, Read, run_forward
from circuits.core.model import ModelHandle
from circuits.discovery.decompose import head_outputs
from circuits.discovery.directions import Directions
from circuits.discovery.store import ActivationStore


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1).sqrt()


def neuron_contributions(
    model: ModelHandle, store: ActivationStore, directions: Directions
) -> Float[torch.Tensor, "n_layers n_emotions d_mlp"]:
    """Mean signed contribution of every neuron along each emotion's "mlp" direction, over that
    emotion's (accepted) rows, in residual units."""
    L, E = model.arch.n_layers, len(directions.emotions)
    out = torch.zeros(L, E, model.arch.d_mlp)
    post = store.tensor("mlp_post")
    for layer in range(L):
        W = model.W_out(layer).detach().float().cpu()  # [d_mlp, d_model]
        if model.arch.post_norms:
            W = W * model.post_norm_gain(layer, "mlp").detach().float().cpu()
        beta = W @ directions.at("mlp")[layer].T  # [d_mlp, E]
        for e, emotion in enumerate(directions.emotions):
            idx = store.index("emotion", emotion)
            a = post[idx, layer]  # [rows, d_mlp]
            if model.arch.post_norms:
                a = a / store.tensor("mlp_post_scale")[idx, layer, None]
            out[layer, e] = (a * beta[:, e]).mean(0)
    return out


def head_writes(
    model: ModelHandle, store: ActivationStore, layer: int, idx: torch.Tensor
) -> Float[torch.Tensor, "rows n_heads d_model"]:
    """Each head's direct write into the residual at layer ``layer`` for store rows ``idx``."""
    out = head_outputs(model, store.tensor("z")[idx, layer], layer)
    if model.arch.post_norms:
        gain = model.post_norm_gain(layer, "attn").detach().float().cpu()
        out = out * gain / store.tensor("attn_post_scale")[idx, layer, None, None]
    return out


def head_scores_one_pass(
    model: ModelHandle, store: ActivationStore, directions: Directions
) -> Float[torch.Tensor, "n_layers n_emotions n_heads"]:
    """The one-pass head importance for every layer, emotion and head, from cached activations only.

    Removing head h changes layer L's residual after attention by exactly minus its write (post-norm
    models: the post-attention norm is recomputed without the head), so the ablated normalised MLP
    input, and with it the paper's importance, is computed exactly without rerunning the model.
    """
    L, E, H = model.arch.n_layers, len(directions.emotions), model.arch.n_heads
    eps = float(getattr(model.hf_model.config, "rms_norm_eps", 1e-6) or 1e-6)
    out = torch.zeros(L, E, H)
    for e, emotion in enumerate(directions.emotions):
        idx = store.index("emotion", emotion)
        for layer in range(L):
            v = directions.at("attn")[layer, e]
            x = store.tensor("resid_mid")[idx, layer]  # [rows, d]
            base = (x @ v) / _rms(x)
            raw_heads = head_outputs(model, store.tensor("z")[idx, layer], layer)  # [rows, H, d]
            if model.arch.post_norms:
                gain = model.post_norm_gain(layer, "attn").detach().float().cpu()
                raw = raw_heads.sum(1) + model.b_O(layer).detach().float().cpu()  # [rows, d]
                attn_out = gain * raw / store.tensor("attn_post_scale")[idx, layer, None]
                pre = x - attn_out
                raw_abl = raw[:, None] - raw_heads  # [rows, H, d]
                scale_abl = (raw_abl.pow(2).mean(-1, keepdim=True) + eps).sqrt()
                x_abl = pre[:, None] + gain * raw_abl / scale_abl
            else:
                x_abl = x[:, None] - raw_heads
            ablated = (x_abl @ v) / _rms(x_abl)
            out[layer, e] = (base[:, None] - ablated).mean(0)
    return out


def head_direct_projection(
    model: ModelHandle, store: ActivationStore, directions: Directions
) -> Float[torch.Tensor, "n_layers n_emotions n_heads"]:
    """First-order variant: each head's direct write projected on the layer's "attn" direction,
    divided by the row's rms(resid_mid), averaged over the emotion's rows."""
    L, E, H = model.arch.n_layers, len(directions.emotions), model.arch.n_heads
    out = torch.zeros(L, E, H)
    for e, emotion in enumerate(directions.emotions):
        idx = store.index("emotion", emotion)
        for layer in range(L):
            v = directions.at("attn")[layer, e]
            rms = _rms(store.tensor("resid_mid")[idx, layer])
            out[layer, e] = ((head_writes(model, store, layer, idx) @ v) / rms[:, None]).mean(0)
    return out


@torch.no_grad()
def head_scores_reference(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> Float[torch.Tensor, "n_layers n_emotions n_heads"]:
    """The paper's ablation-based head importance (one forward pass per head per batch). Layers not
    in ``layers`` are left at zero."""
    a = model.arch
    layers = list(range(a.n_layers)) if layers is None else list(layers)
    out = torch.zeros(a.n_layers, len(directions.emotions), a.n_heads)
    bar = tqdm(
        total=len(directions.emotions) * len(layers) * (a.n_heads + 1),
        desc="head ablation (reference)",
        disable=not progress,
    )
    for e, emotion in enumerate(directions.emotions):
        idx = store.index("emotion", emotion)
        prompts = store.prompts(model, idx)
        for layer in layers:
            v = directions.at("attn")[layer, e]

            def read(head: int | None) -> torch.Tensor:
                vals = []
                grab = Read("resid_mid", layer, stop=True)  # nothing after this layer's MLP input is needed
                ablate = [] if head is None else [Intervention("heads", layer, "set", index=(head,))]
                for s in range(0, len(prompts), batch_size):
                    ids, mask = model.pad_left(prompts[s : s + batch_size])
                    x = run_forward(model, ids, mask, ablate, [grab])[grab]
                    vals.append((x @ v) / _rms(x))
                return torch.cat(vals)

            base = read(None)
            bar.update(1)
            for head in range(a.n_heads):
                out[layer, e, head] = (base - read(head)).mean()
                bar.update(1)
    bar.close()
    return out


def top_units(scores: Float[torch.Tensor, " n_units"], k: int) -> list[int]:
    """Indices of the ``k`` largest scores (signed: most pro-emotion first)."""
    return torch.topk(scores, min(k, scores.numel())).indices.tolist()
