"""The fast path: interventions applied on a plain Hugging Face model that shares the bridge's weights.

TransformerBridge wraps the HF model's modules in place and re-implements attention eagerly, so
generation through its hook points runs slower than HF with ``sdpa`` attention (the README measures
how much). :func:`plain_model` builds a second module tree of the HF model's own class whose every
parameter and buffer *is* the bridge's tensor (no copy: compatibility mode folded the norm gains
into the same tensors, which computes the same function), with ``sdpa`` attention where the class
supports it. :func:`plain_hooks` applies :class:`~circuits.core.hooks.Intervention` objects there as
PyTorch module hooks, with the semantics of the bridge path (both wrap
:func:`circuits.core.hooks.edit_fn`):

==============  ===============================================================================
site            where on each decoder layer ``model.layers[L]``
==============  ===============================================================================
``neurons``     input of ``mlp.down_proj`` (the MLP post-activation, ``[b, pos, d_mlp]``)
``heads``       input of ``self_attn.o_proj`` viewed as ``[b, pos, n_heads, d_head]`` (hook_z)
``resid_post``  output of the layer
``attn_out``    output of ``self_attn`` (``post_attention_layernorm`` for post-norm models, Gemma2)
``mlp_out``     output of ``mlp`` (``post_feedforward_layernorm`` for post-norm models)
``resid_mid``   layer input + attention output (:func:`circuits.core.hooks.resid_mid_edit`)
==============  ===============================================================================

The bridge path stays the reference (``GenerationSettings(backend="bridge")``); the tests check that
both give the same logits and greedy tokens for every site, op and position mode on every
architecture the tests build and on SmolLM2. Models whose HF class does not keep its decoder layers
at ``model.layers`` with these submodules raise :class:`PlainModelUnsupported`; use the bridge path.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator, Sequence

import torch

from circuits.core.hooks import Intervention, edit_fn, resid_mid_edit
from circuits.core.model import ModelHandle

BACKENDS = ("fast", "bridge")
"""``fast``: plain HF modules with ``sdpa`` (this module); ``bridge``: TransformerLens hook points."""


class PlainModelUnsupported(RuntimeError):
    """The HF model's layout is not one :func:`plain_hooks` knows (use ``backend="bridge"``)."""


def _strip(name: str) -> str:
    return ".".join(p for p in name.split(".") if p != "_original_component")


def plain_model(model: ModelHandle) -> torch.nn.Module:
    """The plain HF twin of ``model.hf_model`` (built once per handle, then cached on it).

    Every parameter and buffer is the bridge's own tensor (the name with ``_original_component``
    removed), so the twin costs no weight memory and sees any later in-place edit of the weights.
    Tensors the bridge added to a module (the unembedding's bias of compatibility mode) are attached
    where the HF module has an empty slot for them. Raises :class:`PlainModelUnsupported` when a
    tensor of the twin has no counterpart."""
    twin = getattr(model, "_plain_model", None)
    if twin is None:
        twin = _build_plain(model)
        model._plain_model = twin
    return twin


def _build_plain(model: ModelHandle) -> torch.nn.Module:
    hf = model.hf_model
    src: dict[str, torch.Tensor] = {}
    for name, t in [*hf.named_parameters(remove_duplicate=False), *hf.named_buffers(remove_duplicate=False)]:
        src.setdefault(_strip(name), t)
    cfg = copy.deepcopy(hf.config)
    cfg._attn_implementation = "sdpa" if getattr(type(hf), "_supports_sdpa", False) else "eager"
    with torch.device("meta"):
        twin = type(hf)(cfg)
    missing = []
    for mod_name, mod in twin.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for key in list(mod._parameters):
            t = src.get(prefix + key)
            if t is None:
                if mod._parameters[key] is not None:
                    missing.append(prefix + key)
            elif isinstance(t, torch.nn.Parameter):
                mod._parameters[key] = t
            else:  # a buffer of the bridge in a parameter slot (lm_head.bias): keep it a buffer
                del mod._parameters[key]
                mod.register_buffer(key, t, persistent=False)
        for key in list(mod._buffers):
            t = src.get(prefix + key)
            if t is None:
                if mod._buffers[key] is not None:
                    missing.append(prefix + key)
            else:
                mod._buffers[key] = t
    if missing:
        raise PlainModelUnsupported(
            f"{model.name}: the plain {type(hf).__name__} has tensors the bridge does not hold: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}; use the bridge path (backend='bridge')"
        )
    twin.generation_config = copy.deepcopy(hf.generation_config)
    twin.eval()
    _layers(twin, model)  # refuse an unknown layout now rather than at the first edit
    return twin


