"""Sublayer causal influence: how much pushing one sublayer's output along the emotion direction
moves the model's final state along the emotion.

Definitions (paper, section A): ``sigma[L, p]`` = mean RMS of the residual at read point p of layer L
over the neutral-prompt rows; ``v_ref_e`` = the normalised sum of the sign-aligned unit directions of
the reference layers (both read points); ``s`` = <final last-token state after the final norm, v_ref_e>.

* intervention measure: with the neutral prompt, add ``alpha * sigma[L,p] * v_{e,p}^L`` to the output
  of sublayer (L, p) at the last token; ``I = (mean s' - mean s) / (alpha * sigma)``, averaged over
  the alphas. One forward pass per (sublayer, alpha, emotion, batch).
* one-pass gradient estimate: ``I_grad = <d s / d out_{L,p}, v_{e,p}^L>`` at the last token, the
  alpha -> 0 limit of the same quantity; one forward pass and one backward pass per emotion and batch.

Both are returned raw (``[n_layers, 2, n_emotions]``, read points in ``READ_POINTS`` order, units of
s per unit of residual) and :func:`normalise` makes each emotion's influence sum to 1.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from circuits.core.hooks import Intervention, Read
from circuits.core.model import ModelHandle
from circuits.core.prefix import LastTokenBatches
from circuits.discovery.directions import Directions
from circuits.discovery.store import READ_POINTS, ActivationStore

DEFAULT_ALPHAS = (0.1, 0.3, 0.5, 0.7)


def default_reference_layers(n_layers: int) -> list[int]:
    """Layers 21-25 of 28 in the paper, i.e. 75%-90% of the depth (at least the last layer)."""
    lo, hi = round(0.75 * n_layers), min(n_layers - 1, round(0.9 * n_layers))
    return list(range(min(lo, hi), hi + 1))


def reference_directions(
    directions: Directions, layers: Sequence[int] | None = None
) -> Float[torch.Tensor, "n_emotions d_model"]:
    """``v_ref`` per emotion: sign-align the unit directions of ``layers`` (both read points) with the
    last one, sum, normalise."""
    layers = default_reference_layers(directions.unit.shape[1]) if layers is None else list(layers)
    vecs = directions.unit[:, layers]  # [2, nl, E, d]
    vecs = vecs.reshape(-1, *vecs.shape[2:])  # [2*nl, E, d]
    anchor = directions.unit[1, layers[-1]]  # [E, d]
    sign = torch.sign((vecs * anchor).sum(-1, keepdim=True))
    sign[sign == 0] = 1
    ref = (vecs * sign).sum(0)
    return ref / ref.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def emotion_scores(store: ActivationStore, v_ref: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``s`` for store rows ``idx`` and every emotion: ``[rows, n_emotions]``."""
    return store.final_state(idx) @ v_ref.T


def residual_sigma(store: ActivationStore) -> Float[torch.Tensor, "n_layers 2"]:
    """Mean RMS of the residual per layer and read point over the neutral rows (all rows if none)."""
    idx = store.index("neutral")
    if idx.numel() == 0:
        idx = torch.arange(len(store.rows))
    return torch.stack([store.resid(p)[idx].pow(2).mean(-1).sqrt().mean(0) for p in READ_POINTS], dim=1)


def _sublayer_hook(model: ModelHandle, layer: int, point: str) -> str:
    return model.hooks.attn_out(layer) if point == "attn" else model.hooks.mlp_out(layer)


FINAL_STATE = (Read("final_resid"), Read("final_scale"))
"""Reads of the last position's final residual and final-norm scale; the final state is their ratio."""


def final_state(got: dict) -> torch.Tensor:
    """The final (normalised) state ``[batch, d_model]`` from the values of :data:`FINAL_STATE`."""
    return got[FINAL_STATE[0]].float() / got[FINAL_STATE[1]].float()  # scored in float32 whatever the model's dtype


