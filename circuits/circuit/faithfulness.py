"""Circuit faithfulness: how much of the emotion a circuit carries on its own, and how much is lost
without it, each against random circuits of the same size per layer.

Units are every MLP neuron and every attention head (its z vector) of every layer. *Mean-ablating* a
unit sets its activation at the **last prompt token** to its mean over all emotion rows of the
reference store (the emotion-agnostic value, as the sweeps' ``mean`` mode). With the emotion prompt
and ``s`` = the mean emotion score (the last token's final state on the reference direction, as in the
sweeps):

* ``s_full``: nothing ablated;  ``s_empty``: every unit ablated;
* ``s_circuit``: every unit *outside* the circuit ablated;  ``s_ablated``: the circuit's units ablated;
* **faithfulness** ``= (s_circuit - s_empty) / (s_full - s_empty)`` (EAP-IG's normalised metric: 1 when
  the circuit alone restores the full score, 0 when it does no better than nothing);
* **ablation loss** ``= (s_full - s_ablated) / (s_full - s_empty)`` (the share of the score lost
  without the circuit).

Random circuits keep the circuit's number of neurons and of heads in every layer and draw the units
uniformly (``seeds`` draws, seeded). Optionally the same four conditions are judged on generations
(``judge_rows`` per emotion; the ablation then acts at the last prompt token and every generated token):
the share of replies judged as the emotion under the emotion prompt.

The result is the ``faithfulness`` block of the circuit file (schema version 2).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Float

from circuits.circuit.circuit import Circuit
from circuits.core.hooks import Intervention
from circuits.core.model import ModelHandle
from circuits.discovery.ablation import _LastTokenBatches
from circuits.discovery.directions import Directions
from circuits.discovery.influence import reference_directions
from circuits.discovery.store import ActivationStore

CONDITIONS = ("full", "empty", "circuit", "ablated")
"""Nothing ablated; everything ablated; everything outside the circuit ablated; the circuit ablated."""

Units = dict[str, dict[int, list[int]]]
"""``{"neurons": {layer: [indices]}, "heads": {layer: [indices]}}``."""


@dataclass(frozen=True)
class FaithfulnessConfig:
    """Options of :func:`circuit_faithfulness`."""

    rows: int = 24
    """Emotion-prompt rows per emotion for the score (the first ``rows`` of the emotion's rows)."""
    seeds: int = 3
    """Random circuits of the same size per layer."""
    judge_rows: int = 0
    """Rows per emotion for judged generations under each condition (0: scores only)."""
    max_new_tokens: int = 32
    batch_size: int = 32
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def circuit_units(circuit: Circuit) -> Units:
    return {"neurons": circuit.neuron_index(), "heads": circuit.head_index()}


def random_units(circuit: Circuit, seed: int) -> Units:
    """Units drawn uniformly with the circuit's number of neurons and heads in every layer."""
    a = circuit.arch
    rng = random.Random(seed)
    out: Units = {"neurons": {}, "heads": {}}
    for L in range(a.n_layers):
        out["neurons"][L] = sorted(rng.sample(range(a.d_mlp), len(circuit.neuron_index()[L])))
        out["heads"][L] = sorted(rng.sample(range(a.n_heads), len(circuit.head_index()[L])))
    return out


def mean_activations(store: ActivationStore) -> dict[str, torch.Tensor]:
    """Mean over the emotion rows of the last-token activations: ``{"neurons": [L, d_mlp],
    "heads": [L, H, d_head]}`` (the values mean-ablation sets)."""
    idx = store.index("emotion")
    return {"neurons": store.tensor("mlp_post")[idx].float().mean(0), "heads": store.tensor("z")[idx].float().mean(0)}


def ablation_interventions(model: ModelHandle, means: dict[str, torch.Tensor], ablate: Units,
                           positions: str = "last") -> list[Intervention]:
    """Mean-ablation of ``ablate``'s units (``set`` to ``means``) at ``positions``."""
    ivs = []
    for kind in ("neurons", "heads"):
        for L, units in sorted(ablate[kind].items()):
            if units:
                ivs.append(Intervention(kind, L, "set", tuple(units), vector=means[kind][L, list(units)],
                                        positions=positions))
    return ivs


def complement(model: ModelHandle, units: Units) -> Units:
    """Every unit of the model that is not in ``units``."""
    a = model.arch
    size = {"neurons": a.d_mlp, "heads": a.n_heads}
    return {kind: {L: sorted(set(range(size[kind])) - set(units[kind].get(L, ()))) for L in range(a.n_layers)}
            for kind in size}


def condition_ablations(model: ModelHandle, units: Units) -> dict[str, Units]:
    """What each of :data:`CONDITIONS` ablates for a circuit with ``units``."""
    none: Units = {"neurons": {}, "heads": {}}
    return {"full": none, "empty": complement(model, none), "circuit": complement(model, units), "ablated": units}


def normalised(s: dict[str, float]) -> dict[str, float]:
    """Faithfulness and ablation loss from the four condition scores (NaN when full == empty)."""
    span = s["full"] - s["empty"]
    if span == 0:
        return {"faithfulness": float("nan"), "ablation_loss": float("nan")}
    return {"faithfulness": (s["circuit"] - s["empty"]) / span, "ablation_loss": (s["full"] - s["ablated"]) / span}


@torch.no_grad()
def condition_scores(model: ModelHandle, runner: _LastTokenBatches, v: Float[torch.Tensor, "d_model"],
                     means: dict[str, torch.Tensor], units: Units) -> dict[str, float]:
    """Mean emotion score of the runner's prompts under each of :data:`CONDITIONS`."""
    return {name: float(runner.final_scores(v, ablation_interventions(model, means, ablate)).mean())
            for name, ablate in condition_ablations(model, units).items()}


def _summary(values: Sequence[float]) -> dict[str, Any]:
    vals = [float(x) for x in values]
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
            "seeds": vals}


