"""Ablation and enhancement sweeps over the top-k neurons or heads of a layer, against random units.

For emotion e, layer L, unit kind (neurons | heads) and k: intervene on the k highest-scoring units of
that layer at the last prompt token of e's rows (emotion prompt) and measure the mean change of the
emotion score ``s_e`` (final state on ``v_ref_e``). The same for k random units of the layer (several
seeds). Modes:

* ``zero``: set the units to 0;   * ``mean``: set them to their mean over all emotion rows;
* ``scale``: multiply by ``scale_factor``;   * ``add``: add the emotion's Delta-mu on those units
  (the group-centred mean difference of the activation, from the store).

The result is long-tail curves: delta s against k for top and random units.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from circuits.directions import Directions, group_tensor
from circuits.emotions import check_emotions
from circuits.influence import final_state_hooks, reference_directions
from circuits.intervene import Intervention, make_hooks
from circuits.model import ModelHandle
from circuits.store import ActivationStore

MODES = ("zero", "mean", "scale", "add")


@dataclass(frozen=True)
class SweepConfig:
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    modes: tuple[str, ...] = ("zero", "add")
    seeds: int = 3
    scale_factor: float = 2.0
    layers: tuple[int, ...] | None = None
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def delta_mu(store: ActivationStore, name: str, emotions: Sequence[str]) -> torch.Tensor:
    """Group-centred mean difference of a store tensor per emotion: ``[n_emotions, *shape]``
    (``name`` = ``mlp_post`` -> ``[E, L, d_mlp]``; ``z`` -> ``[E, L, H, d_head]``)."""
    h, _ = group_tensor(store, name, emotions)
    return (h - h.mean(dim=1, keepdim=True)).mean(0)


def _final_scores(model: ModelHandle, prompts: list[list[int]], v: torch.Tensor, hooks_fn, batch_size: int):
    """``<final state, v>`` of each prompt's last position with ``hooks_fn()`` active."""
    vals = []
    for s in range(0, len(prompts), batch_size):
        ids, mask = model.pad_left(prompts[s:s + batch_size])
        got: dict = {}
        with torch.no_grad(), model.bridge.hooks(fwd_hooks=list(hooks_fn()) + final_state_hooks(model, got)):
            model.hf_model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)
        vals.append(((got["resid"] / got["scale"]).float().cpu()) @ v)
    return torch.cat(vals)


