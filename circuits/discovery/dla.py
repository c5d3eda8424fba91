"""Direct logit attribution of the last prompt token, from the activation store.

The final last-token residual splits exactly into components (compatibility mode):

    resid_final = embed + sum_L [ sum_h head_{L,h} + attn_bias_L ] + sum_L mlp_L

with ``head = z_h @ W_O[h]`` (post-norm models: times the norm's gain / scale), ``mlp_L =
resid_post[L] - resid_mid[L]`` and ``embed`` the rest of layer 0. With the final norm's scale frozen,
each component's share of (a) the emotion score ``s_e = <final state, v_ref_e>`` and (b) the
emotion-word logit difference is linear, and the shares sum exactly to the totals.

The emotion-word target of emotion e is ``mean logit(e's words) - mean logit(all emotions' words)``
(first token of each word with a leading space; the bias b_U is the ``unembed_bias`` component).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float

from circuits.core.emotions import check_emotions
from circuits.core.model import ModelHandle
from circuits.discovery.components import head_writes
from circuits.discovery.directions import Directions
from circuits.discovery.influence import reference_directions
from circuits.discovery.store import ActivationStore

EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "anger": ("angry", "furious", "anger", "outrageous", "livid"),
    "sadness": ("sad", "sadness", "heartbroken", "sorrow", "unhappy"),
    "happiness": ("happy", "delighted", "joy", "wonderful", "glad"),
    "fear": ("afraid", "scared", "terrified", "fear", "worried"),
    "surprise": ("surprised", "astonished", "wow", "unexpected", "amazed"),
    "disgust": ("disgusted", "disgusting", "gross", "revolting", "sickening"),
}
"""Words whose logits stand for each emotion (edit or pass your own to :func:`emotion_token_ids`)."""


def emotion_token_ids(
    model: ModelHandle, emotions: Sequence[str], words: dict[str, Sequence[str]] | None = None
) -> dict[str, list[int]]:
    """First token id of ``" " + word`` for each emotion's words (deduplicated within an emotion)."""
    words = words or EMOTION_WORDS
    out: dict[str, list[int]] = {}
    for e in emotions:
        ids = []
        for w in words[e]:
            tok = model.tokenizer(" " + w, add_special_tokens=False)["input_ids"]
            if tok and tok[0] not in ids:
                ids.append(tok[0])
        out[e] = ids
    return out


