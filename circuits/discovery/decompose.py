"""Exact linear decomposition of the residual stream into embedding, heads, head biases and MLPs.

With compatibility mode on, the final residual at a position equals

    embed + sum_L [ sum_h head_{L,h} + attn_bias_L ] + sum_L mlp_L

where head_{L,h} = z_{L,h} @ W_O[L,h] and mlp_L = mlp_post_L @ W_out[L] + b_out[L]. Models with
post-norms (Gemma2) multiply each attention/MLP term by that norm's ``gain / scale`` (the per-token
RMS frozen at its cached value), which keeps the sum exact. Logits are the final residual divided by
the final norm's scale, times ``W_U`` (+ ``b_U``), then soft-capped where the model does that.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import einsum
from jaxtyping import Float

from circuits.core.model import ModelHandle


def head_outputs(
    handle: ModelHandle, z: Float[torch.Tensor, "... n_heads d_head"], layer: int
) -> Float[torch.Tensor, "... n_heads d_model"]:
    """Each head's write into the attention output (before any post-norm): z_h @ W_O[h], on ``z``'s
    device and dtype. The one per-head decomposition (DLA, head scores and the tests use it)."""
    return einsum(z, handle.W_O(layer).detach().to(z.device, z.dtype), "... h d, h d m -> ... h m")


def neuron_outputs(
    handle: ModelHandle, post: Float[torch.Tensor, "... d_mlp"], layer: int
) -> Float[torch.Tensor, "... d_mlp d_model"]:
    """Each neuron's write into the MLP output: post_i * W_out[i] (memory: d_mlp x d_model per row)."""
    return post.unsqueeze(-1) * handle.W_out(layer).to(post.dtype)


def post_norm_factor(
    handle: ModelHandle, cache: Any, layer: int, which: str, pos: int | slice = -1
) -> Float[torch.Tensor, "batch d_model"] | float:
    """``gain / scale`` of a post-norm at ``pos`` (1.0 for models without post-norms)."""
    if not handle.arch.post_norms:
        return 1.0
    scale = cache[handle.post_norm_scale_hook(layer, which)][:, pos]
    return handle.post_norm_gain(layer, which) / scale


def residual_stack(
    handle: ModelHandle, cache: Any, pos: int = -1
) -> tuple[list[str], Float[torch.Tensor, "component batch d_model"]]:
    """The final residual at ``pos`` split into labelled components that sum to it exactly.

    Labels: ``embed``, ``a{L}.h{H}`` for every head, ``a{L}.bias`` (b_O), ``m{L}`` (whole MLP incl.
    b_out). ``cache`` must hold hook_embed, attn.hook_z, mlp.hook_out for every layer (and the
    post-norm scales for post-norm models).
    """
    hooks = handle.hooks
    labels: list[str] = ["embed"]
    parts: list[torch.Tensor] = [cache[hooks.embed][:, pos]]
    for layer in range(handle.arch.n_layers):
        f_attn = post_norm_factor(handle, cache, layer, "attn", pos)
        heads = head_outputs(handle, cache[hooks.z(layer)][:, pos], layer)  # [b, h, m]
        heads = heads * (f_attn.unsqueeze(1) if torch.is_tensor(f_attn) else f_attn)
        labels += [f"a{layer}.h{h}" for h in range(handle.arch.n_heads)]
        parts += list(heads.unbind(1))
        labels.append(f"a{layer}.bias")
        parts.append(handle.b_O(layer).to(heads.dtype) * f_attn * torch.ones_like(parts[0]))
        f_mlp = post_norm_factor(handle, cache, layer, "mlp", pos)
        labels.append(f"m{layer}")
        parts.append(cache[hooks.mlp_raw(layer)][:, pos] * f_mlp)
    return labels, torch.stack(parts)


def final_norm(
    handle: ModelHandle, cache: Any, x: Float[torch.Tensor, "... batch d_model"], pos: int = -1
) -> Float[torch.Tensor, "... batch d_model"]:
    """Apply the final norm with its scale frozen at the cached value (linear in ``x``)."""
    return x / cache[handle.hooks.final_scale][:, pos]


def logits_from_resid(
    handle: ModelHandle, normed: Float[torch.Tensor, "... d_model"]
) -> Float[torch.Tensor, "... d_vocab"]:
    """Logits from a final-normed residual, soft-capped where the model does that."""
    pre = normed @ handle.W_U.to(normed.dtype) + handle.b_U.to(normed.dtype)
    cap = handle.logit_softcap
    return cap * torch.tanh(pre / cap) if cap else pre


def decomposition_hooks(handle: ModelHandle) -> list[str]:
    """Hook names :func:`residual_stack` and :func:`final_norm` read."""
    names = [handle.hooks.embed, handle.hooks.final_scale, handle.hooks.final_resid]
    for layer in range(handle.arch.n_layers):
        names += [handle.hooks.z(layer), handle.hooks.mlp_raw(layer)]
        if handle.arch.post_norms:
            names += [handle.post_norm_scale_hook(layer, "attn"), handle.post_norm_scale_hook(layer, "mlp")]
    return names
