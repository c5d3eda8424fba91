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

The scored prompts are held-out SEV items by default (``split="test"``: the test split under the store's
prompt settings, none of them seen when the circuits were found); ``split="train"`` scores the store's own
rows instead (in-sample). The means the ablation sets always come from the store (train).

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

from circuits.circuit.emotion_circuit import Circuit
from circuits.core.config import check_config, config_from_dict, help_field
from circuits.core.hooks import Intervention
from circuits.core.model import ModelHandle
from circuits.core.sev import SEVDataset
from circuits.discovery.ablation import _LastTokenBatches, emotion_mean
from circuits.discovery.directions import Directions
from circuits.discovery.influence import reference_directions
from circuits.discovery.store import ActivationStore

CONDITIONS = ("full", "empty", "circuit", "ablated")
"""Nothing ablated; everything ablated; everything outside the circuit ablated; the circuit ablated."""

Units = dict[str, dict[int, list[int]]]
"""``{"neurons": {layer: [indices]}, "heads": {layer: [indices]}}``."""


SPLITS = ("test", "train")
"""Where the scored prompts come from: held-out SEV items (``test``) or the store's own rows (``train``,
in-sample: the rows the circuits were found on)."""


@dataclass(frozen=True)
class FaithfulnessConfig:
    """Options of :func:`circuit_faithfulness` (each field is also a flag of ``emocircuits faithfulness``)."""

    rows: int = help_field(
        24, "emotion-prompt rows per emotion for the score (the first N of the emotion's items)", min=1
    )
    seeds: int = help_field(3, "random circuits of equal size per layer", min=1)
    judge_rows: int = help_field(
        0, "rows per emotion for judged generations under each condition (0: emotion score only)", min=0
    )
    split: str = help_field(
        "test",
        "prompts scored: held-out SEV items (test) or the store's own rows (train, "
        "in-sample); the ablation means always come from the store",
        choices=SPLITS,
    )
    max_new_tokens: int = help_field(32, "tokens per judged generation", min=1)
    batch_size: int = help_field(32, "prompts per forward pass", min=1)
    seed: int = help_field(0, "seed of the random circuits")

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FaithfulnessConfig":
        return config_from_dict(cls, d)


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
    return {"neurons": emotion_mean(store, "mlp_post"), "heads": emotion_mean(store, "z")}


def check_held_out(store: ActivationStore, heldout: SEVDataset) -> None:
    """Refuse held-out items that are the store's own data (the same file hash, or a scenario the store
    was built from): faithfulness on them would be in-sample under a held-out label."""
    from circuits.core.artifacts import InputError

    ds = store.meta["dataset"]
    seen = {r.skeleton_id for r in store.rows}
    shared = sorted(seen & {s.skeleton_id for s in heldout.scenarios})
    if heldout.sha256 == ds.get("sha256") or shared:
        raise InputError(
            f"{heldout.path}: not held out: the store was built from {ds.get('path')} and shares "
            f"{len(shared) or 'all'} scenario(s) with it{' (' + ', '.join(shared[:3]) + ')' if shared else ''}; "
            "give held-out items (--sev) or --split train for an in-sample measure"
        )


def scored_prompts(
    model: ModelHandle, store: ActivationStore, emotion: str, n: int, heldout: SEVDataset | None = None
) -> list[list[int]]:
    """Chat token ids of the first ``n`` emotion-prompt rows of ``emotion``: from ``heldout`` (its items, in
    the store's prompt settings) or, without it, the store's own rows."""
    if heldout is None:
        return store.prompts(model, store.index("emotion", emotion)[:n])
    from circuits.core.artifacts import InputError
    from circuits.discovery.store import StoreConfig, plan_rows, row_prompts

    rows = plan_rows(heldout, StoreConfig(emotions=(emotion,), neutral=False))[:n]
    if not rows:
        raise InputError(f"{heldout.path}: no held-out item for {emotion!r} to score faithfulness on")
    return row_prompts(model, rows, store.settings)


def ablation_interventions(
    model: ModelHandle, means: dict[str, torch.Tensor], ablate: Units, positions: str = "last"
) -> list[Intervention]:
    """Mean-ablation of ``ablate``'s units (``set`` to ``means``) at ``positions``."""
    ivs = []
    for kind in ("neurons", "heads"):
        for L, units in sorted(ablate[kind].items()):
            if units:
                ivs.append(
                    Intervention(kind, L, "set", tuple(units), vector=means[kind][L, list(units)], positions=positions)
                )
    return ivs


