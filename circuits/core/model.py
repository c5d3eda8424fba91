"""Loading a model through TransformerLens 4's TransformerBridge, and the facts the analyses need.

:func:`load_model` is the single entry point. It loads the Hugging Face model and tokenizer (a hub
name or a local directory), fingerprints the raw weights, boots a ``TransformerBridge`` around them
and switches on compatibility mode (layer norms folded into the weights) so that direct logit
attribution is exact. The returned :class:`ModelHandle` exposes architecture facts, hook names,
weight accessors and a chat-prompt builder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from circuits.core.artifacts import InputError

GATED_ACTIVATIONS = ("silu", "swish", "gelu_pytorch_tanh", "gelu_new", "gelu")
FALLBACK_CHAT_FORMAT = "{system}\n\nUser: {user}\nAssistant:"
"""Prompt format for tokenizers without a chat template (special tokens as the tokenizer adds them)."""


class ModelLoadError(InputError, RuntimeError):
    """The model could not be loaded (no local weights offline, unsupported architecture, ...)."""


@dataclass(frozen=True)
class ArchInfo:
    """Architecture facts every analysis needs. All sizes are counts (not bytes).

    ``post_norms`` is true for models (Gemma2/3) that normalise the attention and MLP outputs before
    adding them to the residual stream; per-component residual contributions then pass through that
    norm's frozen per-token scale (see :meth:`ModelHandle.post_norm_gain`).
    """

    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    gated_mlp: bool
    post_norms: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchInfo":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class HookNames:
    """TransformerLens hook names per layer (legacy aliases, accepted by the bridge)."""

    n_layers: int

    def resid_pre(self, layer: int) -> str:
        return f"blocks.{layer}.hook_resid_pre"

    def resid_mid(self, layer: int) -> str:
        """Residual after attention (the paper's "attention" read point)."""
        return f"blocks.{layer}.hook_resid_mid"

    def resid_post(self, layer: int) -> str:
        """Residual after the whole block (the paper's "mlp" read point)."""
        return f"blocks.{layer}.hook_resid_post"

    def z(self, layer: int) -> str:
        """Per-head attention values mixed by the pattern: [batch, pos, n_heads, d_head] (o_proj input)."""
        return f"blocks.{layer}.attn.hook_z"

    def attn_raw(self, layer: int) -> str:
        """Sum of head outputs + b_O, before any post-attention norm: [batch, pos, d_model]."""
        return f"blocks.{layer}.attn.hook_out"

    def attn_out(self, layer: int) -> str:
        """What attention adds to the residual stream (after the post-norm, if any)."""
        return f"blocks.{layer}.hook_attn_out"

    def mlp_post(self, layer: int) -> str:
        """MLP hidden activation (SwiGLU: silu(gate x) * up x): [batch, pos, d_mlp]."""
        return f"blocks.{layer}.mlp.hook_post"

    def mlp_raw(self, layer: int) -> str:
        """MLP output before any post-MLP norm: [batch, pos, d_model]."""
        return f"blocks.{layer}.mlp.hook_out"

    def mlp_out(self, layer: int) -> str:
        """What the MLP adds to the residual stream (after the post-norm, if any)."""
        return f"blocks.{layer}.hook_mlp_out"

    def mlp_in(self, layer: int) -> str:
        """Input of the MLP's norm, i.e. the residual after attention (same tensor as resid_mid)."""
        return f"blocks.{layer}.hook_resid_mid"

    embed: str = "hook_embed"
    final_scale: str = "ln_final.hook_scale"
    final_resid: str = field(default="", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "final_resid", self.resid_post(self.n_layers - 1))


def _arch_info(hf_model: Any, bridge: Any) -> ArchInfo:
    cfg = bridge.cfg
    hf_cfg = hf_model.config
    architecture = (getattr(hf_cfg, "architectures", None) or [type(hf_model).__name__])[0]
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    gated = bool(getattr(cfg, "gated_mlp", False))
    post_norms = hasattr(bridge.blocks[0], "ln1_post")
    return ArchInfo(
        architecture=str(architecture),
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_model=int(cfg.d_model),
        d_head=int(cfg.d_head),
        d_mlp=int(cfg.d_mlp),
        d_vocab=int(cfg.d_vocab),
        gated_mlp=gated,
        post_norms=post_norms,
    )


def weights_digest(hf_model: torch.nn.Module, chunk: int = 1 << 24) -> str:
    """A digest of every weight of a HF model, exact and the same on any device.

    Each parameter is rounded to bfloat16 (so bf16 and fp32 loads of one checkpoint agree), its bit
    patterns read as integers, and two integer checksums are taken on the parameter's own device:
    the plain sum and a position-weighted sum (weights ``i % 65521 + 1``). Integer sums are exact, so
    the digest does not depend on the device or reduction order. Its resolution is bfloat16's: changing
    one weight changes the digest when the weight's bf16 rounding changes (a relative change of
    about 2**-8 or more, e.g. any fine-tuning step that matters); smaller edits are not seen. Must run
    on the raw HF model, before compatibility mode folds the norms.
    """
    h = hashlib.sha256()
    for name, p in sorted(hf_model.named_parameters(), key=lambda kv: kv[0]):
        flat = p.detach().reshape(-1)
        sums = []
        for start in range(0, flat.numel(), chunk):
            part = flat[start:start + chunk].to(torch.bfloat16).view(torch.int16).to(torch.int64)
            pos = torch.arange(start, start + part.numel(), device=part.device, dtype=torch.int64)
            sums += [int(part.sum()), int((part * (pos % 65521 + 1)).sum())]
        h.update(f"{name}:{tuple(p.shape)}:{sums}".encode())
    return h.hexdigest()


def fingerprint_of(arch: ArchInfo, digest: str) -> str:
    """Model fingerprint: 16 hex characters over the architecture facts and the weights digest."""
    payload = json.dumps(arch.to_dict(), sort_keys=True) + digest
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _is_local(name_or_dir: str | os.PathLike) -> bool:
    return Path(name_or_dir).expanduser().is_dir()


def _load_hf(name: str, *, device: str, dtype: torch.dtype, device_map: Any, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = _is_local(name)
    path = str(Path(name).expanduser()) if local else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        if device_map is not None:
            kwargs["device_map"] = device_map
        hf_model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        if local:
            raise ModelLoadError(
                f"could not load the model directory {path!r}: {err}. A model directory needs a "
                "config.json, the weights (*.safetensors) and the tokenizer files."
            ) from err
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise ModelLoadError(
            f"model {name!r} is not a local directory and could not be loaded from the Hugging Face "
            f"hub{' (HF_HUB_OFFLINE is set)' if offline else ''} or its cache: {err}\n"
            f"Download it where there is network, e.g. `huggingface-cli download {name} --local-dir "
            f"/models/{name.split('/')[-1]}`, then pass that directory: "
            f"load_model('/models/{name.split('/')[-1]}') or --model /models/{name.split('/')[-1]}."
        ) from err
    if device_map is None:
        hf_model = hf_model.to(device)
    hf_model.eval()
    return hf_model, tokenizer


def _cache_to_past_key_values(module: Any, args: tuple, kwargs: dict[str, Any]):
    """Forward pre-hook: pass a ``cache=`` keyword on as ``past_key_values=`` as well."""
    if kwargs.get("cache") is None or kwargs.get("past_key_values") is not None \
            or kwargs.get("layer_past") is not None:
        return None
    return args, {**kwargs, "past_key_values": kwargs["cache"]}


def route_cache_kwarg(hf_model: Any) -> int:
    """Make the bridge's attention modules see the KV cache under every transformers version.

    transformers 5.24 renamed the keyword that carries the KV cache into each decoder layer and
    attention module from ``past_key_values`` to ``cache`` (the old name is deprecated). The
    attention bridges of TransformerLens 4.3, which replace the HF attention modules and
    re-implement attention, read only ``past_key_values`` (or ``layer_past``) in
    ``_update_kv_cache``. Under 5.24 the cache object therefore reached them under a name they
    ignore: nothing was written to it at prefill, and every cached decoding step attended to its
    own position alone (greedy replies like ``'I-------'``), while uncached forward passes were
    unaffected. This registers a forward pre-hook on every attention bridge that copies ``cache``
    into ``past_key_values`` when only the new name is given; on transformers < 5.24 (or a
    TransformerLens that reads ``cache`` itself) it does nothing. Returns the number of modules
    hooked. Tested: cached greedy generation equals uncached and plain-HF generation on every
    architecture the tests build (``tests/test_generate.py``).
    """
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    n = 0
    for module in hf_model.modules():
        if isinstance(module, AttentionBridge) and not getattr(module, "_emocircuits_cache_route", False):
            module.register_forward_pre_hook(_cache_to_past_key_values, with_kwargs=True)
            module._emocircuits_cache_route = True
            n += 1
    return n


class ModelHandle:
    """A booted TransformerBridge in compatibility mode plus the facts analyses need.

    Attributes: ``bridge`` (the TransformerBridge), ``hf_model`` (the wrapped HF model; its
    ``generate`` honours bridge hooks), ``tokenizer``, ``arch`` (:class:`ArchInfo`), ``hooks``
    (:class:`HookNames`), ``fingerprint`` (str), ``name`` (what was loaded).
    """

    def __init__(
        self,
        name: str,
        bridge: Any,
        hf_model: Any,
        tokenizer: Any,
        arch: ArchInfo,
        fingerprint: str,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.arch = arch
        self.fingerprint = fingerprint
        self.hooks = HookNames(arch.n_layers)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._post_gain: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------- device / dtype
    @property
    def device(self) -> torch.device:
        return self.bridge.W_U.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bridge.W_U.dtype

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable identity of the model (name, fingerprint, architecture)."""
        return {"name": self.name, "fingerprint": self.fingerprint, "arch": self.arch.to_dict()}

    # ----------------------------------------------------------------- KV cache
    @property
    def kv_cache_kwarg(self) -> str:
        """The keyword the HF model's ``forward`` takes a KV cache under: ``"cache"`` from
        transformers 5.24 on, ``"past_key_values"`` before (the old name is deprecated there)."""
        import inspect

        params = inspect.signature(self.hf_model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    @staticmethod
    def kv_cache_of(output: Any) -> Any:
        """The KV cache an HF forward with ``use_cache=True`` returned (``output.cache`` from
        transformers 5.24 on, ``output.past_key_values`` before)."""
        cache = output.get("cache") if hasattr(output, "get") else None
        return cache if cache is not None else output.past_key_values

    # ----------------------------------------------------------------- weights
    def W_O(self, layer: int) -> Float[torch.Tensor, "n_heads d_head d_model"]:
        return self.bridge.blocks[layer].attn.W_O

    def b_O(self, layer: int) -> Float[torch.Tensor, "d_model"]:
        b = getattr(self.bridge.blocks[layer].attn, "b_O", None)
        return b if b is not None else torch.zeros(self.arch.d_model, device=self.device, dtype=self.dtype)

    def W_out(self, layer: int) -> Float[torch.Tensor, "d_mlp d_model"]:
        return self.bridge.blocks[layer].mlp.W_out

    def b_out(self, layer: int) -> Float[torch.Tensor, "d_model"]:
        b = getattr(self.bridge.blocks[layer].mlp, "b_out", None)
        return b if b is not None else torch.zeros(self.arch.d_model, device=self.device, dtype=self.dtype)

    @property
    def W_U(self) -> Float[torch.Tensor, "d_model d_vocab"]:
        """Unembedding with the final norm's weight folded in (compatibility mode)."""
        return self.bridge.W_U

    @property
    def b_U(self) -> Float[torch.Tensor, "d_vocab"]:
        b = getattr(self.bridge, "b_U", None)
        return b if b is not None else torch.zeros(self.arch.d_vocab, device=self.device, dtype=self.dtype)

    @property
    def logit_softcap(self) -> float | None:
        """Final logit soft-cap (Gemma2): logits = cap * tanh(pre / cap); None when absent."""
        cap = float(getattr(self.bridge.cfg, "output_logits_soft_cap", -1.0) or -1.0)
        return cap if cap > 0 else None

    def post_norm_gain(self, layer: int, which: str) -> Float[torch.Tensor, "d_model"]:
        """Elementwise weight of a post-attention (``which="attn"``) or post-MLP (``"mlp"``) norm.

        For post-norm models the residual receives ``raw * gain / scale`` where ``scale`` is the
        norm's per-token RMS (hook ``ln1_post.hook_scale`` / ``ln2_post.hook_scale``). Measured once
        by feeding a large constant vector through the norm, so it holds for any weight convention.
        """
        if not self.arch.post_norms:
            raise ValueError(f"{self.name}: the architecture {self.arch.architecture} has no post-norms")
        key = f"{layer}.{which}"
        if key not in self._post_gain:
            norm = getattr(self.bridge.blocks[layer], "ln1_post" if which == "attn" else "ln2_post")
            probe = torch.full((1, 1, self.arch.d_model), 1e3, device=self.device, dtype=self.dtype)
            with torch.no_grad():
                out = getattr(norm, "original_component", norm)(probe)
            self._post_gain[key] = out.reshape(-1)
        return self._post_gain[key]

    def post_norm_scale_hook(self, layer: int, which: str) -> str:
        return f"blocks.{layer}.{'ln1_post' if which == 'attn' else 'ln2_post'}.hook_scale"

    # ----------------------------------------------------------------- prompts
    def chat_ids(self, system: str | None, user: str) -> list[int]:
        """Token ids of a chat prompt ending exactly at the assistant's generation prompt.

        Uses the tokenizer's chat template (``add_generation_prompt=True``, extra keyword arguments
        from ``chat_template_kwargs``, e.g. ``{"enable_thinking": False}`` for Qwen3). Templates that
        reject a system role (Gemma) get the system text prepended to the user message, separated by
        a blank line. Tokenizers without a chat template use :data:`FALLBACK_CHAT_FORMAT` with the
        tokenizer's BOS token prepended when it has one.
        """
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": user}
            ]
            try:
                text = tok.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
            except Exception as err:  # jinja raises TemplateError for an unsupported system role
                if not system or "system" not in str(err).lower():
                    raise
                merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
                text = tok.apply_chat_template(
                    merged, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
            return list(tok(text, add_special_tokens=False)["input_ids"])
        text = FALLBACK_CHAT_FORMAT.format(system=system or "", user=user)
        if not system:
            text = text.lstrip("\n")
        return list(tok(text, add_special_tokens=True)["input_ids"])

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, 0):
            if cand is not None:
                return int(cand)
        return 0

    def pad_left(
        self, seqs: Sequence[Sequence[int]]
    ) -> tuple[Int[torch.Tensor, "batch pos"], Int[torch.Tensor, "batch pos"]]:
        """Left-pad token lists into ``(input_ids, attention_mask)`` on the model's device."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def __repr__(self) -> str:
        a = self.arch
        return (
            f"ModelHandle({self.name!r}, {a.architecture}, layers={a.n_layers}, heads={a.n_heads}/"
            f"{a.n_kv_heads}kv, d_model={a.d_model}, d_mlp={a.d_mlp}, fingerprint={self.fingerprint})"
        )


def load_model(
    name_or_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    device_map: str | dict[str, Any] | None = None,
    *,
    chat_template_kwargs: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> ModelHandle:
    """Load a hub model or a local HF directory and wrap it in a TransformerBridge.

    Args:
        name_or_dir: hub id (``"meta-llama/Llama-3.2-3B-Instruct"``) or a local directory holding a
            saved model and tokenizer. The string ``"toy"`` loads the project's shipped toy model.
        device: where to put the model when ``device_map`` is None.
        dtype: torch dtype or its name (``"bfloat16"``); bf16 is the usual choice on a GPU.
        device_map: passed to ``from_pretrained`` (e.g. ``"auto"`` to spread a model over GPUs).
        chat_template_kwargs: extra arguments for the chat template (``{"enable_thinking": False}``).

    Raises:
        ModelLoadError: with the model name and how to pass a local directory instead.
    """
    from transformer_lens import TransformerBridge

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    name = str(name_or_dir)
    if name == "toy":
        from circuits.toy import TOY_MODEL_DIR

        name = str(TOY_MODEL_DIR)
    device = str(device)
    hf_model, tokenizer = _load_hf(
        name, device=device, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code
    )
    digest = weights_digest(hf_model)
    try:
        bridge = TransformerBridge.boot_transformers(
            name,
            hf_model=hf_model,
            tokenizer=tokenizer,
            device=None if device_map is not None else device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
        )
    except Exception as err:
        raise ModelLoadError(
            f"TransformerBridge could not wrap {name!r} ({type(hf_model).__name__}): {err}"
        ) from err
    route_cache_kwarg(hf_model)
    arch = _arch_info(hf_model, bridge)
    fingerprint = fingerprint_of(arch, digest)
    bridge.enable_compatibility_mode()
    bridge.eval()
    return ModelHandle(name, bridge, hf_model, tokenizer, arch, fingerprint, chat_template_kwargs)