def sweep(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    scores: torch.Tensor,
    kind: str,
    config: SweepConfig | None = None,
    emotions: Sequence[str] | None = None,
    progress: bool = True,
    reference: ActivationStore | None = None,
) -> list[dict[str, Any]]:
    """Run the sweep. ``scores``: ``[n_layers, n_emotions, n_units]`` (neuron contributions or head
    importances, emotions in ``directions.emotions`` order); Delta-mu and mean activations come from
    ``reference`` (default ``store``) so the sweep can run on a subset of rows. Returns one record per (emotion, layer,
    mode, k, selection) with ``delta_s`` (mean over rows) and, for ``random``, the mean over seeds."""
    cfg = config or SweepConfig()
    if kind not in ("neurons", "heads"):
        raise ValueError(f"kind must be 'neurons' or 'heads', got {kind!r}")
    bad = [m for m in cfg.modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown sweep mode(s) {bad}: expected some of {MODES}")
    emotions = check_emotions(emotions, directions.emotions)
    name = "mlp_post" if kind == "neurons" else "z"
    n_units = model.arch.d_mlp if kind == "neurons" else model.arch.n_heads
    layers = list(range(model.arch.n_layers)) if cfg.layers is None else list(cfg.layers)
    ks = [k for k in cfg.ks if k <= n_units]
    v_ref = reference_directions(directions)
    ref = reference if reference is not None else store
    dmu = delta_mu(ref, name, directions.emotions)
    mean_act = ref.tensor(name)[ref.index("emotion")].mean(0)  # [L, units(, d_head)]
    records: list[dict[str, Any]] = []
    total = len(emotions) * len(layers) * len(cfg.modes) * len(ks) * (1 + cfg.seeds)
    bar = tqdm(total=total, desc=f"{kind} ablation/enhancement sweep", disable=not progress)
    for emotion in emotions:
        e = directions.emotions.index(emotion)
        idx = store.index("emotion", emotion)
        prompts = store.prompts(model, idx)
        base = _final_scores(model, prompts, v_ref[e], lambda: [], cfg.batch_size)
        for layer in layers:
            ranked = torch.argsort(scores[layer, e], descending=True).tolist()
            for mode in cfg.modes:
                for k in ks:
                    picks = [("top", ranked[:k])] + [
                        ("random", random.Random(1000 * seed + 7 * layer + k).sample(range(n_units), k))
                        for seed in range(cfg.seeds)
                    ]
                    rand_vals = []
                    for sel, units in picks:
                        if mode == "zero":
                            iv = Intervention(kind, layer, "set", tuple(units), positions="last")
                        elif mode == "mean":
                            iv = Intervention(kind, layer, "set", tuple(units), vector=mean_act[layer, units],
                                              positions="last")
                        elif mode == "scale":
                            iv = Intervention(kind, layer, "scale", tuple(units), factor=cfg.scale_factor,
                                              positions="last")
                        else:
                            iv = Intervention(kind, layer, "add", tuple(units), vector=dmu[e, layer, units],
                                              positions="last")
                        vals = _final_scores(model, prompts, v_ref[e], lambda iv=iv: make_hooks(model, [iv]),
                                             cfg.batch_size)
                        d = float((vals - base).mean())
                        bar.update(1)
                        if sel == "top":
                            records.append({"emotion": emotion, "layer": layer, "kind": kind, "mode": mode,
                                            "k": k, "selection": "top", "delta_s": d, "units": units})
                        else:
                            rand_vals.append(d)
                    if rand_vals:
                        records.append({"emotion": emotion, "layer": layer, "kind": kind, "mode": mode, "k": k,
                                        "selection": "random", "delta_s": sum(rand_vals) / len(rand_vals),
                                        "delta_s_seeds": rand_vals})
    bar.close()
    return records


def generation_effect(
    model: ModelHandle,
    store: ActivationStore,
    emotions: Sequence[str],
    neuron_scores: torch.Tensor,
    head_scores: torch.Tensor,
    k_neurons: int = 16,
    k_heads: int = 2,
    rows_per_emotion: int = 12,
    seeds: int = 2,
    max_new_tokens: int = 40,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Judged emotion of generations (emotion prompt) with the top ``k_neurons`` neurons and top
    ``k_heads`` heads of every layer zero-ablated at every position, against as many random units
    (``seeds`` draws) and against no ablation. Scores are ``[n_layers, n_emotions(all), n_units]``
    in ``store.emotions`` order. Returns ``{emotion: {"baseline", "top", "random"}}`` accuracies
    (share of replies judged as the prompted emotion) and their means under ``"mean"``."""
    from circuits.generate import GenerationSettings, generate
    from circuits.judge import judge as lexicon_judge

    judge = judge or lexicon_judge
    a = model.arch
    gen = GenerationSettings(max_new_tokens=max_new_tokens)
    out: dict[str, Any] = {}

    def ablation(pick: Callable[[torch.Tensor, int, int], list[int]]) -> list[Intervention]:
        ivs = []
        for L in range(a.n_layers):
            ivs.append(Intervention("neurons", L, "set", tuple(pick(neuron_scores[L, e_idx], k_neurons, L)), positions="all"))
            ivs.append(Intervention("heads", L, "set", tuple(pick(head_scores[L, e_idx], k_heads, L)), positions="all"))
        return ivs

    for emotion in tqdm(emotions, desc="ablation: judged generations", disable=not progress):
        e_idx = store.emotions.index(emotion)
        idx = store.index("emotion", emotion)[:rows_per_emotion]
        prompts = store.prompts(model, idx)

        def acc(ivs: list[Intervention]) -> float:
            replies = generate(model, prompts, gen, hooks=lambda _: make_hooks(model, ivs), progress=False)
            return sum(j.label == emotion for j in judge(replies)) / max(1, len(replies))

        top = ablation(lambda s, k, L: torch.topk(s, min(k, s.numel())).indices.tolist())
        rand = [ablation(lambda s, k, L, seed=seed: random.Random(97 * seed + L).sample(range(s.numel()), min(k, s.numel())))
                for seed in range(seeds)]
        out[emotion] = {"baseline": acc([]), "top": acc(top), "random": sum(acc(r) for r in rand) / max(1, seeds)}
    out["mean"] = {key: sum(v[key] for k, v in out.items() if k != "mean") / max(1, len(emotions))
                   for key in ("baseline", "top", "random")}
    out["config"] = {"k_neurons": k_neurons, "k_heads": k_heads, "rows_per_emotion": rows_per_emotion, "seeds": seeds}
    return out
