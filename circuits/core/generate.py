"""Batched chat generation through the bridge's HF model, optionally under TransformerLens hooks, and
teacher-forced scoring of given continuations (:func:`continuation_logprobs`).

TransformerBridge's own ``generate`` ignores ``fwd_hooks=``; the wrapped HF model's ``generate``
runs through the bridge's hook points, so hooks installed with ``bridge.hooks(fwd_hooks=...)`` fire:
once on the whole (left-padded) prompt at prefill, then once per generated token with one position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from circuits.core.model import ModelHandle

HookList = Sequence[tuple[str, Callable[..., Any]]]


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings (greedy by default, as in the evaluations)."""

    max_new_tokens: int = 48
    batch_size: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GenerationSettings":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def generate(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings | None = None,
    *,
    hooks: HookList | Callable[[list[int]], HookList] | None = None,
    progress: bool = True,
    desc: str = "generate",
    **generate_kwargs: Any,
) -> list[str]:
    """Generate one reply per prompt (token id lists); returns the decoded replies (no special tokens).

    ``hooks`` are ``(hook_name, fn)`` pairs active during generation, or a callable
    ``(indices) -> hooks`` given the indices into ``prompts`` of each batch's rows (per-row steering).
    Extra keyword arguments go to HF ``generate`` (``min_new_tokens``, ``no_repeat_ngram_size``, ...).
    Prompts are sorted by length internally so that padding is minimal; the order of the output
    matches ``prompts``.
    """
    s = settings or GenerationSettings()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    tok = model.tokenizer
    eos = tok.eos_token_id
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress)
    for start in range(0, len(order), s.batch_size):
        idx = order[start:start + s.batch_size]
        ids, mask = model.pad_left([prompts[i] for i in idx])
        batch_hooks = hooks(idx) if callable(hooks) else (hooks or [])
        if s.do_sample:
            torch.manual_seed(s.seed + start)
        kwargs = dict(
            input_ids=ids, attention_mask=mask, max_new_tokens=s.max_new_tokens, do_sample=s.do_sample,
            pad_token_id=model.pad_id, eos_token_id=eos, repetition_penalty=s.repetition_penalty,
        )
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
        kwargs.update(generate_kwargs)
        with torch.no_grad(), model.bridge.hooks(fwd_hooks=list(batch_hooks)):
            gen = model.hf_model.generate(**kwargs)
        for row, i in enumerate(idx):
            out[i] = tok.decode(gen[row, ids.shape[1]:], skip_special_tokens=True).strip()
        bar.update(len(idx))
    bar.close()
    return out


@torch.no_grad()
def continuation_logprobs(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    interventions: Sequence[Any] = (),
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """Teacher-forced log-probabilities (natural log, float32, CPU) of each continuation's tokens after
    its prompt: one ``[len(continuation)]`` tensor per pair, from left-padded batches of
    ``prompt + continuation`` with ``interventions`` (:class:`~circuits.core.hooks.Intervention`)
    applied to every forward pass. The one teacher-forced scorer (reply perplexity, answer log-probs)."""
    from circuits.core.hooks import make_hooks

    seqs = [list(p) + list(c) for p, c in zip(prompts, continuations)]
    out: list[torch.Tensor] = []
    for s in range(0, len(seqs), batch_size):
        chunk = seqs[s:s + batch_size]
        ids, mask = model.pad_left(chunk)
        # rows are left-padded, so every continuation lies in the last `keep - 1` positions: only those
        # logits are computed (a 49k-token vocabulary x the whole prompt would dominate the cost)
        keep = max(len(continuations[s + row]) for row in range(len(chunk))) + 1
        with model.bridge.hooks(fwd_hooks=make_hooks(model, interventions)):
            logits = model.hf_model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        logp = torch.log_softmax(logits.float(), -1)  # [b, keep, vocab]: position p of ids is keep - width + p
        width = ids.shape[1]
        for row, seq in enumerate(chunk):
            start = width - len(seq) + len(prompts[s + row])
            tgt = ids[row, start:]
            lo = start - 1 - (width - keep)
            out.append(logp[row, lo:keep - 1].gather(-1, tgt[:, None]).squeeze(-1).cpu())
    return out
