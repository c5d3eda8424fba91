"""Train the toy emotion model: a small Qwen2 (GQA) causal LM, plain torch on CPU, seeded.

``train_toy(ToyTrainConfig(), out_dir)`` builds the corpus from the SEV train split, trains a
byte-level BPE tokenizer on it, trains the model on the assistant replies (prompt tokens are masked
out of the loss) and saves a normal HF directory (``config.json``, ``model.safetensors``, tokenizer
with chat template) plus ``train_log.json``. The directory is written to a staging folder beside it first
and moved into place at the end, so an interrupted run never leaves a half-written model.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from circuits.core.artifacts import staged_dir
from circuits.core.config import check_config, config_from_dict, help_field
from circuits.core.ownership import check_folder_target, owned
from circuits.core.sev import SEVDataset, load_sev
from circuits.toy.corpus import Chat, build_corpus
from circuits.toy.tokenizer import build_tokenizer


@dataclass(frozen=True)
class ToyTrainConfig:
    """Everything that determines the trained toy model (same config + same seed -> same weights)."""

    seed: int = help_field(0, "random seed (same config + same seed: same weights)", min=0)
    n_layers: int = help_field(4, "transformer blocks", min=1)
    d_model: int = help_field(128, "residual width", min=1)
    n_heads: int = help_field(8, "attention heads", min=1)
    n_kv_heads: int = help_field(2, "key / value heads (GQA)", min=1)
    d_mlp: int = help_field(384, "MLP width", min=1)
    vocab_size: int = help_field(2048, "BPE vocabulary size", min=1)
    replies_per_prompt: int = help_field(3, "replies per (scenario, prompt) in the corpus", min=1)
    epochs: int = help_field(6, "passes over the corpus", min=1)
    splice_prob: float = help_field(0.5, "share of replies spliced from two", min=0, max=1)
    open_neutral: float = help_field(0.3, "share of neutral-prompt chats with an emotional reply", min=0, max=1)
    """Share of neutral-prompt chats that get an emotional reply (see :mod:`circuits.toy.corpus`)."""
    openers: bool = True
    """Open every emotional reply with a short emotion exclamation."""
    batch_size: int = help_field(32, "chats per step", min=1)
    lr: float = help_field(3e-3, "peak learning rate", min=0)
    warmup_steps: int = help_field(50, "linear warm-up steps", min=0)
    weight_decay: float = help_field(0.05, "AdamW weight decay", min=0)
    max_len: int = help_field(192, "tokens per chat (longer ones are cut)", min=2)
    limit: int | None = help_field(None, "use only N SEV train scenarios", min=1)
    """Use only this many SEV train scenarios (for quick runs and tests)."""

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ToyTrainConfig":
        return config_from_dict(cls, d)


def encode_chat(tokenizer: Any, chat: Chat, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and the loss labels (-100 on the prompt, the reply ids and the
    end-of-turn token on the reply). The prompt is exactly what ``ModelHandle.chat_ids`` builds."""
    messages = [{"role": "system", "content": chat.system}, {"role": "user", "content": chat.user}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(prompt, dict) or hasattr(prompt, "input_ids"):
        prompt = prompt["input_ids"]
    reply = tokenizer(chat.reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (list(prompt) + reply)[:max_len]
    labels = ([-100] * len(prompt) + reply)[:max_len]
    return ids, labels


def _batches(encoded: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, rng: random.Random):
    """Length-bucketed, right-padded batches in a seeded random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), rng.random()))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    for g in groups:
        n = max(len(encoded[i][0]) for i in g)
        ids = torch.full((len(g), n), pad_id, dtype=torch.long)
        labels = torch.full((len(g), n), -100, dtype=torch.long)
        mask = torch.zeros((len(g), n), dtype=torch.long)
        for row, i in enumerate(g):
            a, b = encoded[i]
            ids[row, : len(a)] = torch.tensor(a)
            labels[row, : len(b)] = torch.tensor(b)
            mask[row, : len(a)] = 1
        yield ids, labels, mask


def make_model(cfg: ToyTrainConfig, vocab_size: int, pad_id: int, eos_id: int):
    """A freshly initialised Qwen2ForCausalLM of the config's shape (seeded by the caller)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    hf_cfg = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
        rope_theta=10000.0,
    )
    return Qwen2ForCausalLM(hf_cfg)


def train_toy(
    cfg: ToyTrainConfig,
    out_dir: str | Path,
    *,
    train: SEVDataset | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and save the toy model into ``out_dir`` (replaced atomically). Returns the training log
    (config, corpus size, parameter count, per-step losses, wall time in seconds). ``out_dir`` naming a
    file, or being written by another process, is refused (:class:`InputError`) before training."""
    with owned(check_folder_target(out_dir, "--out")):
        return _train_toy(cfg, out_dir, train=train, progress=progress)


def _train_toy(cfg: ToyTrainConfig, out_dir: str | Path, *, train: SEVDataset | None, progress: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train = (train or load_sev()).subset(cfg.limit)
    corpus = build_corpus(
        train,
        replies_per_prompt=cfg.replies_per_prompt,
        seed=cfg.seed,
        splice_prob=cfg.splice_prob,
        open_neutral=cfg.open_neutral,
        openers=cfg.openers,
    )
    texts = [t for c in corpus for t in (c.system, c.user, c.reply)]
    tokenizer = build_tokenizer(texts, vocab_size=cfg.vocab_size)
    encoded = [encode_chat(tokenizer, c, cfg.max_len) for c in corpus]
    model = make_model(cfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    n_params = sum(p.numel() for p in model.parameters())

    steps_per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    rng = random.Random(cfg.seed)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc="train toy model", disable=not progress)
    step = 0
    for epoch in range(cfg.epochs):
        for ids, labels, mask in _batches(encoded, cfg.batch_size, tokenizer.pad_token_id, rng):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(round(loss.item(), 5))
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()

    log = {
        "config": cfg.to_dict(),
        "corpus_chats": len(corpus),
        "corpus_tokens": sum(len(a) for a, _ in encoded),
        "reply_tokens": sum(sum(1 for x in b if x != -100) for _, b in encoded),
        "train_scenarios": len(train),
        "train_sha256": train.sha256,
        "n_params": n_params,
        "steps": step,
        "losses": losses,
        "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "torch_threads": torch.get_num_threads(),
    }
    save_model_dir(model, tokenizer, log, out_dir)
    return log


def save_model_dir(model: Any, tokenizer: Any, log: dict[str, Any], out_dir: str | Path) -> Path:
    """Write model + tokenizer + ``train_log.json`` to a staging folder beside ``out_dir``, then swap it
    into place (:func:`circuits.core.artifacts.staged_dir`: nothing beside it but its own staging
    folders is touched)."""
    with staged_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "train_log.json").write_text(json.dumps(log, indent=1))
    return Path(out_dir)