def _layers(twin: torch.nn.Module, model: ModelHandle) -> Sequence[torch.nn.Module]:
    layers = getattr(getattr(twin, "model", None), "layers", None)
    need = ["self_attn", "self_attn.o_proj", "mlp", "mlp.down_proj"]
    if model.arch.post_norms:
        need += ["post_attention_layernorm", "post_feedforward_layernorm"]
    if layers is None or len(layers) != model.arch.n_layers or any(_get(layers[0], n) is None for n in need):
        raise PlainModelUnsupported(
            f"{model.name}: {type(twin).__name__} does not keep its decoder layers at model.layers with "
            f"{', '.join(need)}; use the bridge path (backend='bridge')"
        )
    return layers


def _get(module: torch.nn.Module, dotted: str) -> torch.nn.Module | None:
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x


def _replace_first(x: Any, new: torch.Tensor) -> Any:
    return (new, *x[1:]) if isinstance(x, tuple) else new


def _output_hook(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    return lambda module, args, output: _replace_first(output, f(_first(output)))


def _input_hook(f: Callable[[torch.Tensor], torch.Tensor], heads: int | None = None) -> Callable:
    def hook(module: Any, args: tuple) -> tuple:
        x = args[0]
        if heads is None:
            return (f(x), *args[1:])
        b, p, _ = x.shape
        return (f(x.view(b, p, heads, -1)).reshape(b, p, -1), *args[1:])

    return hook


def _layer_input_hook(f: Callable[[torch.Tensor], None]) -> Callable:
    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        f(args[0] if args else kwargs["hidden_states"])

    return hook


@contextlib.contextmanager
def plain_hooks(
    model: ModelHandle,
    interventions: Sequence[Intervention],
    rows: Sequence[Sequence[int] | None] | None = None,
) -> Iterator[torch.nn.Module]:
    """Register ``interventions`` on the plain twin's modules for one forward pass or one ``generate``
    call; yields the twin and removes the hooks on exit. ``rows[i]``: the batch rows
    ``interventions[i]`` applies to (None: all). Edits on the same module run in the given order."""
    twin = plain_model(model)
    layers = _layers(twin, model)
    post = model.arch.post_norms
    handles = []
    try:
        for i, iv in enumerate(interventions):
            iv.check(model)
            edit = edit_fn(iv, None if rows is None else rows[i])
            layer = layers[iv.layer]
            attn_out = layer.post_attention_layernorm if post else layer.self_attn
            mlp_out = layer.post_feedforward_layernorm if post else layer.mlp
            if iv.site == "neurons":
                handles.append(layer.mlp.down_proj.register_forward_pre_hook(_input_hook(edit)))
            elif iv.site == "heads":
                handles.append(
                    layer.self_attn.o_proj.register_forward_pre_hook(_input_hook(edit, heads=model.arch.n_heads))
                )
            elif iv.site == "resid_post":
                handles.append(layer.register_forward_hook(_output_hook(edit)))
            elif iv.site == "attn_out":
                handles.append(attn_out.register_forward_hook(_output_hook(edit)))
            elif iv.site == "mlp_out":
                handles.append(mlp_out.register_forward_hook(_output_hook(edit)))
            else:  # resid_mid
                stash, on_attn_out = resid_mid_edit(edit)
                handles.append(layer.register_forward_pre_hook(_layer_input_hook(stash), with_kwargs=True))
                handles.append(attn_out.register_forward_hook(_output_hook(on_attn_out)))
        yield twin
    finally:
        for h in handles:
            h.remove()