def complement(model: ModelHandle, units: Units) -> Units:
    """Every unit of the model that is not in ``units``."""
    a = model.arch
    size = {"neurons": a.d_mlp, "heads": a.n_heads}
    return {
        kind: {L: sorted(set(range(size[kind])) - set(units[kind].get(L, ()))) for L in range(a.n_layers)}
        for kind in size
    }


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
def condition_scores(
    model: ModelHandle,
    runner: _LastTokenBatches,
    v: Float[torch.Tensor, " d_model"],
    means: dict[str, torch.Tensor],
    units: Units,
) -> dict[str, float]:
    """Mean emotion score of the runner's prompts under each of :data:`CONDITIONS`."""
    return {
        name: float(runner.final_scores(v, ablation_interventions(model, means, ablate)).mean())
        for name, ablate in condition_ablations(model, units).items()
    }


def _summary(values: Sequence[float]) -> dict[str, Any]:
    vals = [float(x) for x in values]
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0, "seeds": vals}


def circuit_faithfulness(
    model: ModelHandle,
    store: ActivationStore,
    directions: Directions,
    circuits: Sequence[Circuit],
    config: FaithfulnessConfig | None = None,
    *,
    reference: ActivationStore | None = None,
    heldout: SEVDataset | None = None,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """The ``faithfulness`` block of each circuit, by emotion (see the module docstring)::

        {"metric": "emotion_score_last_token", "ablation": "mean", "rows": n,
         "scores": {condition: s}, "faithfulness": f, "ablation_loss": l,
         "random": {"faithfulness": {"mean", "std", "seeds"}, "ablation_loss": {...}, "n_seeds": k},
         "judged": {"rows": n, "accuracy": {condition: acc}, "random_circuit": acc, "random_ablated": acc}
                   (only with judge_rows > 0), "config": {...}}

    ``reference`` (default ``store``) gives the means the ablation sets. The rows scored are the store's
    own (``config.split == "train"``) or the items of ``heldout`` (``"test"``; default the shipped test
    split)."""
    from tqdm.auto import tqdm

    cfg = config or FaithfulnessConfig()
    held = None
    if cfg.split == "test":
        from circuits.core.sev import DEFAULT_TEST, load_sev

        held = heldout if heldout is not None else load_sev(DEFAULT_TEST)
        check_held_out(store, held)
    elif heldout is not None:
        raise ValueError("circuit_faithfulness: heldout= is only read with FaithfulnessConfig.split 'test'")
    provenance = (
        {"split": "test", "path": str(held.path) if held.path else None, "sha256": held.sha256}
        if held is not None
        else {
            "split": "train",
            "path": store.meta["dataset"].get("path"),
            "sha256": store.meta["dataset"].get("sha256"),
        }
    )
    ref = reference if reference is not None else store
    means = mean_activations(ref)
    v_ref = reference_directions(directions)
    dev, dt = model.device, model.dtype
    out: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(circuits) * (1 + cfg.seeds), desc="circuit faithfulness", disable=not progress)
    for circuit in circuits:
        e = directions.emotions.index(circuit.emotion)
        prompts = scored_prompts(model, store, circuit.emotion, cfg.rows, held)
        runner = _LastTokenBatches(model, prompts, cfg.batch_size)
        v = v_ref[e].to(dev, dt)
        scores = condition_scores(model, runner, v, means, circuit_units(circuit))
        bar.update(1)
        rand = []
        for seed in range(cfg.seeds):
            rs = condition_scores(model, runner, v, means, random_units(circuit, 1000 * cfg.seed + seed))
            rand.append(normalised(rs))
            bar.update(1)
        out[circuit.emotion] = {
            "metric": "emotion_score_last_token",
            "ablation": "mean",
            "rows": len(prompts),
            "items": provenance,
            "scores": scores,
            **normalised(scores),
            "random": {
                "faithfulness": _summary([r["faithfulness"] for r in rand]),
                "ablation_loss": _summary([r["ablation_loss"] for r in rand]),
                "n_seeds": cfg.seeds,
            },
            "config": cfg.to_dict(),
        }
    bar.close()
    if cfg.judge_rows > 0:
        judged = judged_faithfulness(model, store, circuits, means, cfg, heldout=held, judge=judge, progress=progress)
        for emotion, block in judged.items():
            out[emotion]["judged"] = block
    return out


