"""Batched chat generation under :class:`~circuits.core.hooks.Intervention` edits (the same edit or one
list per prompt), and teacher-forced scoring of given continuations (:func:`continuation_logprobs`).

Two paths compute the same thing (``GenerationSettings.backend``, tested equal):

* ``fast`` (default): the plain HF model that shares the bridge's weights, with ``sdpa`` attention
  and the edits as module hooks (:mod:`circuits.core.fastpath`);
* ``bridge``: the wrapped HF model's ``generate``, which runs through the bridge's hook points, under
  ``bridge.hooks(fwd_hooks=...)`` (TransformerBridge's own ``generate`` ignores ``fwd_hooks=``). Raw
  TransformerLens hooks (``hooks=``) need this path.

Either way hooks fire once on the whole (left-padded) prompt at prefill, then once per generated
token with one position. :func:`generate_scored` also keeps each generated token's log-probability
from the generation pass itself (the raw logits of each step), which is what
:func:`continuation_logprobs` of those tokens computes in a second pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from circuits.core.hooks import Intervention, make_hooks, rows_of
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
    backend: str = "fast"
    """``fast`` (plain HF modules, sdpa) or ``bridge`` (TransformerLens hook points); the same replies."""

    def __post_init__(self) -> None:
        from circuits.core.config import ConfigError, check_number
        from circuits.core.fastpath import BACKENDS

        if self.backend not in BACKENDS:
            raise ConfigError(f"GenerationSettings.backend: expected one of {BACKENDS}, got {self.backend!r}")
        check_number(self.max_new_tokens, "GenerationSettings.max_new_tokens", int, min=1)
        check_number(self.batch_size, "GenerationSettings.batch_size", int, min=1)
        check_number(self.temperature, "GenerationSettings.temperature", float, min=0.0)
        check_number(self.top_p, "GenerationSettings.top_p", float, min=0.0, max=1.0)
        check_number(self.repetition_penalty, "GenerationSettings.repetition_penalty", float, min=0.0)
        check_number(self.seed, "GenerationSettings.seed", int)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GenerationSettings":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


InterventionSpec = Sequence[Intervention] | Sequence[Sequence[Intervention]]
"""One list of edits for every prompt, or one list per prompt (per-row steering)."""


def _per_prompt(interventions: InterventionSpec | None, n: int) -> list[Sequence[Intervention]]:
    if not interventions:
        return [()] * n
    if isinstance(interventions[0], Intervention):
        return [interventions] * n
    if len(interventions) != n:
        raise ValueError(f"interventions: {len(interventions)} per-prompt lists for {n} prompts")
    return list(interventions)


def use_fast_path(model: ModelHandle, backend: str) -> bool:
    """Whether ``backend`` runs on the plain model here (``fast`` falls back to the bridge, with a
    warning, for a model whose layout the fast path does not know)."""
    if backend != "fast":
        return False
    from circuits.core.fastpath import PlainModelUnsupported, plain_model

    try:
        plain_model(model)
    except PlainModelUnsupported as err:
        if not getattr(model, "_warned_plain", False):
            import warnings

            warnings.warn(f"{err}; generating through the bridge", stacklevel=3)
            model._warned_plain = True
        return False
    return True


@contextlib.contextmanager
def steered(
    model: ModelHandle,
    interventions: Sequence[Intervention],
    rows: Sequence[Any] | None = None,
    *,
    backend: str = "fast",
    hooks: HookList = (),
) -> Iterator[Any]:
    """The HF model to call (``generate`` or a forward pass) with ``interventions`` applied (``rows``:
    per-intervention batch rows, as in :func:`circuits.core.hooks.make_hooks`) on the chosen path.
    Raw TransformerLens ``hooks`` force the bridge path."""
    if not hooks and use_fast_path(model, backend):
        from circuits.core.fastpath import plain_hooks

        with plain_hooks(model, interventions, rows) as twin:
            yield twin
        return
    with model.bridge.hooks(fwd_hooks=[*hooks, *make_hooks(model, interventions, rows=rows)]):
        yield model.hf_model


@dataclass(frozen=True)
class ScoredReply:
    """A generated reply with the scores of its own generation pass.

    ``tokens``: the generated token ids up to and including the first end-of-turn token (nothing of
    the padding after it); ``logprobs``: ``[len(tokens)]`` float32 natural-log probabilities of those
    tokens under the model's raw logits (before repetition penalty, n-gram bans or any other logits
    processor), i.e. what teacher-forced scoring of ``tokens`` after the prompt gives under the same
    edits; ``end_logprob``: the log-probability of end-of-turn after the last token (for a reply that
    ended on it, the last entry of ``logprobs``; None when the tokenizer has no end-of-turn token)."""

    text: str
    tokens: list[int]
    logprobs: torch.Tensor
    end_logprob: float | None


def generate(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings | None = None,
    *,
    interventions: InterventionSpec | None = None,
    hooks: HookList | Callable[[list[int]], HookList] | None = None,
    progress: bool = True,
    desc: str = "generate",
    **generate_kwargs: Any,
) -> list[str]:
    """Generate one reply per prompt (token id lists); returns the decoded replies (no special tokens).

    ``interventions``: edits active during generation, one list for all prompts or one list per prompt
    (rows of a batch may then carry different edits, so a batch mixes emotions and stays full).
    ``hooks``: raw TransformerLens ``(hook_name, fn)`` pairs, or a callable ``(indices) -> hooks`` given
    the indices into ``prompts`` of each batch's rows; they run on the bridge path.
    Extra keyword arguments go to HF ``generate`` (``min_new_tokens``, ``no_repeat_ngram_size``, ...).
    Prompts are sorted by length internally so that padding is minimal; the order of the output
    matches ``prompts``. :func:`generate_scored` also returns each reply's token log-probabilities.
    """
    out = _generate(model, prompts, settings, interventions, hooks, progress, desc, False, generate_kwargs)
    return [r.text for r in out]


def generate_scored(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings | None = None,
    *,
    interventions: InterventionSpec | None = None,
    hooks: HookList | Callable[[list[int]], HookList] | None = None,
    progress: bool = True,
    desc: str = "generate",
    **generate_kwargs: Any,
) -> list[ScoredReply]:
    """:func:`generate` (the same replies, token for token) that also keeps the scores of the pass:
    one :class:`ScoredReply` per prompt, whose ``logprobs`` equal :func:`continuation_logprobs` of
    its ``tokens`` under the same edits (to float rounding; tested). A reply that did not end on
    end-of-turn costs one more single-token step per batch for its ``end_logprob``."""
    return _generate(model, prompts, settings, interventions, hooks, progress, desc, True, generate_kwargs)


def _generate(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings | None,
    interventions: InterventionSpec | None,
    hooks: HookList | Callable[[list[int]], HookList] | None,
    progress: bool,
    desc: str,
    scored: bool,
    generate_kwargs: dict[str, Any],
) -> list[ScoredReply]:
    s = settings or GenerationSettings()
    per_prompt = _per_prompt(interventions, len(prompts))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[ScoredReply] = [ScoredReply("", [], torch.empty(0), None)] * len(prompts)
    tok = model.tokenizer
    eos = tok.eos_token_id
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress)
    for start in range(0, len(order), s.batch_size):
        idx = order[start : start + s.batch_size]
        ids, mask = model.pad_left([prompts[i] for i in idx])
        batch_hooks = hooks(idx) if callable(hooks) else (hooks or [])
        ivs, rows = rows_of(per_prompt, idx)
        if s.do_sample:
            torch.manual_seed(s.seed + start)
        kwargs = dict(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=s.max_new_tokens,
            do_sample=s.do_sample,
            pad_token_id=model.pad_id,
            eos_token_id=eos,
            repetition_penalty=s.repetition_penalty,
        )
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
        kwargs.update(generate_kwargs)
        if scored:  # the raw logits of every step (before any logits processor) and the final cache
            kwargs.update(return_dict_in_generate=True, output_logits=True)
        with torch.no_grad(), steered(model, ivs, rows, backend=s.backend, hooks=list(batch_hooks)) as hf:
            res = hf.generate(**kwargs)
            gen = res.sequences if scored else res
            new = gen[:, ids.shape[1] :]  # [b, steps]
            ends = _end_positions(new, eos)
            scores = _step_scores(model, hf, res, ids, mask, new, ends, eos) if scored else None
        for row, i in enumerate(idx):
            text = tok.decode(new[row], skip_special_tokens=True).strip()
            if scores is None:
                out[i] = ScoredReply(text, [], torch.empty(0), None)
                continue
            n = int(ends[row])
            lp, end_lp = scores
            out[i] = ScoredReply(text, new[row, :n].tolist(), lp[row, :n].clone(), end_lp[row])
        bar.update(len(idx))
    bar.close()
    return out


def _end_positions(new: torch.Tensor, eos: int | None) -> torch.Tensor:
    """``[b]`` the length of each generated row up to and including its first end-of-turn token (the
    whole row when it has none)."""
    steps = new.shape[1]
    if eos is None:
        return torch.full((new.shape[0],), steps, dtype=torch.long)
    is_end = new == eos
    first = torch.where(is_end.any(1), is_end.int().argmax(1), torch.full_like(is_end[:, 0], steps, dtype=torch.long))
    return torch.where(is_end.any(1), first + 1, first)


def _step_scores(
    model: ModelHandle,
    hf: Any,
    res: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    new: torch.Tensor,
    ends: torch.Tensor,
    eos: int | None,
) -> tuple[torch.Tensor, list[float | None]]:
    """Log-probs ``[b, steps]`` (float32, CPU) of each generated token under its step's raw logits, and
    each row's end-of-turn log-prob after its last token. Rows that did not end on end-of-turn need
    the logits after their last token, which generation never computed: one single-token step on the
    returned cache (the positions and mask those of generation: left padding, no gap)."""
    # step by step: a [b, steps, vocab] stack would double the memory HF already holds for the logits
    lp = torch.stack(
        [torch.log_softmax(x.float(), -1).gather(-1, new[:, t, None]).squeeze(-1) for t, x in enumerate(res.logits)], 1
    ).cpu()
    end_lp: list[float | None] = [None] * new.shape[0]
    if eos is None:
        return lp, end_lp
    steps = new.shape[1]
    open_rows = [r for r in range(new.shape[0]) if int(ends[r]) == steps and int(new[r, -1]) != eos]
    for r in range(new.shape[0]):
        if r not in open_rows:
            end_lp[r] = float(lp[r, int(ends[r]) - 1])
    if open_rows:
        cache = model.kv_cache_of(res)
        full = torch.cat([mask, torch.ones_like(new)], 1)  # prompt mask + every generated step
        positions = (full.cumsum(-1) - 1).clamp(min=0)[:, -1:]
        kw = model.kv_cache_kwarg  # the twin is the same HF class as hf_model: the same keyword
        last = hf(
            input_ids=new[:, -1:], attention_mask=full, position_ids=positions, use_cache=True, **{kw: cache}
        ).logits[:, -1]
        end = torch.log_softmax(last.float(), -1)[:, eos].cpu()
        for r in open_rows:
            end_lp[r] = float(end[r])
    return lp, end_lp


@torch.no_grad()
def continuation_logprobs(
    model: ModelHandle,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 32,
    backend: str = "fast",
) -> list[torch.Tensor]:
    """Teacher-forced log-probabilities (natural log, float32, CPU) of each continuation's tokens after
    its prompt: one ``[len(continuation)]`` tensor per pair, from left-padded batches of
    ``prompt + continuation`` with ``interventions`` (:class:`~circuits.core.hooks.Intervention`)
    applied to every forward pass, on the ``backend`` path (see the module docstring). The one
    teacher-forced scorer (reply perplexity, answer log-probs)."""
    seqs = [list(p) + list(c) for p, c in zip(prompts, continuations)]
    # sorted by length so that a batch carries little padding; the output keeps the input's order
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        ids, mask = model.pad_left([seqs[i] for i in idx])
        # rows are left-padded, so every continuation lies in the last `keep - 1` positions: only those
        # logits are computed (a 49k-token vocabulary x the whole prompt would dominate the cost)
        keep = max(len(continuations[i]) for i in idx) + 1
        with steered(model, interventions, backend=backend) as hf:
            logits = hf(input_ids=ids, attention_mask=mask, logits_to_keep=keep, use_cache=False).logits
        logp = torch.log_softmax(logits.float(), -1)  # [b, keep, vocab]: position p of ids is keep - width + p
        width = ids.shape[1]
        for row, i in enumerate(idx):
            start = width - len(seqs[i]) + len(prompts[i])
            tgt = ids[row, start:]
            lo = start - 1 - (width - keep)
            out[i] = logp[row, lo : keep - 1].gather(-1, tgt[:, None]).squeeze(-1).cpu()
    return out