@torch.no_grad()
def influence_intervention(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    ref_layers: Sequence[int] | None = None,
    rows: torch.Tensor | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Float[torch.Tensor, "n_layers 2 n_emotions"]:
    """The paper's intervention measure of sublayer influence (raw, not normalised); only ``layers``
    (default all) are measured, the others are left at zero."""
    L, E = model.arch.n_layers, len(directions.emotions)
    measured = list(range(L)) if layers is None else list(layers)
    v_ref = reference_directions(directions, ref_layers)
    sigma = residual_sigma(store)
    idx = store.index("neutral") if rows is None else rows
    prompts = store.prompts(model, idx, neutral=True)
    out = torch.zeros(L, 2, E)
    bar = tqdm(
        total=len(measured) * 2 * len(alphas) * E, desc="sublayer influence (intervention)", disable=not progress
    )
    dev, dt = model.device, model.dtype
    # every push acts at the last token: the prompts' prefixes run once (circuits.core.prefix)
    batches = LastTokenBatches(model, prompts, batch_size)

    def run(interventions: list) -> torch.Tensor:
        return (
            torch.cat([final_state(got).cpu() for got in batches.run(interventions, FINAL_STATE)]) @ v_ref.float().T
        )  # [n, E]

    base = run([])
    for layer in measured:
        for p, point in enumerate(READ_POINTS):
            for e in range(E):
                v = directions.unit[p, layer, e].to(dev, dt)
                for alpha in alphas:
                    delta = alpha * float(sigma[layer, p])
                    push = Intervention(f"{point}_out", layer, "add", vector=v, factor=delta, positions="last")
                    moved = run([push])
                    out[layer, p, e] += ((moved[:, e] - base[:, e]).sum() / delta) / len(alphas)
                    bar.update(1)
    bar.close()
    return out / len(idx)


def influence_gradient(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    *,
    ref_layers: Sequence[int] | None = None,
    rows: torch.Tensor | None = None,
    batch_size: int = 64,
    progress: bool = True,
    per_row: bool = False,
) -> Float[torch.Tensor, "n_layers 2 n_emotions"] | Float[torch.Tensor, "rows n_layers 2 n_emotions"]:
    """The one-pass gradient estimate of sublayer influence (raw, not normalised): one last-token pass
    and one backward pass per emotion and batch, on the batch's cached prefix. ``per_row``: each row's
    own value, ``[rows, n_layers, 2, n_emotions]`` in the order of ``rows`` (the estimate is their mean,
    so the estimate on a subset of rows is the mean over that subset's rows)."""
    L, E = model.arch.n_layers, len(directions.emotions)
    v_ref = reference_directions(directions, ref_layers)
    idx = store.index("neutral") if rows is None else rows
    prompts = store.prompts(model, idx, neutral=True)
    out = torch.zeros(len(idx), L, 2, E)
    dev, dt = model.device, model.dtype
    batches = LastTokenBatches(model, prompts, batch_size)  # the deltas act at the last token only
    reads = [Read(r.site, keep_graph=True) for r in FINAL_STATE]
    deltas: dict[tuple[int, int], torch.Tensor] = {}

    def hooks_for(n: int) -> list:
        """Zero per-row deltas with a gradient on every sublayer output of a batch of n rows: the one hook
        closure outside circuits.core.hooks (an Intervention has one vector for every row)."""
        deltas.clear()
        deltas.update(
            {
                (layer, p): torch.zeros(n, model.arch.d_model, device=dev, dtype=dt, requires_grad=True)
                for layer in range(L)
                for p in range(2)
            }
        )

        def add(key):
            return lambda x, hook: x + deltas[key][:, None]  # the pass holds the last position only

        return [(_sublayer_hook(model, layer, READ_POINTS[p]), add((layer, p))) for (layer, p) in deltas]

    start = 0  # the batches keep the rows' order
    for got in tqdm(
        batches.each(reads=reads, extra_hooks=hooks_for, grad=True),
        total=len(batches.batches),
        desc="sublayer influence (gradient)",
        disable=not progress,
    ):
        state = got[reads[0]].float() / got[reads[1]].float()  # [n, d_model], in float32 (bf16 models too)
        s_all = state @ v_ref.to(dev, torch.float32).T  # [n, E]
        n = s_all.shape[0]
        for e in range(E):
            grads = torch.autograd.grad(s_all[:, e].sum(), list(deltas.values()), retain_graph=e < E - 1)
            for (layer, p), g in zip(deltas, grads):
                out[start : start + n, layer, p, e] = g.float().cpu() @ directions.unit[p, layer, e]
        start += n
    return out if per_row else out.mean(0)


def normalise(influence: Float[torch.Tensor, "n_layers 2 n_emotions"]) -> torch.Tensor:
    """Each emotion's influence divided by its sum over sublayers (so it sums to 1)."""
    total = influence.sum(dim=(0, 1), keepdim=True)
    return influence / torch.where(total.abs() < 1e-12, torch.ones_like(total), total)