def judged_faithfulness(
    model: ModelHandle,
    store: ActivationStore,
    circuits: Sequence[Circuit],
    means: dict[str, torch.Tensor],
    cfg: FaithfulnessConfig,
    *,
    heldout: SEVDataset | None = None,
    judge: Any = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Judged accuracy of emotion-prompt generations under each condition (ablation at the last prompt
    token and every generated token), plus the random circuit (seed 0) alone and ablated; every
    (emotion, condition) in one batched generate call. Prompts as :func:`scored_prompts`."""
    from circuits.core.generate import GenerationSettings
    from circuits.discovery.ablation import GenerationJob, judged_generations
    from circuits.judges.base import default_judge_instance

    judge = judge or default_judge_instance(model.name)
    plan: list[tuple[str, str]] = []
    jobs: list[GenerationJob] = []
    for circuit in circuits:
        prompts = scored_prompts(model, store, circuit.emotion, cfg.judge_rows, heldout)
        conds = condition_ablations(model, circuit_units(circuit))
        rconds = condition_ablations(model, random_units(circuit, 1000 * cfg.seed))
        for name, ablate in [
            *conds.items(),
            ("random_circuit", rconds["circuit"]),
            ("random_ablated", rconds["ablated"]),
        ]:
            plan.append((circuit.emotion, name))
            jobs.append(
                GenerationJob(
                    circuit.emotion, prompts, ablation_interventions(model, means, ablate, positions="last+generated")
                )
            )
    gen = GenerationSettings(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    results = judged_generations(
        model, jobs, store.settings, gen, judge, progress=progress, desc="faithfulness: judged generations"
    )
    out: dict[str, dict[str, Any]] = {}
    for (emotion, name), r in zip(plan, results):
        block = out.setdefault(emotion, {"rows": len(r.hits), "accuracy": {}, "broken_share": {}})
        acc = sum(r.hits) / max(1, len(r.hits))
        if name in CONDITIONS:
            block["accuracy"][name] = acc
        else:
            block[name] = acc
        block["broken_share"][name] = sum(r.broken) / max(1, len(r.broken))
    return out


def faithfulness_summary(blocks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per emotion: faithfulness and ablation loss of the circuit and of random circuits (mean, std), and
    the judged accuracies when measured (the full blocks are in the circuit files)."""
    out = {}
    for e, b in blocks.items():
        out[e] = {
            "faithfulness": b["faithfulness"],
            "random_faithfulness": b["random"]["faithfulness"]["mean"],
            "random_faithfulness_std": b["random"]["faithfulness"]["std"],
            "ablation_loss": b["ablation_loss"],
            "random_ablation_loss": b["random"]["ablation_loss"]["mean"],
            "random_ablation_loss_std": b["random"]["ablation_loss"]["std"],
            "rows": b["rows"],
            "split": b.get("items", {}).get("split", "train"),
        }  # blocks before the split was recorded: train
        if "judged" in b:
            out[e]["judged"] = {
                **b["judged"]["accuracy"],
                "random_circuit": b["judged"]["random_circuit"],
                "random_ablated": b["judged"]["random_ablated"],
                "rows": b["judged"]["rows"],
            }
    return out


def faithfulness_table(summary: dict[str, dict[str, Any]]) -> str:
    """Plain text of :func:`faithfulness_summary`: a title naming the scored items, then per emotion, faithfulness and ablation loss of the circuit
    against random circuits (mean +- std over seeds), and the judged accuracies when measured."""
    splits = {b.get("split", "train") for b in summary.values()}
    where = {"test": "held-out test items", "train": "the store's own rows (in-sample)"}
    title = (
        "circuit faithfulness (emotion score at the last token, on "
        + " and ".join(where[s] for s in sorted(splits))
        + "; random: circuits of equal size per layer)"
    )
    lines = [
        title,
        f"{'emotion':<10} {'faithful':>9} {'random':>16} {'abl. loss':>10} {'random':>16}  "
        "judged: full / circuit only / circuit ablated (random circuit only / ablated)",
    ]
    for emotion, b in summary.items():
        judged = ""
        if "judged" in b:
            j = b["judged"]
            judged = (
                f"{j['full']:.0%} / {j['circuit']:.0%} / {j['ablated']:.0%} "
                f"({j['random_circuit']:.0%} / {j['random_ablated']:.0%}; {j['rows']} rows)"
            )
        lines.append(
            f"{emotion:<10} {b['faithfulness']:>9.3f} {b['random_faithfulness']:>9.3f} +-"
            f"{b['random_faithfulness_std']:.3f} {b['ablation_loss']:>10.3f} {b['random_ablation_loss']:>9.3f} "
            f"+-{b['random_ablation_loss_std']:.3f}  {judged}"
        )
    return "\n".join(lines)
