"""Many forward passes that differ only at the last prompt token, on one cached prefix per batch.

Edits that act at the last position only (``positions="last"``: the ablation sweeps, the intervention
measure of sublayer influence) leave everything before it the same in every pass. The prefix (all
but the last token, left-padded) runs once per batch into a KV cache; each pass then runs only the
last token on that cache and the cache is cropped back. This equals a full forward pass (to float
rounding; tested in ``tests/discovery/test_ablation.py``) at a fraction of the cost: on the toy model
10 ms instead of 90 ms for 24 prompts, and on a 60-token prompt about one sixtieth of the work.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from circuits.core.hooks import Intervention, Read, make_hooks
from circuits.core.model import ModelHandle


class LastTokenBatches:
    """``prompts`` (token id lists) in batches of ``batch_size``, each with its prefix run once."""

    def __init__(self, model: ModelHandle, prompts: Sequence[Sequence[int]], batch_size: int):
        self.model = model
        self.batches = []
        for s in range(0, len(prompts), batch_size):
            ids, mask = model.pad_left(prompts[s : s + batch_size])
            with torch.no_grad():
                out = model.hf_model(
                    input_ids=ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True, logits_to_keep=1
                )
            self.batches.append((ids[:, -1:], mask, model.kv_cache_of(out)))

    def each(
        self,
        interventions: Sequence[Intervention] = (),
        reads: Sequence[Read] = (),
        *,
        extra_hooks: Callable[[int], Sequence[tuple[str, Callable]]] | None = None,
        grad: bool = False,
    ) -> Iterator[dict[Read, torch.Tensor]]:
        """One last-token pass per batch with ``interventions`` (which must act at the last position:
        the pass sees that position only) and ``reads`` (``positions="last"``), yielding the values of
        each batch before its cache is cropped back (so a caller may take gradients there: the prefix
        does not depend on the last token, so a gradient at the last token is exact). ``extra_hooks(n)``:
        raw ``(hook_name, fn)`` pairs for a batch of ``n`` rows; ``grad`` keeps autograd on."""
        if any(iv.positions == "generated" for iv in interventions):
            raise ValueError("LastTokenBatches: an edit of generated positions only would not act here")
        for last, mask, cache in self.batches:
            got: dict = {}
            raw = extra_hooks(last.shape[0]) if extra_hooks else []
            hooks = [*raw, *make_hooks(self.model, interventions, reads, into=got, mask=mask)]
            try:
                with torch.set_grad_enabled(grad), self.model.bridge.hooks(fwd_hooks=hooks):
                    self.model.hf_model(
                        input_ids=last,
                        attention_mask=mask,
                        use_cache=True,
                        logits_to_keep=1,
                        **{self.model.kv_cache_kwarg: cache},
                    )
                yield got
            finally:
                cache.crop(-1)  # back to the prefix

    def run(
        self, interventions: Sequence[Intervention] = (), reads: Sequence[Read] = ()
    ) -> list[dict[Read, torch.Tensor]]:
        """:meth:`each` collected: the read values of every batch."""
        return list(self.each(interventions, reads))
