"""Tiny random-initialised models of the supported architectures, saved as HF directories, and a tiny
hand-built circuit (:func:`tiny_circuit`).

Used by the tests and benchmarks (no weights can be downloaded here) and handy for trying the
workbench's code paths quickly: ``build_tiny_model("qwen2", "/tmp/tiny")`` then
``load_model("/tmp/tiny")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

ARCHITECTURES = ("qwen2", "llama", "qwen3", "gemma2")
_TOKENIZER_TEXT = (
    "I handed in the report on Friday. My manager said she would read it next week. "
    "Always reply in anger. Keep the reply to at most two sentences. The train was late again. "
    "What a wonderful surprise, I am so happy! That is disgusting and I am scared and sad."
)


def tiny_config(arch: str, vocab_size: int, **overrides: Any):
    """A small HF config of ``arch`` (qwen2 | llama | qwen3 | gemma2); ``overrides`` win."""
    import transformers as T

    base: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    base.update(overrides)
    if arch == "qwen2":
        return T.Qwen2Config(tie_word_embeddings=True, **base)
    if arch == "llama":
        return T.LlamaConfig(tie_word_embeddings=False, attention_bias=False, **base)
    if arch == "qwen3":
        base.setdefault("head_dim", base["hidden_size"] // base["num_attention_heads"])
        return T.Qwen3Config(tie_word_embeddings=True, **base)
    if arch == "gemma2":
        base.setdefault("head_dim", base["hidden_size"] // base["num_attention_heads"])
        return T.Gemma2Config(tie_word_embeddings=True, **base)
    raise ValueError(f"unknown architecture {arch!r}: expected one of {', '.join(ARCHITECTURES)}")


def build_tiny_model(
    arch: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    tokenizer: Any = None,
    vocab_size: int = 320,
    dtype: torch.dtype = torch.float32,
    vector_noise: float = 0.2,
    embedding_rows: int | None = None,
    **config_overrides: Any,
) -> Path:
    """Random-init a model of ``arch`` and save it with a tokenizer to ``out_dir``.

    Weights are drawn from the HF initialiser with ``std`` raised to 0.2 so that a two-layer model
    has non-trivial activations. The initialiser leaves every bias at 0 and every norm gain at its
    identity value (1, or 0 for Gemma's ``1 + w`` norms), which would hide mistakes in how biases
    (Qwen2's q/k/v biases) and norm gains (folding, Gemma2's post-norms, Qwen3's q/k norms) are
    handled; so every 1-d parameter gets Gaussian noise of std ``vector_noise`` (0 keeps the HF
    values). ``embedding_rows``: the model's vocabulary size (default the tokenizer's; more leaves
    rows no token reaches, as a real vocabulary's unembedding cost needs). Returns the directory.
    """
    from transformers import AutoModelForCausalLM

    from circuits.toy.tokenizer import build_tokenizer

    out = Path(out_dir)
    if tokenizer is None:
        tokenizer = build_tokenizer([_TOKENIZER_TEXT] * 4, vocab_size=vocab_size)
    config_overrides.setdefault("initializer_range", 0.2)
    cfg = tiny_config(arch, embedding_rows or len(tokenizer), **config_overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).to(dtype)
    if vector_noise:
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 1:
                    p.add_(torch.randn_like(p) * vector_noise)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_circuit(emotion: str = "anger", seed: int = 0):
    """A hand-built circuit of a 2-layer architecture (d_mlp 32, 4 heads of d_head 4) with random scores
    and Delta-mu (seeded), for tests of the circuit files; the same seed gives the same units."""
    from circuits.circuit import assemble_circuit
    from circuits.core.arch import ArchInfo

    arch = ArchInfo("Qwen2ForCausalLM", 2, 4, 2, 16, 4, 32, 50, True, False)
    g = torch.Generator().manual_seed(seed)
    return assemble_circuit(
        emotion,
        influence_attn=torch.ones(2),
        influence_mlp=torch.ones(2),
        neuron_scores=torch.randn(2, 32, generator=g),
        head_scores=torch.randn(2, 4, generator=g),
        delta_mu_mlp=torch.randn(2, 32, generator=g),
        delta_mu_heads=torch.randn(2, 4, 4, generator=g),
        model_info={"name": "m", "fingerprint": "f", "arch": arch},
    )
