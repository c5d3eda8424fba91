"""Architecture facts, hook names and the weight fingerprint of a loaded model (what every analysis,
store and circuit file needs to know about the model it was made on)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

GATED_ACTIVATIONS = ("silu", "swish", "gelu_pytorch_tanh", "gelu_new", "gelu")


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
            part = flat[start : start + chunk].to(torch.bfloat16).view(torch.int16).to(torch.int64)
            pos = torch.arange(start, start + part.numel(), device=part.device, dtype=torch.int64)
            sums += [int(part.sum()), int((part * (pos % 65521 + 1)).sum())]
        h.update(f"{name}:{tuple(p.shape)}:{sums}".encode())
    return h.hexdigest()


def fingerprint_of(arch: ArchInfo, digest: str) -> str:
    """Model fingerprint: 16 hex characters over the architecture facts and the weights digest."""
    payload = json.dumps(arch.to_dict(), sort_keys=True) + digest
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