def logit_directions(
    model: ModelHandle, emotions: Sequence[str], words: dict[str, Sequence[str]] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unembedding directions of the emotion-word targets: ``([n_emotions, d_model], [n_emotions] bias)``."""
    toks = emotion_token_ids(model, emotions, words)
    W_U = model.W_U.detach().float().cpu()
    b_U = model.b_U.detach().float().cpu()
    every = sorted({t for ids in toks.values() for t in ids})
    base_w, base_b = W_U[:, every].mean(1), b_U[every].mean()
    dirs = torch.stack([W_U[:, toks[e]].mean(1) - base_w for e in emotions])
    bias = torch.stack([b_U[toks[e]].mean() - base_b for e in emotions])
    return dirs, bias


def component_stack(
    model: ModelHandle, store: ActivationStore, idx: torch.Tensor
) -> tuple[list[str], Float[torch.Tensor, "component rows d_model"]]:
    """Labelled components of the final residual for rows ``idx``; they sum to ``resid_post[-1]``."""
    a = model.arch
    labels: list[str] = []
    parts: list[torch.Tensor] = []
    mid, post = store.tensor("resid_mid")[idx], store.tensor("resid_post")[idx]
    embed = None
    for layer in range(a.n_layers):
        heads = head_writes(model, store, layer, idx)  # [rows, H, d]
        bias = model.b_O(layer).detach().float().cpu().expand(len(idx), -1)
        if a.post_norms:
            bias = (
                bias
                * model.post_norm_gain(layer, "attn").detach().float().cpu()
                / store.tensor("attn_post_scale")[idx, layer, None]
            )
        if layer == 0:
            embed = mid[:, 0] - heads.sum(1) - bias
        labels += [f"a{layer}.h{h}" for h in range(a.n_heads)] + [f"a{layer}.bias", f"m{layer}"]
        parts += list(heads.unbind(1)) + [bias, post[:, layer] - mid[:, layer]]
    return ["embed"] + labels, torch.stack([embed] + parts)


def direct_logit_attribution(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    emotions: Sequence[str] | None = None,
    words: dict[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Per-component attribution, averaged over each emotion's rows.

    Returns ``{"labels": [C], "score": [C, E] (shares of s_e), "logit": [C+1, E] (shares of the
    emotion-word logit difference; last row ``unembed_bias``), "score_total": [E], "logit_total": [E]}``.
    Columns follow ``emotions``; the shares sum to the totals exactly.
    """
    emotions = check_emotions(emotions, directions.emotions)
    v_ref = reference_directions(directions)[[directions.emotions.index(e) for e in emotions]]
    ldirs, lbias = logit_directions(model, emotions, words)
    score_cols, logit_cols = [], []
    labels: list[str] = []
    for e, emotion in enumerate(emotions):
        idx = store.index("emotion", emotion)
        labels, comps = component_stack(model, store, idx)
        comps = comps / store.tensor("final_scale")[idx][None]  # [C, rows, d]
        score_cols.append((comps @ v_ref[e]).mean(1))
        logit_cols.append(torch.cat([(comps @ ldirs[e]).mean(1), lbias[e : e + 1]]))
    score, logit = torch.stack(score_cols, 1), torch.stack(logit_cols, 1)
    return {
        "labels": labels,
        "score": score,
        "logit": logit,
        "emotions": list(emotions),
        "score_total": score.sum(0),
        "logit_total": logit.sum(0),
    }


def logit_lens(
    model: ModelHandle, store: ActivationStore, emotions: Sequence[str], words: dict[str, Sequence[str]] | None = None
) -> Float[torch.Tensor, "n_layers n_emotions"]:
    """Emotion-word logit difference read from each layer's normalised resid_post (the final norm
    applied early), averaged over each emotion's rows."""
    ldirs, lbias = logit_directions(model, emotions, words)
    out = torch.zeros(model.arch.n_layers, len(emotions))
    for e, emotion in enumerate(emotions):
        idx = store.index("emotion", emotion)
        x = store.tensor("resid_post")[idx]  # [rows, L, d]
        x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
        out[:, e] = (x @ ldirs[e]).mean(0) + lbias[e]
    return out


def neuron_attribution(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    layer: int,
    emotions: Sequence[str] | None = None,
    words: dict[str, Sequence[str]] | None = None,
    top_k: int | None = None,
    rank_by: str = "score",
    absolute: bool = False,
) -> dict[str, Any]:
    """Neurons on demand: the MLP share ``m{layer}`` of :func:`direct_logit_attribution`, split over
    the layer's neurons, averaged over each emotion's (accepted) rows.

    Neuron n of the layer writes ``a_n * W_out[n]`` into the residual (post-norm models: times the
    post-MLP norm's gain / scale), so its share of a target ``u`` (``v_ref_e`` for the emotion score,
    the emotion-word logit direction for the logit target) is ``mean_rows(a_n / final_scale) *
    (W_out[n] . u)``. The output bias ``b_out`` is one more share. Exactly (up to float error)::

        score[e].sum() + rest_score[e] + bias_score[e] == direct_logit_attribution(...)["score"][m{layer}, e]

    and the same for ``logit``. ``top_k`` keeps, per emotion, the ``k`` neurons with the largest
    ``rank_by`` share (``"score"`` | ``"logit"``; signed, most pro-emotion first, or by magnitude with
    ``absolute``); ``rest_*`` is the sum over the neurons left out (0 without ``top_k``).

    Returns ``{"layer": int, "emotions": [E], "neurons": [E, K] (long; K = top_k or d_mlp, all
    neurons in index order without top_k), "score": [E, K], "logit": [E, K], "bias_score": [E],
    "bias_logit": [E], "rest_score": [E], "rest_logit": [E]}``. Units: emotion score (final-state
    projection) and logits.
    """
    a = model.arch
    if not 0 <= layer < a.n_layers:
        raise ValueError(f"layer {layer} out of range (model has {a.n_layers} layers)")
    if rank_by not in ("score", "logit"):
        raise ValueError(f"rank_by must be 'score' or 'logit', got {rank_by!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    emotions = check_emotions(emotions, directions.emotions)
    v_ref = reference_directions(directions)[[directions.emotions.index(e) for e in emotions]]
    ldirs, _ = logit_directions(model, emotions, words)
    W = model.W_out(layer).detach().float().cpu()  # [d_mlp, d_model]
    b = model.b_out(layer).detach().float().cpu()  # [d_model]
    if a.post_norms:
        gain = model.post_norm_gain(layer, "mlp").detach().float().cpu()
        W, b = W * gain, b * gain
    beta_score, beta_logit = W @ v_ref.T, W @ ldirs.T  # [d_mlp, E]
    cols: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("neurons", "score", "logit", "bias_score", "bias_logit", "rest_score", "rest_logit")
    }
    for e, emotion in enumerate(emotions):
        idx = store.index("emotion", emotion)
        scale = neuron_write_scale(model, store, layer, idx)  # [rows]
        act = (store.tensor("mlp_post")[idx, layer] * scale[:, None]).mean(0)  # [d_mlp]
        score, logit = act * beta_score[:, e], act * beta_logit[:, e]
        neurons = torch.arange(a.d_mlp)
        if top_k is not None:
            key = score if rank_by == "score" else logit
            neurons = torch.topk(key.abs() if absolute else key, min(top_k, a.d_mlp)).indices
        keep = torch.zeros(a.d_mlp, dtype=torch.bool)
        keep[neurons] = True
        cols["neurons"].append(neurons)
        cols["score"].append(score[neurons])
        cols["logit"].append(logit[neurons])
        cols["rest_score"].append(score[~keep].sum())
        cols["rest_logit"].append(logit[~keep].sum())
        cols["bias_score"].append(scale.mean() * (b @ v_ref[e]))
        cols["bias_logit"].append(scale.mean() * (b @ ldirs[e]))
    return {"layer": layer, "emotions": list(emotions), **{k: torch.stack(v) for k, v in cols.items()}}


def neuron_write_scale(
    model: ModelHandle, store: ActivationStore, layer: int, idx: torch.Tensor
) -> Float[torch.Tensor, " rows"]:
    """Per-row factor from a neuron's raw write ``a_n * W_out[n]`` (gain-folded for post-norm models)
    to its share of the final state: ``1 / final_scale`` (post-norm models: also ``/ mlp_post_scale``)."""
    scale = 1.0 / store.tensor("final_scale")[idx, 0]
    if model.arch.post_norms:
        scale = scale / store.tensor("mlp_post_scale")[idx, layer]
    return scale