def circuit_faithfulness(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    circuits: Sequence[Circuit],
    config: FaithfulnessConfig | None = None,
    *,
    reference: ActivationStore | None = None,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """The ``faithfulness`` block of each circuit, by emotion (see the module docstring)::

        {"metric": "emotion_score_last_token", "ablation": "mean", "rows": n,
         "scores": {condition: s}, "faithfulness": f, "ablation_loss": l,
         "random": {"faithfulness": {"mean", "std", "seeds"}, "ablation_loss": {...}, "n_seeds": k},
         "judged": {"rows": n, "accuracy": {condition: acc}, "random_circuit": acc, "random_ablated": acc}
                   (only with judge_rows > 0), "config": {...}}

    ``reference`` (default ``store``) gives the means the ablation sets; ``store`` the rows scored."""
    from tqdm.auto import tqdm

    cfg = config or FaithfulnessConfig()
    ref = reference if reference is not None else store
    means = mean_activations(ref)
    v_ref = reference_directions(directions)
    dev, dt = model.device, model.dtype
    out: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(circuits) * (1 + cfg.seeds), desc="circuit faithfulness", disable=not progress)
    for circuit in circuits:
        e = directions.emotions.index(circuit.emotion)
        idx = store.index("emotion", circuit.emotion)[: cfg.rows]
        runner = _LastTokenBatches(model, store.prompts(model, idx), cfg.batch_size)
        v = v_ref[e].to(dev, dt)
        scores = condition_scores(model, runner, v, means, circuit_units(circuit))
        bar.update(1)
        rand = []
        for seed in range(cfg.seeds):
            rs = condition_scores(model, runner, v, means, random_units(circuit, 1000 * cfg.seed + seed))
            rand.append(normalised(rs))
            bar.update(1)
        out[circuit.emotion] = {
            "metric": "emotion_score_last_token", "ablation": "mean", "rows": int(idx.numel()), "scores": scores,
            **normalised(scores),
            "random": {"faithfulness": _summary([r["faithfulness"] for r in rand]),
                       "ablation_loss": _summary([r["ablation_loss"] for r in rand]), "n_seeds": cfg.seeds},
            "config": cfg.to_dict(),
        }
    bar.close()
    if cfg.judge_rows > 0:
        judged = judged_faithfulness(model, store, circuits, means, cfg, judge=judge, progress=progress)
        for emotion, block in judged.items():
            out[emotion]["judged"] = block
    return out


def judged_faithfulness(model: ModelHandle, store: ActivationStore, circuits: Sequence[Circuit],
                        means: dict[str, torch.Tensor], cfg: FaithfulnessConfig, *, judge: Any = None,
                        progress: bool = True) -> dict[str, dict[str, Any]]:
    """Judged accuracy of emotion-prompt generations under each condition (ablation at the last prompt
    token and every generated token), plus the random circuit (seed 0) alone and ablated; every
    (emotion, condition) in one batched generate call."""
    from circuits.core.generate import GenerationSettings, generate
    from circuits.judges.base import default_judge_instance, judge_matches

    judge = judge or default_judge_instance()
    jobs: list[tuple[str, str, list[list[int]], list[Intervention]]] = []
    for circuit in circuits:
        idx = store.index("emotion", circuit.emotion)[: cfg.judge_rows]
        prompts = store.prompts(model, idx)
        conds = condition_ablations(model, circuit_units(circuit))
        rconds = condition_ablations(model, random_units(circuit, 1000 * cfg.seed))
        plan = [*conds.items(), ("random_circuit", rconds["circuit"]), ("random_ablated", rconds["ablated"])]
        jobs += [(circuit.emotion, name, prompts,
                  ablation_interventions(model, means, ablate, positions="last+generated")) for name, ablate in plan]
    gen = GenerationSettings(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    texts = generate(model, [p for j in jobs for p in j[2]], gen, interventions=[j[3] for j in jobs for _ in j[2]],
                     progress=progress, desc="faithfulness: judged generations")
    targets = [j[0] for j in jobs for _ in j[2]]
    hits, _ = judge_matches(judge, texts, targets, instructions=[store.settings.instructions(t) for t in targets])
    out: dict[str, dict[str, Any]] = {}
    start = 0
    for emotion, name, prompts, _ in jobs:
        part = hits[start:start + len(prompts)]
        start += len(prompts)
        block = out.setdefault(emotion, {"rows": len(prompts), "accuracy": {}})
        acc = sum(part) / max(1, len(part))
        if name in CONDITIONS:
            block["accuracy"][name] = acc
        else:
            block[name] = acc
    return out


def faithfulness_summary(blocks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per emotion: faithfulness and ablation loss of the circuit and of random circuits (mean, std), and
    the judged accuracies when measured (the full blocks are in the circuit files)."""
    out = {}
    for e, b in blocks.items():
        out[e] = {"faithfulness": b["faithfulness"], "random_faithfulness": b["random"]["faithfulness"]["mean"],
                  "random_faithfulness_std": b["random"]["faithfulness"]["std"],
                  "ablation_loss": b["ablation_loss"], "random_ablation_loss": b["random"]["ablation_loss"]["mean"],
                  "random_ablation_loss_std": b["random"]["ablation_loss"]["std"], "rows": b["rows"]}
        if "judged" in b:
            out[e]["judged"] = {**b["judged"]["accuracy"], "random_circuit": b["judged"]["random_circuit"],
                                "random_ablated": b["judged"]["random_ablated"], "rows": b["judged"]["rows"]}
    return out


def faithfulness_table(summary: dict[str, dict[str, Any]]) -> str:
    """Plain text of :func:`faithfulness_summary`: per emotion, faithfulness and ablation loss of the circuit
    against random circuits (mean +- std over seeds), and the judged accuracies when measured."""
    lines = [f"{'emotion':<10} {'faithful':>9} {'random':>16} {'abl. loss':>10} {'random':>16}  "
             "judged: full / circuit only / circuit ablated (random circuit only / ablated)"]
    for emotion, b in summary.items():
        judged = ""
        if "judged" in b:
            j = b["judged"]
            judged = (f"{j['full']:.0%} / {j['circuit']:.0%} / {j['ablated']:.0%} "
                      f"({j['random_circuit']:.0%} / {j['random_ablated']:.0%}; {j['rows']} rows)")
        lines.append(f"{emotion:<10} {b['faithfulness']:>9.3f} {b['random_faithfulness']:>9.3f} +-"
                     f"{b['random_faithfulness_std']:.3f} {b['ablation_loss']:>10.3f} {b['random_ablation_loss']:>9.3f} "
                     f"+-{b['random_ablation_loss_std']:.3f}  {judged}")
    return "\n".join(lines)
